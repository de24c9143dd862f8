"""The server's admission gate on its own (no TensorFlow): the token budget's bounded, first-come wait and the
drain's refusal and idle wait. The real servers' side is in test_server_in_flight.py."""
from __future__ import annotations

import threading
import time

import pytest

from tfxformers.errors import UserError
from tfxformers.serving.server.admission import Admission, default_tokens_in_flight
from tfxformers.serving.server.errors import ServingError


def test_default_budget_follows_the_host_memory():
    gib = 1024**3
    assert default_tokens_in_flight(100, 8 * gib) == 100  # at least one worst-case request
    assert default_tokens_in_flight(100, 24 * gib) == 100
    assert default_tokens_in_flight(100, 64 * gib) == 400
    with pytest.raises(UserError, match="--in-flight-tokens"):
        Admission(0)


def test_a_request_that_does_not_fit_waits_then_is_resource_exhausted():
    gate = Admission(10, wait_seconds=0.3)
    with gate.work(8):
        started = time.monotonic()
        with pytest.raises(ServingError) as info:
            with gate.work(5):
                pass
        assert 0.3 <= time.monotonic() - started < 2
        assert info.value.code == "RESOURCE_EXHAUSTED" and info.value.http_status == 429
        assert "8 of 10 tokens are being computed (--in-flight-tokens)" in info.value.message
        with gate.work(2):  # what fits runs at once
            assert gate.tokens == 10
    assert gate.tokens == 0 and gate.peak_tokens == 10


def test_waiting_requests_run_in_arrival_order_when_room_appears():
    gate = Admission(10, wait_seconds=5)
    order = []
    release = threading.Event()

    def holder():
        with gate.work(10):
            release.wait(5)

    def waiter(name, tokens):
        with gate.work(tokens):
            order.append(name)

    first = threading.Thread(target=holder)
    first.start()
    time.sleep(0.1)
    big = threading.Thread(target=waiter, args=("big", 9))
    big.start()
    time.sleep(0.1)
    small = threading.Thread(target=waiter, args=("small", 1))  # would fit beside "big", but came later
    small.start()
    time.sleep(0.1)
    assert order == []
    release.set()
    for thread in (first, big, small):
        thread.join(5)
    assert order == ["big", "small"]


def test_drain_refuses_new_requests_and_waits_for_running_ones():
    gate = Admission(10)
    done = threading.Event()

    def running():
        with gate.request():
            done.wait(5)

    thread = threading.Thread(target=running)
    thread.start()
    time.sleep(0.1)
    gate.start_drain()
    with pytest.raises(ServingError) as info:
        with gate.request():
            pass
    assert info.value.code == "UNAVAILABLE" and "shutting down" in info.value.message
    with gate.request(refuse=False):  # status answers are still given
        pass
    assert not gate.wait_idle(0.2)
    threading.Timer(0.2, done.set).start()
    assert gate.wait_idle(5)
    thread.join(5)
