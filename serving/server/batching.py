"""Server-side request batching for the embedded model server, modelled on TF Serving's batching session.

With ``--enable-batching``, requests for the same model version and signature are queued and merged
along the batch dimension (``BasicBatchScheduler`` + ``BatchingSession`` semantics, read in
tensorflow/serving ``batching/batching_session.cc``, ``batching/batching_util.{h,cc}``):

* a batch closes when it holds ``max_batch_size`` rows or when ``batch_timeout_micros`` passed since its
  first request; ``num_batch_threads`` threads (shared by the signatures of one version) run batches;
  with a timeout of 0 a batch runs as soon as a thread is free, so batches form only under load;
* a request larger than ``max_batch_size`` is ``INVALID_ARGUMENT``; when ``max_enqueued_batches``
  batches wait and the open one cannot take the request, it is ``UNAVAILABLE`` (HTTP 503);
* every input must have a batch dimension, all of equal size (so scalar inputs fail, as in TF Serving);
* with ``pad_variable_length_inputs`` each request's tensors are padded on the non-batch dimensions to
  the batch's largest size *with that tensor's first element* (``input.flat<T>()(0)``); outputs are split
  by rows and keep the padded length. Without it, different shapes fail the batch with
  ``FAILED_PRECONDITION``;
* the merged batch is padded up to the smallest ``allowed_batch_sizes`` entry with copies of the last
  request's first row, and those rows are dropped from the answers.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import tfxformers  # noqa: F401
from tfxformers.errors import UserError
from tfxformers.serving import layout
from tfxformers.serving.server.config import config_messages
from tfxformers.serving.server.errors import ServingError

@dataclass
class BatchingParameters:
    """TF Serving's defaults (bundle_factory_util / BasicBatchScheduler options)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_enqueued_batches: int = 10
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False


def read_batching_parameters(path=None, what: str = "--batching-parameters-file") -> BatchingParameters:
    """Parse a BatchingParameters text proto (``--batching-parameters-file``, or a version's own
    ``batching_params.pbtxt``); defaults without a file."""
    params = BatchingParameters()
    if path is None:
        return params
    from google.protobuf import text_format

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        proto = text_format.Parse(path.read_text(), config_messages()["BatchingParameters"]())
    except text_format.ParseError as exc:
        raise UserError(f"{path} is not a BatchingParameters text proto: {exc}") from None
    for name in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches"):
        if proto.HasField(name):
            setattr(params, name, int(getattr(proto, name).value))
    params.allowed_batch_sizes = tuple(int(s) for s in proto.allowed_batch_sizes)
    params.pad_variable_length_inputs = bool(proto.pad_variable_length_inputs)
    if params.max_batch_size < 1 or params.num_batch_threads < 1 or params.max_enqueued_batches < 1:
        raise UserError(f"{path}: max_batch_size, num_batch_threads and max_enqueued_batches must be >= 1")
    if params.batch_timeout_micros < 0:
        raise UserError(f"{path}: batch_timeout_micros must be >= 0")
    sizes = params.allowed_batch_sizes
    if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != params.max_batch_size):
        # TF Serving refuses this too (CreateBasicBatchingSession).
        raise UserError(f"{path}: allowed_batch_sizes must increase and end with max_batch_size "
                        f"({params.max_batch_size}); got {list(sizes)}")
    return params


class BatchingChoice:
    """Which parameters each loaded version batches with under ``--enable-batching``.

    ``--batching-parameters-file`` (``override``) applies to every version; without it a version's own
    ``batching_params.pbtxt`` (written by every export) is used, and a version without one gets TF
    Serving's defaults, whose padding is off (requests of different lengths then fail the batch, as they
    do in TF Serving). Unlike TF Serving under ``--enable_per_model_batching_parameters``, where the
    version's file wins, the explicit flag wins here: it is how an operator tries other values."""

    def __init__(self, override_file=None):
        self.override_file = override_file
        self.override = read_batching_parameters(override_file) if override_file is not None else None

    def for_version(self, version_path) -> tuple[BatchingParameters, str]:
        """(parameters, where they come from) for a version directory."""
        if self.override is not None:
            return self.override, f"{self.override_file} (--batching-parameters-file)"
        own = Path(version_path) / layout.BATCHING_PARAMS_FILE
        if own.is_file():
            return read_batching_parameters(own, what="batching parameters"), str(own)
        return BatchingParameters(), (f"TF Serving's defaults (no {layout.BATCHING_PARAMS_FILE} in the version; "
                                      "pad_variable_length_inputs is off)")


class _Task:
    __slots__ = ("inputs", "size", "done", "outputs", "error")

    def __init__(self, inputs: dict, size: int):
        self.inputs, self.size = inputs, size
        self.done = threading.Event()
        self.outputs = self.error = None


class _Queue:
    def __init__(self, signature: str):
        self.signature = signature
        self.open: list[_Task] = []
        self.open_size = 0
        self.open_since = 0.0
        self.closed: deque[list[_Task]] = deque()


def task_size(inputs: dict) -> int:
    """The shared 0th dimension of a request's inputs (batching_util.h ComputeTensorBatchSize)."""
    if not inputs:
        raise ServingError("INVALID_ARGUMENT", "Batching Run() must have at least one input tensor")
    size = None
    for array in inputs.values():
        if array.ndim == 0:
            raise ServingError("INVALID_ARGUMENT", "Batching Run() input tensors must have at least one dimension")
        if size is None:
            size = array.shape[0]
        elif array.shape[0] != size:
            raise ServingError("INVALID_ARGUMENT", "Batching Run() input tensors must have equal 0th-dimension size")
    return int(size)


class BatchScheduler:
    """One per loaded version: a queue per signature and ``num_batch_threads`` shared worker threads."""

    def __init__(self, run, params: BatchingParameters, metrics=None, name: str = "batching"):
        self.run, self.params, self.metrics = run, params, metrics
        self._cv = threading.Condition()
        self._queues: dict[str, _Queue] = {}
        self._stopped = False
        self._next = 0
        self._threads = [threading.Thread(target=self._worker, name=f"{name}-batch-{i}", daemon=True)
                         for i in range(params.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    # ---- producer side
    def submit(self, signature: str, inputs: dict) -> dict:
        size = task_size(inputs)
        p = self.params
        if size > p.max_batch_size:
            raise ServingError("INVALID_ARGUMENT",
                               f"Task size {size} is larger than maximum input batch size {p.max_batch_size}")
        task = _Task(inputs, size)
        with self._cv:
            if not self._stopped:
                self._enqueue(signature, task)
                queued = True
            else:
                queued = False
        if not queued:
            # The version is being unloaded but this request already holds it: answer it unbatched
            # (TF Serving likewise finishes requests that hold a handle on an unloading version).
            return self.run(signature, inputs)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def _enqueue(self, signature: str, task: _Task) -> None:
        """Under the lock: put a task into its signature's open batch (TF Serving's queue rules)."""
        p, size = self.params, task.size
        queue = self._queues.get(signature)
        if queue is None:
            queue = self._queues[signature] = _Queue(signature)
        if queue.open and queue.open_size + size > p.max_batch_size:
            self._close(queue)
        if not queue.open and len(queue.closed) >= p.max_enqueued_batches:
            raise ServingError("UNAVAILABLE", "The batch scheduling queue to which this task was submitted is full")
        if not queue.open:
            queue.open_since = time.monotonic()
        queue.open.append(task)
        queue.open_size += size
        if queue.open_size >= p.max_batch_size:
            self._close(queue)
        self._cv.notify()

    @staticmethod
    def _close(queue: _Queue) -> None:
        queue.closed.append(queue.open)
        queue.open, queue.open_size = [], 0

    def stop(self) -> None:
        """Stop taking requests into batches; the workers run what is queued, then exit."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=60)

    # ---- consumer side
    def _take(self):
        """Under the lock: the next batch to run, or the seconds to wait for one (None = no work)."""
        timeout = self.params.batch_timeout_micros / 1e6
        queues = list(self._queues.values())
        if not queues:
            return None, None
        wait = None
        now = time.monotonic()
        for i in range(len(queues)):  # round robin, so that one busy signature does not starve another
            queue = queues[(self._next + i) % len(queues)]
            if queue.closed:
                self._next += i + 1
                return queue.signature, queue.closed.popleft()
            if queue.open:
                left = queue.open_since + timeout - now
                if left <= 0 or self._stopped:
                    batch = queue.open
                    queue.open, queue.open_size = [], 0
                    self._next += i + 1
                    return queue.signature, batch
                wait = left if wait is None else min(wait, left)
        return None, wait

    def _worker(self) -> None:
        while True:
            with self._cv:
                while True:
                    signature, batch = self._take()
                    if signature is not None:
                        break
                    if self._stopped:  # drained
                        return
                    self._cv.wait(batch)
            self._process(signature, batch)

    def _process(self, signature: str, tasks: list[_Task]) -> None:
        try:
            inputs, total, padded = self.merge(tasks)
            outputs = self.run(signature, inputs)
            for name, value in outputs.items():
                if value.ndim == 0:
                    raise ServingError("FAILED_PRECONDITION", "Batched output tensor has 0 dimensions")
                if value.shape[0] != padded:
                    raise ServingError("FAILED_PRECONDITION", "Batched output tensor's 0th dimension does not equal "
                                                              "the sum of the 0th dimension sizes of the input tensors")
            if self.metrics is not None:
                self.metrics.batch([t.size for t in tasks], padded, padded - total)
            start = 0
            for task in tasks:
                task.outputs = {k: v[start:start + task.size] for k, v in outputs.items()}
                start += task.size
        except ServingError as exc:
            for task in tasks:
                task.error = exc
        except Exception as exc:  # never leave a client waiting
            for task in tasks:
                task.error = ServingError("INTERNAL", f"batch failed: {exc}")
        for task in tasks:
            task.done.set()

    def merge(self, tasks: list[_Task]) -> tuple[dict, int, int]:
        """Concatenate the tasks' inputs (padding as TF Serving does); returns (inputs, rows, padded rows)."""
        import numpy as np

        p = self.params
        names = list(tasks[0].inputs)
        merged = {}
        total = sum(t.size for t in tasks)
        padded_total = total
        for allowed in p.allowed_batch_sizes:
            if allowed >= total:
                padded_total = allowed
                break
        for name in names:
            arrays = [t.inputs[name] for t in tasks]
            if p.pad_variable_length_inputs:
                if len({a.ndim for a in arrays}) != 1:
                    raise ServingError("FAILED_PRECONDITION", f"Tensors with name '{name}' from different tasks "
                                                              "have different ranks")
                widest = np.max([a.shape for a in arrays], axis=0)
                arrays = [_pad_with_first_element(a, widest) for a in arrays]
            elif any(a.shape[1:] != arrays[0].shape[1:] for a in arrays):
                raise ServingError("FAILED_PRECONDITION", (
                    f"Tensors with name '{name}' from different tasks have different shapes and padding is turned "
                    "off. Set pad_variable_length_inputs to true, or ensure that all tensors with the same name "
                    "have equal dimensions starting with the first dim."))
            if padded_total > total:
                arrays.append(np.repeat(arrays[-1][:1], padded_total - total, axis=0))
            merged[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        return merged, total, padded_total


def _pad_with_first_element(array, widest):
    """batching_util.cc PadTensor: pad every non-batch dimension at the end with ``array.flat[0]``."""
    import numpy as np

    widths = [(0, 0)] + [(0, int(w) - s) for w, s in zip(widest[1:], array.shape[1:])]
    if all(after == 0 for _, after in widths) or array.size == 0:
        return array
    return np.pad(array, widths, mode="constant", constant_values=array.flat[0])


class _SignatureBatcher:
    """What ``Servable.predict`` calls: the version's scheduler, bound to one signature."""

    def __init__(self, scheduler: BatchScheduler, signature: str, owner: bool):
        self.scheduler, self.signature, self.owner = scheduler, signature, owner

    def submit(self, inputs: dict) -> dict:
        return self.scheduler.submit(self.signature, inputs)

    def stop(self) -> None:
        if self.owner:
            self.scheduler.stop()


def attach_batchers(servable, params: BatchingParameters, metrics=None) -> None:
    """Route every signature of a loaded version through one shared batch scheduler."""
    scheduler = BatchScheduler(servable.run, params, metrics, name=f"{servable.name}-{servable.version}")
    servable.batchers = {name: _SignatureBatcher(scheduler, name, owner=(i == 0))
                         for i, name in enumerate(servable.functions)}
