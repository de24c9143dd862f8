"""The batch scheduler behind ``--enable-batching``: TF Serving's merge, padding and queue rules, driven
with a plain numpy model so the timing is under the test's control."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tfxformers.serving.server.batching import BatchingParameters, BatchScheduler, read_batching_parameters
from tfxformers.serving.server.errors import ServingError

ROOT = Path(__file__).resolve().parents[3]


class Recorder:
    """A 'model' that returns its inputs, records the merged batches and can be held at a gate."""

    def __init__(self):
        self.batches, self.gate = [], threading.Event()
        self.gate.set()

    def __call__(self, signature, inputs):
        self.gate.wait(10)
        self.batches.append({k: v.copy() for k, v in inputs.items()})
        return {"ids": inputs["ids"], "rows": np.arange(len(inputs["ids"]))}


def submit_all(scheduler, requests):
    results, errors = [None] * len(requests), [None] * len(requests)

    def run(i):
        try:
            results[i] = scheduler.submit("serving_default", requests[i])
        except ServingError as exc:
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return results, errors


def test_deploy_batching_parameters_parse():
    params = read_batching_parameters(ROOT / "deploy" / "batching_parameters.txt")
    assert params.max_batch_size == 32 and params.allowed_batch_sizes == (4, 8, 16, 32)
    assert params.pad_variable_length_inputs and params.num_batch_threads == 4


def test_padding_with_first_element_and_allowed_batch_sizes():
    model = Recorder()
    scheduler = BatchScheduler(model, BatchingParameters(max_batch_size=8, batch_timeout_micros=300_000,
                                                         num_batch_threads=1, allowed_batch_sizes=(4, 8),
                                                         pad_variable_length_inputs=True))
    try:
        requests = [{"ids": np.array([[7, 1, 2]], np.int32)}, {"ids": np.array([[9, 5, 6, 3, 4]], np.int32)}]
        results, errors = submit_all(scheduler, requests)
    finally:
        scheduler.stop()
    assert errors == [None, None]
    assert len(model.batches) == 1
    merged = model.batches[0]["ids"]
    assert merged.shape == (4, 5)  # two rows padded to the allowed size 4
    rows = {tuple(r) for r in merged[:2].tolist()}
    assert rows == {(7, 1, 2, 7, 7), (9, 5, 6, 3, 4)}  # padded with the tensor's FIRST element, not 0
    assert results[0]["ids"].shape == (1, 5)  # answers keep the padded length, as in TF Serving
    assert sorted(int(r["rows"][0]) for r in results) == [0, 1]


def test_without_padding_different_shapes_fail_the_batch():
    model = Recorder()
    scheduler = BatchScheduler(model, BatchingParameters(max_batch_size=8, batch_timeout_micros=300_000,
                                                         num_batch_threads=1))
    try:
        _, errors = submit_all(scheduler, [{"ids": np.zeros((1, 3), np.int32)}, {"ids": np.zeros((1, 4), np.int32)}])
    finally:
        scheduler.stop()
    assert all(e is not None and e.code == "FAILED_PRECONDITION" for e in errors)


def test_too_large_scalar_and_ragged_requests_are_invalid():
    scheduler = BatchScheduler(Recorder(), BatchingParameters(max_batch_size=2, num_batch_threads=1))
    try:
        for inputs, text in (({"ids": np.zeros((3, 2), np.int32)}, "larger than maximum input batch size 2"),
                             ({"ids": np.zeros((1, 2), np.int32), "n": np.int32(3) * np.ones((), np.int32)},
                              "at least one dimension"),
                             ({"ids": np.zeros((1, 2), np.int32), "m": np.zeros((2, 2), np.int32)},
                              "equal 0th-dimension size")):
            with pytest.raises(ServingError) as info:
                scheduler.submit("serving_default", inputs)
            assert info.value.code == "INVALID_ARGUMENT" and text in info.value.message
    finally:
        scheduler.stop()


def test_full_queue_is_unavailable():
    model = Recorder()
    model.gate.clear()  # the only batch thread blocks inside the model
    scheduler = BatchScheduler(model, BatchingParameters(max_batch_size=1, batch_timeout_micros=0,
                                                         num_batch_threads=1, max_enqueued_batches=1))
    try:
        holder = threading.Thread(target=scheduler.submit, args=("serving_default", {"ids": np.zeros((1, 1))}))
        holder.start()
        time.sleep(0.2)  # the first batch is running (blocked); the next one fills the queue
        queued = threading.Thread(target=scheduler.submit, args=("serving_default", {"ids": np.zeros((1, 1))}))
        queued.start()
        time.sleep(0.2)
        with pytest.raises(ServingError) as info:
            scheduler.submit("serving_default", {"ids": np.zeros((1, 1))})
        assert info.value.code == "UNAVAILABLE" and "queue" in info.value.message
        assert info.value.http_status == 503
    finally:
        model.gate.set()
        holder.join(10)
        queued.join(10)
        scheduler.stop()
    assert len(model.batches) == 2


def test_zero_timeout_runs_at_once_and_batches_under_load():
    model = Recorder()
    scheduler = BatchScheduler(model, BatchingParameters(max_batch_size=16, batch_timeout_micros=0,
                                                         num_batch_threads=1))
    try:
        started = time.perf_counter()
        scheduler.submit("serving_default", {"ids": np.zeros((1, 2), np.int32)})
        assert time.perf_counter() - started < 0.1  # no waiting for company
        model.gate.clear()
        blocker = threading.Thread(target=scheduler.submit, args=("serving_default", {"ids": np.zeros((1, 2))}))
        blocker.start()
        time.sleep(0.1)
        threading.Timer(0.3, model.gate.set).start()
        results, errors = submit_all(scheduler, [{"ids": np.zeros((1, 2))} for _ in range(6)])
        blocker.join(10)
    finally:
        model.gate.set()
        scheduler.stop()
    assert errors == [None] * 6
    assert len(model.batches[-1]["ids"]) == 6  # the six waiting requests ran as one batch


def test_stop_drains_queued_requests_and_later_ones_run_unbatched():
    """Unloading a version under load must not fail the requests that already hold it."""
    model = Recorder()
    model.gate.clear()
    scheduler = BatchScheduler(model, BatchingParameters(max_batch_size=2, batch_timeout_micros=0,
                                                         num_batch_threads=1, max_enqueued_batches=10))
    threads_results = []

    def call():
        threads_results.append(scheduler.submit("serving_default", {"ids": np.zeros((1, 1))}))

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    threading.Timer(0.3, model.gate.set).start()
    scheduler.stop()  # returns once the queue is drained
    for t in threads:
        t.join(10)
    assert len(threads_results) == 5
    assert scheduler.submit("serving_default", {"ids": np.zeros((1, 1))})["ids"].shape == (1, 1)
