"""The ``tfxformers`` command line: one entry point, subcommands registered by the folders that own them.

Each module listed in ``COMMAND_MODULES`` defines ``register(commands, train_commands)``, adding its
subcommands to the top-level subparsers or to ``tfxformers train ...``. A command's handler is stored as
``func`` and takes the parsed ``argparse.Namespace``; it returns an exit code (or None for 0).
Heavy imports (TensorFlow, TFX) happen inside handlers, so ``tfxformers --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import tfxformers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from tfxformers.cli_types import OneLineErrorParser
from tfxformers.errors import UserError

COMMAND_MODULES = (
    "tfxformers.models.data_cli",        # data fetch | data list
    "tfxformers.models.classifier_cli",  # train classifier | evaluate | predict
    "tfxformers.models.gpt2_cli",        # train gpt2 | generate
    "tfxformers.serving.export_cli",     # export
    "tfxformers.serving.server_cli",     # serve
    "tfxformers.serving.proxy_cli",      # proxy
    "tfxformers.pipeline.pipeline_cli",  # pipeline run | pipeline compile
    "tfxformers.demo",                   # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(  # subcommand parsers inherit the class: every usage error is one line
        prog="tfxformers",
        description="Train, export, serve and pipeline transformer NLP models on the TensorFlow stack.",
    )
    parser.add_argument("--version", action="version", version=f"tfxformers {tfxformers.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser("train", help="train a model (classifier or gpt2)")
    train_commands = train.add_subparsers(dest="train_command", metavar="MODEL")
    train.set_defaults(func=lambda args: _missing_subcommand(train))
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that part of the project is not built yet
                continue
            raise
        module.register(commands, train_commands)
    return parser


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code = args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
