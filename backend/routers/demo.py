"""The demo customer app (sandbox mode with BACKEND_DEMO on): `/demo`, `/demo/token`,
`/demo/widget`. It hands out customer tokens without sign-in, so otherwise every route here
answers 404 NOT_FOUND, as if absent (the `demo_only` dependency)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from backend.auth import CUSTOMER_REF_RULE, mint_demo_token, valid_customer_ref
from backend.deps import BackendDep, body_schema, errors, json_body
from backend.errors import ApiError, invalid
from backend.models import DemoToken, DemoWidgetAnswer, DemoWidgetRequest
from backend.state import Backend

STATIC = Path(__file__).resolve().parent.parent / "static"


def demo_only(b: BackendDep) -> None:
    if not b.demo_on:
        raise ApiError(404, "NOT_FOUND", "No such endpoint.")


router = APIRouter(prefix="/demo", tags=["demo"], dependencies=[Depends(demo_only)],
                   responses=errors(400, 404))


@router.get("", response_class=HTMLResponse)
def page() -> HTMLResponse:
    return HTMLResponse((STATIC / "demo.html").read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-store"})


@router.get("/token", response_model=DemoToken, responses=errors(409))
def token(b: BackendDep, customer: str = "demo-customer") -> DemoToken:
    """A customer JWT for `customer` (HS256, one hour)."""
    ref = valid_customer_ref(customer)
    if ref is None:
        raise invalid(f"customer is not a customer reference. {CUSTOMER_REF_RULE}")
    return DemoToken(token=mint_demo_token(b.jwt, ref), customer=ref)


@router.post("/widget", response_model=DemoWidgetAnswer, responses=errors(409, 503),
             openapi_extra=body_schema(DemoWidgetRequest))
def widget(body: Annotated[DemoWidgetRequest, Depends(json_body(DemoWidgetRequest))],
           b: BackendDep) -> DemoWidgetAnswer:
    """The sandbox has no widget page: this plays the customer finishing the widget opened
    with `link_token`, through the sandbox's `POST /sandbox/public-token`."""
    return _play_widget(b, body.link_token, body.kind)


def _play_widget(b: Backend, link_token: str, kind: str) -> DemoWidgetAnswer:
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
    return DemoWidgetAnswer(public_token=answer.get("public_token"),
                            resumed=bool(answer.get("resumed")))
