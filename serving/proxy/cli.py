"""``tfxformers proxy``: run the tokenizer proxy (``serving/proxy/``) on uvicorn.

    tfxformers proxy --backend grpc://127.0.0.1:8500 --port 8000
    tfxformers proxy --backend http://127.0.0.1:8501           # TF Serving's REST API instead
    python -m tfxformers.serving.proxy --backend ...           # the same, without the other commands

Every flag has a ``TFXFORMERS_*`` environment variable (``--max-texts`` is ``TFXFORMERS_MAX_TEXTS``);
a flag given on the command line wins. Nothing here imports TensorFlow.
"""
from __future__ import annotations

import argparse
import sys

_DESCRIPTION = ("Run the tokenizer proxy: raw text in, TensorFlow Serving (gRPC or REST) behind it, JSON out. "
                "Every flag is also a TFXFORMERS_* environment variable; a flag given wins.")

# flag -> (settings field, type, help)
_FLAGS = {
    "--backend": ("backend", str, "grpc://HOST:PORT (TF Serving gRPC, port 8500) or http://HOST:PORT (REST, 8501)"),
    "--host": ("host", str, "address to listen on (default 127.0.0.1; 0.0.0.0 in a container)"),
    "--port": ("port", int, "port to listen on (default 8000)"),
    "--timeout": ("timeout_seconds", float, "seconds a request may spend on backend calls (default 5)"),
    "--generate-timeout": ("generate_timeout_seconds", float, "the same for :generate (default 60)"),
    "--max-texts": ("max_texts", int, "texts per request (default 64)"),
    "--max-chars": ("max_chars", int, "characters per request (default 200000)"),
    "--max-windows": ("max_windows", int, "windows a long text may be split into (default 16)"),
    "--window-overlap": ("window_overlap", int, "tokens neighbouring windows share (default 32)"),
    "--max-batch-size": ("max_batch_size", int, "rows per backend call (default 32)"),
    "--max-new-tokens": ("max_new_tokens", int, "largest max_new_tokens a request may ask (default 256)"),
    "--status-refresh": ("status_refresh_seconds", float, "seconds between served-version checks (default 2)"),
    "--max-context-chars": ("max_context_chars", int, ":answer context characters (default 200000)"),
    "--max-answer-windows": ("max_answer_windows", int, ":answer windows per context (default 256)"),
    "--answer-batch-windows": ("answer_batch_windows", int, ":answer windows per Predict call (default: the export's "
                               "preferred_windows_per_call; 0: as many as --backend-max-rows/--backend-max-tokens allow)"),
    "--answer-concurrency": ("answer_concurrency", int, ":answer Predict calls of one request in flight at once (default 2)"),
    "--backend-max-rows": ("backend_max_rows", int, "rows the model server takes per call: its --max-rows (default 128)"),
    "--backend-max-tokens": ("backend_max_tokens", int, "rows x tokens the model server takes per call: its --max-tokens "
                             "(default 16384)"),
    "--answer-timeout": ("answer_timeout_seconds", float, "seconds an :answer request may spend on backend calls (default 30)"),
    "--tag-timeout": ("tag_timeout_seconds", float, "seconds a :tag request may spend on backend calls (default 30)"),
    "--models": ("models", str, "comma-separated models /readyz checks and that are loaded at start"),
    "--log-level": ("log_level", str, "uvicorn log level (default info)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, (field, kind, help_text) in _FLAGS.items():
        parser.add_argument(flag, type=kind, default=None, help=f"{help_text} [env TFXFORMERS_{field.upper()}]")


def build_settings(args: argparse.Namespace):
    from pydantic import ValidationError

    from tfxformers.errors import UserError
    from tfxformers.serving.proxy.settings import ProxySettings

    given = {field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _, _) in _FLAGS.items()}
    try:
        return ProxySettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        flags = {field: flag for flag, (field, _, _) in _FLAGS.items()}

        def name(loc) -> str:  # the flag the user typed (or its variable), not the settings field
            field = ".".join(str(p) for p in loc)
            return f"{flags[field]} (TFXFORMERS_{field.upper()})" if field in flags else field

        problems = "; ".join(f"{name(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UserError(f"bad proxy settings: {problems}") from None


def run(args: argparse.Namespace) -> int:
    settings = build_settings(args)
    import uvicorn

    from tfxformers.serving.proxy.app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                access_log=False, timeout_graceful_shutdown=5)
    return 0


def register(commands, train_commands) -> None:
    parser = commands.add_parser("proxy", help="tokenizer proxy: raw text in, TF Serving behind it, JSON out",
                                 description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """The proxy alone, for its container (no other tfxformers command is installed there)."""
    from tfxformers.cli_types import OneLineErrorParser
    from tfxformers.errors import UserError

    parser = OneLineErrorParser(prog="tfxformers-proxy", description=_DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
