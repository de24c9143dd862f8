"""The language-model Trainer's module: only the function TFX calls. The work is in ``pipeline.lm.training``."""
from __future__ import annotations


# The TFX Trainer calls this with the examples, the tokenizer (transform_graph) and custom_config.
def run_fn(fn_args) -> None:
    from tfxformers.pipeline.lm.training import train_and_export

    train_and_export(fn_args)
