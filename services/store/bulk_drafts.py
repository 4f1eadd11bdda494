"""Each console user's Guest limits draft (`bulk_drafts`, migration 0015_bulk_drafts): the
selection and its dry run, kept in the database so that a reload, a new tab or another
replica shows the same work. One row per user, its body an opaque JSON text the operations
layer writes and reads (`services/operations/bulk_drafts.py`), bounded there."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Column, String, Table, Text, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.store.db import Database
from services.store.schema import UTCDateTime, metadata

bulk_drafts = Table(
    "bulk_drafts",
    metadata,
    Column("username", String(200), primary_key=True),
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

    def load(self, username: str) -> str | None:
        """The user's draft body, None when there is none."""
        with self._db.read() as conn:
            body = conn.execute(select(bulk_drafts.c.body).where(
                bulk_drafts.c.username == username)).scalar_one_or_none()
        return None if body is None else str(body)

    def save(self, username: str, body: str) -> None:
        """Replace the user's draft (insert or update in one statement). Not fsynced: a
        draft lost in a power cut costs a few ticks, never a change."""
        row = {"username": username, "body": body, "updated_at": self._clock()}
        stmt = (sqlite_insert(bulk_drafts) if self._db.is_sqlite else pg_insert(bulk_drafts)
                ).values(row)
        stmt = stmt.on_conflict_do_update(index_elements=["username"],
                                          set_={"body": row["body"],
                                                "updated_at": row["updated_at"]})
        with self._db.write(durable=False) as conn:
            conn.execute(stmt)

    def clear(self, username: str) -> bool:
        """Delete the user's draft; whether there was one."""
        with self._db.write(durable=False) as conn:
            return bool(conn.execute(delete(bulk_drafts).where(
                bulk_drafts.c.username == username)).rowcount)
