"""A training budget in CPU minutes for ``train qa``: a learning-rate schedule and a stop driven by CPU time.

How many steps fit in a budget cannot be known in advance on a shared machine (a step's cost depends on the
padded length of its batch and on what else runs), so the schedule is not a function of the step count.
``CpuClock`` (a Keras callback) measures this process's CPU time (``time.process_time()``: every thread,
tf.data's and TensorFlow's own included) from the end of the first batch on (that batch traces the graph, a
one-off cost kept apart as ``first_batch_cpu_seconds``), and after each batch writes the share of
the budget used, in [0, 1], to a non-trainable ``tf.Variable``; ``BudgetSchedule`` reads that variable:
linear warm-up over the first ``warmup_ratio`` of the budget, then linear decay to 0 at its end, where the
clock stops training. Without a budget the clock only counts (CPU minutes, steps, examples seen).

Resuming: at every ``BackupAndRestore`` backup the clock writes what it has counted to
``checkpoints/budget.json`` beside the backup; a resumed run starts its clock there, so the schedule goes on
where the backed-up model was instead of warming up again. CPU spent on steps after the last backup, which the
resumed run trains again, is not counted twice. This module imports TensorFlow: only training imports it.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import tensorflow as tf

STATE_FILE = "budget.json"
# Without a terminal, one progress line per this many steps (and one at the end).
LOG_EVERY_STEPS = 50


class BudgetSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """``peak_learning_rate`` x warm-up / decay of ``progress`` (a scalar variable in [0, 1])."""

    def __init__(self, peak_learning_rate: float, progress: tf.Variable, warmup_ratio: float = 0.1):
        super().__init__()
        self.peak_learning_rate = float(peak_learning_rate)
        self.progress = progress
        self.warmup_ratio = float(warmup_ratio)

    def __call__(self, step):
        return self.peak_learning_rate * lr_factor(tf.cast(self.progress, tf.float32), self.warmup_ratio)

    def get_config(self) -> dict:
        # The progress variable is state, not configuration: a rebuilt schedule gets a new one from its clock.
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_ratio": self.warmup_ratio}


def lr_factor(progress, warmup_ratio: float):
    """The share of the peak learning rate at ``progress`` (a float or a float32 tensor)."""
    if isinstance(progress, (int, float)):
        if progress < warmup_ratio:
            return progress / warmup_ratio
        return max(0.0, min(1.0, (1.0 - progress) / (1.0 - warmup_ratio)))
    warm = progress / warmup_ratio if warmup_ratio > 0 else tf.ones_like(progress)
    decay = (1.0 - progress) / (1.0 - warmup_ratio)
    return tf.clip_by_value(tf.where(progress < warmup_ratio, warm, decay), 0.0, 1.0)


def budget_optimizer(learning_rate: float, progress: tf.Variable, warmup_ratio: float, weight_decay: float):
    """AdamW as ``encoders.base.create_adamw`` builds it (same decay exclusions), on the budget schedule."""
    from transformers.optimization_tf import AdamWeightDecay

    schedule = BudgetSchedule(learning_rate, progress, warmup_ratio)
    if weight_decay > 0:
        return AdamWeightDecay(learning_rate=schedule, weight_decay_rate=weight_decay, epsilon=1e-8,
                               exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"])
    return tf.keras.optimizers.Adam(learning_rate=schedule, epsilon=1e-8)


def read_state(checkpoints: Path) -> dict | None:
    """What the clock counted at the last backup, or None."""
    try:
        state = json.loads((checkpoints / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "cpu_seconds" in state else None


class CpuClock(tf.keras.callbacks.Callback):
    """Counts training CPU seconds, steps and examples; drives ``progress`` and stops at the budget.

    ``batch_sizes(epoch)`` gives the sizes of that epoch's batches in order (the last ones may be short);
    ``save_freq`` must be ``BackupAndRestore``'s (steps, or "epoch"), and this callback must come after it
    in the list, so the state written is the state of the backup just taken. ``verbose``: 0 silent, 1 one
    progress line rewritten in place (a terminal), 2 a line every ``log_every`` steps.
    """

    def __init__(self, *, budget_minutes: float | None, progress: tf.Variable | None, checkpoints: Path,
                 batch_sizes: Callable[[int], list[int]], save_freq, start: dict | None = None,
                 learning_rate: float = 0.0, warmup_ratio: float = 0.1, epochs: int = 1, verbose: int = 2,
                 log_every: int = LOG_EVERY_STEPS, stream=None):
        super().__init__()
        self.budget_seconds = budget_minutes * 60 if budget_minutes else None
        self.progress = progress
        self.checkpoints = Path(checkpoints)
        self.batch_sizes = batch_sizes
        self.save_freq = save_freq
        start = start or {}
        self.spent_before = float(start.get("cpu_seconds", 0.0))
        self.steps = int(start.get("steps", 0))
        self.examples = int(start.get("examples", 0))
        self.learning_rate, self.warmup_ratio, self.epochs = learning_rate, warmup_ratio, epochs
        self.verbose, self.log_every = verbose, max(1, int(log_every))
        self.stream = stream or sys.stdout
        self.exhausted = False
        self._since_backup = 0
        self._epoch = 0
        self._sizes: list[int] = []
        self._cpu0 = time.process_time()
        self._first_batch = True
        self.first_batch_cpu_seconds = 0.0

    def spent(self) -> float:
        """CPU seconds of training so far, this run's and those carried over from the backup."""
        return self.spent_before + time.process_time() - self._cpu0

    def fraction(self) -> float:
        return min(self.spent() / self.budget_seconds, 1.0) if self.budget_seconds else 0.0

    def on_train_begin(self, logs=None):
        self._cpu0 = time.process_time()
        self._first_batch = True
        if self.progress is not None:  # what was spent before this fit (a resumed run's), nothing of this one yet
            self.progress.assign(min(self.spent_before / self.budget_seconds, 1.0) if self.budget_seconds else 0.0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._sizes = self.batch_sizes(epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self._first_batch:
            # The first batch of a fit traces the training graph and starts tf.data: a one-off cost of
            # seconds to tens of seconds of CPU that does not grow with the budget, set aside like tokenizing.
            self._first_batch = False
            self.first_batch_cpu_seconds = time.process_time() - self._cpu0
            self._cpu0 = time.process_time()
        self.steps += 1
        self.examples += self._sizes[batch] if batch < len(self._sizes) else (self._sizes[-1] if self._sizes else 0)
        fraction = self.fraction()
        if self.progress is not None:
            self.progress.assign(fraction)
        if self.save_freq != "epoch" and self.save_freq:
            self._since_backup += 1
            if self._since_backup >= self.save_freq:
                self._since_backup = 0
                self.write_state()
        if self.budget_seconds and fraction >= 1.0:
            self.exhausted = True
            self.model.stop_training = True
        self.report((logs or {}).get("loss"), final=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self.write_state()

    def on_train_end(self, logs=None):
        self.report(None, final=True)

    def state(self) -> dict:
        return {"cpu_seconds": round(self.spent(), 3), "steps": self.steps, "examples": self.examples}

    def write_state(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        scratch = self.checkpoints / f".{STATE_FILE}.tmp"
        scratch.write_text(json.dumps(self.state()))
        os.replace(scratch, self.checkpoints / STATE_FILE)  # never half a file, even when killed here

    def current_learning_rate(self) -> float:
        if not self.budget_seconds:
            return float("nan")
        return self.learning_rate * lr_factor(self.fraction(), self.warmup_ratio)

    def line(self, loss) -> str:
        minutes = self.spent() / 60
        used = (f"CPU {minutes:.2f}/{self.budget_seconds / 60:g} min ({100 * self.fraction():.0f}%)"
                if self.budget_seconds else f"CPU {minutes:.2f} min")
        parts = [f"step {self.steps}", f"epoch {self._epoch + 1}/{self.epochs}"]
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        if self.budget_seconds:
            parts.append(f"lr {self.current_learning_rate():.2e}")
        return "  ".join(parts + [used])

    def report(self, loss, final: bool) -> None:
        if not self.verbose:
            return
        if final:
            ending = "the CPU budget is used up" if self.exhausted else "training finished"
            print(("\n" if self.verbose == 1 else "") + f"{ending}: {self.line(None)}", file=self.stream, flush=True)
        elif self.verbose == 1:
            self.stream.write("\r" + self.line(loss))
            self.stream.flush()
        elif self.steps % self.log_every == 0:
            print(self.line(loss), file=self.stream, flush=True)
