"""Every backend call in the console's audit log, as `customer:<ref>` with role `customer`.

`audited()` is the one place the backend writes audit events (a later refactor routes it
through the shared trail runner: swap its body). Mutations record `requested`, then
`succeeded` or `failed`; reads (`read=True`) record one event with the outcome. An
`ApiError` 429 is recorded as `denied`. No token ever reaches a field: params are the
caller's plain facts (customer ref, grant id, flags)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from backend.errors import ApiError
from services.store import AuditLog, NewAuditEvent

T = TypeVar("T")

ROLE = "customer"
A_LINK = "link_token.create"
A_EXCHANGE = "token.exchange"
A_DISCONNECT = "grant.disconnect"
A_SESSION = "session.check"
A_HOLDINGS = "holdings.read"


def actor(customer_ref: str) -> str:
    return f"customer:{customer_ref}"[:200]


def audited(
    audit: AuditLog,
    customer_ref: str,
    action: str,
    body: Callable[[], tuple[T, Mapping[str, Any] | None]],
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    read: bool = False,
) -> T:
    """Run `body()` (returning (value, after)) between audit events; re-raise its error."""
    cid = str(uuid.uuid4())

    def event(outcome: str, **fields: Any) -> None:
        audit.append(NewAuditEvent(
            actor_username=actor(customer_ref), actor_roles=(ROLE,), action=action,
            outcome=outcome, target_type=target_type,
            target_id=None if target_id is None else str(target_id)[:200],
            request_id=request_id, correlation_id=cid, **fields))

    if not read:
        event("requested", params=dict(params) if params else None)
    try:
        value, after = body()
    except ApiError as err:
        event("denied" if err.status == 429 else "failed",
              params=dict(params) if read and params else None,
              error_code=err.code, error_message=err.message)
        raise
    except Exception:
        event("failed", params=dict(params) if read and params else None,
              error_code="INTERNAL", error_message="Unexpected error in the backend.")
        raise
    event("succeeded", params=dict(params) if read and params else None,
          after=dict(after) if after is not None else None)
    return value
