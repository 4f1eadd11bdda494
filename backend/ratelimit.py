"""A sliding-window rate limit kept in the database (table `backend_rate_hits`), so every
backend replica on the same database shares it. Each check runs in one write transaction,
serialised per bucket (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction advisory lock on
the bucket's hash), so concurrent requests cannot both take the last slot. The transaction
does not wait for the disk (`Database.write(durable=False)`). `take()` makes several checks
of one call (the customer's limit, then the endpoint's) in one such transaction.

Only a bucket's hits inside the window are counted; expired hits are deleted by a sweep of
all expired rows, at most once a window per process, so the table holds about two windows of
hits whatever the number of customers, and a check is one read and one insert."""

from __future__ import annotations

import hashlib
import time
import unicodedata
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, bindparam, delete, func, insert, select

from services.store import Database
from services.store.schema import backend_rate_hits

_HITS = backend_rate_hits.c
# Built once: the statements' compiled forms are cached by SQLAlchemy, and building them
# again on every call cost a visible part of a check.
_COUNT = (select(func.count(), func.min(_HITS.at_ms))
          .where(_HITS.bucket == bindparam("bucket"), _HITS.at_ms > bindparam("start")))
_INSERT = insert(backend_rate_hits)
_SWEEP = delete(backend_rate_hits).where(_HITS.at_ms <= bindparam("start"))


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

    @property
    def db(self) -> Database:
        """The database that keeps this limiter's hits."""
        return self._db

    def hit(self, bucket: str) -> float:
        """Take a slot in `bucket`: 0.0 when allowed, else the seconds until one frees up.
        A limit of 0 switches the limiter off."""
        return take(self._db, [(self, bucket)])[1]

    def check(self, conn: Connection, bucket: str, now: int) -> float:
        """(Inside the transaction, the bucket locked.) Take a slot or say how long to wait."""
        start = now - self.window_ms
        if now >= self._next_sweep_ms:
            self._next_sweep_ms = now + self.window_ms
            conn.execute(_SWEEP, {"start": start})
        # Only the window's hits count (ix_backend_rate_hits_bucket): older ones wait for
        # the sweep instead of a delete per call.
        count, oldest = conn.execute(_COUNT, {"bucket": bucket, "start": start}).one()
        if count >= self.limit:
            return max(0.001, (int(oldest) + self.window_ms - now) / 1000)
        conn.execute(_INSERT, {"bucket": bucket, "at_ms": now})
        return 0.0


def take(db: Database, checks: Sequence[tuple[RateLimiter | None, str]]
         ) -> tuple[int, float]:
    """Take a slot in each (limiter, bucket) in order, in one transaction on `db` (every
    limiter keeps its hits there), stopping at the first that is full: (its index, the
    seconds until a slot frees up), or (-1, 0.0) when every check passed. The slots taken
    before a full one stay taken, as if checked one after the other. A None limiter, or a
    limit of 0, is no check.

    Not durable: losing the last hits in a crash of the machine only frees a few slots, and
    a call then does not wait for the disk before its own work. PostgreSQL: each bucket's
    advisory lock is taken as it is checked; every caller checks its buckets in the same
    order (the customer's, then the endpoint's), so two calls never wait on each other."""
    active = [(i, limiter, bucket) for i, (limiter, bucket) in enumerate(checks)
              if limiter is not None and limiter.limit > 0]
    if not active:
        return -1, 0.0
    with db.write(durable=False) as conn:
        for i, limiter, bucket in active:
            if not db.is_sqlite:
                key = int.from_bytes(hashlib.sha256(bucket.encode()).digest()[:7], "big")
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")
            wait = limiter.check(conn, bucket, int(limiter._clock() * 1000))
            if wait:
                return i, wait
    return -1, 0.0
