"""The TFX pipelines, one sub-package per task: ``classifier/`` (text classification), ``lm/`` (GPT-2) and
``qa/`` (extractive question answering on SQuAD-format data).

What every pipeline shares lives here: the custom components (``components``: the validation gate and the
integer-version Pusher), the pieces each pipeline is assembled from (``assembly``), the local-run wrapper
with its progress lines and report (``runner``), reading a run back from ML Metadata (``mlmd``), the
curated schemas (``schema/``) and ``tfxformers pipeline run|compile`` (``pipeline_cli``).
Importing this package imports nothing heavy; TFX loads only with a pipeline or component module.
"""
