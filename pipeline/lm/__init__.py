"""The language model's TFX pipeline: corpus documents -> validated examples -> BPE tokenizer -> GPT-2 Trainer
-> perplexity evaluator -> Pusher.

``pipeline.create_lm_pipeline`` builds it (pure), ``runner.run_lm_local`` runs it here; the Trainer's
module is ``trainer_module`` (``run_fn``), the tokenizer and evaluator components are ``components``.
"""
