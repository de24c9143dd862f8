"""The TFX Trainer's module: only the function TFX calls. The work is in ``tfxformers.pipeline.classifier.training``."""
from __future__ import annotations


# The TFX Trainer calls this with the examples, schema and custom_config (``Trainer(run_fn=...)``).
def run_fn(fn_args) -> None:
    from tfxformers.pipeline.classifier.training import train_and_export

    train_and_export(fn_args)
