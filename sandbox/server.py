"""HTTP layer of the sandbox: the route tables, auth headers, faults, latency and the
request log."""

from __future__ import annotations

import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.control import CONTROL
from sandbox.data import CLIENTS, GrantRecord
from sandbox.faults import BadControl, Fault
from sandbox.routes import Call, Router
from sandbox.state import Clock, ConnectFailure, DataFailure, SandboxState
from sandbox.webhooks import WebhookConfig, WebhookSender

CONNECT_DEFAULT_CODES = {400: "INVALID_REQUEST", 401: "INVALID_CLIENT", 403: "ACCESS_DENIED",
                         404: "NOT_FOUND", 409: "CONFLICT", 429: "RATE_LIMITED",
                         500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE",
                         504: "GATEWAY_TIMEOUT"}
DATA_DEFAULT_CODES = {400: "invalid_parameters", 401: "unauthorized", 403: "forbidden",
                      404: "not_found", 429: "rate_limit_exceeded", 500: "internal_error",
                      502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}
MALFORMED_BODY = b'{"success": true, "data": {"grants": [<html>upstream proxy error'


ConnectHandler = Callable[[SandboxState, str, Call], tuple[int, dict]]
DataHandler = Callable[[SandboxState, Call], tuple[int, dict]]

# --- Connect API: (method, path pattern) -> handler(state, client id, call) -------------------
CONNECT: Router[ConnectHandler] = Router()
CONNECT.add("POST", "/link-token", lambda st, cid, c: st.create_link_token(cid, c.body))
CONNECT.add("POST", "/link-token/check-session", lambda st, cid, c: st.check_session(cid, c.body))
CONNECT.add("POST", "/token/exchange", lambda st, cid, c: st.exchange(cid, c.body))
CONNECT.add("POST", "/token/revoke", lambda st, cid, c: st.revoke(cid, c.body))
CONNECT.add("GET", "/token/grants", lambda st, cid, c: st.list_grants(cid))
CONNECT.add("POST", "/developer/integrations/{wallet_id}/resync",
            lambda st, cid, c: st.resync(cid, c.params["wallet_id"], c.body))
CONNECT.add("PATCH", "/developer/grants/{grant_id}/transaction-limit",
            lambda st, cid, c: st.transaction_limit(cid, c.params["grant_id"], c.body))


# --- data API (below /api): (method, path pattern) -> handler(state, call) ----------------------
def _grant(st: SandboxState, call: Call, scopes: tuple[str, ...]) -> GrantRecord:
    h = call.headers
    return st.data_grant(h.get("X-Client-Id"), h.get("X-Client-Secret"), h.get("Authorization"),
                         scopes)


def _health(st: SandboxState, call: Call) -> tuple[int, dict]:
    return 200, {"status": "OK", "service": "connect-apis", "version": "1.0.0",
                 "environment": "sandbox"}


def _holdings(st: SandboxState, call: Call) -> tuple[int, dict]:
    grant = _grant(st, call, ("portfolios:read",))
    return st.holdings(grant, _flag(call.one("isSpam"), "isSpam"),
                       _flag(call.one("calculatedBalances"), "calculatedBalances"))


def _integrations(st: SandboxState, call: Call) -> tuple[int, dict]:
    grant = _grant(st, call, ("integrations:read",))
    page = _int(call.one("page"), "page", 1, 1, None)
    size = _int(call.one("pageSize"), "pageSize", 25, 1, 200)
    return st.integrations(grant, page, size, call.one("searchedKey"))


def _userinfo(st: SandboxState, call: Call) -> tuple[int, dict]:
    return st.userinfo(_grant(st, call, ("users:read", "profile")))


DATA: Router[DataHandler] = Router()
DATA.add("GET", "/health", _health)
DATA.add("GET", "/v1/holdings", _holdings)
DATA.add("GET", "/v1/integrations", _integrations)
DATA.add("GET", "/v1/userinfo", _userinfo)


class SandboxApp:
    """State plus the sandbox's own knobs (faults, latency, log, clock, webhooks)."""

    def __init__(self, seed: int, grants: int, resync_delay: float, newer_api: bool,
                 webhooks: WebhookConfig | None = None) -> None:
        self.resync_delay = resync_delay
        self.newer_api = newer_api
        self.start_seed, self.start_grants = seed, grants
        self.start_webhooks = webhooks or WebhookConfig()
        self.webhooks = WebhookSender(replace(self.start_webhooks))
        self.lock = threading.Lock()
        self.state: SandboxState | None = None
        self.fault_counter = 0
        self.reset(seed, grants)

    def reset(self, seed: int, grants: int) -> None:
        clock = Clock()
        state = SandboxState(seed, grants, self.resync_delay, self.newer_api, clock,
                             self.webhooks.emit)
        self.webhooks.reset(replace(self.start_webhooks))
        for fault in getattr(self, "faults", ()):
            fault.release.set()  # held answers go out at once
        with self.lock:
            old, self.state = self.state, state
            self.seed, self.grants = seed, grants
            self.clock = clock
            self.faults: list[Fault] = []
            self.fault_counter = 0
            self.latency_ms = 0.0
            self.log: list[dict] = []
            self.log_since = time.time()
        if old is not None:
            old.close()

    def stop(self) -> None:
        """Stop the background threads (webhook deliveries, resync completion timer)."""
        self.webhooks.stop()
        if self.state is not None:
            self.state.close()

    def next_fault_id(self) -> str:
        with self.lock:
            self.fault_counter += 1
            return f"fault_{self.fault_counter}"

    def match_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if not path.startswith(fault.path):
                    continue
                if fault.method and fault.method != method:
                    continue
                if fault.count is not None and fault.count <= 0:
                    continue
                if fault.fraction is not None and fault.rng.random() >= fault.fraction:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                return fault
        return None

    def hold(self, fault: Fault) -> None:
        """Hold a request's answer for the fault's `hold_after_ms`, or until the fault is
        cleared; `holding` counts the requests waiting now."""
        with self.lock:
            fault.holding += 1
            fault.held += 1
        try:
            fault.release.wait(fault.hold_after_ms / 1000)
        finally:
            with self.lock:
                fault.holding -= 1

    def clear_faults(self) -> None:
        """Remove the HTTP faults; held answers go out at once."""
        with self.lock:
            for fault in self.faults:
                fault.release.set()
            self.faults.clear()

    # --- API dispatch -----------------------------------------------------------------------

    def handle_api(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
                   headers: Any) -> tuple[int, dict, dict[str, str]]:
        if path == "/api" or path.startswith("/api/"):
            call = Call(method, path[len("/api"):], query, headers)
            try:
                status, payload = self._data(call)
            except DataFailure as err:
                status, payload = err.status, {"error": err.code, "message": err.message,
                                               "details": err.details}
            return status, payload, {}
        try:
            status, payload = self._connect(Call(method, path, query, headers), body)
        except ConnectFailure as err:
            status, payload = err.status, {"success": False, "error": err.message,
                                           "code": err.code}
        return status, payload, {}

    def _connect(self, call: Call, raw: bytes) -> tuple[int, dict]:
        found = CONNECT.match(call.method, call.path)
        if found.handler is None:
            if found.path_known:
                raise ConnectFailure(405, "METHOD_NOT_ALLOWED",
                                     f"{call.method} is not allowed here")
            raise ConnectFailure(404, "NOT_FOUND", f"No route for {call.method} {call.path}")
        client_id = call.headers.get("X-Client-Id")
        if client_id is None or CLIENTS.get(client_id) != call.headers.get("X-Client-Secret"):
            raise ConnectFailure(401, "INVALID_CLIENT", "Invalid client credentials")
        if call.method != "GET" and raw:
            try:
                call.body = json.loads(raw)
            except ValueError:
                raise ConnectFailure(400, "INVALID_REQUEST", "Body is not valid JSON") from None
            if not isinstance(call.body, dict):
                raise ConnectFailure(400, "INVALID_REQUEST", "Body must be a JSON object")
        call.params = found.params
        return found.handler(self.current, client_id, call)

    def _data(self, call: Call) -> tuple[int, dict]:
        found = DATA.match(call.method, call.path)
        if found.handler is None:
            if found.path_known:
                raise DataFailure(405, "method_not_allowed", f"{call.method} is not allowed here")
            raise DataFailure(404, "not_found", f"No route for {call.method} /api{call.path}")
        call.params = found.params
        return found.handler(self.current, call)

    @property
    def current(self) -> SandboxState:
        state = self.state
        assert state is not None  # set in __init__
        return state

    # --- control (handlers in sandbox/control.py) --------------------------------------------

    def control(self, method: str, path: str, query: dict[str, list[str]],
                raw: bytes) -> tuple[int, dict]:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, {"error": "body is not valid JSON"}
        if not isinstance(body, dict):
            return 400, {"error": "body must be a JSON object"}
        found = CONTROL.match(method, path.rstrip("/"))
        if found.handler is None:
            return 404, {"error": f"no sandbox route {method} {path}"}
        try:
            return found.handler(self, Call(method, path, query, None, body, found.params))
        except (BadControl, ValueError, TypeError) as err:
            return 400, {"error": str(err)}

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()
            self.log_since = time.time()

    def record(self, entry: dict) -> None:
        with self.lock:
            # A request still in flight when the log was cleared (or the sandbox reset), e.g. a
            # slow one whose client timed out, belongs to the log that was cleared.
            if entry["started"] >= self.log_since:
                self.log.append(entry)

def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise DataFailure(400, "invalid_parameters", f"{name} must be 'true' or 'false'",
                      [{"field": name, "issue": "not a boolean"}])


def _int(value: str | None, name: str, default: int, low: int, high: int | None) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise DataFailure(400, "invalid_parameters", f"{name} must be an integer {bound}",
                          [{"field": name, "issue": "out of range"}])
    return number


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KryptosSandbox/1.0"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client waits ~40 ms
    # for its delayed ACK on every call, which no real API adds.
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the sandbox keeps its own request log."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, request_id: str,
              extra: dict[str, str] | None = None) -> None:
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", request_id)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: dict, request_id: str,
                   extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), request_id, extra)

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        started = time.time()
        raw = self._read_body()
        url = urlsplit(self.path)
        path = url.path or "/"
        query = parse_qs(url.query, keep_blank_values=True)
        request_id = "req_" + secrets.token_hex(12)
        self._entry = None
        if path == "/sandbox" or path.startswith("/sandbox/"):
            status, payload = app.control(method, path, query, raw)
            self._send_json(status, payload, request_id)
            return
        # Logged just before the answer is written (see _record), so that a client that has
        # its answer always finds the request in the log.
        self._entry = {
            "method": method,
            "path": path,
            "query": url.query,
            "status": None,
            "started": started,
            "ended": None,
            "client_id": self.headers.get("X-Client-Id"),
            "user_agent": self.headers.get("User-Agent"),
            "request_id": request_id,
        }
        try:
            fault = app.match_fault(method, path)
            delay = app.latency_ms + (fault.latency_ms if fault else 0.0)
            if delay > 0:
                time.sleep(delay / 1000)
            if fault is not None and fault.acts and fault.phase == "before":
                self._send_fault(fault, path, request_id)
                return
            real_status, payload, extra = app.handle_api(method, path, query, raw, self.headers)
            if fault is not None and fault.hold_after_ms:
                app.hold(fault)  # applied: the answer waits (a client may die meanwhile)
            if fault is not None and fault.acts:
                self._send_fault(fault, path, request_id)
                return
            self._send_json(real_status, payload, request_id, extra)
        finally:
            self._record(None)  # a dropped connection (or a crash) is logged with no status

    def _record(self, status: int | None) -> None:
        entry, self._entry = getattr(self, "_entry", None), None
        if entry is not None:
            entry["status"] = status
            entry["ended"] = time.time()
            self.server.app.record(entry)

    def _send_fault(self, fault: Fault, path: str, request_id: str) -> int | None:
        if fault.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                self.log_message("socket already closed")
            return None
        extra = {}
        if fault.retry_after is not None:
            extra["Retry-After"] = str(fault.retry_after)
        if fault.malformed:
            status = fault.status or 200
            self._send(status, MALFORMED_BODY, request_id, extra)
            return status
        status = fault.status or 500
        if path == "/api" or path.startswith("/api/"):
            code = fault.code or DATA_DEFAULT_CODES.get(status, "error")
            payload: dict = {"error": code, "message": fault.message or f"Injected {status}",
                             "details": []}
        else:
            code = fault.code or CONNECT_DEFAULT_CODES.get(status, "ERROR")
            payload = {"success": False, "error": fault.message or f"Injected {status}",
                       "code": code}
        self._send_json(status, payload, request_id, extra)
        return status


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up first (it timed out, or dropped a keep-alive connection) is
        normal for a test double; anything else is printed as the stdlib does."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        super().__init__(address, SandboxHandler)
