"""The routes' dependencies: the backend object, the signed-in customer, the request id and
JSON bodies read through `backend.jsonbody` and validated into the request models.

Bodies are never parsed by FastAPI itself: `jsonbody.loads` refuses deeply nested JSON and
NaN with a 400 (FastAPI's own parser would hit a RecursionError, a 500 with a traceback), and
the webhook receiver needs the raw bytes for its signature check."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from backend import jsonbody
from backend.auth import customer_from_token
from backend.errors import invalid
from backend.models import ErrorBody, RequestModel
from backend.state import Backend

M = TypeVar("M", bound=RequestModel)
T = TypeVar("T")

#: Reads `Authorization: Bearer <JWT>` and documents it; never refuses by itself (the customer
#: dependency answers 401 in the backend's envelope).
bearer = HTTPBearer(auto_error=False, scheme_name="CustomerJWT",
                    description="The company's own sign-in: a JWT whose `sub` is the customer.")


async def get_backend(request: Request) -> Backend:
    """The application's `Backend` (`app.state.backend`). Async, as every dependency that
    does no blocking work: FastAPI runs a plain `def` in its thread pool, a hop to another
    thread and back on every call."""
    backend: Backend = request.app.state.backend
    return backend


BackendDep = Annotated[Backend, Depends(get_backend)]


async def request_id(request: Request) -> str:
    """The call's `X-Request-Id` (set by the RequestId middleware)."""
    return str(getattr(request.state, "request_id", "") or f"bk_{uuid.uuid4().hex[:16]}")


RequestId = Annotated[str, Depends(request_id)]


async def signed_in(b: BackendDep, credentials: Annotated[
        HTTPAuthorizationCredentials | None, Security(bearer)]) -> str:
    """The signed-in customer's reference (401 otherwise). A JWT check, no I/O: it runs on
    the event loop."""
    return customer_from_token(credentials.credentials if credentials else None, b.jwt)


SignedIn = Annotated[str, Depends(signed_in)]


async def in_thread(work: Callable[[], T]) -> T:
    """Run a customer endpoint's blocking work (the rate limit, the body, the service) in
    the thread pool, all of it in one hop. A plain `def` endpoint with a `def` dependency
    costs FastAPI three (the dependency, the endpoint, then the answer's validation)."""
    return await run_in_threadpool(work)


async def raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def json_body(model: type[M], *, optional: bool = False) -> Callable[..., Awaitable[M]]:
    """A dependency: the body as `model`. Not JSON, too deep, not an object or not valid for
    the model -> 400 INVALID_REQUEST with the model's own sentence. `optional`: an empty body
    is `{}`."""

    async def read(raw: RawBody) -> M:
        return parse_body(model, raw, optional=optional)

    return read


def parse_body(model: type[M], raw: bytes, *, optional: bool = False) -> M:
    """`raw` as `model` (see `json_body`), for an endpoint that reads its body itself."""
    value: Any = {} if optional and not raw.strip() else jsonbody.loads(raw)
    if not isinstance(value, dict):
        raise invalid("The request body must be a JSON object.")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise invalid(model.refusal(exc)) from None


def body_schema(model: type[Any], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` documenting a body that a dependency reads (FastAPI's idiom for a body
    parsed by the application: the model's JSON schema under requestBody)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": schema}}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` documenting the error envelope for these statuses."""
    return {s: {"model": ErrorBody, "description": _WHAT.get(s, "Error")} for s in statuses}


_WHAT = {
    400: "INVALID_REQUEST: not JSON, too deep, too large, or a field is wrong",
    401: "UNAUTHENTICATED: the bearer token is missing or invalid (or a webhook signature)",
    404: "NOT_FOUND / NO_GRANT",
    409: "The token was used, expired or is invalid; connect again",
    429: "RATE_LIMITED (Retry-After)",
    500: "INTERNAL_ERROR / STORE_ERROR",
    502: "UPSTREAM_ERROR (upstream_code)",
    503: "UPSTREAM_UNAVAILABLE (Retry-After when Kryptos sent one)",
}

__all__ = ["BackendDep", "RawBody", "RequestId", "SignedIn", "bearer", "body_schema", "errors",
           "get_backend", "in_thread", "json_body", "parse_body", "request_id", "signed_in"]
