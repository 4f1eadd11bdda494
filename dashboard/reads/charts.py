"""The charts' counts (services/operations/charts.py). The Overview's are cached under the
read model's version like its other counts; the audit log's is not (every action appends)."""

from __future__ import annotations

from datetime import date

from dashboard.reads.cache import CACHE, rm_read_key
from services.operations import Actor, Operations
from services.operations.charts import Buckets, LimitStep, Series
from services.store.daily_counts import LimitChangeRow


def grants_by_status(ops: Operations, actor: Actor) -> Series:
    return CACHE.get_or_load(rm_read_key(ops, actor, "chart_status"),
                             lambda: ops.charts.grants_by_status(actor))


def failing_by_provider(ops: Operations, actor: Actor) -> Buckets:
    return CACHE.get_or_load(rm_read_key(ops, actor, "chart_failing"),
                             lambda: ops.charts.failing_by_provider(actor))


def freshness_buckets(ops: Operations, actor: Actor) -> Buckets:
    return CACHE.get_or_load(rm_read_key(ops, actor, "chart_fresh"),
                             lambda: ops.charts.freshness(actor))


def approvals_by_age(ops: Operations, actor: Actor) -> Buckets:
    return ops.charts.approvals_waiting(actor)


def audit_by_outcome(ops: Operations, actor: Actor) -> Series:
    return ops.charts.audit_by_outcome(actor)


def limit_history(ops: Operations, actor: Actor, grant_id: str) -> tuple[LimitStep, ...]:
    """One grant's limit steps (not cached: a change shows at once)."""
    return ops.charts.limit_history(actor, grant_id)


def guests_by_tier(ops: Operations, actor: Actor) -> tuple[date | None, Buckets]:
    return CACHE.get_or_load(rm_read_key(ops, actor, "chart_tiers"),
                             lambda: ops.charts.guests_by_tier(actor))


def limit_changes(ops: Operations, actor: Actor, by: str) -> Series:
    """Limit changes per day (not cached: every change appends to the audit log)."""
    return ops.charts.limit_changes(actor, by)


def largest_limit_changes(ops: Operations, actor: Actor) -> tuple[LimitChangeRow, ...]:
    return ops.charts.largest_limit_changes(actor)
