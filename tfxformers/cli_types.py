"""argparse helpers every command shares: ``type=`` checks for numbers and paths, and one-line errors.

Use them as ``parser.add_argument("--epochs", type=positive_int)``. Each turns the command-line string
into a value or raises ``argparse.ArgumentTypeError`` saying what is allowed; argparse then reports
``argument --epochs: must be an integer >= 1 (got '0')`` and exits with code 2 before any handler (and
so before TensorFlow) runs. ``OneLineErrorParser`` prints that as one ``error: ...`` line instead of
argparse's usage block. Checks that need more than the option's own string (a path that must be a run
directory, a length against a model's context) belong to the command and raise ``UserError``.

This module imports nothing heavy: ``tfxformers --help`` and every argument check stay instant.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

__all__ = [
    "OneLineErrorParser", "positive_int", "nonnegative_int", "int_range", "positive_float",
    "nonnegative_float", "probability", "seed", "existing_dir", "existing_file", "output_dir",
]

MAX_SEED = 2**32 - 1  # numpy's limit, and so tf.keras.utils.set_random_seed's


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one ``error: ...`` line (exit 2), not a usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _named(name: str, check: Callable) -> Callable:
    check.__name__ = name  # argparse names the type in some of its own messages
    return check


def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (got {text!r})") from None


def _float(text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number (got {text!r})") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
    return value


def int_range(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An integer in ``[minimum, maximum]`` (either end may be open-ended with None)."""

    def check(text: str) -> int:
        value = _int(text)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            if maximum is None:
                allowed = f">= {minimum}"
            elif minimum is None:
                allowed = f"<= {maximum}"
            else:
                allowed = f"between {minimum} and {maximum}"
            raise argparse.ArgumentTypeError(f"must be an integer {allowed} (got {text!r})")
        return value

    return _named(f"int_range({minimum}, {maximum})", check)


positive_int = _named("positive_int", int_range(1))
nonnegative_int = _named("nonnegative_int", int_range(0))


def _float_above(minimum: float, inclusive: bool, name: str) -> Callable[[str], float]:
    def check(text: str) -> float:
        value = _float(text)
        if value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"must be a number {'>=' if inclusive else '>'} {minimum:g} "
                                             f"(got {text!r})")
        return value

    return _named(name, check)


seed = _named("seed", int_range(0, MAX_SEED))
positive_float = _float_above(0.0, False, "positive_float")
nonnegative_float = _float_above(0.0, True, "nonnegative_float")


def probability(*, zero: bool = True, one: bool = True) -> Callable[[str], float]:
    """A number in the unit interval; ``zero`` / ``one`` say whether that end is allowed.

    ``probability(one=False)`` is [0, 1) (dropout), ``probability(zero=False)`` is (0, 1] (top-p).
    """
    interval = f"{'[' if zero else '('}0, 1{']' if one else ')'}"

    def check(text: str) -> float:
        value = _float(text)
        if value < 0 or value > 1 or (value == 0 and not zero) or (value == 1 and not one):
            raise argparse.ArgumentTypeError(f"must be in {interval} (got {text!r})")
        return value

    return _named(f"probability{interval}", check)


def existing_dir(text: str) -> str:
    """A directory that exists (returned as the string given, so configs stay JSON-serializable)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"directory not found: {text}")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory")
    return text


def existing_file(text: str) -> str:
    """A regular file that exists (``-`` is not accepted here; read stdin explicitly where it makes sense)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file")
    return text


def output_dir(text: str) -> str:
    """A directory to write into: it may exist or not, but it must not be a file (nor be under one)."""
    path = Path(text).expanduser()
    if not str(text).strip():
        raise argparse.ArgumentTypeError("must be a directory path (got an empty string)")
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "is" if part == path else f"is under {part}, which is"
                raise argparse.ArgumentTypeError(f"{text} {what} an existing file, not a directory")
            break
    return text
