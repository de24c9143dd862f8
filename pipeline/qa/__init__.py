"""The question-answering TFX pipeline: SQuAD-format questions -> checked examples -> reader Trainer -> EM/F1
evaluator (above the lexical baseline, no worse than the latest blessed model) -> Pusher.

``pipeline.create_qa_pipeline`` builds it (pure), ``runner.run_qa_local`` runs it here and
``runner.report_qa`` says what happened; ``data`` writes the input TFRecords, ``checks`` is the gate's
per-question content check, ``components`` the gate and the evaluator, ``trainer_module`` the Trainer's
``run_fn`` (the work in ``training``), ``options`` the ``pipeline run --task qa`` command-line options.
"""
