"""The client's error hierarchy.

One base (`KryptosError`) and a subclass for each kind of failure a caller would handle
differently. Every error keeps the HTTP status, the API's `code`, the API's message and the
upstream request id (for support). None of them ever holds a secret or a token: messages are
built from the API's own error text, scrubbed of every secret the call carried
(`error_for_answer`, which maps an HTTP error answer to its class).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class KryptosError(Exception):
    """Base of every error the Kryptos client raises."""

    default_message = "The Kryptos API returned an error."
    #: What a person should do about it; shown by the console beside the message.
    hint = "Try again later; if it keeps happening, contact Kryptos support with the request id."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.api_message = message or self.default_message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.method = method
        self.path = path
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [self.api_message]
        meta = []
        if self.status is not None:
            meta.append(f"HTTP {self.status}")
        if self.code:
            meta.append(self.code)
        if self.method and self.path:
            meta.append(f"{self.method} {self.path}")
        if self.request_id:
            meta.append(f"request id {self.request_id}")
        if meta:
            parts.append(f"({', '.join(meta)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.api_message!r}, request_id={self.request_id!r})"
        )

    @property
    def user_message(self) -> str:
        """A short sentence for a person: what happened, with code and request id."""
        return str(self)


class AuthenticationError(KryptosError):
    """401 / INVALID_CLIENT: the console's client credentials were refused."""

    default_message = "The Kryptos API refused the console's client credentials."
    hint = "Check KRYPTOS_CLIENT_ID and KRYPTOS_CLIENT_SECRET."


class InvalidTokenError(KryptosError):
    """A token or grant is invalid, expired, already used or revoked."""

    default_message = "The token or grant is no longer valid."
    hint = "The customer must reconnect through the Connect widget."


class NotFoundError(KryptosError):
    """GRANT_NOT_FOUND, INTEGRATION_NOT_FOUND, CSV_SOURCE_MISSING, or a plain 404."""

    default_message = "Kryptos has no such object."
    hint = "Check the id; the object may have been removed."


class ConflictError(KryptosError):
    """A 409: a business answer (e.g. CSV_RESYNC_LATEST_UNSUPPORTED), never retried."""

    default_message = "Kryptos refused the request in the object's current state."
    hint = "Read the message: the request is not valid for this object as it stands."


class PermissionDeniedError(KryptosError):
    """ACCESS_DENIED, INSUFFICIENT_PERMISSIONS, NOT_ANON_USER, INVALID_SCOPE, 403 forbidden."""

    default_message = "Kryptos does not allow this request."
    hint = "The grant, scope or user type does not permit this action."


class InvalidRequestError(KryptosError):
    """A 400 the client did not expect (e.g. invalid_parameters)."""

    default_message = "Kryptos rejected the request as invalid."
    hint = "Check the values sent."


class RateLimitedError(KryptosError):
    """429: too many requests. `retry_after` is the server's advice in seconds, if any."""

    default_message = "Kryptos is rate limiting the console."
    hint = "Wait a minute and try again."

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **kw: Any
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(KryptosError):
    """A 5xx answer from Kryptos."""

    default_message = "The Kryptos API had an internal error."


class KryptosConnectionError(KryptosError):
    """The request could not be sent or the connection dropped before an answer came."""

    default_message = "Could not reach the Kryptos API."
    hint = "Check the network and the API's status; the action may or may not have taken effect."


class KryptosTimeoutError(KryptosConnectionError):
    """No answer within the configured timeout."""

    default_message = "The Kryptos API did not answer in time."


class MalformedResponseError(KryptosError):
    """The answer was not JSON, or not of the documented shape."""

    default_message = "The Kryptos API sent an answer the console cannot read."


# Codes named by the backend guide and the API notes, mapped to the class a caller handles.
CODE_TO_ERROR: dict[str, type[KryptosError]] = {
    "INVALID_CLIENT": AuthenticationError,
    "unauthorized": AuthenticationError,
    "INVALID_TOKEN": InvalidTokenError,
    "INVALID_GRANT": InvalidTokenError,
    "TOKEN_EXPIRED": InvalidTokenError,
    "TOKEN_ALREADY_USED": InvalidTokenError,
    "GRANT_NOT_FOUND": NotFoundError,
    "INTEGRATION_NOT_FOUND": NotFoundError,
    "CSV_SOURCE_MISSING": NotFoundError,
    "WORKSPACE_NOT_FOUND": NotFoundError,
    "CSV_RESYNC_LATEST_UNSUPPORTED": ConflictError,
    "CSV_RESYNC_UNSUPPORTED": ConflictError,
    "SYNC_DISABLED": ConflictError,
    "ACCESS_DENIED": PermissionDeniedError,
    "INSUFFICIENT_PERMISSIONS": PermissionDeniedError,
    "NOT_ANON_USER": PermissionDeniedError,
    "INVALID_SCOPE": PermissionDeniedError,
    "forbidden": PermissionDeniedError,
    "invalid_parameters": InvalidRequestError,
    "rate_limit_exceeded": RateLimitedError,
}

STATUS_TO_ERROR: dict[int, type[KryptosError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}


def error_class_for(status: int, code: str | None) -> type[KryptosError]:
    """The exception class for an HTTP error answer.

    A known code wins, except that a 401 on a data call is about the token (a revoked
    grant's token answers 401), which the caller signals by passing code
    `INVALID_TOKEN`. An unknown code falls back to the status.
    """
    if code and code in CODE_TO_ERROR:
        return CODE_TO_ERROR[code]
    if status >= 500:
        return ServerError
    return STATUS_TO_ERROR.get(status, KryptosError)


#: The API's error text is cut to this many characters before it is kept in an error.
MAX_MESSAGE_CHARS = 300


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret replaced by `***`, cut to `MAX_MESSAGE_CHARS`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + "..."
    return text


def code_and_message(body: object) -> tuple[str | None, str | None]:
    """Read both documented error shapes.

    Connect: `{"success": false, "error": "Error message", "code": "ERROR_CODE"}`.
    Data API: `{"error": "<code>", "message": "...", "details": []}`.
    """
    if not isinstance(body, Mapping):
        return None, None
    code = _text(body.get("code"))
    error = _text(body.get("error"))
    message = _text(body.get("message"))
    if code:
        return code, error or message
    if error and message:
        return error, message
    if error:
        if error.replace("_", "").isalnum() and " " not in error:
            return error, None
        return None, error
    return None, message


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def error_for_answer(
    status: int,
    body: object,
    *,
    api: str,
    method: str,
    path: str,
    request_id: str | None,
    secrets: Iterable[str | None],
) -> KryptosError:
    """The error for an HTTP error answer (`body` is its decoded JSON, or None).

    The API's code and message are scrubbed of `secrets` (the client secret and any token
    the call sent). On the data API (`api="data"`) a 401 is about the token unless the code
    says `INVALID_CLIENT`: the API answers 401 both for a revoked grant's token and for bad
    client credentials, and the message says so.
    """
    secrets = tuple(secrets)
    code, message = code_and_message(body)
    if code:
        code = scrub(code, secrets)
    if message:
        message = scrub(message, secrets)
    cls: type[KryptosError]
    if api == "data" and status == 401 and code != "INVALID_CLIENT":
        cls = InvalidTokenError
        detail = message or "unauthorized"
        message = (
            f"The data API refused the token ({detail}): the grant is revoked or invalid, "
            "or the client credentials are wrong."
        )
    else:
        cls = error_class_for(status, code)
    if not message and status >= 500:
        message = f"The Kryptos API answered HTTP {status}."
    return cls(message, status=status, code=code, request_id=request_id, method=method,
               path=path)
