"""HTTP client for the Kryptos Connect API and the Kryptos data API.

One `KryptosClient` holds one `requests.Session` (pooled, shared across threads) and has one
method per operation. It knows HTTP and the API's shapes, nothing about users or audit.

Retry rule (pinned in docs/architecture.md):

- reads (GETs and `check-session`) are retried on connection errors, timeouts, 429, 502, 503
  and 504;
- mutations (link token, exchange, revoke, resync, limit PATCH) are retried only on 429 (the
  server refused without acting) or when the connection was refused before the request was
  sent; never after a read timeout, a dropped connection or a 5xx, because the call may have
  taken effect and the API has no idempotency keys.

Retries are bounded by `max_retries` (extra attempts) and `retry_budget` (seconds for the
whole call: a retry is only started while the budget lasts, each backoff sleep and each
retry's timeouts are capped by what is left of it). Backoff is exponential from
`backoff_base` with jitter; a `Retry-After` header is honoured, and when it asks for more
than the budget has left, `RateLimitedError` (with `retry_after`) is raised at once.

Secrets: the client secret and any token sent are scrubbed from the API's error text before
it is stored in an exception; log lines carry method, path, status, elapsed time and the
request id only, never headers or bodies.
"""

from __future__ import annotations

import codecs
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from services.kryptos.errors import (
    InvalidTokenError,
    KryptosConnectionError,
    KryptosError,
    KryptosTimeoutError,
    MalformedResponseError,
    RateLimitedError,
    error_class_for,
)
from services.kryptos.models import (
    DEFAULT_SCOPES,
    RESYNC_MODES,
    Grant,
    Health,
    Holdings,
    Integration,
    LinkToken,
    ResyncResult,
    SessionStatus,
    TokenExchange,
    TransactionLimit,
    UserInfo,
)

if TYPE_CHECKING:
    from services.settings import Settings

logger = logging.getLogger("services.kryptos")

REQUEST_ID_HEADERS = ("X-Request-Id", "X-Kryptos-Request-Id", "Request-Id")
RETRYABLE_READ_STATUSES = frozenset({429, 502, 503, 504})
MAX_MESSAGE_CHARS = 300
#: A retry is only worth sending with at least this much of the time budget left (seconds).
MIN_RETRY_WINDOW = 0.1
POOL_SIZE = 16
#: Sent as User-Agent, so that upstream logs (and the sandbox's request log) can tell the
#: console's own calls from its sync worker's (`SYNC_USER_AGENT`).
USER_AGENT = "kryptos-console/2"
SYNC_USER_AGENT = "kryptos-console-sync/2"

T = TypeVar("T")


@dataclass(frozen=True)
class _Call:
    """One logical call: what to send and how it may be retried."""

    method: str
    base: str
    path: str
    api: str  # "connect" or "data"
    idempotent: bool
    json: Mapping[str, Any] | None = None
    params: Mapping[str, str | int] | None = None
    access_token: str | None = None  # sent as Bearer on data calls
    client_auth: bool = True
    secrets: tuple[str, ...] = ()  # extra values to scrub (tokens in the body)
    stream: bool = False  # 2xx: return the open response, read by the caller


class KryptosClient:
    """Client for the Connect backend API and the data API.

    Errors are `KryptosError` subclasses (see `services.kryptos.errors`). On data calls a
    401 raises `InvalidTokenError`: the API answers 401 `unauthorized` both for a revoked or
    invalid grant's token and for bad client credentials, and cannot tell which; the error's
    message says so. On Connect calls a 401 raises `AuthenticationError` unless the API's
    code says otherwise (e.g. `INVALID_TOKEN`).
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        connect_url: str,
        data_url: str,
        *,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        max_retries: int = 3,
        retry_budget: float = 20,
        session: requests.Session | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        page_size: int = 200,
        max_pages: int = 1000,
        user_agent: str = USER_AGENT,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("KryptosClient needs a client id and a client secret.")
        if not 1 <= page_size <= 200:
            raise ValueError("page_size must be between 1 and 200.")
        self.client_id = client_id
        self._client_secret = client_secret
        self.connect_url = connect_url.rstrip("/")
        self.data_url = data_url.rstrip("/")
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.max_retries = max(0, int(max_retries))
        self.retry_budget = max(0.0, float(retry_budget))
        self.backoff_base = max(0.0, float(backoff_base))
        self.backoff_max = max(0.0, float(backoff_max))
        self.page_size = page_size
        self.max_pages = max_pages
        self.user_agent = user_agent
        if session is None:
            session = requests.Session()
            # Our own loop decides retries: the adapter makes exactly one attempt.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session
        self._random = random.Random()
        self._random_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> KryptosClient:
        """Build a client from `services.settings.Settings`.

        In sandbox mode (no credentials configured) the sandbox's demo client is used; the
        caller points `connect_url` / `data_url` at the running sandbox (through the settings
        or `overrides`).
        """
        from services.settings import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

        sandbox = not (settings.client_id and settings.client_secret)
        kwargs: dict[str, Any] = {
            "client_id": SANDBOX_CLIENT_ID if sandbox else settings.client_id,
            "client_secret": SANDBOX_CLIENT_SECRET if sandbox else settings.client_secret,
            "connect_url": settings.connect_url,
            "data_url": settings.data_url,
            "connect_timeout": settings.connect_timeout,
            "read_timeout": settings.read_timeout,
            "max_retries": settings.max_retries,
            "retry_budget": settings.retry_budget,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def __repr__(self) -> str:
        return (
            f"KryptosClient(client_id={self.client_id!r}, connect_url={self.connect_url!r}, "
            f"data_url={self.data_url!r})"
        )

    def probe(self, timeout: float) -> KryptosClient:
        """The same hosts and credentials with a short timeout and no retries (checks)."""
        return KryptosClient(
            self.client_id, self._client_secret, self.connect_url, self.data_url,
            connect_timeout=timeout, read_timeout=timeout, max_retries=0, retry_budget=timeout,
            user_agent=self.user_agent,
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> KryptosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Connect API ----------------------------------------------------------------------

    def create_link_token(
        self, access_token: str | None = None, scopes: str = DEFAULT_SCOPES
    ) -> LinkToken:
        """POST /link-token; with `access_token` the user's session is resumed."""
        body: dict[str, Any] = {"scopes": scopes}
        if access_token:
            body["access_token"] = access_token
        data = self._connect_data(
            _Call("POST", self.connect_url, "/link-token", "connect", idempotent=False,
                  json=body, secrets=(access_token or "",))
        )
        return self._parse(LinkToken.from_api, data, "POST", "/link-token")

    def exchange_public_token(self, public_token: str) -> TokenExchange:
        """POST /token/exchange: a single-use public token for a long-lived access token."""
        _require_text(public_token, "public_token")
        data = self._connect_data(
            _Call("POST", self.connect_url, "/token/exchange", "connect", idempotent=False,
                  json={"public_token": public_token}, secrets=(public_token,))
        )
        return self._parse(TokenExchange.from_api, data, "POST", "/token/exchange")

    def check_session(self, access_token: str) -> SessionStatus:
        """POST /link-token/check-session (a read: retried like a GET)."""
        _require_text(access_token, "access_token")
        path = "/link-token/check-session"
        data = self._connect_data(
            _Call("POST", self.connect_url, path, "connect", idempotent=True,
                  json={"access_token": access_token}, secrets=(access_token,))
        )
        return self._parse(SessionStatus.from_api, data, "POST", path)

    def revoke_grant(self, grant_id: str) -> str:
        """POST /token/revoke; returns the API's message."""
        _require_text(grant_id, "grant_id")
        body = self._request(
            _Call("POST", self.connect_url, "/token/revoke", "connect", idempotent=False,
                  json={"grant_id": grant_id})
        )
        body = _expect_object(body, "POST", "/token/revoke")
        message = body.get("message")
        if message is not None and not isinstance(message, str):
            raise MalformedResponseError("revoke: 'message' is not text.",
                                         method="POST", path="/token/revoke")
        return message or "Grant revoked."

    def list_grants(self) -> list[Grant]:
        """GET /token/grants: every active grant of this client."""
        data = self._connect_data(
            _Call("GET", self.connect_url, "/token/grants", "connect", idempotent=True)
        )
        grants = data.get("grants")
        if not isinstance(grants, list):
            raise MalformedResponseError("grants: 'grants' is not a list.",
                                         method="GET", path="/token/grants")
        return [self._parse(Grant.from_api, g, "GET", "/token/grants") for g in grants]

    def iter_grants(self, batch_size: int = 2000) -> Iterator[list[Grant]]:
        """GET /token/grants read as a stream: the grants in lists of up to `batch_size`,
        parsed as they arrive, so memory stays flat however many grants there are."""
        call = _Call("GET", self.connect_url, "/token/grants", "connect", idempotent=True,
                     stream=True)
        response = self._request(call)
        try:
            batch: list[Grant] = []
            for item in _stream_array(response, "grants", call):
                batch.append(self._parse(Grant.from_api, item, "GET", "/token/grants"))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        except requests.exceptions.RequestException as exc:
            raise _transport_error(exc, call)[0] from None
        finally:
            response.close()

    def listed_grant_ids(self) -> set[str]:
        """The ids of every active grant (GET /token/grants read as a stream: memory holds
        the ids, not the whole answer and its Grant objects; 100 MB less at 100,000)."""
        return {g.grant_id for batch in self.iter_grants() for g in batch}

    def is_listed(self, grant_id: str) -> bool:
        """Whether GET /token/grants lists this grant (read as a stream, which stops as
        soon as the grant is found)."""
        batches = self.iter_grants()
        try:
            return any(g.grant_id == grant_id for batch in batches for g in batch)
        finally:
            batches.close()

    def resync_integration(self, wallet_id: str, user_id: str, mode: str) -> ResyncResult:
        """POST /developer/integrations/{walletId}/resync. Never repeated once sent."""
        _require_text(wallet_id, "wallet_id")
        _require_text(user_id, "user_id")
        if mode not in RESYNC_MODES:
            raise ValueError(f"mode must be one of {', '.join(RESYNC_MODES)}.")
        path = f"/developer/integrations/{_seg(wallet_id)}/resync"
        data = self._connect_data(
            _Call("POST", self.connect_url, path, "connect", idempotent=False,
                  json={"user_id": user_id, "mode": mode})
        )
        return self._parse(ResyncResult.from_api, data, "POST", path)

    def update_transaction_limit(
        self,
        grant_id: str,
        transaction_limit: int | None = None,
        enable_limiter: bool | None = None,
    ) -> TransactionLimit:
        """PATCH /developer/grants/{grantId}/transaction-limit with only the fields given.

        Raises `ValueError` before sending anything when neither field is given or a value
        is not of the documented type (a positive integer, a boolean).
        """
        _require_text(grant_id, "grant_id")
        body: dict[str, Any] = {}
        if transaction_limit is not None:
            if isinstance(transaction_limit, bool) or not isinstance(transaction_limit, int):
                raise ValueError("transaction_limit must be a whole number.")
            if transaction_limit < 1:
                raise ValueError("transaction_limit must be a positive whole number.")
            body["transactionLimit"] = transaction_limit
        if enable_limiter is not None:
            if not isinstance(enable_limiter, bool):
                raise ValueError("enable_limiter must be true or false.")
            body["enableLimiter"] = enable_limiter
        if not body:
            raise ValueError("Give transaction_limit or enable_limiter (or both).")
        path = f"/developer/grants/{_seg(grant_id)}/transaction-limit"
        data = self._connect_data(
            _Call("PATCH", self.connect_url, path, "connect", idempotent=False, json=body)
        )
        return self._parse(TransactionLimit.from_api, data, "PATCH", path)

    # --- data API -------------------------------------------------------------------------

    def get_holdings(self, access_token: str, include_spam: bool = False) -> Holdings:
        """GET /v1/holdings for the grant's user."""
        _require_text(access_token, "access_token")
        call = _Call("GET", self.data_url, "/v1/holdings", "data", idempotent=True,
                     params={"isSpam": "true" if include_spam else "false"},
                     access_token=access_token)
        body = _expect_object(self._request(call), "GET", "/v1/holdings")
        return self._parse(Holdings.from_api, body, "GET", "/v1/holdings")

    def list_integrations(self, access_token: str) -> list[Integration]:
        """GET /v1/integrations, every page (pageSize 200), in the API's order."""
        _require_text(access_token, "access_token")
        path = "/v1/integrations"
        out: list[Integration] = []
        for page in range(1, self.max_pages + 1):
            call = _Call("GET", self.data_url, path, "data", idempotent=True,
                         params={"page": page, "pageSize": self.page_size},
                         access_token=access_token)
            body = _expect_object(self._request(call), "GET", path)
            rows = body.get("data")
            if not isinstance(rows, list):
                raise MalformedResponseError("integrations: 'data' is not a list.",
                                             method="GET", path=path)
            out.extend(self._parse(Integration.from_api, r, "GET", path) for r in rows)
            pagination = body.get("pagination")
            if pagination is None:
                return out
            if not isinstance(pagination, Mapping):
                raise MalformedResponseError("integrations: 'pagination' is not an object.",
                                             method="GET", path=path)
            if not pagination.get("hasNextPage"):
                return out
            if not rows:
                raise MalformedResponseError(
                    "integrations: an empty page claims there is a next page.",
                    method="GET", path=path)
        raise MalformedResponseError(
            f"integrations: still a next page after {self.max_pages} pages.",
            method="GET", path=path)

    def get_userinfo(self, access_token: str) -> UserInfo:
        """GET /v1/userinfo: the user, their effective transaction limit and the scopes."""
        _require_text(access_token, "access_token")
        call = _Call("GET", self.data_url, "/v1/userinfo", "data", idempotent=True,
                     access_token=access_token)
        body = _expect_object(self._request(call), "GET", "/v1/userinfo")
        return self._parse(UserInfo.from_api, body, "GET", "/v1/userinfo")

    def health(self) -> Health:
        """GET {data_url}/health, without credentials."""
        call = _Call("GET", self.data_url, "/health", "data", idempotent=True, client_auth=False)
        body = _expect_object(self._request(call), "GET", "/health")
        return self._parse(Health.from_api, body, "GET", "/health")

    # --- plumbing -------------------------------------------------------------------------

    def _connect_data(self, call: _Call) -> Mapping[str, Any]:
        """Send a Connect call and return its `data` object (the documented envelope)."""
        body = _expect_object(self._request(call), call.method, call.path)
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise MalformedResponseError(
                "The answer has no 'data' object.", method=call.method, path=call.path)
        return data

    @staticmethod
    def _parse(parser: Callable[[Any], T], data: Any, method: str, path: str) -> T:
        try:
            return parser(data)
        except MalformedResponseError as exc:
            raise MalformedResponseError(exc.api_message, method=method, path=path) from None
        except (AttributeError, TypeError, ValueError):
            raise MalformedResponseError(
                "The answer is not of the documented shape.", method=method, path=path
            ) from None

    def _headers(self, call: _Call) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if call.client_auth:
            headers["X-Client-Id"] = self.client_id
            headers["X-Client-Secret"] = self._client_secret
        if call.access_token:
            headers["Authorization"] = f"Bearer {call.access_token}"
        return headers

    def _backoff(self, retry: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2 ** (retry - 1)))
        with self._random_lock:
            return delay * (0.5 + self._random.random() / 2)

    def _request(self, call: _Call) -> Any:
        """Send `call` with timeouts and the retry rule; return the decoded JSON body."""
        url = call.base + call.path
        headers = self._headers(call)
        start = time.monotonic()
        deadline = start + self.retry_budget
        timeout = (self.connect_timeout, self.read_timeout)
        retries = 0
        previous: KryptosError | None = None
        while True:
            t0 = time.monotonic()
            error: KryptosError
            retry_after: float | None = None
            try:
                response = self._session.request(
                    call.method, url, headers=headers, json=call.json, params=call.params,
                    timeout=timeout, allow_redirects=False, stream=call.stream,
                )
            except requests.exceptions.RequestException as exc:
                elapsed_ms = (time.monotonic() - t0) * 1000
                error, never_sent = _transport_error(exc, call)
                logger.debug("%s %s -> %s after %.0f ms (attempt %d)", call.method, call.path,
                             type(error).__name__, elapsed_ms, retries + 1)
                if (previous is not None and call.idempotent
                        and isinstance(error, KryptosTimeoutError)
                        and timeout[1] < self.read_timeout):
                    # A read's retry cut short by the budget says nothing new: report what
                    # the server answered before. (Never for a mutation: its retry may have
                    # reached the server, and the person must hear "may have taken effect".)
                    raise previous from None
                retryable = call.idempotent or never_sent
            else:
                elapsed_ms = (time.monotonic() - t0) * 1000
                request_id = _request_id(response)
                logger.debug("%s %s -> %s in %.0f ms (request id %s, attempt %d)", call.method,
                             call.path, response.status_code, elapsed_ms, request_id or "-",
                             retries + 1)
                if 200 <= response.status_code < 300:
                    if call.stream:
                        return response
                    body = self._decode(response, call, request_id)
                    if isinstance(body, Mapping) and body.get("success") is False:
                        raise self._error(response.status_code, body, call, request_id)
                    return body
                error, retry_after, retryable = self._http_failure(response, call, request_id)

            pause = self._retry_pause(retries, retry_after, deadline) if retryable else None
            if pause is None:
                raise error
            time.sleep(pause)
            retries += 1
            previous = error
            left = max(0.01, deadline - time.monotonic())
            timeout = (min(self.connect_timeout, left), min(self.read_timeout, left))

    def _http_failure(self, response: requests.Response, call: _Call,
                      request_id: str | None) -> tuple[KryptosError, float | None, bool]:
        """The error for a non-2xx answer, the server's Retry-After, and whether to retry."""
        try:
            error = self._error(response.status_code, _json_or_none(response), call, request_id)
            if response.status_code == 429:
                retry_after = _retry_after(response)
                if isinstance(error, RateLimitedError):
                    error.retry_after = retry_after
                return error, retry_after, True
            retryable = call.idempotent and response.status_code in RETRYABLE_READ_STATUSES
            return error, None, retryable
        finally:
            response.close()

    def _retry_pause(self, retries: int, retry_after: float | None,
                     deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or None when no retry fits the rule."""
        if retries >= self.max_retries:
            return None
        remaining = deadline - time.monotonic()
        if retry_after is not None:
            if retry_after > remaining:
                return None
            pause = retry_after
        else:
            pause = self._backoff(retries + 1)
        return None if remaining - pause < MIN_RETRY_WINDOW else pause

    def _decode(self, response: requests.Response, call: _Call, request_id: str | None) -> Any:
        try:
            return response.json()
        except ValueError:
            raise MalformedResponseError(
                "The answer is not JSON.", status=response.status_code, request_id=request_id,
                method=call.method, path=call.path,
            ) from None

    def _scrub(self, text: str, call: _Call) -> str:
        for secret in (self._client_secret, call.access_token, *call.secrets):
            if secret:
                text = text.replace(secret, "***")
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + "..."
        return text

    def _error(
        self, status: int, body: Any, call: _Call, request_id: str | None
    ) -> KryptosError:
        code, message = _code_and_message(body)
        if code:
            code = self._scrub(code, call)
        if message:
            message = self._scrub(message, call)
        if call.api == "data" and status == 401 and code != "INVALID_CLIENT":
            cls: type[KryptosError] = InvalidTokenError
            detail = message or "unauthorized"
            message = (
                f"The data API refused the token ({detail}): the grant is revoked or invalid, "
                "or the client credentials are wrong."
            )
        else:
            cls = error_class_for(status, code)
        kwargs: dict[str, Any] = {
            "status": status, "code": code, "request_id": request_id,
            "method": call.method, "path": call.path,
        }
        if not message and status >= 500:
            message = f"The Kryptos API answered HTTP {status}."
        return cls(message, **kwargs)


# --- helpers ------------------------------------------------------------------------------

_STREAM_CHUNK = 256 * 1024
_SKIP = re.compile(r"[ \t\r\n]*,?[ \t\r\n]*")


def _stream_array(response: requests.Response, key: str, call: _Call) -> Iterator[Any]:
    """The items of the array under `key` in a JSON answer, decoded one at a time from the
    response stream (the envelope's `{"success": true, "data": {"<key>": [...]}}`): only a
    chunk and one item are held at once. An answer without that array is malformed."""
    return _ArrayStream(response, call).items(key)


class _ArrayStream:
    """Incremental reading of one JSON array out of a streamed answer."""

    def __init__(self, response: requests.Response, call: _Call) -> None:
        self._chunks = response.iter_content(_STREAM_CHUNK, decode_unicode=False)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()  # a character may span chunks
        self._call = call
        self.buf = ""
        self.pos = 0

    def _malformed(self, message: str) -> MalformedResponseError:
        return MalformedResponseError(message, method=self._call.method, path=self._call.path)

    def more(self) -> bool:
        """Drop what was read, then add the next chunk (False at the end)."""
        self.buf, self.pos = self.buf[self.pos:], 0
        for raw in self._chunks:
            try:
                self.buf += self._utf8.decode(raw)
            except UnicodeDecodeError:
                raise self._malformed("The answer is not UTF-8.") from None
            return True
        return False

    def items(self, key: str) -> Iterator[Any]:
        marker = re.compile(r'"' + re.escape(key) + r'"\s*:\s*\[')
        while (found := marker.search(self.buf)) is None:
            if not self.more():
                raise self._malformed(f"The answer has no '{key}' list.")
        self.pos = found.end()
        decoder = json.JSONDecoder()
        while True:
            self.pos = _SKIP.match(self.buf, self.pos).end()
            if self.pos >= len(self.buf):
                if not self.more():
                    raise self._malformed("The answer ended inside the list.")
                continue
            if self.buf[self.pos] == "]":
                return
            while True:
                try:
                    item, self.pos = decoder.raw_decode(self.buf, self.pos)
                    break
                except json.JSONDecodeError:
                    if not self.more():
                        raise self._malformed("The answer is not JSON.") from None
            yield item

def _require_text(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string.")


def _seg(value: str) -> str:
    return quote(value, safe="")


def _expect_object(body: Any, method: str, path: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise MalformedResponseError("The answer is not a JSON object.", method=method, path=path)
    return body


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _request_id(response: requests.Response) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return value[:100]
    return None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):  # delay-seconds
        return float(value)
    try:  # or an HTTP-date
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _code_and_message(body: Any) -> tuple[str | None, str | None]:
    """Read both documented error shapes.

    Connect: `{"success": false, "error": "Error message", "code": "ERROR_CODE"}`.
    Data API: `{"error": "<code>", "message": "...", "details": []}`.
    """
    if not isinstance(body, Mapping):
        return None, None
    code = body.get("code")
    error = body.get("error")
    message = body.get("message")
    code = code if isinstance(code, str) and code else None
    error = error if isinstance(error, str) and error else None
    message = message if isinstance(message, str) and message else None
    if code:
        return code, error or message
    if error and message:
        return error, message
    if error:
        if error.replace("_", "").isalnum() and " " not in error:
            return error, None
        return None, error
    return None, message


def _transport_error(
    exc: requests.exceptions.RequestException, call: _Call
) -> tuple[KryptosError, bool]:
    """Map a transport failure; the flag says the request provably never reached the server."""
    where = {"method": call.method, "path": call.path}
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return KryptosTimeoutError("Timed out connecting to the Kryptos API.", **where), True
    if isinstance(exc, requests.exceptions.Timeout):
        return KryptosTimeoutError(
            "The Kryptos API did not answer in time; the request may have taken effect.", **where
        ), False
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
            return KryptosConnectionError(
                "Could not connect to the Kryptos API (connection refused or unreachable).",
                **where,
            ), True
        return KryptosConnectionError(
            "The connection to the Kryptos API dropped before an answer came; the request "
            "may have taken effect.", **where,
        ), False
    return KryptosConnectionError("The request to the Kryptos API failed.", **where), False


__all__ = ["KryptosClient"]
