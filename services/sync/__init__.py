"""The sync worker that keeps the read model fresh, and the lock that lets one process
run it at a time."""

from services.sync.bucket import TokenBucket
from services.sync.lock import FileSyncLock, PgAdvisorySyncLock, SyncLock, sync_lock_for
from services.sync.worker import RunReport, SyncStatus, SyncWorker, worker_from_settings

__all__ = [
    "FileSyncLock",
    "PgAdvisorySyncLock",
    "RunReport",
    "SyncLock",
    "SyncStatus",
    "SyncWorker",
    "TokenBucket",
    "sync_lock_for",
    "worker_from_settings",
]
