"""GPT-2 pretraining on a user's corpus: the byte-level BPE tokenizer trained on it (``tokenizer``), the
model and its training recipe (``gpt2``), in-graph generation (``generate``) and the ``train gpt2`` CLI.
Imports nothing itself."""
