"""``tfxformers export``: a trained-model directory -> ``MODEL_BASE/NAME/<version>/`` for TF Serving."""
from __future__ import annotations

import argparse


def register(commands, train_commands) -> None:
    export = commands.add_parser("export", help="export a trained model as a versioned SavedModel for TF Serving")
    export.add_argument("--model", required=True, help="a directory written by `tfxformers train ...`, or a BERT "
                        "checkpoint directory (or minilm) to export as a sentence encoder")
    export.add_argument("--name", required=True, help="the served model's name")
    export.add_argument("--model-base", default="serving_models", help="TF Serving's model base directory")
    export.add_argument("--version", type=int, default=None, help="default: the next integer")
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from tfxformers.serving.export import export_model

    path = export_model(args.model, args.name, args.model_base, args.version)
    print(f"exported {args.model} as {path}")
    print(f"  inspect: .venv/bin/saved_model_cli show --dir {path} --all")
    return 0
