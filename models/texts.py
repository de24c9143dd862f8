"""Whether a text has anything in it to read: the one rule every command and proxy route taking text applies.

A text of no visible character -- empty, spaces and line breaks of any script, NUL and other control
characters, zero-width and other format characters (U+200B, U+200D, U+2060, U+FEFF, bidi marks) -- is refused
instead of being labelled, embedded, continued or searched: WordPiece tokenizers drop such characters, so the
model would answer for ``[CLS] [SEP]`` alone, and byte-level BPE would score the bytes of invisible marks.
``tfxformers predict``, ``generate`` and ``answer`` and the proxy's ``:classify``, ``:embed``, ``:attention``,
``:generate`` and ``:answer`` all call ``is_blank`` (pure Python, standard library only: the proxy container
copies this file)::

    from tfxformers.models.texts import BLANK, first_blank
    i = first_blank(texts)
    if i is not None:
        raise UserError(f"text {i + 1} {BLANK}")
"""
from __future__ import annotations

import unicodedata
from typing import Iterable

# Control (Cc: NUL, DEL, C0/C1), format (Cf: zero-width space/joiners, word joiner, BOM, bidi marks) and
# separators (Zs/Zl/Zp); str.isspace covers the rest of what renders as nothing.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
BLANK = "has no visible character (only spaces, control or zero-width characters, or none at all)"


def is_blank(text: str) -> bool:
    """True when ``text`` holds no visible character (the empty string included)."""
    return all(c.isspace() or unicodedata.category(c) in INVISIBLE_CATEGORIES for c in text)


def first_blank(texts: Iterable[str]) -> int | None:
    """The index of the first blank text, or None."""
    return next((i for i, text in enumerate(texts) if is_blank(text)), None)
