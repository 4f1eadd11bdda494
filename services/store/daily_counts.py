"""What the charts read: small daily counts kept by the sync worker (migrations
0014_daily_counts, 0015_change_size) and grouped counts over indexed columns, never rows
loaded whole.

- `daily_grant_counts`: grants per UTC day, status, user kind and tier. `record_grants`
  replaces one day's rows with a GROUP BY over `rm_grants` (after each full sync), so a
  90-day chart reads at most a few thousand small rows.
- `daily_audit_counts`: audit events per UTC day, action, outcome and actor. `roll_up_audit`
  counts the events after the watermark (`daily_audit_rollup.seq`, a primary-key range) and
  moves the watermark in the same transaction, compare-and-set, so two workers never count
  an event twice. A chart adds the events after the watermark live (a `seq` range), so it is
  exact even when the worker is off.
- `daily_limit_counts`: succeeded per-grant limit changes per UTC day and tier, rolled up
  from `limit_changes` (services/store/audit/changes.py: one row per change, written with
  its event) under the same watermark, plus the changes after it counted live.
- The largest limit changes: `limit_changes`' partial index on (day, size, seq), a short
  walk per day of the period.
- Failing integrations by provider (`ix_rm_integrations_status`), the age of the console's
  copy (`ix_rm_grants_due`: one index range count per bucket) and approvals waiting by age.

Days are whole days since 1970-01-01 UTC (`ts_ms // 86400000`) on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.store.approvals import approval_requests
from services.store.audit.changes import limit_changes
from services.store.db import Database
from services.store.readmodel.tables import FAILING, rm_grants, rm_integrations
from services.store.schema import audit_log

DAY_MS = 86_400_000
EPOCH = date(1970, 1, 1)

_md = MetaData()


def _daily_table(name: str, *keys: tuple[str, int]) -> Table:
    """A table of counts `n` per UTC day and `keys` (name, length): the key is the primary key."""
    return Table(name, _md, Column("day", Integer, primary_key=True),
                 *(Column(k, String(length), primary_key=True) for k, length in keys),
                 Column("n", BigInteger, nullable=False))


daily_grant_counts = _daily_table(
    "daily_grant_counts", ("status", 10), ("user_kind", 10), ("tier", 100))
daily_audit_counts = _daily_table(
    "daily_audit_counts", ("action", 100), ("outcome", 16), ("actor_username", 200))
#: Succeeded per-grant limit changes per day and tier (from `limit_changes`, migration 0015).
daily_limit_counts = _daily_table("daily_limit_counts", ("tier", 100))
daily_audit_rollup = Table(
    "daily_audit_rollup", _md,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
)

#: Age buckets of the console's copy of a grant's integrations (upper bound, label).
FRESHNESS_BUCKETS: tuple[tuple[timedelta | None, str], ...] = (
    (timedelta(minutes=15), "under 15 min"),
    (timedelta(hours=1), "15–60 min"),
    (timedelta(hours=6), "1–6 h"),
    (timedelta(days=1), "6–24 h"),
    (None, "over a day"),
)
#: Age buckets of approval requests waiting for a second person.
APPROVAL_BUCKETS: tuple[tuple[timedelta | None, str], ...] = (
    (timedelta(hours=1), "under 1 h"),
    (timedelta(hours=4), "1–4 h"),
    (timedelta(days=1), "4–24 h"),
    (None, "over a day"),
)
NEVER_READ = "never read"


def day_number(when: datetime | date) -> int:
    """Whole days since 1970-01-01 UTC."""
    d = when.astimezone(UTC).date() if isinstance(when, datetime) else when
    return (d - EPOCH).days


def day_date(n: int) -> date:
    return EPOCH + timedelta(days=n)


@dataclass(frozen=True)
class DayCount:
    """`n` items on `day` in series `key` (a status, an outcome...)."""

    day: date
    key: str
    n: int


@dataclass(frozen=True)
class Bucket:
    label: str
    n: int


@dataclass(frozen=True)
class LimitChangeRow:
    at: datetime
    grant_id: str
    by: str
    action: str
    before: int
    after: int


class DailyCounts:
    """Reads and writes of the charts' counts over `db` (already migrated)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._largest: dict[int, Any] = {}  # the largest changes' query by number of days

    def __repr__(self) -> str:
        return f"DailyCounts({self._db!r})"

    # --- writes (the sync worker) -----------------------------------------------------------

    def _upsert(self, table: Table) -> Any:
        return (sqlite_insert(table) if self._db.is_sqlite else pg_insert(table))

    def record_grants(self, tiers: Sequence[Any], now: datetime) -> int:
        """Replace the day of `now` with the grants counted by status, kind and tier (tier:
        the configured tier a Guest's limit matches, `custom`, `off` for a tier without a
        limit, '' when unknown or not a Guest). Returns the rows written."""
        c = rm_grants.c
        whens: list[Any] = []
        for t in tiers:
            if t.limit is None:
                whens.append((c.limiter_enabled.is_(False), literal(t.name)))
            else:
                whens.append((and_(c.limiter_enabled.is_(True), c.transaction_limit == t.limit),
                              literal(t.name)))
        if not any(t.limit is None for t in tiers):
            whens.append((c.limiter_enabled.is_(False), literal("off")))
        whens.append((and_(c.limiter_enabled.is_(True), c.transaction_limit.is_not(None)),
                      literal("custom")))
        tier = case((c.user_kind != "guest", literal("")), *whens, else_=literal(""))
        kind = func.coalesce(c.user_kind, literal(""))
        day = day_number(now)
        q = select(c.status, kind, tier, func.count()).group_by(c.status, kind, tier)
        with self._db.write() as conn:
            rows = conn.execute(q).all()
            conn.execute(delete(daily_grant_counts).where(daily_grant_counts.c.day == day))
            if rows:
                conn.execute(insert(daily_grant_counts), [
                    {"day": day, "status": s, "user_kind": k, "tier": t, "n": n}
                    for s, k, t, n in rows])
        return len(rows)

    def roll_up_audit(self, limit: int = 200_000) -> int:
        """Count up to `limit` audit events after the watermark into `daily_audit_counts`
        and move the watermark past them. Returns the events counted (0: up to date, or
        another worker moved the watermark first)."""
        a = audit_log.c
        with self._db.write() as conn:
            mark = conn.execute(select(daily_audit_rollup.c.seq)
                                .where(daily_audit_rollup.c.id == 1)).scalar_one()
            hi = conn.execute(select(func.max(a.seq)).where(
                a.seq > mark, a.seq <= mark + limit)).scalar()
            if hi is None:
                return 0
            moved = conn.execute(update(daily_audit_rollup)
                                 .where(daily_audit_rollup.c.id == 1,
                                        daily_audit_rollup.c.seq == mark)
                                 .values(seq=hi)).rowcount
            if moved != 1:
                return 0
            day = self._day_expr()
            rows = conn.execute(
                select(day, a.action, a.outcome, a.actor_username, func.count())
                .where(a.seq > mark, a.seq <= hi)
                .group_by(day, a.action, a.outcome, a.actor_username)).all()
            self._add(conn, daily_audit_counts, ["day", "action", "outcome", "actor_username"],
                      [{"day": int(d), "action": ac, "outcome": o, "actor_username": u, "n": n}
                       for d, ac, o, u, n in rows])
            lc = limit_changes.c
            tiers = conn.execute(select(lc.day, lc.tier, func.count())
                                 .where(lc.seq > mark, lc.seq <= hi)
                                 .group_by(lc.day, lc.tier)).all()
            self._add(conn, daily_limit_counts, ["day", "tier"],
                      [{"day": int(d), "tier": t, "n": n} for d, t, n in tiers])
            return int(hi - mark)

    def _add(self, conn: Any, table: Table, key: list[str], rows: list[dict[str, Any]]) -> None:
        """Add each row's `n` to the stored count of its key (insert when new)."""
        if not rows:
            return
        stmt = self._upsert(table)
        stmt = stmt.on_conflict_do_update(index_elements=key,
                                          set_={"n": table.c.n + stmt.excluded.n})
        conn.execute(stmt, rows)

    def keep(self, tiers: Sequence[Any], now: datetime) -> tuple[int, int]:
        """The sync worker's step after a full sync: count the grants of `now`'s day
        (replacing that day's rows) and roll the audit log up to its newest event.
        Returns (grant rows written, events counted)."""
        rows = self.record_grants(tiers, now)
        events = 0
        while (n := self.roll_up_audit()) > 0:
            events += n
        return rows, events

    # --- reads ------------------------------------------------------------------------------

    def grant_status_days(self, since: date) -> list[DayCount]:
        """Grants per day and status from `since` (UTC) on, as the worker counted them."""
        g = daily_grant_counts.c
        q = (select(g.day, g.status, func.sum(g.n)).where(g.day >= day_number(since))
             .group_by(g.day, g.status).order_by(g.day, g.status))
        with self._db.read() as conn:
            return [DayCount(day_date(d), s, int(n)) for d, s, n in conn.execute(q)]

    def _day_expr(self) -> Any:
        # Floor division of a BIGINT by an integer: integer division on both databases.
        return audit_log.c.ts_ms // DAY_MS

    def guests_by_tier(self) -> tuple[date | None, list[Bucket]]:
        """Active Guests per tier (a tier's name, `custom`, `off`, '' unknown) on the newest
        day the worker counted, most first; (None, []) before the first count."""
        g = daily_grant_counts.c
        with self._db.read() as conn:
            last = conn.execute(select(func.max(g.day))).scalar()
            if last is None:
                return None, []
            q = (select(g.tier, func.sum(g.n)).where(g.day == last, g.status == "active",
                                                      g.user_kind == "guest")
                 .group_by(g.tier).order_by(func.sum(g.n).desc(), g.tier))
            return day_date(int(last)), [Bucket(t, int(n)) for t, n in conn.execute(q)]

    def audit_days(self, since: date, by: str = "outcome", actions: Sequence[str] = (),
                   outcomes: Sequence[str] = ()) -> list[DayCount]:
        """Audit events per day from `since` (UTC) on, by `outcome`, `actor_username` or
        `action`, optionally only `actions` and `outcomes`: the rolled-up counts plus the
        events after the watermark, counted live."""
        if by not in ("outcome", "actor_username", "action"):
            raise ValueError(f"cannot count by {by!r}")
        d = daily_audit_counts.c
        a = audit_log.c
        start = day_number(since)
        totals: dict[tuple[int, str], int] = {}
        with self._db.read() as conn:
            mark = self._mark(conn)
            key = d[by]
            q = select(d.day, key, func.sum(d.n)).where(d.day >= start)
            if actions:
                q = q.where(d.action.in_(actions))
            if outcomes:
                q = q.where(d.outcome.in_(outcomes))
            for day, k, n in conn.execute(q.group_by(d.day, key)):
                totals[(int(day), k)] = int(n)
            day = self._day_expr()
            live_key = a[by]
            lq = (select(day, live_key, func.count())
                  .where(a.seq > mark, a.ts_ms >= start * DAY_MS))
            if actions:
                lq = lq.where(a.action.in_(actions))
            if outcomes:
                lq = lq.where(a.outcome.in_(outcomes))
            for dd, k, n in conn.execute(lq.group_by(day, live_key)):
                totals[(int(dd), k)] = totals.get((int(dd), k), 0) + int(n)
        return [DayCount(day_date(dd), k, n) for (dd, k), n in sorted(totals.items())]

    def limit_days(self, since: date) -> list[DayCount]:
        """Succeeded per-grant limit changes per day and tier ('' a custom limit) from
        `since` (UTC) on: the rolled-up counts plus the changes after the watermark."""
        d = daily_limit_counts.c
        lc = limit_changes.c
        start = day_number(since)
        totals: dict[tuple[int, str], int] = {}
        with self._db.read() as conn:
            mark = self._mark(conn)
            rolled = (select(d.day, d.tier, func.sum(d.n)).where(d.day >= start)
                      .group_by(d.day, d.tier))
            live = (select(lc.day, lc.tier, func.count()).where(lc.seq > mark, lc.day >= start)
                    .group_by(lc.day, lc.tier))
            for q in (rolled, live):
                for day, k, n in conn.execute(q):
                    totals[(int(day), k)] = totals.get((int(day), k), 0) + int(n)
        return [DayCount(day_date(dd), k, n) for (dd, k), n in sorted(totals.items())]

    def _mark(self, conn: Any) -> int:
        """The newest audit `seq` already rolled up."""
        return int(conn.execute(select(daily_audit_rollup.c.seq)
                                .where(daily_audit_rollup.c.id == 1)).scalar_one())

    def largest_limit_changes(self, since: datetime, n: int = 10) -> list[LimitChangeRow]:
        """The `n` succeeded limit changes since `since` that moved a capped limit the most
        (|after - before|, newest first among equals). `limit_changes`' partial index on
        (day, size, seq) gives each day's `n` largest in a short walk; the period's days
        are merged here and the winners' events read by primary key."""
        lc = limit_changes.c
        a = audit_log.c
        since_ms = int(since.timestamp() * 1000)
        first = since_ms // DAY_MS
        with self._db.read() as conn:
            # The period's first event: time never goes backwards along seq, so the first by
            # (ts_ms, seq) is the lowest seq (one seek in ix_audit_log_ts; a MIN(seq) would
            # walk the primary key over every older event).
            lo = conn.execute(select(a.seq).where(a.ts_ms >= since_ms)
                              .order_by(a.ts_ms, a.seq).limit(1)).scalar()
            last = conn.execute(select(lc.day).order_by(lc.seq.desc()).limit(1)).scalar()
            if lo is None or last is None:
                return []
            days = range(first, int(last) + 1)
            if not days:
                return []
            params: dict[str, int] = {"lo": int(lo), "n": n}
            params.update({f"d{i}": day for i, day in enumerate(days)})
            best = [(int(s), int(q_), int(b), int(af))
                    for s, q_, b, af in conn.execute(self._largest_stmt(len(days)), params)]
            if not best:
                return []
            events = {r.seq: r for r in conn.execute(
                select(a.seq, a.ts_ms, a.target_id, a.actor_username, a.action)
                .where(a.seq.in_([r[1] for r in best])))}
        return [LimitChangeRow(datetime.fromtimestamp(events[seq].ts_ms / 1000, UTC),
                               events[seq].target_id, events[seq].actor_username,
                               events[seq].action, before, after)
                for _size, seq, before, after in best]

    def _largest_stmt(self, days: int) -> Any:
        """Each of `days` days' (bound :d0, :d1...) :n largest sized changes (the first
        day's from seq :lo on), merged: built once per number of days, as building the
        union costs more than running it."""
        stmt = self._largest.get(days)
        if stmt is None:
            lc = limit_changes.c
            arms = []
            for i in range(days):
                q = (select(lc.size, lc.seq, lc.before_limit, lc.after_limit)
                     .where(lc.day == bindparam(f"d{i}"), lc.size.is_not(None))
                     .order_by(lc.size.desc(), lc.seq.desc()).limit(bindparam("n")))
                if i == 0:  # the period starts within its first day
                    q = q.where(lc.seq >= bindparam("lo"))
                arms.append(select(*q.subquery().c))
            both = union_all(*arms).subquery()
            stmt = self._largest[days] = (select(*both.c)
                                          .order_by(both.c.size.desc(), both.c.seq.desc())
                                          .limit(bindparam("n")))
        return stmt

    def failing_by_provider(self) -> list[Bucket]:
        """Failing integrations (FAILED, PARTIALLY SYNCED) per provider, most first."""
        i = rm_integrations.c
        provider = func.coalesce(i.provider, literal("(unknown)"))
        q = (select(provider, func.count()).where(i.status.in_(sorted(FAILING)))
             .group_by(provider).order_by(func.count().desc(), provider))
        with self._db.read() as conn:
            return [Bucket(p, int(n)) for p, n in conn.execute(q)]

    def _age_buckets(self, conn: Any, table: Table, at: Any, base: Sequence[Any],
                     buckets: Sequence[tuple[timedelta | None, str]],
                     now: datetime) -> list[Bucket]:
        """One index range count of `table` per age bucket of the time column `at` (the
        newest bucket first; the last, unbounded one takes every older non-NULL time)."""
        out: list[Bucket] = []
        newer: datetime | None = None
        for upper, label in buckets:
            conds = [*base, at >= now - upper if upper is not None else at.is_not(None)]
            if newer is not None:
                conds.append(at < newer)
            n = conn.execute(select(func.count()).select_from(table).where(*conds)).scalar_one()
            out.append(Bucket(label, int(n)))
            newer = None if upper is None else now - upper
        return out

    def freshness(self, now: datetime) -> list[Bucket]:
        """Active grants with a stored token by the age of their integrations' copy: one
        index range count per bucket (`ix_rm_grants_due`)."""
        c = rm_grants.c
        base = [c.status == "active", c.has_token.is_(True)]
        with self._db.read() as conn:
            out = self._age_buckets(conn, rm_grants, c.integrations_refreshed_at, base,
                                    FRESHNESS_BUCKETS, now)
            never = conn.execute(select(func.count()).select_from(rm_grants).where(
                *base, c.integrations_refreshed_at.is_(None))).scalar_one()
        out.append(Bucket(NEVER_READ, int(never)))
        return out

    def approvals_waiting(self, now: datetime) -> list[Bucket]:
        """Approval requests waiting (pending, not expired) by how long they have waited."""
        r = approval_requests.c
        with self._db.read() as conn:
            return self._age_buckets(conn, approval_requests, r.created_at,
                                     [r.state == "pending", r.expires_at > now],
                                     APPROVAL_BUCKETS, now)
