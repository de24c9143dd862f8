"""The option rules every fine-tuning command shares (``train classifier``, ``train tagger``).

``shared_rules(config)`` gives the ``(name, value, ok, rule)`` rows of ``tfxformers.errors.check_rules`` for the
settings both configs carry under the same names (epochs, batch size, learning rate, dropout, patience,
limits, checkpoint steps, warm-up, weight decay, seed), so a rule changes in one place and both commands
word their errors alike. Each command adds its own rows (max length ranges, modes, overlap, distillation).
"""
from __future__ import annotations


def _optional(value, ok) -> bool:
    return value is None or ok(value)


def shared_rules(config) -> tuple:
    return (("--epochs", config.epochs, config.epochs >= 1, "at least 1"),
            ("--batch-size", config.batch_size, config.batch_size >= 1, "at least 1"),
            ("--learning-rate", config.learning_rate, _optional(config.learning_rate, lambda v: v > 0), "> 0"),
            ("--dropout", config.dropout, 0 <= config.dropout < 1, "in [0, 1)"),
            ("--patience", config.patience, config.patience >= 0, ">= 0"),
            ("--limit-train", config.limit_train, _optional(config.limit_train, lambda v: v >= 1), "at least 1"),
            ("--limit-eval", config.limit_eval, _optional(config.limit_eval, lambda v: v >= 1), "at least 1"),
            ("--checkpoint-every-steps", config.checkpoint_every_steps, config.checkpoint_every_steps >= 0, ">= 0"),
            ("warmup_ratio", config.warmup_ratio, 0 <= config.warmup_ratio < 1, "in [0, 1)"),
            ("weight_decay", config.weight_decay, config.weight_decay >= 0, ">= 0"),
            ("--seed", config.seed, 0 <= config.seed <= 2**32 - 1, "between 0 and 2**32 - 1"))
