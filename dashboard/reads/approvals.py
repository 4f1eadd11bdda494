"""Four-eyes approval reads (not cached: small, and a decision must show at once).
"""

from __future__ import annotations

from typing import Any

from services.operations import Actor, Operations
from services.operations.approvals import ApprovalRequest


def approvals_waiting(ops: Operations, actor: Actor) -> list[ApprovalRequest]:
    """Pending requests this actor may decide (oldest first)."""
    return ops.approvals.list_waiting_for(actor)


def approvals_mine(ops: Operations, actor: Actor) -> list[ApprovalRequest]:
    """The actor's own requests, newest first."""
    return ops.approvals.list_mine(actor)


def approvals_history(ops: Operations, actor: Actor) -> list[ApprovalRequest]:
    """Decided requests, newest first."""
    return ops.approvals.history(actor)


def before_now(ops: Operations, actor: Actor, request: ApprovalRequest) -> dict[str, Any]:
    """A request's grants' *before* as the read model has it now (not cached)."""
    return ops.approvals.before_now(actor, request)


def pending_requests(ops: Operations, actor: Actor, grant_id: str) -> list[ApprovalRequest]:
    """The pending approval requests holding this grant (not cached: one indexed query, and
    another replica's request must show at once)."""
    return ops.approvals.pending_for_grant(actor, grant_id)


def approvals_waiting_count(ops: Operations, actor: Actor) -> int:
    """For the navigation's "Approvals (n)"."""
    return ops.approvals.waiting_count(actor)


def approvals_find(ops: Operations, actor: Actor, *, state: str | None, kind: str | None,
                   requester: str | None, query: str) -> list[ApprovalRequest]:
    """Requests matching the page's filters and search, newest first (not cached)."""
    return ops.approvals.find(actor, state=state, kind=kind, requester=requester, query=query)
