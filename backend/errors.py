"""The backend's error answers: `{"success": false, "error": "...", "code": "..."}`
(`backend.models.ErrorBody`).

`ApiError` carries the HTTP status, code, plain message, extra fields and headers.
`from_kryptos` maps the client's error classes; messages are fixed sentences plus the
Kryptos code, never the upstream text verbatim (it could echo what was sent)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from backend.models import ErrorBody
from services.kryptos.errors import (
    AuthenticationError,
    InvalidTokenError,
    KryptosConnectionError,
    KryptosError,
    RateLimitedError,
    ServerError,
)


class ApiError(Exception):
    """An error answer. `extra` fields are added to the JSON body."""

    def __init__(self, status: int, code: str, message: str, *,
                 extra: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON answer: the documented envelope `ErrorBody` (extra fields as given)."""
        return ErrorBody(success=False, error=self.message, code=self.code,
                         **self.extra).model_dump(exclude_unset=True)


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_REQUEST", message)


def unauthenticated(message: str = "Sign in again: the bearer token is missing or invalid."
                    ) -> ApiError:
    return ApiError(401, "UNAUTHENTICATED", message,
                    headers={"WWW-Authenticate": 'Bearer realm="kryptos-backend"'})


def no_grant() -> ApiError:
    return ApiError(404, "NO_GRANT", "No Kryptos connection is stored for this customer.")


def rate_limited(retry_after: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after))
    return ApiError(429, "RATE_LIMITED", f"Too many requests; try again in {seconds} s.",
                    headers={"Retry-After": str(seconds)})


def _retry_header(seconds: float | None) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))} if seconds else {}


def from_kryptos(exc: KryptosError, *, token_conflict: bool = False) -> ApiError:
    """The answer for a client error. `token_conflict`: an invalid/used/expired token is the
    caller's (409 with the Kryptos code) rather than an upstream failure."""
    code = exc.code or ""
    if isinstance(exc, KryptosConnectionError):
        return ApiError(503, "UPSTREAM_UNAVAILABLE", "Kryptos could not be reached; try again.")
    if isinstance(exc, RateLimitedError):
        return ApiError(503, "UPSTREAM_UNAVAILABLE", "Kryptos is busy; try again shortly.",
                        headers=_retry_header(exc.retry_after))
    if isinstance(exc, ServerError) and exc.status in (503, 504):
        return ApiError(503, "UPSTREAM_UNAVAILABLE", "Kryptos is unavailable; try again.",
                        extra={"upstream_code": code or None})
    if token_conflict and isinstance(exc, InvalidTokenError):
        return ApiError(409, code or "INVALID_TOKEN",
                        _TOKEN_MESSAGES.get(code, "The token is not valid; connect again."))
    if isinstance(exc, AuthenticationError):
        message = "The backend's Kryptos client credentials were refused."
    else:
        message = "Kryptos answered with an error."
    return ApiError(502, "UPSTREAM_ERROR", message,
                    extra={"upstream_code": code or (str(exc.status) if exc.status else None)})


_TOKEN_MESSAGES = {
    "TOKEN_ALREADY_USED": "This public token was already used; connect again.",
    "TOKEN_EXPIRED": "This public token has expired; connect again.",
    "INVALID_TOKEN": "This token is not valid; connect again.",
    "INVALID_GRANT": "The connection was revoked; connect again.",
    "unauthorized": "The stored connection is no longer valid; connect again.",
}
