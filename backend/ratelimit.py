"""A sliding-window rate limit kept in the database (table `backend_rate_hits`), so every
backend replica on the same database shares it. Each check runs in one write transaction,
serialised per bucket (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction advisory lock on
the bucket's hash), so concurrent requests cannot both take the last slot. The transaction
does not wait for the disk (`Database.write(durable=False)`).

Only a bucket's hits inside the window are counted; expired hits are deleted by a sweep of
all expired rows, at most once a window per process, so the table holds about two windows of
hits whatever the number of customers, and a check is one read and one insert."""

from __future__ import annotations

import hashlib
import time
import unicodedata
from collections.abc import Callable

from sqlalchemy import delete, func, insert, select

from services.store import Database
from services.store.schema import backend_rate_hits


def customer_bucket(kind: str, customer_ref: str) -> str:
    """The bucket of one customer: the reference compared case-insensitively (NFKC,
    casefold), so `Cust-1` and `cust-1` share one limit; hashed, so the table holds no
    customer reference and the key has a fixed length."""
    folded = unicodedata.normalize("NFKC", customer_ref).casefold()
    return f"{kind}:{hashlib.sha256(folded.encode('utf-8')).hexdigest()[:32]}"


class RateLimiter:
    def __init__(self, db: Database, limit: int, window_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.limit = limit
        self.window_ms = int(window_s * 1000)
        self._clock = clock
        self._next_sweep_ms = 0

    def hit(self, bucket: str) -> float:
        """Take a slot in `bucket`: 0.0 when allowed, else the seconds until one frees up.
        A limit of 0 switches the limiter off."""
        if self.limit <= 0:
            return 0.0
        now = int(self._clock() * 1000)
        start = now - self.window_ms
        # Not durable: losing the last hits in a crash of the machine only frees a few
        # slots, and a call then does not wait for the disk twice before its own work.
        with self._db.write(durable=False) as conn:
            if not self._db.is_sqlite:
                key = int.from_bytes(hashlib.sha256(bucket.encode()).digest()[:7], "big")
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")
            if now >= self._next_sweep_ms:
                self._next_sweep_ms = now + self.window_ms
                conn.execute(delete(backend_rate_hits).where(backend_rate_hits.c.at_ms <= start))
            # Only the window's hits count (ix_backend_rate_hits_bucket): older ones wait for
            # the sweep instead of a delete per call.
            count, oldest = conn.execute(
                select(func.count(), func.min(backend_rate_hits.c.at_ms))
                .where(backend_rate_hits.c.bucket == bucket,
                       backend_rate_hits.c.at_ms > start)).one()
            if count >= self.limit:
                return max(0.001, (int(oldest) + self.window_ms - now) / 1000)
            conn.execute(insert(backend_rate_hits).values(bucket=bucket, at_ms=now))
        return 0.0
