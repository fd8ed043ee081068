"""Interactive requests before training: a gate that a fine-tune's batch loops pass through.

The app trains in a worker thread of the process that also answers the prediction tabs, on the same few CPU
cores. A training step started while a class is classifying tweets takes those cores (and the GIL between
kernels) from the requests, and a request's latency grows by whole training steps. So every prediction forward
is entered as ``with serving():`` and the engine calls ``yield_to_requests(cancel)`` before each training or
evaluation batch: while any request is being served, or one ended less than ``quiet_s`` ago (the queue usually
hands the next batch of requests over within milliseconds), the loop waits.

Training always progresses: one call never waits longer than ``max_wait_s`` (a class that never pauses still
lets one batch through every ``max_wait_s`` seconds), and it returns at once when ``cancel`` is set, so a cancel
is honoured as before. A process with no requests pays one lock acquisition per batch.

>>> gate = InteractiveGate(quiet_s=0.0)
>>> gate.yield_to_requests(max_wait_s=0.5)  # nothing is being served: no wait
0.0
>>> with gate.serving():
...     gate.busy()
True
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

MAX_WAIT_S = 2.0  # the longest one batch of training waits for requests
QUIET_S = 0.05  # a gap this short between two requests does not let a training batch in
POLL_S = 0.05  # how often a waiting loop looks at its cancel event


class InteractiveGate:
    """A thread-safe count of requests being served, and the wait that training loops do while it is not zero.

    ``max_wait_s`` and ``quiet_s`` are the defaults of :meth:`yield_to_requests`; ``clock`` is time.monotonic
    (a test may pass its own).
    """

    def __init__(self, max_wait_s: float = MAX_WAIT_S, quiet_s: float = QUIET_S, clock=time.monotonic):
        self.max_wait_s, self.quiet_s, self._clock = max_wait_s, quiet_s, clock
        self._cond = threading.Condition()
        self._serving = 0
        self._last_end = float("-inf")  # when the last request finished (clock seconds)
        self.waits = 0  # batches that waited, and the seconds they waited in all: what a bench reports
        self.waited_s = 0.0

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Count the block as one request being served (also when it raises)."""
        with self._cond:
            self._serving += 1
        try:
            yield
        finally:
            with self._cond:
                self._serving -= 1
                self._last_end = self._clock()
                self._cond.notify_all()

    def busy(self) -> bool:
        """Whether a request is being served now, or one ended less than ``quiet_s`` ago."""
        with self._cond:
            return self._busy_locked(self.quiet_s)

    def _busy_locked(self, quiet_s: float) -> bool:
        return self._serving > 0 or self._clock() - self._last_end < quiet_s

    def yield_to_requests(self, cancel: threading.Event | None = None, max_wait_s: float | None = None,
                          quiet_s: float | None = None) -> float:
        """Wait while requests are being served, at most ``max_wait_s`` seconds, and not at all once ``cancel``
        is set; returns the seconds waited (0.0 when nothing was being served)."""
        max_wait = self.max_wait_s if max_wait_s is None else max_wait_s
        quiet = self.quiet_s if quiet_s is None else quiet_s
        with self._cond:
            if not self._busy_locked(quiet) or (cancel is not None and cancel.is_set()):
                return 0.0
            start = self._clock()
            deadline = start + max_wait
            while self._busy_locked(quiet) and not (cancel is not None and cancel.is_set()):
                left = deadline - self._clock()
                if left <= 0:
                    break
                if self._serving == 0:  # only the quiet gap is left: sleep to its end (or a new request)
                    left = min(left, self._last_end + quiet - self._clock())
                self._cond.wait(timeout=max(0.0, min(left, POLL_S)))
            waited = self._clock() - start
            self.waits += 1
            self.waited_s += waited
            return waited


GATE = InteractiveGate()  # the process's gate: the app's prediction handlers and its training worker share it


def serving():
    """``with serving():`` around a prediction forward of the app (the process-wide GATE)."""
    return GATE.serving()


def yield_to_requests(cancel: threading.Event | None = None) -> float:
    """What a training or evaluation batch loop calls before each batch (the process-wide GATE)."""
    return GATE.yield_to_requests(cancel)
