"""Second factor set-up and the admin unlock (the My account page, and the login's
enrolment step): a TOTP key shown as a QR code, stored once a code from it matches, and
the failed-login locks an admin may lift. Policy: docs/architecture.md, "Sessions and logins"."""

from __future__ import annotations

import io
import logging
from typing import Any

import streamlit as st

from dashboard.runtime import Runtime
from dashboard.session_cookie import record
from dashboard.users import User
from services.operations import Actor, Permission, can
from services.store.actions import AuditAction
from services.store.errors import StoreError
from services.store.sessions import SCOPE_ADDRESS

logger = logging.getLogger(__name__)

STORE_DOWN = ("The console cannot check logins right now (its database is unavailable). "
              "Try again in a moment.")


def enrol(runtime: Runtime, user: User, secret: str, by: str) -> list[str]:
    """Store a confirmed secret; returns the new recovery codes (audited, without them)."""
    codes = runtime.auth.totp.enroll(user.username, secret)
    record(runtime, by, user.roles, AuditAction.TOTP_ENROLLED, "succeeded", target_type="user",
           target_id=user.username, params={"recovery_codes": len(codes), "via": "console"})
    return codes


def qr_png(uri: str) -> bytes | None:
    """A QR code of the otpauth:// URI as PNG (None when it cannot be drawn)."""
    try:
        import qrcode

        image = qrcode.make(uri)
        out = io.BytesIO()
        image.save(out, kind="PNG")  # both of qrcode's drawers (Pillow, pure PNG) take kind
        return out.getvalue()
    except (ImportError, OSError, ValueError) as exc:
        logger.warning("cannot draw the QR code: %s", type(exc).__name__)
        return None


def show_enrolment(username: str, secret: str) -> None:
    """The key to add to an authenticator app: QR code, otpauth:// URI, the key itself."""
    from services.store.totp import provisioning_uri

    uri = provisioning_uri(username, secret)
    png = qr_png(uri)
    if png is not None:
        st.image(png, width=220, caption="Scan with an authenticator app")
    st.caption("Or add this key by hand (time-based, 6 digits, 30 s):")
    st.code(secret, language=None)
    with st.expander("otpauth:// address"):
        st.code(uri, language=None)


#: `Lock.scope` of a lock on a client address (for all usernames).
ADDRESS_SCOPE = SCOPE_ADDRESS


def new_totp_secret() -> str:
    from services.store.totp import new_secret

    return new_secret()


def set_up_totp(runtime: Runtime, user: User, secret: str, new_code: str,
                current_code: str | None = None) -> tuple[list[str] | None, str | None]:
    """My account: store a new key once a code from it matches (and, when a key is set up
    already, a current code from that one). Returns (recovery codes, None) or (None, why)."""
    from services.store.totp import code_matches

    totp = runtime.auth.totp
    try:
        if totp.is_enrolled(user.username) and not totp.verify(user.username,
                                                               current_code or ""):
            return None, "The current code is wrong: nothing was changed."
        if code_matches(secret, new_code or "") is None:
            return None, "The code from the new key does not match."
        return enrol(runtime, user, secret, by=user.username), None
    except StoreError as exc:
        logger.error("TOTP set-up failed: %s", exc.user_message)
        return None, STORE_DOWN


def login_locks(runtime: Runtime) -> list[Any] | None:
    """The failed-login locks in force (`services.store.sessions.Lock`), or None when the
    database cannot be read."""
    try:
        return runtime.throttle.locks()
    except StoreError as exc:
        logger.error("reading the login locks failed: %s", exc.user_message)
        return None


def unlock(runtime: Runtime, actor: Actor, kind: str, value: str) -> int:
    """An admin lifts the locks of a user (`kind` "user") or an address ("address");
    audited `auth.unlock`. Returns how many locks were in force."""
    if not can(actor, Permission.MANAGE_USERS):
        runtime.operations.require(actor, Permission.MANAGE_USERS, AuditAction.UNLOCK, kind, value)
    is_user = kind == "user"
    lifted = runtime.throttle.unlock(username=value if is_user else None,
                                     address=None if is_user else value)
    record(runtime, actor.username, actor.roles, AuditAction.UNLOCK, "succeeded", target_type=kind,
           target_id=value if is_user else None,
           params={"locks_lifted": lifted, **({} if is_user else {"address": value})})
    return lifted
