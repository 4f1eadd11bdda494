"""Console sign-in events (the sign-in itself is dashboard/auth.py)."""

from __future__ import annotations

from services.operations.context import OpsContext
from services.operations.permissions import Actor
from services.store.actions import AuditAction


class AuthOps:
    """Audit events of signing in and out."""

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"AuthOps({self.ctx!r})"

    def record_login(self, actor: Actor) -> None:
        self.ctx.event(actor.username, actor.roles, AuditAction.LOGIN, "succeeded",
                       target_type="user", target_id=actor.username)

    def record_login_failed(self, username: str) -> None:
        name = (username or "").strip()[:200] or "(empty)"
        self.ctx.event(name, (), AuditAction.LOGIN_FAILED, "failed",
                       target_type="user", target_id=name, error_code="BAD_CREDENTIALS")

    def record_logout(self, actor: Actor) -> None:
        self.ctx.event(actor.username, actor.roles, AuditAction.LOGOUT, "succeeded",
                       target_type="user", target_id=actor.username)
