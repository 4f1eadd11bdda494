"""Four-eyes approval requests: the `approval_requests` table (migration 0007_approvals).

A request moves from `pending` to exactly one of `approved` (then `executed`), `rejected`,
`expired` or `cancelled`. Every move is one conditional UPDATE (`... WHERE state = :from`),
so of two replicas moving the same request at once exactly one wins (`transition` returns
True for it only). The use cases are in services/operations/approvals.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text, func, select, update

from services.store.db import Database
from services.store.errors import StoreError
from services.store.schema import UTCDateTime, metadata

STATES = ("pending", "approved", "executed", "rejected", "expired", "cancelled")
DECIDED = tuple(s for s in STATES if s != "pending")

approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("action", String(100), nullable=False),
    Column("params", Text, nullable=False),
    Column("requester_username", String(200), nullable=False),
    Column("requester_roles", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("ticket", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("state", String(12), nullable=False),
    Column("decided_by", String(200)),
    Column("decided_at", UTCDateTime),
    Column("decision_reason", Text),
    Column("correlation_id", String(64), nullable=False),
    Column("result", Text),
)


@dataclass(frozen=True)
class ApprovalRecord:
    """One stored request. `params`: what was asked (action's values, grants and the dry
    run's before -> after); `result`: what the execution did, once executed."""

    id: int
    action: str
    params: Mapping[str, Any]
    requester_username: str
    requester_roles: tuple[str, ...]
    reason: str
    ticket: str | None
    created_at: datetime
    expires_at: datetime
    state: str
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    correlation_id: str
    result: Mapping[str, Any] | None

    @property
    def pending(self) -> bool:
        return self.state == "pending"


def _now() -> datetime:
    return datetime.now(UTC)


def _record(row: Any) -> ApprovalRecord:
    m = row._mapping
    return ApprovalRecord(
        id=int(m["id"]),
        action=m["action"],
        params=json.loads(m["params"]),
        requester_username=m["requester_username"],
        requester_roles=tuple(json.loads(m["requester_roles"])),
        reason=m["reason"],
        ticket=m["ticket"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        state=m["state"],
        decided_by=m["decided_by"],
        decided_at=m["decided_at"],
        decision_reason=m["decision_reason"],
        correlation_id=m["correlation_id"],
        result=json.loads(m["result"]) if m["result"] else None,
    )


class ApprovalStore:
    """The approval requests of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"ApprovalStore({self._db!r})"

    def create(
        self,
        *,
        action: str,
        params: Mapping[str, Any],
        requester: str,
        roles: Iterable[str],
        reason: str,
        ticket: str | None,
        ttl: timedelta,
        correlation_id: str,
        now: datetime | None = None,
    ) -> ApprovalRecord:
        """Store a new pending request; returns it with its id."""
        now = now or _now()
        t = approval_requests
        with self._db.write() as conn:
            res = conn.execute(t.insert().values(
                action=action, params=json.dumps(dict(params), sort_keys=True),
                requester_username=requester, requester_roles=json.dumps(sorted(roles)),
                reason=reason, ticket=ticket, created_at=now, expires_at=now + ttl,
                state="pending", correlation_id=correlation_id,
            ))
            new_id = res.inserted_primary_key[0]
        found = self.get(int(new_id))
        if found is None:  # pragma: no cover - the row was just written
            raise StoreError("The approval request could not be read back.")
        return found

    def get(self, request_id: int) -> ApprovalRecord | None:
        t = approval_requests
        with self._db.read() as conn:
            row = conn.execute(select(t).where(t.c.id == request_id)).first()
        return _record(row) if row is not None else None

    def list(
        self,
        *,
        states: Sequence[str] | None = None,
        requester: str | None = None,
        limit: int = 200,
    ) -> list[ApprovalRecord]:
        """Requests newest first, optionally of these states and/or this requester."""
        t = approval_requests
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if states is not None:
            q = q.where(t.c.state.in_(list(states)))
        if requester is not None:
            q = q.where(t.c.requester_username == requester)
        with self._db.read() as conn:
            return [_record(r) for r in conn.execute(q)]

    def count(self, state: str = "pending") -> int:
        t = approval_requests
        with self._db.read() as conn:
            return int(conn.execute(
                select(func.count()).select_from(t).where(t.c.state == state)).scalar_one())

    def due(self, now: datetime | None = None) -> list[ApprovalRecord]:
        """Pending requests whose expiry has passed."""
        t = approval_requests
        q = select(t).where(t.c.state == "pending", t.c.expires_at <= (now or _now()))
        with self._db.read() as conn:
            return [_record(r) for r in conn.execute(q.order_by(t.c.id))]

    def transition(
        self,
        request_id: int,
        from_state: str,
        to_state: str,
        *,
        decided_by: str | None = None,
        decision_reason: str | None = None,
        result: Mapping[str, Any] | None = None,
        unexpired: bool = False,
        now: datetime | None = None,
    ) -> bool:
        """Move the request from `from_state` to `to_state` in one conditional UPDATE; True
        only for the caller whose UPDATE changed the row. `unexpired`: only while its expiry
        has not passed. Leaving `pending` records who decided and when."""
        if to_state not in STATES or from_state not in STATES:
            raise StoreError(f"Unknown approval state {from_state!r} -> {to_state!r}.")
        now = now or _now()
        t = approval_requests
        values: dict[str, Any] = {"state": to_state}
        if from_state == "pending":
            values.update(decided_by=decided_by, decided_at=now,
                          decision_reason=decision_reason)
        if result is not None:
            values["result"] = json.dumps(dict(result), sort_keys=True)
        cond = [t.c.id == request_id, t.c.state == from_state]
        if unexpired:
            cond.append(t.c.expires_at > now)
        with self._db.write() as conn:
            res = conn.execute(update(t).where(*cond).values(**values))
            return bool(res.rowcount == 1)


__all__ = ["DECIDED", "STATES", "ApprovalRecord", "ApprovalStore", "approval_requests"]
