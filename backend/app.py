"""`create_app()`: the backend's FastAPI application (see backend/__init__.py).

Routes: the customer endpoints under `/api/kryptos/` (bearer JWT), the webhook receiver
`POST /api/kryptos/webhooks` (signed), `/healthz`, `/readyz`, and in sandbox mode the demo
customer app under `/demo` when BACKEND_DEMO asks for it: one router each in
backend/routers/, the shared objects through the dependencies of backend/deps.py, every body
and answer a model of backend/models.py (`/openapi.json`, `/docs`). Every error is the
envelope `{"success": false, "error", "code"}` (`ErrorBody`)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.auth import jwt_config
from backend.errors import ApiError, invalid
from backend.exchange import ExchangeOnce
from backend.metrics import Metrics
from backend.ratelimit import RateLimiter
from backend.routers import customer, demo, health, webhooks
from backend.service import CustomerService
from backend.state import Backend
from backend.webhook_auth import Clock, verifier_for
from backend.webhooks import Hook, WebhookHub
from services.kryptos.client import KryptosClient
from services.logs import log_context
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
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")


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
        with log_context(request_id=rid):
            await self._answer(scope, receive, send, rid)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


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
    # A call's `requested` event waits for the disk before Kryptos is asked; its outcome
    # (and a read's or a refusal's single event) does not: it survives a crash of the
    # process, and a crash of the machine may lose it, leaving the call `requested`.
    trail = AuditTrail(audit, outcomes_wait_for_disk=False)
    service = CustomerService(client, vault, trail,
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

    app = FastAPI(title="Kryptos Connect backend", version="1",
                  description="The company's backend for the Kryptos Connect Web SDK: the "
                  "customer endpoints (bearer JWT), the signed webhook receiver, health. "
                  "Every error is the envelope `ErrorBody`.",
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
                  lifespan=lifespan)
    app.state.backend = backend
    app.add_middleware(BodyLimit)
    app.add_middleware(Metrics)  # outside BodyLimit: a refused body is counted too
    app.add_middleware(RequestId)  # added last: outermost, so refusals carry the id too
    _install_handlers(app)
    app.include_router(customer.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(demo.router, include_in_schema=backend.demo_on)
    return app
