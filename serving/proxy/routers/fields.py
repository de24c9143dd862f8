"""Field types the request schemas share, so every endpoint refuses the same bad values the same way.

``Text`` is a JSON string that can be encoded as UTF-8. JSON may carry a lone UTF-16 surrogate
(``"\\ud800"``), which Python decodes into a ``str`` that no tokenizer or encoder accepts; catching it
here turns what would be a 500 deep in the tokenizer into a 422 naming the field and position.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, StrictStr


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


# Before StrictStr, whose own refusal of such a string ("unable to parse raw data") names no cause.
Text = Annotated[StrictStr, BeforeValidator(_encodable)]

# A misspelt option (``max_tokens`` for ``max_new_tokens``) must not be silently ignored.
STRICT_BODY = ConfigDict(extra="forbid")
