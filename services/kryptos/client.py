"""Client for the Kryptos Connect API and the Kryptos data API: one short method per endpoint.

A method checks its arguments, names the call (path, body, whether it is a read) and parses
the answer into a model; it knows the API's shapes, nothing about users or audit. Sending,
timeouts and the retry rule are the transport's (`services.kryptos.transport`), the mapping
of error answers to exceptions is `services.kryptos.errors`', and the streamed reading of
the grants list is `services.kryptos.stream`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests

from services.kryptos.errors import MalformedResponseError
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
from services.kryptos.stream import stream_array
from services.kryptos.transport import Call, JSONValue, Transport

if TYPE_CHECKING:
    from services.settings import Settings

#: Sent as User-Agent, so that upstream logs (and the sandbox's request log) can tell the
#: console's own calls from its sync worker's (`SYNC_USER_AGENT`).
USER_AGENT = "kryptos-console/2"
SYNC_USER_AGENT = "kryptos-console-sync/2"

T = TypeVar("T")


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
        self.page_size = page_size
        self.max_pages = max_pages
        self._transport = Transport(
            client_id, client_secret, connect_timeout=connect_timeout,
            read_timeout=read_timeout, max_retries=max_retries, retry_budget=retry_budget,
            backoff_base=backoff_base, backoff_max=backoff_max, user_agent=user_agent,
            session=session,
        )

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

    # The transport's settings, read here (one copy of each, held by the transport).
    @property
    def connect_timeout(self) -> float:
        return self._transport.connect_timeout

    @property
    def read_timeout(self) -> float:
        return self._transport.read_timeout

    @property
    def max_retries(self) -> int:
        return self._transport.max_retries

    @property
    def retry_budget(self) -> float:
        return self._transport.retry_budget

    @property
    def backoff_base(self) -> float:
        return self._transport.backoff_base

    @property
    def backoff_max(self) -> float:
        return self._transport.backoff_max

    @property
    def user_agent(self) -> str:
        return self._transport.user_agent

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
        self._transport.close()

    def __enter__(self) -> KryptosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Connect API ----------------------------------------------------------------------

    def create_link_token(
        self, access_token: str | None = None, scopes: str = DEFAULT_SCOPES
    ) -> LinkToken:
        """POST /link-token; with `access_token` the user's session is resumed."""
        body: dict[str, JSONValue] = {"scopes": scopes}
        if access_token:
            body["access_token"] = access_token
        call = self._connect("POST", "/link-token", idempotent=False, json=body,
                             secrets=(access_token or "",))
        return _parse(LinkToken.from_api, self._connect_data(call), call)

    def exchange_public_token(self, public_token: str) -> TokenExchange:
        """POST /token/exchange: a single-use public token for a long-lived access token."""
        _require_text(public_token, "public_token")
        call = self._connect("POST", "/token/exchange", idempotent=False,
                             json={"public_token": public_token}, secrets=(public_token,))
        return _parse(TokenExchange.from_api, self._connect_data(call), call)

    def check_session(self, access_token: str) -> SessionStatus:
        """POST /link-token/check-session (a read: retried like a GET)."""
        _require_text(access_token, "access_token")
        call = self._connect("POST", "/link-token/check-session", idempotent=True,
                             json={"access_token": access_token}, secrets=(access_token,))
        return _parse(SessionStatus.from_api, self._connect_data(call), call)

    def revoke_grant(self, grant_id: str) -> str:
        """POST /token/revoke; returns the API's message."""
        _require_text(grant_id, "grant_id")
        call = self._connect("POST", "/token/revoke", idempotent=False,
                             json={"grant_id": grant_id})
        message = self._object(call).get("message")
        if message is not None and not isinstance(message, str):
            raise MalformedResponseError("revoke: 'message' is not text.",
                                         method="POST", path="/token/revoke")
        return message or "Grant revoked."

    def list_grants(self) -> list[Grant]:
        """GET /token/grants: every active grant of this client."""
        call = self._connect("GET", "/token/grants", idempotent=True)
        grants = self._connect_data(call).get("grants")
        if not isinstance(grants, list):
            raise MalformedResponseError("grants: 'grants' is not a list.",
                                         method="GET", path="/token/grants")
        return [_parse(Grant.from_api, g, call) for g in grants]

    def iter_grants(self, batch_size: int = 2000) -> Generator[list[Grant], None, None]:
        """GET /token/grants read as a stream: the grants in lists of up to `batch_size`,
        parsed as they arrive, so memory stays flat however many grants there are.

        The request is sent at the first `next()`; closing the generator early (or
        dropping it) closes the answer and its connection."""
        call = self._connect("GET", "/token/grants", idempotent=True)
        with self._transport.request_stream(call) as response:
            batch: list[Grant] = []
            for item in stream_array(response, "grants", method=call.method, path=call.path):
                batch.append(_parse(Grant.from_api, item, call))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

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
        call = self._connect("POST", f"/developer/integrations/{_seg(wallet_id)}/resync",
                             idempotent=False, json={"user_id": user_id, "mode": mode})
        return _parse(ResyncResult.from_api, self._connect_data(call), call)

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
        body: dict[str, JSONValue] = {}
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
        call = self._connect("PATCH", f"/developer/grants/{_seg(grant_id)}/transaction-limit",
                             idempotent=False, json=body)
        return _parse(TransactionLimit.from_api, self._connect_data(call), call)

    # --- data API -------------------------------------------------------------------------

    def get_holdings(self, access_token: str, include_spam: bool = False) -> Holdings:
        """GET /v1/holdings for the grant's user."""
        _require_text(access_token, "access_token")
        call = self._data("/v1/holdings", access_token,
                          params={"isSpam": "true" if include_spam else "false"})
        return _parse(Holdings.from_api, self._object(call), call)

    def list_integrations(self, access_token: str) -> list[Integration]:
        """GET /v1/integrations, every page (pageSize 200), in the API's order."""
        _require_text(access_token, "access_token")
        path = "/v1/integrations"
        out: list[Integration] = []
        for page in range(1, self.max_pages + 1):
            call = self._data(path, access_token,
                              params={"page": page, "pageSize": self.page_size})
            body = self._object(call)
            rows = body.get("data")
            if not isinstance(rows, list):
                raise MalformedResponseError("integrations: 'data' is not a list.",
                                             method="GET", path=path)
            out.extend(_parse(Integration.from_api, r, call) for r in rows)
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
        call = self._data("/v1/userinfo", access_token)
        return _parse(UserInfo.from_api, self._object(call), call)

    def health(self) -> Health:
        """GET {data_url}/health, without credentials."""
        call = Call("GET", self.data_url, "/health", "data", idempotent=True, client_auth=False)
        return _parse(Health.from_api, self._object(call), call)

    # --- naming a call and reading its answer ----------------------------------------------

    def _connect(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json: Mapping[str, JSONValue] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> Call:
        """A Connect API call, with the client's credentials (`secrets`: tokens in `json`)."""
        return Call(method, self.connect_url, path, "connect", idempotent=idempotent,
                    json=json, secrets=secrets)

    def _data(
        self, path: str, access_token: str, params: Mapping[str, str | int] | None = None
    ) -> Call:
        """A data API read for the grant whose token is `access_token` (sent as Bearer)."""
        return Call("GET", self.data_url, path, "data", idempotent=True, params=params,
                    access_token=access_token)

    def _object(self, call: Call) -> dict[str, JSONValue]:
        """Send `call` and return its answer, which must be a JSON object."""
        body = self._transport.request_json(call)
        if not isinstance(body, Mapping):
            raise MalformedResponseError(
                "The answer is not a JSON object.", method=call.method, path=call.path)
        return body

    def _connect_data(self, call: Call) -> dict[str, JSONValue]:
        """Send a Connect call and return its `data` object (the documented envelope)."""
        data = self._object(call).get("data")
        if not isinstance(data, Mapping):
            raise MalformedResponseError(
                "The answer has no 'data' object.", method=call.method, path=call.path)
        return data


def _parse(parser: Callable[[Any], T], data: JSONValue, call: Call) -> T:
    """`parser(data)` (a model's `from_api`, which checks the shape of whatever it is
    given); any failure is a `MalformedResponseError` naming the call."""
    try:
        return parser(data)
    except MalformedResponseError as exc:
        raise MalformedResponseError(
            exc.api_message, method=call.method, path=call.path) from None
    except (AttributeError, TypeError, ValueError):
        raise MalformedResponseError(
            "The answer is not of the documented shape.", method=call.method, path=call.path
        ) from None


def _require_text(value: object, name: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string.")


def _seg(value: str) -> str:
    return quote(value, safe="")


__all__ = ["SYNC_USER_AGENT", "USER_AGENT", "KryptosClient"]
