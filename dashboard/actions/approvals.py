"""Four-eyes approval changes (Approvals page), and the note a form shows when approvals
are on.
"""

from __future__ import annotations

from typing import Any

from dashboard import reads
from services.operations import Actor, Operations
from services.operations.approvals import ApprovalRequest


def approval_note(ops: Operations, form: str, actor: Actor | None = None) -> str | None:
    """What a form says before it is sent, when approvals are on: which of its changes
    would wait for approval (`form`: "revoke", "limit" or "bulk"), in the policy's words."""
    return ops.four_eyes.form_note(form, actor)


def approve_request(ops: Operations, actor: Actor, request_id: int) -> ApprovalRequest:
    """Approve and execute a request; every cached read goes (grants may have changed)."""
    try:
        return ops.approvals.approve(actor, request_id)
    finally:
        reads.invalidate_all()


def reject_request(ops: Operations, actor: Actor, request_id: int,
                   reason: str) -> ApprovalRequest:
    """Reject a request; the lists go (their "waiting for approval" filter changed)."""
    try:
        return ops.approvals.reject(actor, request_id, reason)
    finally:
        reads.invalidate_lists()


def cancel_request(ops: Operations, actor: Actor, request_id: int) -> ApprovalRequest:
    """Withdraw one's own request; the lists go, as for a rejection."""
    try:
        return ops.approvals.cancel(actor, request_id)
    finally:
        reads.invalidate_lists()


def decide_requests(ops: Operations, actor: Actor, request_ids: list[int], decision: str,
                    reason: str = "") -> list[tuple[int, ApprovalRequest | None, Any]]:
    """Approve or reject several requests, each checked and audited by the use case; every
    cached read goes (approved ones may have changed grants)."""
    try:
        return ops.approvals.decide_many(actor, request_ids, decision, reason)
    finally:
        reads.invalidate_all()
