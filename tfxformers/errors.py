"""The one exception type that means "the user asked for something we cannot do".

Raise ``UserError`` with a message that says what is wrong and how to fix it; the CLI prints it as
``error: <message>`` and exits with code 2 instead of showing a traceback. Library callers (notebooks,
the TFX Trainer) see an ordinary exception with the same message.
"""


class UserError(Exception):
    """Bad input or a missing prerequisite, reported to the user without a traceback."""

    exit_code = 2


def check_rules(rules) -> None:
    """Raise a ``UserError`` for the first ``(name, value, ok, rule)`` whose ``ok`` is false:
    "NAME must be RULE (got VALUE)". The config checks of every training command share it."""
    for name, value, ok, rule in rules:
        if not ok:
            raise UserError(f"{name} must be {rule} (got {value!r})")
