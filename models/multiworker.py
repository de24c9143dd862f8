"""Multi-worker training (``--distribute multi-worker``): this process's place in TF_CONFIG's cluster, where it
may write, and where a restarted cluster resumes.

``MultiWorkerMirroredStrategy`` runs the same program on every worker. TensorFlow's multi-worker guide asks
that every worker takes part in saving (saving reads variables that may need a collective step), but that
only the chief's files land where users look: so the chief trains into the real output directory and every
other worker runs the very same code with a temporary directory of its own as output, removed at the end.

The ``BackupAndRestore`` directory is the exception: Keras writes the chief's backup to ``BACKUP/chief`` and
every worker restores from there after a restart, so all workers use the chief's backup directory, which
must therefore be on storage every worker sees (one machine's disk, a shared volume, or GCS).

Pure Python: reading TF_CONFIG costs nothing and happens before TensorFlow is imported.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from tfxformers.errors import UserError

TF_CONFIG_HELP = ('TF_CONFIG must name the cluster and this process\'s task, e.g. {"cluster": {"worker": '
                  '["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}} (see docs/scale_out.md)')


@dataclass(frozen=True)
class WorkerRole:
    task_type: str | None  # None: not multi-worker
    task_index: int
    num_workers: int
    has_chief: bool = False  # the cluster names a "chief" task (else worker 0 is the chief)

    @property
    def is_chief(self) -> bool:
        """The chief writes the run (TensorFlow's rule: the "chief" task, else worker 0)."""
        return self.task_type in (None, "chief") or (
            self.task_type == "worker" and self.task_index == 0 and not self.has_chief)


SINGLE = WorkerRole(None, 0, 1)


def worker_role(distribute: str, environ: Mapping[str, str] | None = None) -> WorkerRole:
    """This process's role for ``--distribute`` (``SINGLE`` unless "multi-worker"); ``UserError`` for a
    missing or malformed TF_CONFIG, instead of TensorFlow quietly training on one worker or failing deep in
    its cluster resolver."""
    if distribute != "multi-worker":
        return SINGLE
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not raw.strip():
        raise UserError("--distribute multi-worker needs the TF_CONFIG environment variable: " + TF_CONFIG_HELP)
    try:
        config = json.loads(raw)
    except ValueError as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({error}); " + TF_CONFIG_HELP) from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError("TF_CONFIG needs a \"cluster\" object and a \"task\" object; " + TF_CONFIG_HELP)
    for kind, addresses in cluster.items():
        if kind not in ("chief", "worker"):
            raise UserError(f"TF_CONFIG's cluster has {kind!r} tasks; --distribute multi-worker uses only "
                            "\"chief\" and \"worker\" (no parameter servers or evaluators)")
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses)):
            raise UserError(f"TF_CONFIG's cluster {kind!r} must be a list of \"host:port\" strings (got {addresses!r})")
    if len(cluster.get("chief", [])) > 1:
        raise UserError("TF_CONFIG's cluster may have at most one chief")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise UserError(f"TF_CONFIG's task {task!r} is not in its cluster {sorted(cluster)}; " + TF_CONFIG_HELP)
    workers = sum(len(addresses) for addresses in cluster.values())
    return WorkerRole(task_type, index, workers, has_chief="chief" in cluster)


@contextlib.contextmanager
def scratch_output(role: WorkerRole) -> Iterator[Path]:
    """A temporary output directory for a worker that is not the chief, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix=f"tfxformers-{role.task_type}{role.task_index}-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def backup_position(backup_dir: str | os.PathLike) -> tuple[int, int | None] | None:
    """Where the last ``BackupAndRestore`` backup was taken: (epoch, steps of that epoch done), the epoch
    counted from 1 and steps None for a backup taken at the end of the epoch; None when there is none.

    A restarted ``fit`` continues with the step after it (Keras' ``ckpt_saved_epoch`` / ``ckpt_saved_batch``).
    """
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(Path(backup_dir) / "chief"))
    if not path:
        return None
    reader = tf.train.load_checkpoint(path)
    epoch = int(reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    batch = int(reader.get_tensor("ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"))
    return epoch + 1, (batch + 1 if batch >= 0 else None)


def describe_position(position: tuple[int, int | None] | None) -> str:
    """``epoch 2, step 12`` / ``the end of epoch 1``, for the resume message (tests match it)."""
    if position is None:
        return "no backup yet"
    epoch, steps = position
    return f"the end of epoch {epoch}" if steps is None else f"epoch {epoch}, step {steps}"
