"""The background workers' state for admins (never cached).
"""

from __future__ import annotations

from services.operations import Actor, Operations, SyncView
from services.operations.reconcile import ReconcileStatus


def sync_status(ops: Operations, actor: Actor, grants_interval: float = 300.0) -> SyncView:
    """The sync worker's state (admins; never cached)."""
    return ops.sync.status(actor, grants_interval)


def reconciler_status(ops: Operations, actor: Actor) -> ReconcileStatus:
    """The reconciler's state (admins): journal backlog and its last pass. Not cached."""
    return ops.reconciler.status(actor)
