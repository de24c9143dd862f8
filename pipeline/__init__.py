"""The TFX pipeline: split CSVs -> statistics -> curated schema check -> Trainer -> Evaluator -> Pusher.

``pipeline.create_pipeline`` builds it (pure), ``runner.run_local`` runs it here, ``runner.compile_for_vertex``
compiles it for Kubeflow Pipelines v2 / Vertex AI, ``pipeline_cli`` is ``tfxformers pipeline run|compile``.
Importing this package imports nothing heavy; TFX loads only with ``pipeline.pipeline`` / ``components``.
"""
