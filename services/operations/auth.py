"""Console sign-in events (the sign-in itself is dashboard/login.py)."""

from __future__ import annotations

from services.operations.context import OpsContext
from services.operations.permissions import Actor
from services.store.actions import AuditAction

#: The actor of events with no authenticated user (a failed login).
ANONYMOUS = "anonymous"


def typed_username(value: object, limit: int = 64) -> str:
    """A typed username for the audit log: stripped, cut to `limit` characters, with
    non-printable characters written as escapes (`\\x1b`, `\\u202e`)."""
    text = str(value or "").strip()[:limit]
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


class AuthOps:
    """Audit events of signing in and out."""

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"AuthOps({self.ctx!r})"

    def record_login(self, actor: Actor) -> None:
        self.ctx.event(actor.username, actor.roles, AuditAction.LOGIN, "succeeded",
                       target_type="user", target_id=actor.username)

    def record_login_failed(self, username: str, error_code: str = "BAD_CREDENTIALS") -> None:
        """A failed login, by `anonymous`: what was typed as the username goes to
        `params.typed_username` (cut to 64 characters, control characters escaped), never
        into the actor or target (an audit filter on a user must not find what others
        typed)."""
        self.ctx.event(ANONYMOUS, (), AuditAction.LOGIN_FAILED, "failed",
                       params={"typed_username": typed_username(username)},
                       error_code=error_code)

    def record_logout(self, actor: Actor) -> None:
        self.ctx.event(actor.username, actor.roles, AuditAction.LOGOUT, "succeeded",
                       target_type="user", target_id=actor.username)
