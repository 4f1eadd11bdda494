"""Resuming an interrupted bulk limit run: the run as recorded in the audit log, the grants
it settled, and the plan it sent (`ops.limits.resume_bulk` uses these)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.operations.bulk import CUSTOM_LIMIT, BulkPlan
from services.operations.errors import NotFound, ValidationError
from services.store.actions import AuditAction
from services.store.audit import AuditEvent, AuditFilter, AuditLog

_RESUMABLE = (AuditAction.TIER_APPLY_BULK, AuditAction.LIMIT_UPDATE_BULK)


def resumed_plan(action: str, params: Mapping[str, Any]) -> BulkPlan:
    """The plan a run recorded (values as sent then, whatever the tiers say now)."""
    limit, limiter = params.get("transaction_limit"), params.get("enable_limiter")
    if action == AuditAction.TIER_APPLY_BULK:
        name = str(params.get("tier"))
        return BulkPlan(
            label=name, limit=limit, limiter=limiter, action=AuditAction.TIER_APPLY,
            bulk_action=AuditAction.TIER_APPLY_BULK, what=f"Applying tier {name}",
            params={"tier": name, "transaction_limit": limit, "enable_limiter": limiter},
        )
    return BulkPlan(
        label=CUSTOM_LIMIT, limit=limit, limiter=limiter, action=AuditAction.LIMIT_UPDATE,
        bulk_action=AuditAction.LIMIT_UPDATE_BULK, what="Changing the limit",
        params={"transaction_limit": limit, "enable_limiter": limiter},
    )


def recorded_run(log: AuditLog, bid: str) -> AuditEvent:
    """The `requested` event of bulk run `bid`, with the grants it was asked for."""
    page = log.query(AuditFilter(target_id=bid, outcome="requested"), page=1, page_size=5)
    for ev in page.events:
        if ev.target_type == "bulk" and ev.action in _RESUMABLE:
            if not isinstance(ev.params, Mapping) or not isinstance(
                    ev.params.get("grant_ids"), list):
                raise ValidationError("bulk_id", "this run did not record its grants "
                                                 "(it predates resumable runs).")
            return ev
    raise NotFound(f"No bulk limit run {bid} is in the audit log.", code="BULK_NOT_FOUND")

def settled_grants(log: AuditLog, bid: str, action: str, first: AuditEvent) -> set[str]:
    """Grants of run `bid` (or of earlier resumes of it) that need nothing more: changed,
    skipped, or found at the target by the reconciler. Failed ones are tried again."""
    runs = {bid}
    for ev in log.iter_events(AuditFilter(
            since=first.ts, action=first.action, outcome="requested")):
        if isinstance(ev.params, Mapping) and ev.params.get("resumes") == bid:
            runs.add(ev.target_id or "")
    grants: dict[str, str] = {}  # correlation id -> grant, of these runs' changes
    settled: set[str] = set()
    for ev in log.iter_events(AuditFilter(since=first.ts, action=action)):
        if ev.outcome == "requested":
            if isinstance(ev.params, Mapping) and ev.params.get("bulk_id") in runs:
                grants[ev.correlation_id] = ev.target_id or ""
            continue
        gid = grants.get(ev.correlation_id)
        if gid is None:
            continue
        at_target = isinstance(ev.after, Mapping) and ev.after.get("at_target") is True
        if ev.outcome in ("succeeded", "skipped") or (
                ev.outcome == "reconciled" and at_target):
            settled.add(gid)
    return settled
