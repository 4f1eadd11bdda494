"""Outcomes page changes: a reconciler pass now, and the resume of an interrupted bulk run.
"""

from __future__ import annotations

from dashboard import reads
from services.operations import Actor, BulkResult, Operations
from services.operations.four_eyes import Held
from services.operations.reconcile import ReconcileReport


def reconcile_now(ops: Operations, actor: Actor) -> ReconcileReport:
    """One reconciler pass now (admins); it may record outcomes, so cached reads go."""
    try:
        return ops.reconciler.run_now(actor)
    finally:
        reads.invalidate_all()


def resume_bulk(ops: Operations, actor: Actor, bulk_id: str, reason: str | None, *,
                dry_run: bool) -> BulkResult | Held:
    """Run again the unsettled grants of an interrupted bulk run (or preview it)."""
    try:
        return ops.limits.resume_bulk(actor, bulk_id, reason, dry_run=dry_run)
    finally:
        if not dry_run:
            reads.invalidate_all()
