"""Received webhooks (table `webhook_events`): stored once by their webhook id, tied to a
grant, marked processed, and read back per grant or by type.

Written by the customer backend (`backend/webhooks.py` verifies the HTTP delivery and calls
`insert`), read by the console's operations (timeline, recent failures, resync status).
No HTTP and no Kryptos client here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from services.store.db import Database, inserted_id
from services.store.schema import webhook_events

ID_MAX = 200
TYPE_MAX = 100


@dataclass(frozen=True)
class WebhookEvent:
    """A stored webhook. `payload` is the parsed JSON body."""

    id: int
    webhook_id: str
    type: str
    grant_id: str | None
    kryptos_user_id: str | None
    received_at: datetime
    payload: Any
    processed_at: datetime | None = None

    @property
    def data(self) -> Mapping[str, Any]:
        """The envelope's `data` object ({} when there is none)."""
        body = self.payload if isinstance(self.payload, Mapping) else {}
        data = body.get("data")
        return data if isinstance(data, Mapping) else {}

    @property
    def wallet_id(self) -> str | None:
        """The integration's wallet id, for integration events."""
        found = self.data.get("walletId") or self.data.get("wallet_id")
        return found if isinstance(found, str) else None


def _row_event(row: Any) -> WebhookEvent:
    try:
        payload = json.loads(row.payload)
    except ValueError:  # stored by an older writer as text: keep it readable
        payload = row.payload
    return WebhookEvent(id=int(row.id), webhook_id=row.webhook_id, type=row.type,
                        grant_id=row.grant_id, kryptos_user_id=row.kryptos_user_id,
                        received_at=row.received_at, payload=payload,
                        processed_at=row.processed_at)


def _cut(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


class WebhookEventStore:
    """The `webhook_events` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"WebhookEventStore({self._db!r})"

    # --- writes --------------------------------------------------------------------------

    def insert(self, webhook_id: str, type: str, payload: Any, *,  # noqa: A002
               grant_id: str | None = None, kryptos_user_id: str | None = None,
               received_at: datetime | None = None) -> tuple[int, bool]:
        """Store an event once: (row id, True), or for a webhook id already stored (even by
        a concurrent delivery) (its row id, False)."""
        if not webhook_id or len(webhook_id) > ID_MAX:
            raise ValueError("webhook_id must be 1 to 200 characters")
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        try:
            with self._db.write() as conn:
                result = conn.execute(insert(webhook_events).values(
                    webhook_id=webhook_id, type=(type or "unknown")[:TYPE_MAX],
                    grant_id=_cut(grant_id, ID_MAX),
                    kryptos_user_id=_cut(kryptos_user_id, ID_MAX),
                    received_at=received_at or datetime.now(UTC), payload=text))
                return inserted_id(result), True
        except IntegrityError:
            row_id = self.id_of(webhook_id)
            if row_id is None:
                raise
            return row_id, False

    def set_grant(self, row_id: int, grant_id: str | None) -> None:
        with self._db.write() as conn:
            conn.execute(update(webhook_events).where(webhook_events.c.id == row_id)
                         .values(grant_id=grant_id))

    def mark_processed(self, row_id: int, at: datetime | None = None) -> datetime:
        """Set `processed_at` (kept when already set); returns the time written."""
        now = at or datetime.now(UTC)
        with self._db.write() as conn:
            conn.execute(update(webhook_events).where(webhook_events.c.id == row_id,
                                                      webhook_events.c.processed_at.is_(None))
                         .values(processed_at=now))
        return now

    def attach_user(self, kryptos_user_id: str, grant_id: str) -> list[WebhookEvent]:
        """Tie the user's events that have no grant yet to `grant_id`; returns them (with
        the grant), oldest first."""
        with self._db.write() as conn:
            ids = list(conn.execute(
                select(webhook_events.c.id).where(
                    webhook_events.c.kryptos_user_id == kryptos_user_id,
                    webhook_events.c.grant_id.is_(None)).order_by(webhook_events.c.id)
            ).scalars())
            if ids:
                conn.execute(update(webhook_events).where(webhook_events.c.id.in_(ids))
                             .values(grant_id=grant_id))
        return [e for e in (self.get(i) for i in ids) if e is not None]

    # --- reads ---------------------------------------------------------------------------

    def id_of(self, webhook_id: str) -> int | None:
        with self._db.read() as conn:
            found = conn.execute(select(webhook_events.c.id)
                                 .where(webhook_events.c.webhook_id == webhook_id)).scalar()
        return None if found is None else int(found)

    def get(self, row_id: int) -> WebhookEvent | None:
        with self._db.read() as conn:
            row = conn.execute(select(webhook_events)
                               .where(webhook_events.c.id == row_id)).first()
        return None if row is None else _row_event(row)

    def for_grant(self, grant_id: str, limit: int = 100, *, since: datetime | None = None,
                  kryptos_user_id: str | None = None) -> list[WebhookEvent]:
        """A grant's events, newest first. With `kryptos_user_id`, also that user's events
        not tied to a grant yet (received but not processed, or before the exchange).
        `since`: received strictly after."""
        owner = webhook_events.c.grant_id == grant_id
        if kryptos_user_id:
            owner = or_(owner, (webhook_events.c.kryptos_user_id == kryptos_user_id)
                        & webhook_events.c.grant_id.is_(None))
        query = select(webhook_events).where(owner)
        if since is not None:
            query = query.where(webhook_events.c.received_at > since)
        return self._newest(query, limit)

    def recent(self, types: Iterable[str] = (), limit: int = 50, *,
               since: datetime | None = None) -> list[WebhookEvent]:
        """The newest events (of `types` when given; received after `since`), newest
        first."""
        query = select(webhook_events)
        kinds = tuple(types)
        if kinds:
            query = query.where(webhook_events.c.type.in_(kinds))
        if since is not None:
            query = query.where(webhook_events.c.received_at > since)
        return self._newest(query, limit)

    def _newest(self, query: Any, limit: int) -> list[WebhookEvent]:
        query = query.order_by(webhook_events.c.received_at.desc(),
                               webhook_events.c.id.desc()).limit(max(1, int(limit)))
        with self._db.read() as conn:
            return [_row_event(r) for r in conn.execute(query).all()]


__all__ = ["WebhookEvent", "WebhookEventStore"]
