"""A thread that runs `fire()` when the next thing is due on the sandbox clock (resync
completions), so that their webhooks go out on time without a read."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class SandboxClock(Protocol):
    def now(self) -> float: ...


class DueTimer:
    """`fire()` does what is due and returns when the next thing is due (or None). `poke()`
    after anything that moves that time (a new resync, the clock moved forward)."""

    def __init__(self, clock: SandboxClock, fire: Callable[[], float | None]) -> None:
        self._clock = clock
        self._fire = fire
        self._cond = threading.Condition()
        self._poked = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        with self._cond:
            if self._stopped:
                return
            self._poked = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sandbox-due-timer",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                self._poked = False
            due = self._fire()
            with self._cond:
                while not (self._stopped or self._poked):
                    wait = None if due is None else due - self._clock.now()
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(timeout=wait)
