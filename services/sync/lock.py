"""The lock that lets exactly one process run the sync worker.

PostgreSQL: a session-level `pg_try_advisory_lock` held on a connection of its own; the
server releases it when that connection ends (the process died, the network dropped), and
the holder notices on its next liveness check. SQLite: `fcntl.flock` on a file next to the
database (`<db>.sync.lock`); the kernel releases it when the process dies. Both are tried
without waiting: a process that does not get the lock stands by and tries again later.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from services.store.db import Database

log = logging.getLogger("services.sync")


class SyncLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if free; True when this object now holds it."""

    def still_held(self) -> bool:
        """Whether the lock is still ours (False once lost, e.g. the connection died)."""

    def release(self) -> None:
        """Give the lock up (safe to call when not held)."""


class FileSyncLock:
    """`flock` on `path`. Two objects in one process contend like two processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"FileSyncLock({str(self.path)!r}, held={self._fd is not None})"

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def still_held(self) -> bool:
        if self._fd is None:
            return False
        try:  # the file we lock must still be the one at the path
            return os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class MemorySyncLock:
    """For an in-memory SQLite database (tests): a lock within this process."""

    _locks: dict[str, threading.Lock] = {}

    def __init__(self, name: str) -> None:
        self._lock = self._locks.setdefault(name, threading.Lock())
        self._held = False

    def try_acquire(self) -> bool:
        if not self._held:
            self._held = self._lock.acquire(blocking=False)
        return self._held

    def still_held(self) -> bool:
        return self._held

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


class PgAdvisorySyncLock:
    """`pg_try_advisory_lock` on a dedicated autocommit connection. The key is derived from
    the current schema, so consoles on different schemas of one database do not contend."""

    def __init__(self, db: Database, name: str = "kryptos-console-sync") -> None:
        self._engine = create_engine(db.url, poolclass=NullPool)
        self._name = name
        self._conn: Connection | None = None
        self.key: int | None = None

    def __repr__(self) -> str:
        return f"PgAdvisorySyncLock(key={self.key}, held={self._conn is not None})"

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return self.still_held()
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = conn.execute(text("SELECT current_schema()")).scalar() or ""
            digest = hashlib.sha256(f"{self._name}:{schema}".encode()).digest()
            self.key = int.from_bytes(digest[:8], "big", signed=True)
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                    {"k": self.key}).scalar())
        except DBAPIError:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except DBAPIError:  # connection gone: the server has released the lock
            self._drop()
            return False

    def backend_pid(self) -> int | None:
        """The lock connection's server process id (lets a test end it the hard way)."""
        if self._conn is None:
            return None
        return int(self._conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except DBAPIError as exc:  # already dead: nothing left to close
                log.debug("sync lock connection already closed: %s", type(exc).__name__)

    def release(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            conn.close()
            self._conn = None
        except DBAPIError:
            self._drop()
        self._engine.dispose()


def sync_lock_for(db: Database) -> SyncLock:
    """The right lock for `db`: advisory lock (PostgreSQL) or a file lock next to the
    SQLite file (`<file>.sync.lock`)."""
    if not db.is_sqlite:
        return PgAdvisorySyncLock(db)
    database = db.url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return MemorySyncLock(str(id(db)))
    path = Path(database).expanduser().resolve()
    return FileSyncLock(path.with_name(path.name + ".sync.lock"))
