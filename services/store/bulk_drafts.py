"""Each console user's Guest limits draft (`bulk_drafts`, migration 0017_bulk_drafts): the
selection and its dry run, kept in the database so that a reload, a new tab or another
replica shows the same work. One row per user, its body an opaque JSON text the operations
layer writes and reads (`services/operations/bulk_drafts.py`), bounded there."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, String, Table, Text, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.store.db import Database
from services.store.schema import UTCDateTime, metadata

bulk_drafts = Table(
    "bulk_drafts",
    metadata,
    Column("username", String(200), primary_key=True),
    Column("rev", BigInteger, nullable=False),  # a new number at each save
    Column("body", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BulkDraftStore:
    """Read, replace and delete one user's draft: primary-key statements only."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._db = db
        self._clock = clock

    def __repr__(self) -> str:
        return "BulkDraftStore()"

    def load(self, username: str, *, unless_rev: int | None = None
             ) -> tuple[int, str | None] | None:
        """The user's draft as (revision, body); None when there is none. With
        `unless_rev`: the body only when the revision differs (else `(unless_rev, None)`),
        so a caller holding that revision reads one small column."""
        c = bulk_drafts.c
        with self._db.read() as conn:
            rev = conn.execute(select(c.rev).where(c.username == username)
                               ).scalar_one_or_none()
            if rev is None:
                return None
            if rev == unless_rev:
                return int(rev), None
            row = conn.execute(select(c.rev, c.body).where(c.username == username)).first()
        return None if row is None else (int(row.rev), str(row.body))

    def save(self, username: str, body: str) -> int:
        """Replace the user's draft (insert or update in one statement); its new revision
        (random, so two replicas never reuse one). Not fsynced: a draft lost in a power cut
        costs a few ticks, never a change."""
        rev = secrets.randbits(62)
        row = {"username": username, "rev": rev, "body": body, "updated_at": self._clock()}
        stmt = (sqlite_insert(bulk_drafts) if self._db.is_sqlite else pg_insert(bulk_drafts)
                ).values(row)
        stmt = stmt.on_conflict_do_update(index_elements=["username"],
                                          set_={"rev": rev, "body": row["body"],
                                                "updated_at": row["updated_at"]})
        with self._db.write(durable=False) as conn:
            conn.execute(stmt)
        return rev

    def clear(self, username: str) -> bool:
        """Delete the user's draft; whether there was one."""
        with self._db.write(durable=False) as conn:
            return bool(conn.execute(delete(bulk_drafts).where(
                bulk_drafts.c.username == username)).rowcount)
