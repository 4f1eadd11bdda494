"""The sync worker's rate limiter: a token bucket that slows down on 429 and recovers."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """`rate` calls a second with bursts of `burst`. A 429 (`slow_down`) pauses calls for
    the server's Retry-After (or `default_pause`), halves the rate (not below `min_rate`);
    after `recover_every` seconds without one the rate grows by a quarter, up to `target`."""

    def __init__(self, rate: float, *, burst: float | None = None, min_rate: float = 0.2,
                 recover_every: float = 10.0, default_pause: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.target = float(rate)
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.min_rate = min(min_rate, self.target)
        self.recover_every = recover_every
        self.default_pause = default_pause
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._paused_until = 0.0
        self._last_change = clock()
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self.rate_limited = 0

    def _refill(self, now: float) -> None:
        if self.rate < self.target and now - self._last_change >= self.recover_every:
            self.rate = min(self.target, self.rate * 1.25)
            self._last_change = now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, stop: threading.Event | None = None, n: float = 1.0) -> bool:
        """Wait for `n` tokens; False when `stop` was set while waiting."""
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                wait = self._paused_until - now
                if wait <= 0:
                    if self._tokens >= n:
                        self._tokens -= n
                        self._record(now)
                        return True
                    wait = (n - self._tokens) / self.rate
            if stop is not None:
                if stop.wait(min(wait, 0.5)):
                    return False
            else:
                time.sleep(min(wait, 0.5))

    def charge(self, n: float) -> None:
        """Count `n` more calls made without waiting (extra pages, a user's refresh)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens -= n
            for _ in range(int(n)):
                self._record(now)

    def _record(self, now: float) -> None:
        self._calls.append(now)
        while self._calls and self._calls[0] < now - 10:
            self._calls.popleft()

    def slow_down(self, retry_after: float | None) -> None:
        with self._lock:
            now = self._clock()
            pause = retry_after if retry_after and retry_after > 0 else self.default_pause
            self._paused_until = max(self._paused_until, now + pause)
            self.rate = max(self.min_rate, self.rate / 2)
            self._tokens = min(self._tokens, 0.0)
            self._last_change = now
            self.rate_limited += 1

    def calls_per_second(self) -> float:
        """Calls a second over the last 10 s."""
        with self._lock:
            now = self._clock()
            while self._calls and self._calls[0] < now - 10:
                self._calls.popleft()
            if not self._calls:
                return 0.0
            span = max(1.0, now - self._calls[0])
            return len(self._calls) / span
