"""The Outcomes page's tables and messages: the requests the reconciler could not settle,
and what the resume of an interrupted bulk run did (or would do)."""

from __future__ import annotations

from typing import Any

from services.operations import BulkResult
from services.operations.reconcile import ReconcileReport


def unsettled_rows(report: ReconcileReport) -> list[dict[str, Any]]:
    """One row per request the last pass could not settle."""
    return [{
        "time": u.ts.strftime("%Y-%m-%d %H:%M:%S"), "row": u.seq, "actor": u.actor,
        "action": u.action, "target": u.target_id or "", "why not settled": u.reason,
        "correlation id": u.correlation_id,
    } for u in report.unsettled]


def last_pass(report: ReconcileReport) -> str:
    """When the last pass ran and how much it looked at."""
    return (f"Last pass: {report.at.strftime('%Y-%m-%d %H:%M:%S UTC')}, "
            f"{report.open_requests} open request(s) looked at.")


def resume_summary(result: BulkResult, dry_run: bool) -> str:
    """A resume's (or its dry run's) outcome counts."""
    counts = {k: n for k, n in result.counts.items() if n}
    return (f"{'Dry run' if dry_run else 'Resumed'}: {len(result.items)} grant(s) left to do; "
            f"{counts or 'nothing to do'}.")


def resume_rows(result: BulkResult) -> list[dict[str, Any]]:
    """One row per grant of the resumed run: outcome, limit before and after, message."""
    return [{"grant": i.grant_id, "outcome": i.outcome, "before": i.before.label(),
             "after": i.after.label(), "message": i.message or ""} for i in result.items]
