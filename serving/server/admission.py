"""Which requests the embedded model server takes on: the shared in-flight budget and the drain on SIGTERM.

``Admission`` is one object for the whole server, used by the REST and the gRPC front ends alike:

* ``request()`` wraps every request from its first byte to its last (REST: the HTTP exchange; gRPC: the
  servicer call, after which gRPC sends the answer within its stop grace). While the server drains it
  refuses new model requests with ``UNAVAILABLE`` (HTTP 503) and ``wait_idle`` waits for the ones running;
* ``work(tokens)`` holds a request's share of the budget (``--in-flight-tokens``: rows x tokens of
  every request being computed, for generate rows x sequences x (prompt + new tokens)) while the model
  runs. A request that does not fit waits, first come first served, up to ``--in-flight-wait-seconds``,
  then gets ``RESOURCE_EXHAUSTED`` (HTTP 429): the server's memory follows what it computes at once, and
  one worst-case request is already about 1 GiB above idle for a MiniLM-size encoder (issue 23).

The default budget is what the host's memory allows, counted in worst-case requests (``--max-tokens``):
one per 16 GiB of physical memory, at least one, so that request work stays within a small share of the
host whatever the clients send.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections import deque

from tfxformers.errors import UserError
from tfxformers.serving.server.errors import ServingError

MEMORY_PER_WORST_CASE_REQUEST = 16 * 1024**3
DEFAULT_WAIT_SECONDS = 5.0
DRAIN_MESSAGE = "the server is shutting down (SIGTERM) and takes no new requests; send it to another replica"


def host_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return MEMORY_PER_WORST_CASE_REQUEST


def default_tokens_in_flight(max_tokens: int, memory_bytes: int | None = None) -> int:
    memory = host_memory_bytes() if memory_bytes is None else memory_bytes
    return max_tokens * max(1, memory // MEMORY_PER_WORST_CASE_REQUEST)


class Admission:
    """The server's gate: the drain state, the count of requests in progress and the token budget."""

    def __init__(self, in_flight_tokens: int, wait_seconds: float = DEFAULT_WAIT_SECONDS):
        if in_flight_tokens < 1:
            raise UserError(f"--in-flight-tokens must be a positive integer, got {in_flight_tokens!r}")
        if wait_seconds < 0:
            raise UserError(f"--in-flight-wait-seconds must be >= 0, got {wait_seconds!r}")
        self.budget, self.wait_seconds = int(in_flight_tokens), float(wait_seconds)
        self.draining = False
        self.tokens = 0  # of requests being computed now
        self.peak_tokens = 0
        self._active = 0
        self._cv = threading.Condition()
        self._queue: deque[int] = deque()  # tickets of requests waiting for budget, in arrival order
        self._tickets = itertools.count()

    # ---- drain
    def start_drain(self) -> None:
        with self._cv:
            self.draining = True
            self._cv.notify_all()

    def check_open(self) -> None:
        if self.draining:
            raise ServingError("UNAVAILABLE", DRAIN_MESSAGE)

    @contextlib.contextmanager
    def request(self, refuse: bool = True):
        """Count one request in progress; while draining it is refused (``UNAVAILABLE``) unless ``refuse``
        is False (status and metrics answers)."""
        with self._cv:
            if self.draining and refuse:
                raise ServingError("UNAVAILABLE", DRAIN_MESSAGE)
            self._active += 1
        try:
            yield
        finally:
            with self._cv:
                self._active -= 1
                self._cv.notify_all()

    @property
    def active(self) -> int:
        with self._cv:
            return self._active

    def wait_idle(self, timeout: float, interrupted: threading.Event | None = None) -> bool:
        """Wait until no request is in progress (True) or ``timeout`` passed or ``interrupted`` is set."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0 or (interrupted is not None and interrupted.is_set()):
                    return False
                self._cv.wait(min(left, 0.1))
        return True

    # ---- budget
    @contextlib.contextmanager
    def work(self, tokens: int):
        """Hold ``tokens`` of the budget while the model computes (a request never asks more than the
        budget: ``--in-flight-tokens`` is at least ``--max-tokens``)."""
        tokens = max(1, min(int(tokens), self.budget))
        ticket = next(self._tickets)
        deadline = time.monotonic() + self.wait_seconds
        with self._cv:
            self._queue.append(ticket)
            try:
                while self._queue[0] != ticket or self.tokens + tokens > self.budget:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ServingError("RESOURCE_EXHAUSTED", (
                            f"the server is busy: {self.tokens} of {self.budget} tokens are being computed "
                            f"(--in-flight-tokens) and this request's {tokens} did not fit within "
                            f"{self.wait_seconds:g} s (--in-flight-wait-seconds); retry later"))
                    self._cv.wait(left)
            finally:
                self._queue.remove(ticket)
                self._cv.notify_all()  # the next in line may fit now
            self.tokens += tokens
            self.peak_tokens = max(self.peak_tokens, self.tokens)
        try:
            yield
        finally:
            with self._cv:
                self.tokens -= tokens
                self._cv.notify_all()
