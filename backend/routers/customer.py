"""The Web SDK's endpoints under `/api/kryptos/`: bearer JWT (the `Customer` dependency,
which also applies the per-customer rate limit; `LinkTokenCustomer` adds the link-token
limit in the same transaction), bodies through `json_body`, the logic in
`backend.service.CustomerService`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from backend.deps import (
    BackendDep,
    Customer,
    LinkTokenCustomer,
    RequestId,
    body_schema,
    errors,
    json_body,
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

Empty = Annotated[EmptyRequest, Depends(json_body(EmptyRequest, optional=True))]


@router.post("/create-link-token", response_model=LinkTokenAnswer,
             openapi_extra=body_schema(EmptyRequest, required=False))
def create_link_token(ref: LinkTokenCustomer, _body: Empty, b: BackendDep,
                      rid: RequestId) -> LinkTokenAnswer:
    """A link token for the widget; it resumes the customer's stored connection if any."""
    return b.service.create_link_token(ref, rid)


@router.post("/exchange-token", response_model=Success, responses=errors(409),
             openapi_extra=body_schema(ExchangeRequest))
def exchange_token(ref: Customer, body: Annotated[ExchangeRequest, Depends(
        json_body(ExchangeRequest))], b: BackendDep, rid: RequestId) -> Success:
    """Exchange the widget's public token once and keep the connection for the customer."""
    return b.service.exchange_token(ref, body.public_token, rid)


@router.get("/session", response_model=SessionAnswer, response_model_exclude_none=True)
def session(ref: Customer, b: BackendDep, rid: RequestId) -> SessionAnswer:
    """Whether the customer's stored connection still works."""
    return b.service.session(ref, rid)


@router.post("/disconnect", response_model=Success, responses=errors(404),
             openapi_extra=body_schema(EmptyRequest, required=False))
def disconnect(ref: Customer, _body: Empty, b: BackendDep, rid: RequestId) -> Success:
    """Revoke the customer's connection at Kryptos and mark it revoked here."""
    return b.service.disconnect(ref, rid)


@router.get("/holdings", response_model=HoldingsAnswer, responses=errors(404, 409))
def holdings(ref: Customer, b: BackendDep, rid: RequestId) -> HoldingsAnswer:
    """The customer's holdings, in the data API's own shape."""
    return b.service.holdings(ref, rid)
