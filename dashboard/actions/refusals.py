"""A page reached without its permission: the operations refuse it (and audit the
refusal), the page shows the refusal.
"""

from __future__ import annotations

from services.operations import Actor, Operations, Permission, PermissionDenied
from services.store.actions import AuditAction


def refusal(ops: Operations, actor: Actor, permission: Permission, action: str,
            target_type: str, target_id: str) -> PermissionDenied | None:
    """For a page reached without its permission: let the operations refuse (one `denied`
    event for `action` on the target) and return the refusal to show; None when the actor
    is in fact allowed."""
    try:
        ops.require(actor, permission, action, target_type, target_id)
    except PermissionDenied as exc:
        return exc
    return None


GUEST_LIMITS_PAGE = ("page", "guest_limits")


def refuse_unless_allowed(ops: Operations, actor: Actor) -> PermissionDenied | None:
    """The Guest limits page reached without the permission to manage limits (action
    `guest.tier.apply`, target the page)."""
    return refusal(ops, actor, Permission.MANAGE_LIMITS, AuditAction.TIER_APPLY, *GUEST_LIMITS_PAGE)
