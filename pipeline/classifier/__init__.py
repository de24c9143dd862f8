"""The text classifier's TFX pipeline: split CSVs -> validated examples -> Trainer -> TFMA Evaluator -> Pusher.

``pipeline.create_pipeline`` builds it (pure), ``runner.run_local`` runs it here and
``runner.compile_for_vertex`` compiles it for Kubeflow Pipelines v2 / Vertex AI; the Trainer's module is
``trainer_module`` (``run_fn``), the Evaluator's tf.Example signature is ``signatures``.
"""
