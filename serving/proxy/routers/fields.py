"""Field types the request schemas share, so every endpoint refuses the same bad values the same way.

``Text`` is a JSON string that can be encoded as UTF-8. JSON may carry a lone UTF-16 surrogate
(``"\\ud800"``), which Python decodes into a ``str`` that no tokenizer or encoder accepts; catching it
here turns what would be a 500 deep in the tokenizer into a 422 naming the field and position.

``VisibleText`` is a ``Text`` with at least one visible character (``models.texts.is_blank``, the rule of
``tfxformers predict``, ``generate`` and ``answer``): an empty, whitespace-only, zero-width-only or NUL-only
text is a 422 naming it (``texts[3]``) rather than being labelled, embedded or continued from nothing.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ConfigDict, StrictStr

from tfxformers.models.texts import BLANK, is_blank


def _encodable(value):
    if not isinstance(value, str):
        return value  # StrictStr refuses it with its own message
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise ValueError(f"not valid Unicode text: a lone surrogate \\u{ord(bad):04x} at character {exc.start} "
                         "cannot be encoded as UTF-8 (send whole characters, or pairs of surrogates)") from None
    return value


def _visible(value: str) -> str:
    if is_blank(value):
        raise ValueError(BLANK)
    return value


# Before StrictStr, whose own refusal of such a string ("unable to parse raw data") names no cause.
Text = Annotated[StrictStr, BeforeValidator(_encodable)]
VisibleText = Annotated[Text, AfterValidator(_visible)]

# A misspelt option (``max_tokens`` for ``max_new_tokens``) must not be silently ignored.
STRICT_BODY = ConfigDict(extra="forbid")
