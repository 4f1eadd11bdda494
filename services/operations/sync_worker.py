"""The process's sync worker as the operations and the console's runtime use it.

The worker itself is `services.sync.SyncWorker`; the operations sit below `services.sync`
(tests/test_layers.py), so they name it by what they call, not by its class."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.kryptos.client import KryptosClient


class SyncWorkerStatus(Protocol):
    """The worker's own state (`services.sync.SyncStatus`) as `ops.sync.status` shows it."""

    @property
    def holder(self) -> bool: ...
    @property
    def last_full_sync(self) -> datetime | None: ...
    @property
    def grants_listed(self) -> int | None: ...
    @property
    def rows_stale(self) -> int: ...
    @property
    def never_refreshed(self) -> int: ...
    @property
    def rows_stale_exact(self) -> bool: ...
    @property
    def never_refreshed_exact(self) -> bool: ...
    @property
    def errors(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def calls_per_second(self) -> float: ...
    @property
    def rate(self) -> float: ...
    @property
    def stale(self) -> bool: ...


class SyncWorkerHandle(Protocol):
    """A sync worker: started and stopped by the runtime (which closes its own client after
    it), asked for its state by `ops.sync.status`."""

    @property
    def client(self) -> KryptosClient: ...
    @property
    def running(self) -> bool: ...
    @property
    def is_holder(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def status(self) -> SyncWorkerStatus: ...


__all__ = ["SyncWorkerHandle", "SyncWorkerStatus"]
