"""A clock that tests move by hand, for code that takes its time source as a callable: what
happens after some time is tested without waiting for that time to pass."""

from __future__ import annotations

import time


class MovableClock:
    """Seconds (a float, like `time.time()` or `time.monotonic()`), starting at `start`
    (default: the real wall-clock time, so that stamps written meanwhile by code reading the
    real clock stay comparable) and moving only by `advance()`."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
