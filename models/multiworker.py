"""Multi-worker training (``--distribute multi-worker``): this process's place in TF_CONFIG's cluster, where it
may write, and where a restarted cluster resumes.

``MultiWorkerMirroredStrategy`` runs the same program on every worker. TensorFlow's multi-worker guide asks
that every worker takes part in saving (saving reads variables that may need a collective step), but that
only the chief's files land where users look: so the chief trains into the real output directory and every
other worker runs the very same code with a temporary directory of its own as output, removed at the end.

The ``BackupAndRestore`` directory is the exception: Keras writes the chief's backup to ``BACKUP/chief`` and
every worker restores from there after a restart, so all workers use the chief's backup directory, which
must therefore be on storage every worker sees (one machine's disk, a shared volume, or GCS).

A worker waits for the others before its strategy is made (TensorFlow's own wait would hold it for ever,
deaf to SIGTERM and SIGINT): at most ``TFXFORMERS_WORKER_TIMEOUT`` seconds (default 60), and SIGTERM /
SIGINT stop it, each with one ``error:`` line, before the run directory is touched.

Pure Python: reading TF_CONFIG costs nothing and happens before TensorFlow is imported.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
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
    worker_timeout(environ)  # a bad value is refused now, not after TensorFlow has loaded
    return WorkerRole(task_type, index, workers, has_chief="chief" in cluster)


TIMEOUT_VARIABLE = "TFXFORMERS_WORKER_TIMEOUT"
DEFAULT_WORKER_TIMEOUT = 60.0


def worker_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a worker waits for the rest of its cluster to start (``TFXFORMERS_WORKER_TIMEOUT``)."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_WORKER_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise UserError(f"{TIMEOUT_VARIABLE} must be a number of seconds > 0 (got {raw!r})")
    return value


DISTRIBUTE_CHOICES = ("none", "mirrored", "multi-worker")


_MULTI_WORKER = []


def strategy(name: str):
    """The ``tf.distribute`` strategy for ``--distribute``; "multi-worker" reads the cluster from TF_CONFIG.

    The multi-worker strategy is made once per process and then handed out again: it configures the
    process's collective ops, which TensorFlow allows only before the first TensorFlow operation, so code
    that must read data with TensorFlow first (the Trainer's run_fn) creates it early.
    """
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if not _MULTI_WORKER:
            _MULTI_WORKER.append(_make_multi_worker_strategy(tf))
        return _MULTI_WORKER[0]
    return tf.distribute.get_strategy()


def _make_multi_worker_strategy(tf):
    """The strategy, once every other worker of TF_CONFIG answers at its address (``wait_for_peers``).

    TensorFlow's own wait for the cluster blocks in C++ with the GIL held and for ever, under a SIGTERM
    handler of its own (its preemption notifier) that swallows the signal, so no Python timeout or signal
    handler can run during it: hence the wait in Python first. Afterwards SIGTERM gets back the handler it
    had, so that a worker stops when told to, as a single-worker run does.
    """
    role = worker_role("multi-worker")
    in_main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if in_main else None
    wait_for_peers(role, json.loads(os.environ["TF_CONFIG"])["cluster"], worker_timeout())
    made = tf.distribute.MultiWorkerMirroredStrategy()
    if in_main and before is not None:
        signal.signal(signal.SIGTERM, before)
    return made


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def wait_for_peers(role: WorkerRole, cluster: dict, timeout: float) -> None:
    """Return once every other task of ``cluster`` accepts TCP connections at its address, while this one
    accepts them at its own (a listening socket, never accepted from: the kernel completes the handshake,
    and closing it leaves the port free for TensorFlow's server). ``UserError`` naming the missing workers
    after ``timeout`` seconds, or when SIGTERM / SIGINT arrive (exit code 128 + the signal)."""
    own = cluster[role.task_type][role.task_index]
    peers = {f"{kind} {index} at {address}": address for kind, addresses in cluster.items()
             for index, address in enumerate(addresses) if address != own}
    port = _host_port(own)[1]
    try:
        if socket.has_dualstack_ipv6():
            listener = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=64)
        else:
            listener = socket.create_server(("", port), backlog=64)
    except OSError as error:
        raise UserError(f"this worker's address in TF_CONFIG, {own}, cannot be listened on ({error.strerror}); "
                        "give each worker a free port") from None
    in_main = threading.current_thread() is threading.main_thread()
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)} if in_main else {}

    def stop(number, frame):
        error = UserError(f"stopped by {signal.Signals(number).name} while waiting for the other workers "
                          f"({', '.join(peers)}); nothing was written")
        error.exit_code = 128 + number
        raise error

    for number in previous:
        signal.signal(number, stop)
    print(f"waiting up to {timeout:g} s for {len(peers)} other worker(s) to start ({TIMEOUT_VARIABLE})", flush=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            for name, address in list(peers.items()):
                try:
                    socket.create_connection(_host_port(address), timeout=1).close()
                    del peers[name]
                except OSError:  # not listening yet, or its name does not resolve yet (a pod still starting)
                    pass
            if not peers:
                return
            if time.monotonic() > deadline:
                raise UserError(f"{', '.join(peers)} did not start within {timeout:g} s; start every worker of "
                                f"TF_CONFIG's cluster within {TIMEOUT_VARIABLE} seconds (default "
                                f"{DEFAULT_WORKER_TIMEOUT:g}) of the first, at the address TF_CONFIG names")
            time.sleep(0.3)
    finally:
        listener.close()
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def wait_for_all_workers(distribution) -> None:
    """Return once every worker has got here (one all-reduce); nothing to wait for without multi-worker.

    Keras' last backup of ``fit`` is written by each worker on its own, so a chief that finishes first must
    wait before it removes the backup directory the others still write into.
    """
    import tensorflow as tf

    if isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
        tf.function(lambda: distribution.reduce(tf.distribute.ReduceOp.SUM, distribution.run(lambda: tf.constant(1.0)),
                                                axis=None))()


@contextlib.contextmanager
def worker_output(role: WorkerRole, output: str | os.PathLike) -> Iterator[Path]:
    """Where a worker that is not the chief writes: ``$TFXFORMERS_WORKER_DIR/<output's name>`` when that is
    set (kept, e.g. a pod's scratch volume; emptied first, as a restarted worker starts it afresh), else a
    temporary directory removed at the end."""
    base = os.environ.get("TFXFORMERS_WORKER_DIR")
    if base:
        directory = Path(base).expanduser() / Path(output).expanduser().resolve().name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix=f"tfxformers-{role.task_type}{role.task_index}-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def check_output(kind: str, config: dict, output: str | os.PathLike, distribute: str,
                 overwrite: bool = False) -> WorkerRole:
    """This process's role, once it is known that a ``kind`` run with ``config`` may train into ``output``
    (``UserError`` otherwise); writes nothing, so entry points call it before loading data or models."""
    from tfxformers.models import run_dirs

    role = worker_role(distribute)
    if role.task_type is not None and overwrite:
        # The chief would train into a hidden sibling directory the other workers cannot know of.
        raise UserError("--overwrite cannot be combined with --distribute multi-worker: remove the old run "
                        f"in {output} first, or choose another --output")
    run_dirs.plan(output, kind, config, overwrite)
    return role


@contextlib.contextmanager
def run_directory(kind: str, config: dict, output: str | os.PathLike, distribute: str,
                  overwrite: bool = False) -> Iterator[tuple[Path, Path | None]]:
    """``(directory to train into, shared backup directory or None)`` for a ``kind`` run.

    The chief (and any run that is not multi-worker) claims ``output`` through ``models.run_dirs``; another
    worker first checks what the chief checks (so that it refuses the same bad ``output`` instead of waiting
    for a chief that has already given up), then trains into ``worker_output`` with the chief's backup.
    """
    from tfxformers.models import run_dirs

    role = check_output(kind, config, output, distribute, overwrite)
    if role.task_type is not None:
        print(f"multi-worker training: {role.task_type} {role.task_index} of {role.num_workers} workers; "
              + ("the chief, it writes the run" if role.is_chief else "not the chief, its files go to a scratch directory"),
              flush=True)
        strategy("multi-worker")  # waits for the other workers (bounded) before anything is written
    if role.is_chief:
        with run_dirs.claim(output, kind, config, overwrite) as directory:
            yield directory, None
        return
    with worker_output(role, output) as directory:
        yield directory, Path(output).expanduser() / run_dirs.BACKUP


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


def resume_start(backup_dir: str | os.PathLike | None, steps_per_epoch: int) -> tuple[int, int]:
    """The (epoch, step), both from 0, at which ``fit`` continues from the backup; (0, 0) without one.

    Keras' own rule (``WorkerTrainingState.maybe_load_initial_counters_from_ckpt``): the step after the
    backed-up one, or the next epoch when the backup was taken at the end of an epoch. The training data
    must start there too (``tokenization.epoch_plans``): Keras skips the steps but not the data.
    """
    position = backup_position(backup_dir) if backup_dir is not None and Path(backup_dir).exists() else None
    if position is None:
        return 0, 0
    epoch, steps = position
    if steps is None or steps >= steps_per_epoch:
        return epoch, 0
    return epoch - 1, steps


def resume_note(backup_dir: str | os.PathLike) -> str:
    """``(backed up at epoch 2, step 12)``, for the "resuming" message (tests match it)."""
    position = backup_position(backup_dir)
    if position is None:
        return "(no backup taken yet)"
    epoch, steps = position
    return f"(backed up at the end of epoch {epoch})" if steps is None else f"(backed up at epoch {epoch}, step {steps})"
