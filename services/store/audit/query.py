"""Reading the audit log: filters as SQL, a page of matches, all matches in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, select, true

from services.store.audit.events import OUTCOMES, AuditEvent, dt_to_ms, event_from_row
from services.store.db import Database
from services.store.errors import StoreError
from services.store.schema import audit_log


@dataclass(frozen=True)
class AuditFilter:
    """`since` inclusive, `until` exclusive (naive datetimes are taken as UTC). `action` is an
    exact match, or a prefix when it ends in `*` (`grant.*`). `actor`, `action` and
    `target_id` may also be a tuple: any of those values (exactly)."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | tuple[str, ...] | None = None
    action: str | tuple[str, ...] | None = None
    target_id: str | tuple[str, ...] | None = None
    outcome: str | None = None

    @property
    def action_prefix(self) -> str | None:
        """The prefix of an `action` ending in `*`, else None."""
        a = self.action
        return a[:-1] if isinstance(a, str) and a.endswith("*") else None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _seq_bounds(conn: Connection, f: AuditFilter) -> list[ColumnElement[bool]] | None:
    """Time only grows with seq, so a time range is also a seq range: bound seq with the
    ts index (one seek per end) and let the per-column (col, seq) indexes do the rest."""
    c = audit_log.c
    where: list[ColumnElement[bool]] = []
    if f.since is not None:
        since = dt_to_ms(f.since)
        lo = conn.execute(select(c.seq).where(c.ts_ms >= since)
                          .order_by(c.ts_ms, c.seq).limit(1)).scalar()
        if lo is None:
            return None
        where += [c.seq >= lo, c.ts_ms >= since]
    if f.until is not None:
        until = dt_to_ms(f.until)
        hi = conn.execute(select(c.seq).where(c.ts_ms < until)
                          .order_by(c.ts_ms.desc(), c.seq.desc()).limit(1)).scalar()
        if hi is None:
            return None
        where += [c.seq <= hi, c.ts_ms < until]
    return where


def where(conn: Connection, f: AuditFilter, *, is_sqlite: bool,
          walk_seq: bool = False) -> list[ColumnElement[bool]] | None:
    """SQL conditions for a filter; None when the filter provably matches nothing.

    `walk_seq` (SQLite) hides the column indexes from the planner (`col || ''`), so that
    a page of dense matches is read by walking seq backwards and stopping at the page's
    end, instead of sorting every match."""
    c = audit_log.c

    def col(column: Any) -> Any:
        return column.op("||")("") if walk_seq else column

    conditions = _seq_bounds(conn, f)
    if conditions is None:
        return None
    if any(isinstance(v, tuple) and not v for v in (f.actor, f.action, f.target_id)):
        return None  # "any of none": nothing matches

    def one_of(column: Any, value: str | tuple[str, ...]) -> Any:
        return col(column).in_(value) if isinstance(value, tuple) else col(column) == value

    if f.actor:
        conditions.append(one_of(c.actor_username, f.actor))
    if f.action:
        prefix = f.action_prefix
        if prefix is not None:
            # A range instead of LIKE, so that the index serves it on both databases.
            conditions += [col(c.action) >= prefix, col(c.action) < prefix + "\U0010ffff"]
        else:
            conditions.append(one_of(c.action, f.action))
    if f.target_id:
        conditions.append(one_of(c.target_id, f.target_id))
    if f.outcome:
        if f.outcome not in OUTCOMES:
            raise StoreError(f"Outcome filter must be one of {', '.join(OUTCOMES)}.")
        # Four values only: with a more selective filter, keep SQLite off this index.
        selective = is_sqlite and (f.actor or f.action or f.target_id)
        outcome = c.outcome.op("||")("") if selective else col(c.outcome)
        conditions.append(outcome == f.outcome)
    return conditions


def query_page(db: Database, filters: AuditFilter, page: int, page_size: int) -> AuditPage:
    """One page of matching events, newest first, with the total number of matches."""
    if page < 1 or not 1 <= page_size <= 1000:
        raise StoreError("page must be >= 1 and page_size between 1 and 1000.")
    with db.read() as conn:
        conditions = where(conn, filters, is_sqlite=db.is_sqlite)
        if conditions is None:
            return AuditPage([], 0, page, page_size)
        cond = and_(true(), *conditions)
        if conditions:
            total = int(conn.execute(
                select(func.count()).select_from(audit_log).where(cond)).scalar() or 0)
        else:  # seq runs 1..n without gaps in an append-only log: no need to count
            total = int(conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0)
        if total == 0:
            return AuditPage([], 0, page, page_size)
        if db.is_sqlite and filters.action_prefix is not None:
            # A prefix matches several index ranges, which SQLite would merge by sorting
            # every match; when matches are dense, walking seq backwards is far cheaper.
            span = int(conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0)
            if total * 20 >= span:
                walk = where(conn, filters, is_sqlite=True, walk_seq=True) or []
                cond = and_(true(), *walk)
        rows = conn.execute(
            select(audit_log).where(cond).order_by(audit_log.c.seq.desc())
            .limit(page_size).offset((page - 1) * page_size)
        ).mappings().all()
    return AuditPage([event_from_row(r) for r in rows], total, page, page_size)


def iter_events(db: Database, filters: AuditFilter, chunk: int) -> Iterator[AuditEvent]:
    """All matching events, oldest first, read `chunk` rows at a time."""
    after = 0
    while True:
        with db.read() as conn:
            conditions = where(conn, filters, is_sqlite=db.is_sqlite)
            if conditions is None:
                return
            rows = conn.execute(
                select(audit_log).where(and_(audit_log.c.seq > after, *conditions))
                .order_by(audit_log.c.seq).limit(chunk)
            ).mappings().all()
        if not rows:
            return
        for row in rows:
            yield event_from_row(row)
        after = int(rows[-1]["seq"])
