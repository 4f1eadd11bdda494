"""Start the sandbox in a thread and drive it through its control endpoints (urllib only)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from types import TracebackType
from typing import Any, NotRequired, TypedDict

from sandbox.data import CLIENTS, MAIN_CLIENT
from sandbox.server import SandboxApp, SandboxHTTPServer
from sandbox.webhooks import DEFAULT_BACKOFF, WebhookConfig, check_secret


class SandboxControlError(RuntimeError):
    """A control endpoint answered with an error."""


class PublicTokenAnswer(TypedDict):
    """`POST /sandbox/public-token`: the widget's onSuccess. A returning user's run (link
    token made with their access token) has no public token, and names the grant it joined
    and the integration it added."""

    public_token: str | None
    user_id: str
    kind: str
    resumed: NotRequired[bool]
    grant_id: NotRequired[str]
    wallet_id: NotRequired[str]


class ExportedToken(TypedDict):
    """One stored token of `GET /sandbox/tokens`: what a company's backend kept."""

    grant_id: str
    access_token: str
    user_id: str
    kind: str
    customer_ref: str | None
    workspace_id: str | None
    revoked: bool


class SandboxClient:
    """Control helpers for a sandbox running at `base_url` (started here or elsewhere, e.g.
    `python -m sandbox`), with its URLs and the demo client's credentials."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_url = self.base_url
        self.data_url = self.base_url + "/api"
        self.client_id = MAIN_CLIENT
        self.client_secret = CLIENTS[MAIN_CLIENT]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # --- control ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            raise SandboxControlError(f"{method} {path}: HTTP {err.code} {detail}") from None

    def reset(self, seed: int | None = None, grants: int | None = None) -> None:
        body: dict[str, Any] = {}
        if seed is not None:
            body["seed"] = seed
        if grants is not None:
            body["grants"] = grants
        self._call("POST", "/sandbox/reset", body)

    def set_fault(self, **spec: Any) -> str:
        return str(self._call("POST", "/sandbox/faults", spec)["id"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/sandbox/faults")

    def faults(self) -> list[dict]:
        """Every fault set (HTTP, webhook, resync), as `GET /sandbox/faults` lists them."""
        return list(self._call("GET", "/sandbox/faults")["faults"])

    def hold_after_apply(self, path: str, method: str | None = None, ms: float = 30_000,
                         count: int | None = None) -> str:
        """Matching requests take effect, then their answer waits `ms` (or until the faults
        are cleared): the client sees nothing while the change is already made. The
        counterpart of `set_fault(path=..., latency_ms=...)`, which waits before acting."""
        spec: dict[str, Any] = {"path": path, "hold_after_ms": ms}
        if method is not None:
            spec["method"] = method
        if count is not None:
            spec["count"] = count
        return self.set_fault(**spec)

    def holding(self, fault_id: str) -> int:
        """How many requests the hold `fault_id` has applied and is holding now."""
        found = [f for f in self.faults() if f["id"] == fault_id]
        if not found:
            raise SandboxControlError(f"no fault {fault_id}")
        return int(found[0].get("holding", 0))

    def set_latency(self, ms: float) -> None:
        self._call("POST", "/sandbox/latency", {"ms": ms})

    def requests_log(self) -> list[dict]:
        return list(self._call("GET", "/sandbox/requests")["requests"])

    def clear_requests_log(self) -> None:
        self._call("DELETE", "/sandbox/requests")

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "/sandbox/clock", {"advance_seconds": seconds})

    def create_public_token(self, kind: str = "guest", client_id: str | None = None,
                            name: str | None = None, email: str | None = None,
                            link_token: str | None = None) -> PublicTokenAnswer:
        body: dict[str, Any] = {"kind": kind}
        for key, value in (("client_id", client_id), ("name", name), ("email", email),
                           ("link_token", link_token)):
            if value is not None:
                body[key] = value
        answer: PublicTokenAnswer = self._call("POST", "/sandbox/public-token", body)
        return answer

    def tokens(self, client_id: str | None = None) -> list[ExportedToken]:
        query = "?" + urllib.parse.urlencode({"client_id": client_id}) if client_id else ""
        return list(self._call("GET", "/sandbox/tokens" + query)["tokens"])

    def token_pages(self, client_id: str | None = None,
                    size: int = 5000) -> Iterator[list[ExportedToken]]:
        """`tokens()` a page of at most `size` at a time (memory holds one page)."""
        after = -1
        while True:
            query: dict[str, Any] = {"after": after, "limit": size}
            if client_id:
                query["client_id"] = client_id
            answer = self._call("GET", "/sandbox/tokens?" + urllib.parse.urlencode(query))
            if answer["tokens"]:
                yield list(answer["tokens"])
            if answer.get("next") is None:
                return
            after = int(answer["next"])

    def scenarios(self) -> dict:
        """Where the seeded special cases are (see sandbox/README.md)."""
        return dict(self._call("GET", "/sandbox/scenarios"))

    # --- webhooks ---------------------------------------------------------------------------

    def set_webhooks(self, url: str | None, secret: str | None = None,
                     backoff: list[float] | None = None) -> None:
        """Send signed webhooks to `url` (None: stop sending); `backoff`: seconds before the
        2nd and 3rd attempts."""
        body: dict[str, Any] = {"url": url, "secret": secret}
        if backoff is not None:
            body["backoff"] = list(backoff)
        self._call("POST", "/sandbox/webhooks", body)

    def webhook_config(self) -> dict:
        """`{url, has_secret, backoff, deliveries}` (never the secret)."""
        return dict(self._call("GET", "/sandbox/webhooks"))

    def webhook_deliveries(self) -> list[dict]:
        """`[{id, type, attempts, status, responses, fault}]`, oldest first."""
        return list(self.webhook_config()["deliveries"])

    def set_webhook_fault(self, kind: str, count: int | None = None,
                          delay_ms: float | None = None) -> str:
        """`kind`: drop, duplicate, delay or bad_signature, for the next `count` events."""
        spec: dict[str, Any] = {"webhook": kind}
        if count is not None:
            spec["count"] = count
        if delay_ms is not None:
            spec["delay_ms"] = delay_ms
        return self.set_fault(**spec)

    def fail_next_resync(self, wallet_id: str | None = None, count: int | None = None) -> str:
        """The next resync (of `wallet_id`, if given) ends FAILED (`integration.failed`)."""
        spec: dict[str, Any] = {"resync": "fail"}
        if wallet_id is not None:
            spec["wallet_id"] = wallet_id
        if count is not None:
            spec["count"] = count
        return self.set_fault(**spec)


class SandboxHandle(SandboxClient):
    """A sandbox started in this process (`start_sandbox`): the control helpers, and stop."""

    def __init__(self, server: SandboxHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host: str = str(host)
        self.port: int = int(port)
        super().__init__(f"http://{self.host}:{self.port}")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server.app.stop()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_sandbox(port: int = 0, seed: int = 42, grants: int = 40, resync_delay: float = 5.0,
                  newer_api: bool = False, host: str = "127.0.0.1",
                  webhook_url: str | None = None, webhook_secret: str | None = None,
                  webhook_backoff: tuple[float, ...] = DEFAULT_BACKOFF) -> SandboxHandle:
    """Start a sandbox server in a daemon thread; returns once it accepts connections.
    With `webhook_url` and `webhook_secret` it sends signed webhooks (also after a reset)."""
    if webhook_url is not None and not webhook_secret:
        raise ValueError("webhook_secret is required with webhook_url")
    if webhook_secret is not None:
        check_secret(webhook_secret)
    app = SandboxApp(seed, grants, resync_delay, newer_api,
                     WebhookConfig(webhook_url, webhook_secret, tuple(webhook_backoff)))
    server = SandboxHTTPServer((host, port), app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"kryptos-sandbox-{server.server_address[1]}", daemon=True)
    thread.start()
    return SandboxHandle(server, thread)
