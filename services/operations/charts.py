"""What the charts show, as use cases: each is one or a few SQL aggregates over the daily
counts, the read model and the audit log (services/store/daily_counts.py), checked against
the reader's permission. Also the sync worker's step that keeps the daily counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.operations.context import OpsContext
from services.operations.errors import ValidationError
from services.operations.limit_value import GuestLimit
from services.operations.permissions import Actor, Permission
from services.store.actions import AuditAction
from services.store.audit import AuditFilter
from services.store.daily_counts import Bucket, DailyCounts, DayCount, LimitChangeRow

#: The days a trend chart covers (today included).
TREND_DAYS = 90
#: The days the Audit log's chart covers (today included).
AUDIT_DAYS = 30
#: The per-grant limit and tier changes (a bulk run records one per grant too).
LIMIT_ACTIONS = (AuditAction.LIMIT_UPDATE, AuditAction.TIER_APPLY)
#: How limit changes per day can be split: by person, kind of change or tier.
LIMIT_SPLITS = ("actor_username", "action", "tier")
#: At most this many limit changes of one grant are drawn (the newest).
LIMIT_STEPS = 500


@dataclass(frozen=True)
class Series:
    """Counts per day and key from `since` to `until` (UTC days, inclusive)."""

    since: date
    until: date
    points: tuple[DayCount, ...]

    @property
    def total(self) -> int:
        return sum(p.n for p in self.points)

    @property
    def end(self) -> date:
        """The day after `until`: a time axis ends there so the last day's bar shows whole."""
        return self.until + timedelta(days=1)

    def latest(self, key: str) -> int:
        """The count of `key` on the newest day that has any count (0 when none)."""
        days = [p.day for p in self.points]
        if not days:
            return 0
        last = max(days)
        return sum(p.n for p in self.points if p.day == last and p.key == key)

    def sum_of(self, key: str) -> int:
        return sum(p.n for p in self.points if p.key == key)


@dataclass(frozen=True)
class LimitStep:
    """A Guest's limit from `at` on, set by `by` (`action`, e.g. guest.tier.apply)."""

    at: datetime
    limit: GuestLimit
    by: str
    action: str


@dataclass(frozen=True)
class Buckets:
    buckets: tuple[Bucket, ...]

    @property
    def total(self) -> int:
        return sum(b.n for b in self.buckets)


class ChartOps:
    """The counts behind the Overview's and the Audit log's charts."""

    def __init__(self, ctx: OpsContext,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.ctx = ctx
        self.counts = DailyCounts(ctx.readmodel.db)
        self._clock = clock

    def __repr__(self) -> str:
        return f"ChartOps({self.ctx!r})"

    def _window(self, days: int) -> tuple[date, date]:
        today = self._clock().astimezone(UTC).date()
        return today - timedelta(days=days - 1), today

    def grants_by_status(self, actor: Actor, days: int = TREND_DAYS) -> Series:
        """Grants per status on each day the sync worker counted them, last `days` days."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        since, until = self._window(days)
        return Series(since, until, tuple(self.counts.grant_status_days(since)))

    def failing_by_provider(self, actor: Actor) -> Buckets:
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        return Buckets(tuple(self.counts.failing_by_provider()))

    def freshness(self, actor: Actor) -> Buckets:
        """Active grants with a token by the age of the console's copy of their integrations."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        return Buckets(tuple(self.counts.freshness(self._clock())))

    def approvals_waiting(self, actor: Actor) -> Buckets:
        """Requests waiting for a second person, by how long they have waited (counts only)."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        return Buckets(tuple(self.counts.approvals_waiting(self._clock())))

    def audit_by_outcome(self, actor: Actor, days: int = AUDIT_DAYS) -> Series:
        """Audit events per day and outcome, last `days` days."""
        self.ctx.check(actor, Permission.READ_AUDIT, AuditAction.AUDIT_READ)
        since, until = self._window(days)
        return Series(since, until, tuple(self.counts.audit_days(since)))

    def guests_by_tier(self, actor: Actor) -> tuple[date | None, Buckets]:
        """Active Guests per tier (custom limits, limiter off) as last counted, and the day."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        day, buckets = self.counts.guests_by_tier()
        return day, Buckets(tuple(buckets))

    def limit_changes(self, actor: Actor, by: str, days: int = TREND_DAYS) -> Series:
        """Limit changes made per day (succeeded, one per grant), by `actor_username` (who),
        `action` (a tier applied or a custom limit) or `tier` (the tier's name, '' for a
        custom limit), last `days` days."""
        self.ctx.check(actor, Permission.VIEW_GRANT_HISTORY, AuditAction.AUDIT_READ)
        if by not in LIMIT_SPLITS:
            raise ValidationError("by", "Count limit changes by person, by kind of change "
                                  "or by tier.")
        since, until = self._window(days)
        if by == "tier":
            return Series(since, until, tuple(self.counts.limit_days(since)))
        return Series(since, until, tuple(self.counts.audit_days(
            since, by=by, actions=LIMIT_ACTIONS, outcomes=("succeeded",))))

    def largest_limit_changes(self, actor: Actor, days: int = 30) -> tuple[LimitChangeRow, ...]:
        """The ten grant limit changes of the last `days` days that moved a capped limit
        the most, largest first."""
        self.ctx.check(actor, Permission.VIEW_GRANT_HISTORY, AuditAction.AUDIT_READ)
        since = self._clock() - timedelta(days=days)
        return tuple(self.counts.largest_limit_changes(since))

    def limit_history(self, actor: Actor, grant_id: str) -> tuple[LimitStep, ...]:
        """One grant's limit over time, oldest first: its succeeded limit and tier changes
        (the audit log's target index), each with the value after it and who made it."""
        self.ctx.check(actor, Permission.VIEW_GRANT_HISTORY, AuditAction.AUDIT_READ,
                       "grant", grant_id)
        page = self.ctx.audit_log.query(
            AuditFilter(target_id=grant_id, action="guest.*", outcome="succeeded"),
            page=1, page_size=LIMIT_STEPS)
        steps = []
        for e in reversed(page.events):
            if isinstance(e.after, Mapping) and "transaction_limit" in e.after:
                steps.append(LimitStep(e.ts, GuestLimit.from_json(e.after), e.actor_username,
                                       e.action))
        return tuple(steps)
