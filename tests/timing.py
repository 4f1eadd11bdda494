"""Time in tests without waiting for it.

`MovableClock`: a clock that tests move by hand, for code that takes its time source as a
callable: what happens after some time is tested without that time passing.
`wait_for`: a bounded wait for another thread or process to reach a state (a request
logged, a worker holding its lock), never for time itself to pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


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


def wait_for(predicate: Callable[[], T | None], timeout: float = 15.0, what: str = "it") -> T:
    """Poll `predicate` until it returns a true value (returned); AssertionError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        time.sleep(0.02)
