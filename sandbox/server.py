"""HTTP layer of the sandbox: routing, auth headers, faults, latency and the request log."""

from __future__ import annotations

import json
import random
import re
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.data import CLIENTS, MAIN_CLIENT
from sandbox.state import Clock, ConnectFailure, DataFailure, SandboxState

RESYNC_PATH = re.compile(r"^/developer/integrations/([^/]+)/resync$")
LIMIT_PATH = re.compile(r"^/developer/grants/([^/]+)/transaction-limit$")
CONNECT_DEFAULT_CODES = {400: "INVALID_REQUEST", 401: "INVALID_CLIENT", 403: "ACCESS_DENIED",
                         404: "NOT_FOUND", 409: "CONFLICT", 429: "RATE_LIMITED",
                         500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE",
                         504: "GATEWAY_TIMEOUT"}
DATA_DEFAULT_CODES = {400: "invalid_parameters", 401: "unauthorized", 403: "forbidden",
                      404: "not_found", 429: "rate_limit_exceeded", 500: "internal_error",
                      502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}
MALFORMED_BODY = b'{"success": true, "data": {"grants": [<html>upstream proxy error'


@dataclass
class Fault:
    id: str
    path: str
    method: str | None
    status: int | None
    code: str | None
    message: str | None
    count: int | None
    fraction: float | None
    latency_ms: float
    malformed: bool
    drop: bool
    retry_after: float | None
    phase: str
    rng: random.Random

    @property
    def acts(self) -> bool:
        """Whether it replaces the answer (else it only adds latency)."""
        return self.drop or self.malformed or self.status is not None


class BadControl(ValueError):
    """A /sandbox/* control request with wrong arguments (answered 400)."""


def parse_fault(spec: dict, fault_id: str, seed: int) -> Fault:
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadControl("path (a prefix starting with '/') is required")
    phase = spec.get("phase", "before")
    if phase not in ("before", "after"):
        raise BadControl("phase must be 'before' or 'after'")
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise BadControl("status must be an HTTP status code")
    count = spec.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise BadControl("count must be a positive integer")
    fraction = spec.get("fraction")
    if fraction is not None and (not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1):
        raise BadControl("fraction must be between 0 and 1")
    method = spec.get("method")
    return Fault(
        id=fault_id, path=path, method=method.upper() if isinstance(method, str) else None,
        status=status, code=spec.get("code"), message=spec.get("message"), count=count,
        fraction=float(fraction) if fraction is not None else None,
        latency_ms=float(spec.get("latency_ms") or 0), malformed=bool(spec.get("malformed")),
        drop=bool(spec.get("drop")), retry_after=spec.get("retry_after"), phase=phase,
        rng=random.Random(f"{seed}:fault:{fault_id}"),
    )


class SandboxApp:
    """State plus the sandbox's own knobs (faults, latency, log, clock)."""

    def __init__(self, seed: int, grants: int, resync_delay: float, newer_api: bool) -> None:
        self.resync_delay = resync_delay
        self.newer_api = newer_api
        self.start_seed, self.start_grants = seed, grants
        self.lock = threading.Lock()
        self.reset(seed, grants)

    def reset(self, seed: int, grants: int) -> None:
        clock = Clock()
        state = SandboxState(seed, grants, self.resync_delay, self.newer_api, clock)
        with self.lock:
            self.seed, self.grants = seed, grants
            self.clock = clock
            self.state = state
            self.faults: list[Fault] = []
            self.fault_counter = 0
            self.latency_ms = 0.0
            self.log: list[dict] = []
            self.log_since = time.time()

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

    # --- API dispatch -----------------------------------------------------------------------

    def handle_api(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
                   headers: Any) -> tuple[int, dict, dict[str, str]]:
        if path == "/api" or path.startswith("/api/"):
            try:
                status, payload = self._data(method, path[len("/api"):], query, headers)
            except DataFailure as err:
                status, payload = err.status, {"error": err.code, "message": err.message,
                                               "details": err.details}
            return status, payload, {}
        try:
            status, payload = self._connect(method, path, body, headers)
        except ConnectFailure as err:
            status, payload = err.status, {"success": False, "error": err.message,
                                           "code": err.code}
        return status, payload, {}

    def _connect(self, method: str, path: str, raw: bytes, headers: Any) -> tuple[int, dict]:
        routes = {
            ("POST", "/link-token"): "link",
            ("POST", "/link-token/check-session"): "check",
            ("POST", "/token/exchange"): "exchange",
            ("POST", "/token/revoke"): "revoke",
            ("GET", "/token/grants"): "grants",
        }
        route = routes.get((method, path))
        resync = RESYNC_PATH.match(path)
        limit = LIMIT_PATH.match(path)
        known_paths = {p for _, p in routes}
        if route is None and not (resync and method == "POST") and not (
                limit and method == "PATCH"):
            if path in known_paths or resync or limit:
                raise ConnectFailure(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here")
            raise ConnectFailure(404, "NOT_FOUND", f"No route for {method} {path}")
        client_id = headers.get("X-Client-Id")
        if client_id is None or CLIENTS.get(client_id) != headers.get("X-Client-Secret"):
            raise ConnectFailure(401, "INVALID_CLIENT", "Invalid client credentials")
        body: dict = {}
        if method != "GET" and raw:
            try:
                body = json.loads(raw)
            except ValueError:
                raise ConnectFailure(400, "INVALID_REQUEST", "Body is not valid JSON") from None
            if not isinstance(body, dict):
                raise ConnectFailure(400, "INVALID_REQUEST", "Body must be a JSON object")
        st = self.state
        if route == "link":
            return st.create_link_token(client_id, body)
        if route == "check":
            return st.check_session(client_id, body)
        if route == "exchange":
            return st.exchange(client_id, body)
        if route == "revoke":
            return st.revoke(client_id, body)
        if route == "grants":
            return st.list_grants(client_id)
        if resync:
            return st.resync(client_id, resync.group(1), body)
        assert limit is not None
        return st.transaction_limit(client_id, limit.group(1), body)

    def _data(self, method: str, path: str, query: dict[str, list[str]],
              headers: Any) -> tuple[int, dict]:
        routes = {"/health": None, "/v1/holdings": ("portfolios:read",),
                  "/v1/integrations": ("integrations:read",),
                  "/v1/userinfo": ("users:read", "profile")}
        if path not in routes:
            raise DataFailure(404, "not_found", f"No route for {method} /api{path}")
        if method != "GET":
            raise DataFailure(405, "method_not_allowed", f"{method} is not allowed here")
        if path == "/health":
            return 200, {"status": "OK", "service": "connect-apis", "version": "1.0.0",
                         "environment": "sandbox"}
        st = self.state
        grant = st.data_grant(headers.get("X-Client-Id"), headers.get("X-Client-Secret"),
                              headers.get("Authorization"), routes[path] or ())

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        if path == "/v1/holdings":
            return st.holdings(grant, _flag(one("isSpam"), "isSpam"),
                               _flag(one("calculatedBalances"), "calculatedBalances"))
        if path == "/v1/integrations":
            page = _int(one("page"), "page", 1, 1, None)
            size = _int(one("pageSize"), "pageSize", 25, 1, 200)
            return st.integrations(grant, page, size, one("searchedKey"))
        return st.userinfo(grant)

    # --- control ----------------------------------------------------------------------------

    def control(self, method: str, path: str, query: dict[str, list[str]],
                raw: bytes) -> tuple[int, dict]:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, {"error": "body is not valid JSON"}
        if not isinstance(body, dict):
            return 400, {"error": "body must be a JSON object"}
        try:
            return self._control(method, path, query, body)
        except (BadControl, ValueError, TypeError) as err:
            return 400, {"error": str(err)}

    def _control(self, method: str, path: str, query: dict[str, list[str]],
                 body: dict) -> tuple[int, dict]:
        key = (method, path.rstrip("/"))
        if key == ("POST", "/sandbox/reset"):
            seed = body.get("seed")
            grants = body.get("grants")
            self.reset(self.start_seed if seed is None else int(seed),
                       self.start_grants if grants is None else int(grants))
            return 200, {"ok": True, "seed": self.seed, "grants": self.grants}
        if key == ("POST", "/sandbox/public-token"):
            return 200, self.state.create_public_token(body)
        if key == ("GET", "/sandbox/tokens"):
            client_id = (query.get("client_id") or [MAIN_CLIENT])[-1]
            return 200, {"tokens": self.state.export_tokens(client_id)}
        if key == ("GET", "/sandbox/scenarios"):
            return 200, self.state.scenarios()
        if key == ("POST", "/sandbox/faults"):
            with self.lock:
                self.fault_counter += 1
                fault = parse_fault(body, f"fault_{self.fault_counter}", self.seed)
                self.faults.append(fault)
            return 200, {"id": fault.id}
        if key == ("DELETE", "/sandbox/faults"):
            with self.lock:
                self.faults.clear()
            return 200, {"ok": True}
        if key == ("GET", "/sandbox/faults"):
            with self.lock:
                return 200, {"faults": [{"id": f.id, "path": f.path, "count": f.count}
                                        for f in self.faults]}
        if key == ("POST", "/sandbox/latency"):
            ms = body.get("ms")
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
                raise BadControl("ms must be a number >= 0")
            self.latency_ms = float(ms)
            return 200, {"ok": True, "ms": self.latency_ms}
        if key == ("GET", "/sandbox/requests"):
            with self.lock:
                return 200, {"requests": list(self.log)}
        if key == ("DELETE", "/sandbox/requests"):
            with self.lock:
                self.log.clear()
                self.log_since = time.time()
            return 200, {"ok": True}
        if key == ("POST", "/sandbox/clock"):
            seconds = body.get("advance_seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise BadControl("advance_seconds must be a number >= 0")
            self.clock.advance(float(seconds))
            return 200, {"ok": True, "now": self.clock.now(), "offset": self.clock.offset}
        return 404, {"error": f"no sandbox route {method} {path}"}

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
