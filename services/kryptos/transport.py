"""The Kryptos client's transport: one HTTP call with timeouts, the retry rule and a budget.

`Transport` holds one `requests.Session` (pooled, shared across threads) and the client's
credentials. It sends a `Call` and returns either the decoded JSON body (`request_json`) or
the open 2xx answer for the caller to read as a stream (`request_stream`); every failure is a
`KryptosError` (see `services.kryptos.errors`), never a `requests` exception.

Retry rule (docs/architecture.md, "Retry rules"):

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

Secrets: log lines carry method, path, status, elapsed time and the request id only, never
headers or bodies; error text is scrubbed of the client secret and the call's tokens
(`errors.error_for_answer`).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, TypeAlias, cast

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from services.kryptos.errors import (
    KryptosConnectionError,
    KryptosError,
    KryptosTimeoutError,
    MalformedResponseError,
    RateLimitedError,
    error_for_answer,
)

#: A decoded JSON value, as `json.loads` returns it.
JSONValue: TypeAlias = (
    None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
)

logger = logging.getLogger("services.kryptos")

REQUEST_ID_HEADERS = ("X-Request-Id", "X-Kryptos-Request-Id", "Request-Id")
RETRYABLE_READ_STATUSES = frozenset({429, 502, 503, 504})
#: A retry is only worth sending with at least this much of the time budget left (seconds).
MIN_RETRY_WINDOW = 0.1
POOL_SIZE = 16


@dataclass(frozen=True)
class Call:
    """One logical call: what to send and how it may be retried."""

    method: str
    base: str
    path: str
    api: Literal["connect", "data"]
    idempotent: bool
    json: Mapping[str, JSONValue] | None = None
    params: Mapping[str, str | int] | None = None
    access_token: str | None = None  # sent as Bearer on data calls
    client_auth: bool = True
    secrets: tuple[str, ...] = ()  # extra values to scrub (tokens in the body)


class StreamedResponse:
    """A 2xx answer whose body the caller reads in chunks; close it (or use `with`).

    A connection that drops or times out while the body is read raises the same
    `KryptosError` as it would have before the answer began.
    """

    def __init__(self, response: requests.Response, call: Call) -> None:
        self._response = response
        self._call = call
        self.status = response.status_code

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        """The raw body, `chunk_size` bytes at a time, as it arrives."""
        try:
            yield from self._response.iter_content(chunk_size, decode_unicode=False)
        except requests.exceptions.RequestException as exc:
            raise _transport_error(exc, self._call)[0] from None

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> StreamedResponse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


#: requests' own merge of a request's setting with the session's (untyped there).
_merge = cast(Callable[[Any, Any], Any], merge_setting)


class EnvOnceSession(requests.Session):
    """A `requests.Session` that reads the environment's proxies (`*_PROXY`, `NO_PROXY`)
    and CA bundle (`REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`) once per server (scheme and
    host) instead of on every request: requests walks the whole environment for them per
    request, which was a visible part of a backend call's CPU. The same settings as
    `requests.Session.merge_environment_settings`, taken when the process first calls that
    server (changing them later needs a restart, as for every other setting)."""

    def __init__(self) -> None:
        super().__init__()
        self._env_lock = threading.Lock()
        self._env_proxies: dict[str, dict[str, str]] = {}
        self._env_bundle = (os.environ.get("REQUESTS_CA_BUNDLE")
                            or os.environ.get("CURL_CA_BUNDLE"))

    def _proxies_for(self, url: Any) -> dict[str, str]:
        server = "/".join(str(url).split("/", 3)[:3])  # scheme://host[:port]
        found = self._env_proxies.get(server)
        if found is None:
            found = get_environ_proxies(url)
            with self._env_lock:
                self._env_proxies[server] = found
        return found

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> Any:
        if self.trust_env:
            if proxies is not None and proxies.get("no_proxy") is None:
                for key, value in self._proxies_for(url).items():
                    proxies.setdefault(key, value)
            elif proxies is not None:  # a per-request no_proxy: requests' own way
                for key, value in get_environ_proxies(url, proxies["no_proxy"]).items():
                    proxies.setdefault(key, value)
            if verify is True or verify is None:
                verify = self._env_bundle or verify
        return {"proxies": _merge(proxies, self.proxies),
                "stream": _merge(stream, self.stream),
                "verify": _merge(verify, self.verify),
                "cert": _merge(cert, self.cert)}


class Transport:
    """Sends `Call`s to the Kryptos APIs under the retry rule (see the module docstring)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_retries: int,
        retry_budget: float,
        backoff_base: float,
        backoff_max: float,
        user_agent: str,
        session: requests.Session | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.max_retries = max(0, int(max_retries))
        self.retry_budget = max(0.0, float(retry_budget))
        self.backoff_base = max(0.0, float(backoff_base))
        self.backoff_max = max(0.0, float(backoff_max))
        self.user_agent = user_agent
        if session is None:
            session = EnvOnceSession()
            # Our own loop decides retries: the adapter makes exactly one attempt.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session
        self._random = random.Random()
        self._random_lock = threading.Lock()

    def close(self) -> None:
        self._session.close()

    def request_json(self, call: Call) -> JSONValue:
        """Send `call` and return its decoded JSON body.

        An answer that is not JSON raises `MalformedResponseError`; a 2xx whose body says
        `"success": false` raises the error it names, like a non-2xx answer.
        """
        response = self._send(call, stream=False)
        request_id = _request_id(response)
        body = _decode(response, call, request_id)
        if isinstance(body, dict) and body.get("success") is False:
            raise self._error(response.status_code, body, call, request_id)
        return body

    def request_stream(self, call: Call) -> StreamedResponse:
        """Send `call` and return its 2xx answer unread, for the caller to stream and close."""
        return StreamedResponse(self._send(call, stream=True), call)

    # --- the retry loop -------------------------------------------------------------------

    def _headers(self, call: Call) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if call.client_auth:
            headers["X-Client-Id"] = self.client_id
            headers["X-Client-Secret"] = self._client_secret
        if call.access_token:
            headers["Authorization"] = f"Bearer {call.access_token}"
        return headers

    def _backoff(self, retry: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2.0 ** (retry - 1)))
        with self._random_lock:
            return delay * (0.5 + self._random.random() / 2)

    def _send(self, call: Call, *, stream: bool) -> requests.Response:
        """Send `call` with timeouts and the retry rule; return the first 2xx answer."""
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
                    timeout=timeout, allow_redirects=False, stream=stream,
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
                    return response
                error, retry_after, retryable = self._http_failure(response, call, request_id)

            pause = self._retry_pause(retries, retry_after, deadline) if retryable else None
            if pause is None:
                raise error
            time.sleep(pause)
            retries += 1
            previous = error
            left = max(0.01, deadline - time.monotonic())
            timeout = (min(self.connect_timeout, left), min(self.read_timeout, left))

    def _http_failure(self, response: requests.Response, call: Call,
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

    def _error(
        self, status: int, body: JSONValue, call: Call, request_id: str | None
    ) -> KryptosError:
        return error_for_answer(
            status, body, api=call.api, method=call.method, path=call.path,
            request_id=request_id,
            secrets=(self._client_secret, call.access_token, *call.secrets),
        )


# --- reading an answer --------------------------------------------------------------------

def _decode(response: requests.Response, call: Call, request_id: str | None) -> JSONValue:
    try:
        body: JSONValue = response.json()
    except ValueError:
        raise MalformedResponseError(
            "The answer is not JSON.", status=response.status_code, request_id=request_id,
            method=call.method, path=call.path,
        ) from None
    return body


def _json_or_none(response: requests.Response) -> JSONValue:
    try:
        body: JSONValue = response.json()
    except ValueError:
        return None
    return body


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


def _transport_error(
    exc: requests.exceptions.RequestException, call: Call
) -> tuple[KryptosError, bool]:
    """Map a transport failure; the flag says the request provably never reached the server."""
    method, path = call.method, call.path
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return KryptosTimeoutError(
            "Timed out connecting to the Kryptos API.", method=method, path=path
        ), True
    if isinstance(exc, requests.exceptions.Timeout):
        return KryptosTimeoutError(
            "The Kryptos API did not answer in time; the request may have taken effect.",
            method=method, path=path,
        ), False
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
            return KryptosConnectionError(
                "Could not connect to the Kryptos API (connection refused or unreachable).",
                method=method, path=path,
            ), True
        return KryptosConnectionError(
            "The connection to the Kryptos API dropped before an answer came; the request "
            "may have taken effect.", method=method, path=path,
        ), False
    return KryptosConnectionError(
        "The request to the Kryptos API failed.", method=method, path=path
    ), False


__all__ = ["Call", "JSONValue", "StreamedResponse", "Transport"]
