"""Errors raised by the use cases in `services.operations`.

Every error carries `user_message`, one or two sentences a page shows as is (no traceback, no
secret), plus the API's `code`, the upstream `request_id` and a `hint` where known.
"""

from __future__ import annotations

from datetime import datetime

from services.kryptos.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    InvalidTokenError,
    KryptosConnectionError,
    KryptosError,
    KryptosTimeoutError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)


class OperationError(Exception):
    """Base of every error an operation raises. `user_message` is safe to show."""

    def __init__(
        self,
        user_message: str,
        code: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.code = code
        self.request_id = request_id
        self.hint = hint

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(user_message={self.user_message!r}, code={self.code!r}, "
            f"request_id={self.request_id!r})"
        )


class PermissionDenied(OperationError):
    """The acting user's roles do not allow the operation (always audited as `denied`)."""

    def __init__(self, username: str, permission: str) -> None:
        self.username = username
        self.permission = permission
        super().__init__(
            f"Your account ({username}) is not allowed to {permission.replace('_', ' ')}.",
            code="PERMISSION_DENIED",
            hint="Ask an administrator for the role that grants this permission.",
        )


class ValidationError(OperationError):
    """An input is invalid. Raised before anything is sent upstream."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(
            reason, code="VALIDATION", hint="Correct the value and retry."
        )


class RecordUnavailable(OperationError):
    """The audit log could not record a change: not made (`change_made` False: its request
    could not be written), or made but recorded nowhere (True: the store and the journal both
    failed). The message says which."""

    def __init__(self, user_message: str, *, change_made: bool) -> None:
        super().__init__(user_message, code="AUDIT_UNAVAILABLE",
                         hint="Tell whoever runs the console: the audit store is unavailable.")
        self.change_made = change_made


class NotFound(OperationError):
    """The thing asked for does not exist (in the API's grant list or the vault)."""

    def __init__(self, user_message: str, code: str | None = "NOT_FOUND", **kw: str | None) -> None:
        super().__init__(user_message, code=code, **kw)


# What happened, in words, for each kind of client error, and what to do about it.
_WHAT: list[tuple[type[KryptosError], str]] = [
    (AuthenticationError, "Kryptos refused the console's credentials."),
    (InvalidTokenError, "The customer's token or grant is no longer valid."),
    (NotFoundError, "Kryptos has no such object."),
    (ConflictError, "Kryptos refused the request in the object's current state."),
    (PermissionDeniedError, "Kryptos does not allow this request."),
    (InvalidRequestError, "Kryptos rejected the request as invalid."),
    (RateLimitedError, "Kryptos is rate limiting the console."),
    (ServerError, "Kryptos had an internal error."),
    (KryptosTimeoutError, "Kryptos did not answer in time."),
    (KryptosConnectionError, "Could not reach Kryptos."),
    (MalformedResponseError, "Kryptos sent an answer the console cannot read."),
]


class UpstreamError(OperationError):
    """A call to Kryptos failed. Keeps the HTTP status, code, request id and hint.

    `kind` names the client error class (e.g. `ConflictError`) so callers can branch
    without importing the client's hierarchy.
    """

    def __init__(
        self,
        user_message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
        kind: str = "KryptosError",
        api_message: str | None = None,
    ) -> None:
        super().__init__(user_message, code=code, request_id=request_id, hint=hint)
        self.status = status
        self.kind = kind
        self.api_message = api_message
        self.retry_after: float | None = None  # seconds, from a 429's Retry-After

    @classmethod
    def from_kryptos(cls, exc: KryptosError, action: str | None = None) -> UpstreamError:
        default = "The Kryptos API returned an error."
        what = next((w for k, w in _WHAT if isinstance(exc, k)), default)
        detail = exc.api_message
        parts = [f"{action} failed: {what}" if action else what]
        if detail and detail.rstrip(".") != what.rstrip("."):
            parts.append(detail.rstrip(".") + ".")
        # The status, code and request id are kept on the error (pages show them as "for
        # support"), not in the sentence a person reads.
        if exc.hint:
            parts.append(exc.hint)
        err = cls(
            " ".join(parts),
            status=exc.status,
            code=exc.code or _default_code(exc),
            request_id=exc.request_id,
            hint=exc.hint,
            kind=type(exc).__name__,
            api_message=detail,
        )
        err.retry_after = getattr(exc, "retry_after", None)
        return err


def _default_code(exc: KryptosError) -> str:
    """A stable code for errors the API did not name (used in audit rows)."""
    if isinstance(exc, KryptosTimeoutError):
        return "TIMEOUT"
    if isinstance(exc, KryptosConnectionError):
        return "CONNECTION_ERROR"
    if isinstance(exc, MalformedResponseError):
        return "MALFORMED_RESPONSE"
    if isinstance(exc, RateLimitedError):
        return "RATE_LIMITED"
    if exc.status is not None:
        return f"HTTP_{exc.status}"
    return "UPSTREAM_ERROR"


class StaleChange(OperationError):
    """The thing changed since the person read it: nothing was sent (code `STALE`).

    `seen` and `now` are the values in words; `now_value` the value itself when the caller
    has one (a `GuestLimit`); `changed_by`/`changed_at` name the console user and time from
    the audit log, or are None when it was changed outside the console."""

    def __init__(self, what: str, seen: str, now: str, changed_by: str | None = None,
                 changed_at: datetime | None = None, *, now_value: object = None) -> None:
        self.what, self.seen, self.now = what, seen, now
        self.now_value = now_value
        self.changed_by, self.changed_at = changed_by, changed_at
        if changed_by is not None and changed_at is not None:
            who = f"{changed_by} changed it at {changed_at:%Y-%m-%d %H:%M:%S} UTC."
        else:
            who = "It was changed outside this console."
        super().__init__(
            f"Not changed: {what} is now {now}, not {seen} as shown. {who} Review the current "
            "value and apply again if you still want the change.",
            code="STALE",
            hint="Refresh to see the current value.",
        )


class ConfirmationRequired(OperationError):
    """A risky change asked without its confirmation: nothing was sent or recorded (code
    `CONFIRMATION_REQUIRED`). `question` is what the person must answer yes to; asking
    again with `confirmed=True` makes the change."""

    def __init__(self, question: str) -> None:
        self.question = question
        super().__init__(f"{question} Confirm to apply it.", code="CONFIRMATION_REQUIRED")
