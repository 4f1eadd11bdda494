"""Four-eyes approval requests: the `approval_requests` table (migration 0007_approvals) and
`approval_grants` (0009_approval_grants: one row per grant of a pending request; its primary
key (grant_id, kind) allows one pending request per grant and kind of change, across replicas).

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

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from services.store.db import Database, inserted_id
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

#: The grants of pending requests, one row per grant and kind of change ("revoke", "limit").
approval_grants = Table(
    "approval_grants",
    metadata,
    Column("request_id", BigInteger().with_variant(Integer(), "sqlite"),
           ForeignKey("approval_requests.id", ondelete="CASCADE"), nullable=False),
    Column("grant_id", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    PrimaryKeyConstraint("grant_id", "kind", name="pk_approval_grants"),
    Index("ix_approval_grants_request", "request_id"),
)


class AlreadyRequested(StoreError):
    """A grant already has a pending request of this kind: `waiting` is that request."""

    def __init__(self, waiting: ApprovalRecord, grant_id: str) -> None:
        super().__init__(f"Grant {grant_id} already has pending request #{waiting.id}.")
        self.waiting = waiting
        self.grant_id = grant_id


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
        grants: Sequence[str] = (),
        kind: str | None = None,
        now: datetime | None = None,
        _retry: bool = True,
    ) -> ApprovalRecord:
        """Store a new pending request; returns it with its id. `grants` and `kind`: the
        grants it holds for that kind of change, in the same transaction; when one of them
        already has a pending request of this kind, nothing is stored and
        `AlreadyRequested` names the waiting request."""
        now = now or _now()
        t = approval_requests
        try:
            with self._db.write() as conn:
                res = conn.execute(t.insert().values(
                    action=action, params=json.dumps(dict(params), sort_keys=True),
                    requester_username=requester, requester_roles=json.dumps(sorted(roles)),
                    reason=reason, ticket=ticket, created_at=now, expires_at=now + ttl,
                    state="pending", correlation_id=correlation_id,
                ))
                new_id = inserted_id(res)
                if kind is not None and grants:
                    conn.execute(approval_grants.insert(), [
                        {"request_id": new_id, "grant_id": g, "kind": kind}
                        for g in dict.fromkeys(grants)])
        except IntegrityError:
            waiting = self.waiting_for(grants, kind)
            if waiting is None and not _retry:
                raise StoreError("The approval request could not be stored.") from None
            if waiting is None:  # the other request left `pending` meanwhile: try again
                return self.create(action=action, params=params, requester=requester,
                                   roles=roles, reason=reason, ticket=ticket, ttl=ttl,
                                   correlation_id=correlation_id, grants=grants, kind=kind,
                                   now=now, _retry=False)
            raise AlreadyRequested(*waiting) from None
        found = self.get(int(new_id))
        if found is None:  # pragma: no cover - the row was just written
            raise StoreError("The approval request could not be read back.")
        return found

    def waiting_for(self, grants: Sequence[str], kind: str | None
                    ) -> tuple[ApprovalRecord, str] | None:
        """The oldest pending request holding one of `grants` for `kind` (any kind when
        None), with that grant; an indexed lookup, in chunks."""
        g = approval_grants
        ids = list(dict.fromkeys(grants))
        found: tuple[int, str] | None = None
        with self._db.read() as conn:
            for i in range(0, len(ids), 500):
                q = select(g.c.request_id, g.c.grant_id).where(
                    g.c.grant_id.in_(ids[i:i + 500]))
                if kind is not None:
                    q = q.where(g.c.kind == kind)
                row = conn.execute(q.order_by(g.c.request_id).limit(1)).first()
                if row is not None and (found is None or row[0] < found[0]):
                    found = (int(row[0]), str(row[1]))
        if found is None:
            return None
        rec = self.get(found[0])
        return (rec, found[1]) if rec is not None else None

    def pending_for_grant(self, grant_id: str) -> list[ApprovalRecord]:
        """The pending requests that hold this grant, oldest first (an indexed join)."""
        t, g = approval_requests, approval_grants
        q = (select(t).join(g, g.c.request_id == t.c.id)
             .where(g.c.grant_id == grant_id, t.c.state == "pending").order_by(t.c.id))
        with self._db.read() as conn:
            return [_record(r) for r in conn.execute(q)]

    def get(self, request_id: int) -> ApprovalRecord | None:
        t = approval_requests
        with self._db.read() as conn:
            row = conn.execute(select(t).where(t.c.id == request_id)).first()
        return _record(row) if row is not None else None

    def newest(
        self,
        *,
        states: Sequence[str] | None = None,
        requester: str | None = None,
        actions: Sequence[str] | None = None,
        request_id: int | None = None,
        pending_grant: str | None = None,
        limit: int = 200,
    ) -> list[ApprovalRecord]:
        """Requests newest first, optionally of these states, this requester, these actions,
        this request number, or (an indexed join) pending and holding this grant."""
        t = approval_requests
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if states is not None:
            q = q.where(t.c.state.in_(list(states)))
        if requester is not None:
            q = q.where(t.c.requester_username == requester)
        if actions is not None:
            q = q.where(t.c.action.in_(list(actions)))
        if request_id is not None:
            q = q.where(t.c.id == request_id)
        if pending_grant is not None:
            g = approval_grants
            q = q.where(t.c.id.in_(select(g.c.request_id).where(g.c.grant_id == pending_grant)))
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
            moved = bool(res.rowcount == 1)
            if moved and from_state == "pending":  # its grants are free for a new request
                conn.execute(delete(approval_grants)
                             .where(approval_grants.c.request_id == request_id))
            return moved


__all__ = ["DECIDED", "STATES", "AlreadyRequested", "ApprovalRecord", "ApprovalStore",
           "approval_grants", "approval_requests"]
