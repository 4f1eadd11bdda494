"""Every backend call in the console's audit log, as `customer:<ref>` with role `customer`.

The backend writes audit events only here, through the store's `AuditTrail` (the runner the
console and the operator tools use). Mutations (`audited`): `requested`, then `succeeded`
or `failed`. Reads (`audited(read=True)`): one event with the outcome. A refusal before
anything is attempted (the rate limit) is one `denied` event (`denied()`). No token ever
reaches a field: params are the caller's plain facts (customer ref, grant id, flags) and the
call's `X-Request-Id`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from backend.errors import ApiError
from services.store import AuditAction, AuditTrail
from services.store.trail import Failure

T = TypeVar("T")

ROLE = "customer"
A_LINK = AuditAction.LINK_TOKEN_CREATE
A_EXCHANGE = AuditAction.TOKEN_EXCHANGE
A_DISCONNECT = AuditAction.GRANT_DISCONNECT
A_SESSION = AuditAction.SESSION_CHECK
A_HOLDINGS = AuditAction.HOLDINGS_READ


def actor(customer_ref: str) -> str:
    return f"customer:{customer_ref}"[:200]


def _failure(exc: BaseException, request_id: str | None = None) -> Failure:
    if isinstance(exc, ApiError):
        return Failure(exc.code, exc.message, request_id)
    return Failure("INTERNAL", "Unexpected error in the backend.", request_id)


def audited(
    trail: AuditTrail,
    customer_ref: str,
    action: AuditAction,
    body: Callable[[], tuple[T, Mapping[str, Any] | None]],
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    read: bool = False,
) -> T:
    """Run `body()` (returning (value, after)) inside its audit events; re-raise its error."""
    who, what = actor(customer_ref), str(action)
    tid = None if target_id is None else str(target_id)[:200]
    if not read:
        def change() -> tuple[T, None, Mapping[str, Any] | None]:
            value, after = body()
            return value, None, after

        # The runner has no request id column for requested/succeeded: it goes in params
        # (and in the column of a failed event).
        return trail.run(who, (ROLE,), what, change, target_type=target_type, target_id=tid,
                         params={**(params or {}), "request_id": request_id},
                         describe=lambda exc: _failure(exc, request_id))
    asked = dict(params) if params else None
    try:
        value, after = body()
    except BaseException as exc:
        failure = _failure(exc)
        trail.event(who, (ROLE,), what, "failed", target_type=target_type, target_id=tid,
                    request_id=request_id, params=asked, error_code=failure.code,
                    error_message=failure.message)
        raise
    trail.event(who, (ROLE,), what, "succeeded", target_type=target_type, target_id=tid,
                request_id=request_id, params=asked, after=dict(after) if after else None)
    return value


def denied(trail: AuditTrail, customer_ref: str, action: AuditAction, err: ApiError, *,
           request_id: str | None = None, params: Mapping[str, Any] | None = None) -> None:
    """One `denied` event: the call was refused before anything was attempted."""
    trail.event(actor(customer_ref), (ROLE,), str(action), "denied",
                target_type="customer", target_id=customer_ref[:200], request_id=request_id,
                params=dict(params) if params else None, error_code=err.code,
                error_message=err.message)
