"""A sliding-window rate limit kept in the database (table `backend_rate_hits`), so every
backend replica on the same database shares it. Each check runs in one write transaction,
serialised per bucket (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction advisory lock on
the bucket's hash), so concurrent requests cannot both take the last slot. The transaction
does not wait for the disk (`Database.write(durable=False)`). `take()` makes several checks
of one call (the customer's limit, then the endpoint's) in one such transaction.

Only a bucket's hits inside the window are counted; expired hits are deleted by a sweep of
all expired rows, at most once a window per process, so the table holds about two windows of
hits whatever the number of customers. The checks of one call are one count (a row per
bucket) and one insert of the slots taken; in PostgreSQL one statement takes every bucket's
lock first."""

from __future__ import annotations

import hashlib
import time
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Executable,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)

from services.store import Database
from services.store.schema import backend_rate_hits

_HITS = backend_rate_hits.c
# Built once: the statements' compiled forms are cached by SQLAlchemy, and building them
# again on every call cost a visible part of a check.
_INSERT = insert(backend_rate_hits)
_SWEEP = delete(backend_rate_hits).where(_HITS.at_ms <= bindparam("start"))
_COUNTS: dict[int, Executable] = {}


def _counts(n: int) -> Executable:
    """One statement counting `n` buckets' hits inside their windows (bucket `b<i>`, window
    start `s<i>`): a row (i, count, oldest) each, in one round trip, each part read through
    ix_backend_rate_hits_bucket."""
    if n not in _COUNTS:
        parts = [select(literal(i).label("i"), func.count().label("n"),
                        func.min(_HITS.at_ms).label("oldest"))
                 .where(_HITS.bucket == bindparam(f"b{i}"), _HITS.at_ms > bindparam(f"s{i}"))
                 for i in range(n)]
        _COUNTS[n] = parts[0] if n == 1 else union_all(*parts)
    return _COUNTS[n]


def _lock_key(bucket: str) -> int:
    return int.from_bytes(hashlib.sha256(bucket.encode()).digest()[:7], "big")


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

    def sweep(self, conn: Connection, now: int) -> None:
        """(Inside the transaction.) Delete every hit older than this limiter's window, at
        most once a window, whatever its bucket: limiters on one database share one window
        length (the backend's are a minute)."""
        if now >= self._next_sweep_ms:
            self._next_sweep_ms = now + self.window_ms
            conn.execute(_SWEEP, {"start": now - self.window_ms})

    def wait(self, count: int, oldest: int | None, now: int) -> float:
        """0.0 when a bucket holding `count` hits in the window (the oldest at `oldest`)
        has a free slot, else the seconds until one frees up."""
        if count < self.limit:
            return 0.0
        return max(0.001, (int(oldest or now) + self.window_ms - now) / 1000)


def take(db: Database, checks: Sequence[tuple[RateLimiter | None, str]]
         ) -> tuple[int, float]:
    """Take a slot in each (limiter, bucket) in order, in one transaction on `db` (every
    limiter keeps its hits there), stopping at the first that is full: (its index, the
    seconds until a slot frees up), or (-1, 0.0) when every check passed. The slots taken
    before a full one stay taken, as if checked one after the other. A None limiter, or a
    limit of 0, is no check.

    Not durable: losing the last hits in a crash of the machine only frees a few slots, and
    a call then does not wait for the disk before its own work. PostgreSQL: every bucket's
    advisory lock is taken before any is counted, all in one statement, in the order of the
    lock keys (so two callers sharing buckets never deadlock)."""
    active = [(i, limiter, bucket) for i, (limiter, bucket) in enumerate(checks)
              if limiter is not None and limiter.limit > 0]
    if not active:
        return -1, 0.0
    with db.write(durable=False) as conn:
        if not db.is_sqlite:
            # Every bucket's lock in one statement, in the order of their keys: any two
            # callers take shared buckets in the same order, so they never deadlock.
            keys = sorted({_lock_key(bucket) for _, _, bucket in active})
            conn.exec_driver_sql("SELECT " + ", ".join(
                f"pg_advisory_xact_lock({k})" for k in keys))
        nows = [int(limiter._clock() * 1000) for _, limiter, _ in active]
        for (_, limiter, _), now in zip(active, nows, strict=True):
            limiter.sweep(conn, now)
        # Only the window's hits count (ix_backend_rate_hits_bucket): older ones wait for
        # the sweep instead of a delete per call.
        params: dict[str, Any] = {}
        for j, ((_, limiter, bucket), now) in enumerate(zip(active, nows, strict=True)):
            params[f"b{j}"], params[f"s{j}"] = bucket, now - limiter.window_ms
        counted = {int(r.i): (int(r.n), r.oldest)
                   for r in conn.execute(_counts(len(active)), params)}
        taken: list[dict[str, Any]] = []
        full, wait = -1, 0.0
        for j, ((i, limiter, bucket), now) in enumerate(zip(active, nows, strict=True)):
            count, oldest = counted.get(j, (0, None))
            wait = limiter.wait(count, oldest, now)
            if wait:
                full = i
                break
            taken.append({"bucket": bucket, "at_ms": now})
        if taken:  # the slots of the checks that passed, in one statement
            conn.execute(_INSERT, taken)
    return full, wait
