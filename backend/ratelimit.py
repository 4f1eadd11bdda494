"""A sliding-window rate limit kept in the database (table `backend_rate_hits`), so every
backend replica on the same database shares it. Each check runs in one write transaction,
serialised per bucket (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction advisory lock on
the bucket's hash), so concurrent requests cannot both take the last slot."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from sqlalchemy import delete, func, insert, select

from services.store import Database
from services.store.schema import backend_rate_hits


class RateLimiter:
    def __init__(self, db: Database, limit: int, window_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.limit = limit
        self.window_ms = int(window_s * 1000)
        self._clock = clock

    def hit(self, bucket: str) -> float:
        """Take a slot in `bucket`: 0.0 when allowed, else the seconds until one frees up.
        A limit of 0 switches the limiter off."""
        if self.limit <= 0:
            return 0.0
        now = int(self._clock() * 1000)
        start = now - self.window_ms
        with self._db.write() as conn:
            if not self._db.is_sqlite:
                key = int.from_bytes(hashlib.sha256(bucket.encode()).digest()[:7], "big")
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")
            conn.execute(delete(backend_rate_hits).where(
                backend_rate_hits.c.bucket == bucket, backend_rate_hits.c.at_ms <= start))
            count, oldest = conn.execute(
                select(func.count(), func.min(backend_rate_hits.c.at_ms))
                .where(backend_rate_hits.c.bucket == bucket)).one()
            if count >= self.limit:
                return max(0.001, (int(oldest) + self.window_ms - now) / 1000)
            conn.execute(insert(backend_rate_hits).values(bucket=bucket, at_ms=now))
        return 0.0
