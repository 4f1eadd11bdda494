"""What the My account page shows: the session's facts, the second factor's state and the
locked logins as rows and words (the changes are `dashboard.account`'s)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from dashboard.account import ADDRESS_SCOPE
from dashboard.runtime import Runtime
from dashboard.session_cookie import current_session_id
from services.operations import Actor
from services.settings import Settings
from services.store.sessions import Lock

TIME = "%Y-%m-%d %H:%M:%S"


def session_facts(runtime: Runtime, settings: Settings) -> list[tuple[str, str]]:
    """This browser's session: when it logged in, when it ends at the latest, from where
    (nothing when it has no session record)."""
    sid = current_session_id()
    session = runtime.auth.sessions.get(sid) if sid else None
    if session is None:
        return []
    ends = session.created_at + timedelta(seconds=settings.session_lifetime)
    return [("Logged in at (UTC)", session.created_at.strftime(TIME)),
            ("Ends at the latest (UTC)", ends.strftime(TIME)),
            ("Address", session.client_address or "unknown")]


def session_rules(settings: Settings) -> str:
    """When a session ends, in words."""
    return (f"A session ends after {settings.idle_timeout / 60:.0f} minutes without "
            f"activity, {settings.session_lifetime / 3600:g} hours after the login, at logout "
            "(which ends your sessions in every browser), and when your password or roles "
            "change.")


def totp_enrolled(runtime: Runtime, actor: Actor) -> bool:
    """The actor has a second factor (an authenticator key) set up."""
    return runtime.auth.totp.is_enrolled(actor.username)


def second_factor_state(runtime: Runtime, settings: Settings, actor: Actor,
                        enrolled: bool) -> str:
    """Whether the actor's second factor is set up (and how many recovery codes are left),
    or whether their role requires it at the next login."""
    if enrolled:
        left = runtime.auth.totp.recovery_codes_left(actor.username)
        return f"Set up. Recovery codes left: {left}."
    required = bool(set(actor.roles) & settings.totp_roles)
    return "Not set up." + (" Your role requires it at the next login." if required else "")


def lock_rows(locks: Sequence[Lock]) -> list[dict[str, Any]]:
    """One row per lock in force."""
    return [{"user": lock.username or "", "address": lock.client_address or "",
             "kind": lock.scope, "failures": lock.failures,
             "locked until (UTC)": lock.locked_until.strftime(TIME)} for lock in locks]


def unlock_choices(locks: Sequence[Lock]) -> list[tuple[str, str]]:
    """What an admin may unlock: each locked user, and each locked address."""
    users = {("user", lock.username) for lock in locks if lock.username}
    addresses = {("address", lock.key) for lock in locks if lock.scope == ADDRESS_SCOPE}
    return sorted(users | addresses)
