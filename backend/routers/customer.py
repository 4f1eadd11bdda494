"""The Web SDK's endpoints under `/api/kryptos/`: bearer JWT (`SignedIn`, 401), then in one
thread-pool hop (`in_thread`) the per-customer rate limit (`CustomerService.admit`, 429; for
create-link-token the link-token limit too, in the same transaction), the body
(`parse_body`, 400) and the logic in `backend.service.CustomerService`: the same order of
refusals as dependencies would give, without FastAPI's hop per dependency and answer."""

from __future__ import annotations

from fastapi import APIRouter

from backend.deps import (
    BackendDep,
    RawBody,
    RequestId,
    SignedIn,
    body_schema,
    errors,
    in_thread,
    parse_body,
)
from backend.models import (
    EmptyRequest,
    ExchangeRequest,
    HoldingsAnswer,
    LinkTokenAnswer,
    SessionAnswer,
    Success,
)

router = APIRouter(prefix="/api/kryptos", tags=["customer"],
                   responses=errors(400, 401, 429, 500, 502, 503))


@router.post("/create-link-token", response_model=LinkTokenAnswer,
             openapi_extra=body_schema(EmptyRequest, required=False))
async def create_link_token(ref: SignedIn, raw: RawBody, b: BackendDep,
                            rid: RequestId) -> LinkTokenAnswer:
    """A link token for the widget; it resumes the customer's stored connection if any."""

    def work() -> LinkTokenAnswer:
        b.service.admit(ref, rid, link_token=True)
        parse_body(EmptyRequest, raw, optional=True)
        return b.service.create_link_token(ref, rid)

    return await in_thread(work)


@router.post("/exchange-token", response_model=Success, responses=errors(409),
             openapi_extra=body_schema(ExchangeRequest))
async def exchange_token(ref: SignedIn, raw: RawBody, b: BackendDep, rid: RequestId) -> Success:
    """Exchange the widget's public token once and keep the connection for the customer."""

    def work() -> Success:
        b.service.admit(ref, rid)
        body = parse_body(ExchangeRequest, raw)
        return b.service.exchange_token(ref, body.public_token, rid)

    return await in_thread(work)


@router.get("/session", response_model=SessionAnswer, response_model_exclude_none=True)
async def session(ref: SignedIn, b: BackendDep, rid: RequestId) -> SessionAnswer:
    """Whether the customer's stored connection still works."""

    def work() -> SessionAnswer:
        b.service.admit(ref, rid)
        return b.service.session(ref, rid)

    return await in_thread(work)


@router.post("/disconnect", response_model=Success, responses=errors(404),
             openapi_extra=body_schema(EmptyRequest, required=False))
async def disconnect(ref: SignedIn, raw: RawBody, b: BackendDep, rid: RequestId) -> Success:
    """Revoke the customer's connection at Kryptos and mark it revoked here."""

    def work() -> Success:
        b.service.admit(ref, rid)
        parse_body(EmptyRequest, raw, optional=True)
        return b.service.disconnect(ref, rid)

    return await in_thread(work)


@router.get("/holdings", response_model=HoldingsAnswer, responses=errors(404, 409))
async def holdings(ref: SignedIn, b: BackendDep, rid: RequestId) -> HoldingsAnswer:
    """The customer's holdings, in the data API's own shape."""

    def work() -> HoldingsAnswer:
        b.service.admit(ref, rid)
        return b.service.holdings(ref, rid)

    return await in_thread(work)
