"""``tfxformers export``: a trained-model directory -> ``MODEL_BASE/NAME/<version>/`` for TF Serving.

Everything that can be checked from the arguments alone (the destination, the name, a version that
already exists) is checked here, before the export loads TensorFlow and the model, so a mistake costs a
second and one ``error: ...`` line rather than a model load and a traceback.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from tfxformers.cli_types import output_dir, positive_int
from tfxformers.errors import UserError
from tfxformers.serving import layout


def register(commands, train_commands) -> None:
    export = commands.add_parser("export", help="export a trained model as a versioned SavedModel for TF Serving")
    export.add_argument("--model", required=True, help="a directory written by `tfxformers train ...`, or a BERT "
                        "checkpoint directory (or minilm) to export as a sentence encoder")
    export.add_argument("--name", required=True, help="the served model's name (letters, digits, '-' or '_')")
    export.add_argument("--model-base", default="serving_models", type=output_dir,
                        help="TF Serving's model base directory")
    export.add_argument("--version", type=positive_int, default=None, help="default: the next integer")
    export.add_argument("--with-attention", action="store_true",
                        help="classifiers: add the `attention` signature (every layer's and head's attention "
                             "weights; the proxy's :attention endpoint needs it)")
    export.set_defaults(func=run_export)


def check_export_arguments(model: str, name: str, model_base: str, version: int | None) -> None:
    """The cheap checks, in the order a user would fix them; raises ``UserError``."""
    if model != "minilm":
        path = Path(model).expanduser()
        if not path.exists():
            raise UserError(f"model directory not found: {model}")
        if not path.is_dir():
            raise UserError(f"{model} is a file, not a model directory; give the directory `tfxformers train` wrote")
    layout.check_model_name(name, "--name", " (it is a directory and a URL part)")
    base = Path(model_base).expanduser()
    existing = next((p for p in (base, *base.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--model-base {model_base}: cannot write into {existing} (permission denied)")
    if version is not None:
        layout.check_version_is_new(base / name / str(version),
                                    "choose another --version or leave it out for the next one")


def run_export(args: argparse.Namespace) -> int:
    check_export_arguments(args.model, args.name, args.model_base, args.version)
    if getattr(args, "with_attention", False):
        from tfxformers.serving.export.attention import export_with_attention as export_model
    else:
        from tfxformers.serving.export.trained import export_model

    path = export_model(args.model, args.name, args.model_base, args.version)
    print(f"exported {args.model} as {path}")
    print(f"  inspect: .venv/bin/saved_model_cli show --dir {path} --all")
    return 0
