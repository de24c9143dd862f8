"""The question-answering Trainer's module: only the function TFX calls. The work is in ``pipeline.qa.training``."""
from __future__ import annotations


# The TFX Trainer calls this with the checked examples, the curated schema and custom_config.
def run_fn(fn_args) -> None:
    from tfxformers.pipeline.qa.training import train_and_export

    train_and_export(fn_args)
