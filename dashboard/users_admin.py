"""The Users page's ways in (pages/users.py): the users list as rows to show, and each change
as one call of the users use cases (services/operations/users.py, `runtime.user_ops`), which
check the permission, apply the rules and audit. A change that needs a confirmation comes
back as its question (`Asked`), and is made when asked again with `confirmed=True`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dashboard.runtime import Runtime
from services.operations import Actor, ConfirmationRequired
from services.operations.users import Added, UserRow

#: Changes made from the page's "Change a user" section, in the order its buttons show.
RESET_PASSWORD = "reset_password"
RESET_SECOND_FACTOR = "reset_second_factor"
END_SESSIONS = "end_sessions"
UNLOCK = "unlock"
TO_SSO = "to_sso"
REMOVE = "remove"
LABELS = {RESET_PASSWORD: "Reset password", RESET_SECOND_FACTOR: "Reset second factor",
          END_SESSIONS: "End sessions", UNLOCK: "Unlock", TO_SSO: "Move to SSO",
          REMOVE: "Remove user"}


@dataclass(frozen=True)
class Asked:
    """The change needs a yes first: `question` is what the person confirms."""

    question: str


@dataclass(frozen=True)
class Done:
    """The change was made: `message` says what happened; `one_time_password` (a reset
    password) is shown once."""

    message: str
    one_time_password: str | None = None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def user_rows(runtime: Runtime, actor: Actor) -> list[UserRow]:
    return runtime.user_ops.list_users(actor)


def table_rows(rows: Iterable[UserRow]) -> list[dict[str, Any]]:
    """The list as the page's table shows it (nothing secret)."""
    return [{
        "user": r.username, "name": r.name, "email": r.email or "",
        "roles": ", ".join(r.roles),
        "sign-in": r.sign_in,
        "second factor": "on" if r.second_factor else "off",
        "last login (UTC)": _when(r.last_login),
        "locked until (UTC)": _when(r.locked_until),
        "open sessions": r.open_sessions,
        "admin asked by": r.admin_requested_by or "",
    } for r in rows]


def add_user(runtime: Runtime, actor: Actor, username: str, roles: Iterable[str], *,
             sso: bool, name: str = "", email: str = "") -> Added:
    return runtime.user_ops.add(actor, username, list(roles), sso=sso, name=name.strip(),
                                email=email.strip())


def set_roles(runtime: Runtime, actor: Actor, username: str, roles: Iterable[str]) -> str:
    user = runtime.user_ops.set_roles(actor, username, list(roles))
    note = (" The admin role waits for a second admin to grant it."
            if user.admin_requested_by else "")
    return f"{user.username} now has roles: {', '.join(user.roles)}.{note}"


def grant_admin(runtime: Runtime, actor: Actor, username: str) -> str:
    user = runtime.user_ops.grant_admin(actor, username)
    return f"{user.username} is now admin ({', '.join(user.roles)})."


def change(runtime: Runtime, actor: Actor, what: str, username: str, *,
           confirmed: bool = False) -> Asked | Done:
    """One of the "Change a user" buttons (`what`: RESET_PASSWORD, ...)."""
    ops = runtime.user_ops
    try:
        if what == RESET_PASSWORD:
            made = ops.reset_password(actor, username, confirmed=confirmed)
            return Done(f"Password of {username} reset; their sessions were ended.", made)
        if what == RESET_SECOND_FACTOR:
            gone = ops.reset_second_factor(actor, username, confirmed=confirmed)
            return Done(f"Second factor of {username} "
                        + ("removed: they set up a new one at their next login."
                           if gone else "was not set up."))
        if what == END_SESSIONS:
            ended = ops.end_sessions(actor, username, confirmed=confirmed)
            return Done(f"Ended {ended} session(s) of {username}.")
        if what == UNLOCK:
            lifted = ops.unlock(actor, username)
            return Done(f"Unlocked {username} ({lifted} lock(s) were in force).")
        if what == TO_SSO:
            ops.move_to_sso(actor, username, confirmed=confirmed)
            return Done(f"{username} now signs in through single sign-on; their password "
                        "no longer works.")
        if what == REMOVE:
            ops.remove(actor, username, confirmed=confirmed)
            return Done(f"Removed {username}.")
    except ConfirmationRequired as exc:
        return Asked(exc.question)
    raise ValueError(f"unknown change {what!r}")


__all__ = ["LABELS", "Asked", "Done", "add_user", "change", "grant_admin", "set_roles",
           "table_rows", "user_rows"]
