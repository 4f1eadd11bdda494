"""`create_app()`: the backend's FastAPI application (see backend/__init__.py).

Routes: the customer endpoints under `/api/kryptos/` (bearer JWT), the webhook receiver
`POST /api/kryptos/webhooks` (signed), `/healthz`, `/readyz`, and in sandbox mode the demo
customer app under `/demo` when BACKEND_DEMO asks for it. Every error is
`{"success": false, "error", "code"}`."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import jsonbody
from backend.auth import (
    JwtConfig,
    customer_from_header,
    jwt_config,
    mint_demo_token,
    valid_customer_ref,
)
from backend.errors import ApiError, invalid
from backend.exchange import ExchangeOnce
from backend.ratelimit import RateLimiter
from backend.service import CustomerService
from backend.webhook_auth import Clock, WebhookVerifier, verifier_for
from backend.webhooks import Hook, WebhookHub
from services.kryptos.client import KryptosClient
from services.private_files import prepare_data_dir
from services.settings import ConfigError, Settings, load_settings
from services.store import (
    AuditLog,
    AuditTrail,
    Database,
    TokenVault,
    load_vault_key,
    open_database,
)
from services.store.readmodel import ReadModel
from services.sync.webhooks import readmodel_hook

log = logging.getLogger("backend")

MAX_BODY = 64 * 1024
STATIC = Path(__file__).resolve().parent / "static"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")


@dataclass
class Backend:
    """What the routes share (`app.state.backend`)."""

    settings: Settings
    client: KryptosClient
    db: Database
    vault: TokenVault
    audit: AuditLog
    jwt: JwtConfig
    service: CustomerService
    hub: WebhookHub
    #: Checks webhook signatures (backend/webhook_auth.py); None: no secret, all refused.
    webhook_verifier: WebhookVerifier | None = None
    sandbox_url: str | None = None
    _stops: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def problems(self) -> list[str]:
        """What keeps the backend from serving (no secret ever in the text)."""
        out = []
        if not self.jwt.complete:
            out.append("Set BACKEND_JWT_SECRET or BACKEND_JWT_PUBLIC_KEY (customer sign-in).")
        if not self.settings.effective_webhook_secret:
            out.append("Set KRYPTOS_WEBHOOK_SECRET (webhook signatures).")
        try:
            with self.db.read() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready"
            out.append(f"The database is not reachable ({type(exc).__name__}).")
        return out

    def close(self) -> None:
        for stop in reversed(self._stops):
            stop()
        self._stops.clear()


class BodyLimit:
    """Refuse request bodies over `limit` bytes (declared or streamed) with a 400."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = invalid(f"The request body is larger than {self.limit // 1024} KB.")
        await JSONResponse(err.body(), status_code=400)(scope, receive, send)


class RequestId:
    """Every answer carries `X-Request-Id`: the caller's (when sane) or a new one; the same
    id goes into the audit events of the call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID_RE.match(given) else f"bk_{uuid.uuid4().hex[:16]}"
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or f"bk_{uuid.uuid4().hex[:16]}")


async def raw_body(request: Request) -> bytes:
    return await request.body()


def parse_json(raw: bytes, *, optional: bool = False) -> Any:
    if optional and not raw.strip():
        return {}
    value = jsonbody.loads(raw)
    if not isinstance(value, dict):
        raise invalid("The request body must be a JSON object.")
    return value


def _error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=dict(err.headers))


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: ("NOT_FOUND", "No such endpoint."),
                 405: ("METHOD_NOT_ALLOWED", "This endpoint does not take that method.")}
        code, message = codes.get(exc.status_code, ("INVALID_REQUEST", "Invalid request."))
        return _error_response(ApiError(exc.status_code, code, message))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s in %s %s", type(exc).__name__, request.method,
                  request.url.path)
        return _error_response(ApiError(500, "INTERNAL_ERROR", "The backend had an internal "
                                        "error; try again later."))


def _build_backend(settings: Settings, client: KryptosClient | None, db: Database | None,
                   sandbox_url: str | None, on_event: Iterable[Hook], clock: Clock) -> Backend:
    prepare_data_dir(settings)  # the data folder 0700, new files 0600; loose modes logged
    stops: list[Callable[[], None]] = []
    verifier = verifier_for(settings, clock)  # a bad secret fails here, before anything starts
    if client is None:
        if settings.sandbox_mode:
            base = sandbox_url or settings.sandbox_url
            if base is None:
                from sandbox import start_sandbox

                handle = start_sandbox(port=settings.sandbox_port,
                                       resync_delay=settings.sandbox_resync_delay)
                base = handle.base_url
                stops.append(handle.stop)
            sandbox_url = base
            client = KryptosClient.from_settings(settings, connect_url=base,
                                                 data_url=base + "/api")
        else:
            client = KryptosClient.from_settings(settings)
        stops.append(client.close)
    if db is None:
        db = open_database(settings.effective_database_url)
        stops.append(db.dispose)
    vault = TokenVault(db, load_vault_key(settings))
    anchor = settings.effective_audit_anchor_file
    if settings.audit_anchor_file is None:
        anchor.parent.mkdir(parents=True, exist_ok=True)
    audit = AuditLog(db, anchor_file=anchor)
    stops.append(audit.flush_anchor)
    readmodel = ReadModel(db, settings.tiers)
    hub = WebhookHub(db, vault, [readmodel_hook(readmodel), *on_event])
    service = CustomerService(client, vault, AuditTrail(audit),
                              RateLimiter(db, settings.link_token_rate_limit, clock=clock),
                              ExchangeOnce(db), on_user_learned=hub.attach_user,
                              readmodel=readmodel,
                              customer_limiter=RateLimiter(db, settings.customer_rate_limit,
                                                           clock=clock))
    return Backend(settings, client, db, vault, audit, jwt_config(settings), service, hub,
                   verifier, sandbox_url if settings.sandbox_mode else None, stops)


def create_app(settings: Settings | None = None, *, client: KryptosClient | None = None,
               db: Database | None = None, sandbox_url: str | None = None,
               on_event: Iterable[Hook] = (), clock: Clock = time.time) -> FastAPI:
    """The application. `client`/`db` are used as given (the caller closes them); otherwise
    built from the settings. In sandbox mode `sandbox_url` (else SANDBOX_URL, else a sandbox
    started here) is the sandbox the client and the demo talk to. `on_event`: webhook hooks
    (more can be added later to `app.state.backend.hub.on_event`). `clock`: the time the
    webhook window and the rate limits are measured against (tests make it exact)."""
    settings = settings or load_settings()
    if settings.backend_demo and not settings.sandbox_mode:
        raise ConfigError("BACKEND_DEMO hands out customer tokens without sign-in: it is only "
                          "for sandbox mode (no Kryptos credentials). Unset it.")
    backend = _build_backend(settings, client, db, sandbox_url, on_event, clock)
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        backend.close()

    app = FastAPI(title="Kryptos Connect backend", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    app.state.backend = backend
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestId)  # added last: outermost, so refusals carry the id too
    _install_handlers(app)
    _customer_routes(app, backend)
    _webhook_routes(app, backend)
    _health_routes(app, backend)
    _demo_routes(app, backend)
    return app


def _customer_routes(app: FastAPI, b: Backend) -> None:
    def customer(request: Request) -> str:
        """The signed-in customer, admitted by its rate limit (every route below uses it)."""
        ref = customer_from_header(request.headers.get("authorization"), b.jwt)
        b.service.admit(ref)
        return ref

    @app.post("/api/kryptos/create-link-token")
    def create_link_token(request: Request, ref: str = Depends(customer),
                          raw: bytes = Depends(raw_body)) -> dict:
        parse_json(raw, optional=True)
        return b.service.create_link_token(ref, request_id(request))

    @app.post("/api/kryptos/exchange-token")
    def exchange_token(request: Request, ref: str = Depends(customer),
                       raw: bytes = Depends(raw_body)) -> dict:
        return b.service.exchange_token(ref, parse_json(raw), request_id(request))

    @app.get("/api/kryptos/session")
    def session(request: Request, ref: str = Depends(customer)) -> dict:
        return b.service.session(ref, request_id(request))

    @app.post("/api/kryptos/disconnect")
    def disconnect(request: Request, ref: str = Depends(customer),
                   raw: bytes = Depends(raw_body)) -> dict:
        parse_json(raw, optional=True)
        return b.service.disconnect(ref, request_id(request))

    @app.get("/api/kryptos/holdings")
    def holdings(request: Request, ref: str = Depends(customer)) -> dict:
        return b.service.holdings(ref, request_id(request))


def _webhook_routes(app: FastAPI, b: Backend) -> None:
    @app.post("/api/kryptos/webhooks")
    def webhooks(request: Request, tasks: BackgroundTasks,
                 raw: bytes = Depends(raw_body)) -> dict:
        if b.webhook_verifier is None:
            raise ApiError(401, "UNAUTHENTICATED", "Webhooks are not configured on this "
                           "backend.")
        headers = {k.lower(): v for k, v in request.headers.items()}
        delivery = b.webhook_verifier.verify(raw, headers)
        row_id, new = b.hub.store(raw, delivery)
        event = None if new else b.hub.get(row_id)
        if new or (event is not None and event.processed_at is None):
            tasks.add_task(b.hub.process, row_id)  # after the answer is sent
        return {"success": True, "duplicate": not new}


def _health_routes(app: FastAPI, b: Backend) -> None:
    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        problems = b.problems()
        if problems:
            return JSONResponse({"status": "not_ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready",
                             "mode": "sandbox" if b.settings.sandbox_mode else "live"})


def _demo_only(b: Backend) -> None:
    """The demo hands out customer tokens without sign-in: it exists only when demo mode was
    asked for (BACKEND_DEMO, which needs sandbox mode); otherwise it is not there at all."""
    if not b.settings.backend_demo or not b.settings.sandbox_mode or b.sandbox_url is None:
        raise ApiError(404, "NOT_FOUND", "No such endpoint.")


def _demo_routes(app: FastAPI, b: Backend) -> None:
    @app.get("/demo")
    def demo() -> HTMLResponse:
        _demo_only(b)
        return HTMLResponse((STATIC / "demo.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store"})

    @app.get("/demo/token")
    def demo_token(customer: str = "demo-customer") -> dict:
        _demo_only(b)
        ref = valid_customer_ref(customer)
        if ref is None:
            raise invalid("customer must be one line of at most 320 characters.")
        return {"token": mint_demo_token(b.jwt, ref), "customer": ref}

    @app.post("/demo/widget")
    def demo_widget(raw: bytes = Depends(raw_body)) -> dict:
        """The sandbox has no widget page: this plays the customer finishing the widget
        opened with `link_token`, through the sandbox's `POST /sandbox/public-token`."""
        _demo_only(b)
        body = parse_json(raw)
        link_token, kind = body.get("link_token"), body.get("kind", "guest")
        if not isinstance(link_token, str) or not link_token.startswith("link_"):
            raise invalid("link_token is required.")
        if kind not in ("guest", "linked"):
            raise invalid("kind must be guest or linked.")
        return _play_widget(b, link_token, kind)


def _play_widget(b: Backend, link_token: str, kind: str) -> dict:
    from sandbox import SandboxClient
    from sandbox.handle import SandboxControlError

    try:
        answer = SandboxClient(str(b.sandbox_url)).create_public_token(
            kind=kind, link_token=link_token)
    except SandboxControlError:
        raise ApiError(409, "WIDGET_FAILED", "The sandbox widget refused the link token; "
                       "create a new one.") from None
    except OSError:
        raise ApiError(503, "UPSTREAM_UNAVAILABLE", "The sandbox is not reachable.") from None
    return {"public_token": answer.get("public_token"), "resumed": bool(answer.get("resumed"))}
