"""From a caller's `NewAuditEvent` to column values: validated, trimmed, secrets masked."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from services.kryptos.models import mask_token
from services.store.audit.events import FIELDS, OUTCOMES, NewAuditEvent, dumps
from services.store.errors import StoreError
from services.store.schema import audit_log

_ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# Keys whose values are secrets: masked before they reach the log, wherever they are nested.
SECRET_KEYS = frozenset(
    {"access_token", "public_token", "link_token", "refresh_token", "id_token", "token",
     "client_secret", "secret", "password", "vault_key", "cookie_key", "authorization"}
)
_COLUMN = {f.name: f.column for f in FIELDS}
_JSON = frozenset(f.name for f in FIELDS if f.kind == "json")
# Checked and normalised one by one in `prepare`; the other fields are plain optional text
# or JSON, handled alike.
_SPECIAL = frozenset({"actor_username", "actor_roles", "action", "outcome", "correlation_id"})


def redact(value: Any) -> Any:
    """`value` with the values of `SECRET_KEYS` masked, at any depth."""
    if isinstance(value, Mapping):
        return {
            str(k): (mask_token(str(v)) if v is not None else None)
            if str(k).lower() in SECRET_KEYS else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _limit(name: str) -> int | None:
    """The column's length (None for unbounded text)."""
    return getattr(audit_log.c[_COLUMN[name]].type, "length", None)


def _text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreError(f"Audit field '{name}' must be text.")
    value = value.strip()
    if not value:
        return None
    limit = _limit(name)
    if limit is not None and len(value) > limit:
        # An event is never lost over its length (a failed login with a 5,000-character
        # username is still recorded): overlong short fields are cut and marked.
        value = value[: limit - 1] + "…"
    return value


def _json_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    try:
        return dumps(redact(value))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"Audit field '{name}' cannot be stored as JSON: {exc}") from None


def prepare(event: NewAuditEvent) -> dict[str, Any]:
    """Validate and normalise an event into column values (without seq, time and hashes)."""
    username = _text(event.actor_username, "actor_username")
    if not username:
        raise StoreError("An audit event needs an actor username.")
    if isinstance(event.actor_roles, str):
        raise StoreError("Audit field 'actor_roles' must be a list of role names, not a string.")
    if not isinstance(event.action, str) or not _ACTION_RE.match(event.action):
        raise StoreError(f"Audit action '{event.action}' must be a dotted verb like grant.revoke.")
    if event.outcome not in OUTCOMES:
        raise StoreError(f"Audit outcome '{event.outcome}' must be one of {', '.join(OUTCOMES)}.")
    values: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "actor_username": username,
        "actor_roles": dumps(sorted({str(r) for r in event.actor_roles})),
        "action": event.action,
        "outcome": event.outcome,
        "correlation_id": _text(event.correlation_id, "correlation_id") or uuid.uuid4().hex,
    }
    for f in fields(NewAuditEvent):
        if f.name not in _SPECIAL:
            value = getattr(event, f.name)
            values[_COLUMN[f.name]] = (_json_text(value, f.name) if f.name in _JSON
                                       else _text(value, f.name))
    return values
