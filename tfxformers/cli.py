"""The ``tfxformers`` command line: one entry point, subcommands registered by the folders that own them.

Each module listed in ``COMMAND_MODULES`` defines ``register(commands, train_commands)``, adding its
subcommands to the top-level subparsers or to ``tfxformers train ...``. A command's handler is stored as
``func`` and takes the parsed ``argparse.Namespace``; it returns an exit code (or None for 0).
Heavy imports (TensorFlow, TFX) happen inside handlers, so ``tfxformers --help`` stays fast, and so
``--verbose`` (accepted before or after the command) can still turn the libraries' logging back on: by
default ``import tfxformers`` silences their start-up noise (see ``tfxformers/__init__.py``).
"""
from __future__ import annotations

import argparse
import importlib
import sys

import tfxformers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from tfxformers.cli_types import OneLineErrorParser
from tfxformers.errors import UserError

COMMAND_MODULES = (
    "tfxformers.models.data.cli",        # data fetch | data list
    "tfxformers.models.classification.cli",  # train classifier | evaluate | predict
    "tfxformers.models.classification.report_cli",  # compare | attention
    "tfxformers.models.lm.cli",        # train gpt2 | generate
    "tfxformers.models.qa.cli",          # train qa | answer
    "tfxformers.models.tagging.cli",     # train tagger | tag
    "tfxformers.serving.export.cli",     # export
    "tfxformers.serving.server.cli",     # serve
    "tfxformers.serving.proxy.cli",      # proxy
    "tfxformers.pipeline.pipeline_cli",  # pipeline run | pipeline compile
    "tfxformers.demo",                   # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(  # subcommand parsers inherit the class: every usage error is one line
        prog="tfxformers",
        description="Train, export, serve and pipeline transformer NLP models on the TensorFlow stack.",
    )
    parser.add_argument("--version", action="version", version=f"tfxformers {tfxformers.__version__}")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
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
    _add_verbose_everywhere(parser)
    return parser


_VERBOSE_HELP = ("show TensorFlow, CUDA, absl and transformers logs and warnings, hidden by default "
                 "(also TFXFORMERS_VERBOSE=1)")


def _add_verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` after the command too (``tfxformers train classifier ... --verbose``); SUPPRESS keeps a
    subcommand's default from overwriting a ``--verbose`` given before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                if "--verbose" not in sub._option_string_actions:
                    sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
                _add_verbose_everywhere(sub)


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        tfxformers.set_verbose()  # before the handler imports TensorFlow
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
