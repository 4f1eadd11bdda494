"""The backend's contract as Pydantic models: every request body, every answer and the error
envelope. The routes declare them (`response_model`, `responses`, the request schemas), so
`/openapi.json` and `/docs` describe what the Web SDK sends and receives.

Request models say why a body is refused (`refusal`): the 400 INVALID_REQUEST message of
`backend.deps.json_body`, a fixed sentence per model, never Pydantic's own text."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

PUBLIC_TOKEN_RE = re.compile(r"^public_[A-Za-z0-9_\-]{1,500}$")

# --- the error envelope ---------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error answer: `{"success": false, "error": <plain sentence>, "code": <CODE>}`;
    `upstream_code` (Kryptos' code) on 502 UPSTREAM_ERROR and 503 from a Kryptos outage."""

    model_config = ConfigDict(extra="allow")

    success: Literal[False] = False
    error: str = Field(description="A plain sentence for the customer; never Kryptos' text.")
    code: str = Field(description="Machine-readable: INVALID_REQUEST, UNAUTHENTICATED, "
                                  "RATE_LIMITED, NO_GRANT, TOKEN_ALREADY_USED, ...")
    upstream_code: str | None = Field(default=None, description="Kryptos' error code.")


# --- requests -------------------------------------------------------------------------------


class RequestModel(BaseModel):
    """A JSON object body; unknown fields are ignored (the Web SDK may send more)."""

    model_config = ConfigDict(extra="ignore")

    #: The 400 message when the body does not validate.
    refusal_message: ClassVar[str] = "The request body is not valid."

    @classmethod
    def refusal(cls, exc: ValidationError) -> str:
        return cls.refusal_message


class EmptyRequest(RequestModel):
    """No field is read: the body may be empty or any JSON object."""


class ExchangeRequest(RequestModel):
    """The widget's public token, or null when a returning customer's run created none."""

    public_token: StrictStr | None = Field(
        description="A Kryptos public token (public_...), or null: nothing to exchange.")

    @field_validator("public_token")
    @classmethod
    def _public_token(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not PUBLIC_TOKEN_RE.match(value):
            raise ValueError("not a Kryptos public token")
        return value

    @classmethod
    def refusal(cls, exc: ValidationError) -> str:
        if any(e["type"] == "missing" for e in exc.errors()):
            return "Send a JSON object with public_token (a string, or null)."
        return "public_token must be a Kryptos public token (public_...) or null."


class DemoWidgetRequest(RequestModel):
    """The demo's stand-in for the customer finishing the widget."""

    link_token: StrictStr = Field(pattern=r"^link_", description="From create-link-token.")
    kind: Literal["guest", "linked"] = "guest"

    @classmethod
    def refusal(cls, exc: ValidationError) -> str:
        if any(e["loc"][:1] == ("link_token",) for e in exc.errors()):
            return "link_token is required."
        return "kind must be guest or linked."


class WebhookDelivery(BaseModel):
    """A Kryptos webhook (Standard Webhooks): signed over the raw body, so the receiver reads
    bytes; these are the fields it uses. Other fields are kept as sent."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    event: str | None = Field(default=None, description="The type; `type` is also read.")
    type: str | None = None
    data: dict[str, Any] | None = Field(default=None, description="grant_id, uid, ...")


# --- answers --------------------------------------------------------------------------------


class LinkTokenAnswer(BaseModel):
    link_token: str
    isAuthorized: bool = Field(description="True: the widget resumes the stored connection.")


class Success(BaseModel):
    success: Literal[True] = True


class SessionAnswer(BaseModel):
    """The check-session answer for the stored connection; absent fields are left out."""

    has_valid_session: bool
    reason: str | None = Field(default=None, description="no_token when none is stored.")
    user_id: str | None = None
    workspace_id: str | None = None
    workspace_name: str | None = None
    granted_scopes: str | None = None
    grant_id: str | None = None


class HoldingAsset(BaseModel):
    tokenId: str
    symbol: str
    publicName: str
    chainId: str | None
    logoUrl: str | None
    type: str
    category: str | None


class HoldingAccount(BaseModel):
    provider: str | None
    walletId: str | None


class HoldingDistribution(BaseModel):
    quantity: int | float
    account: HoldingAccount
    allocationPercentage: int | float
    isCalculatedBalance: bool


class Holding(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    asset: HoldingAsset
    totalQuantity: int | float
    costbasis: int | float
    marketPrice: int | float
    marketValue: int | float
    unrealizedPnL: int | float
    roi: int | float
    baseCurrency: str
    change_24h: int | float = Field(alias="24hrChange")
    hasCalculatedBalance: bool
    assetDistribution: list[HoldingDistribution]


class HoldingsSummary(BaseModel):
    totalValue: int | float
    totalCostBasis: int | float
    totalUnrealizedPnL: int | float
    roiPercentage: int | float
    total24hrChange: int | float


class HoldingsAnswer(BaseModel):
    """`GET /v1/holdings` as the data API documents it (its own field names)."""

    holdings: list[Holding]
    summary: HoldingsSummary
    user_id: str | None
    timestamp: int | None = Field(description="Milliseconds since the epoch.")


class WebhookAnswer(BaseModel):
    success: Literal[True] = True
    duplicate: bool = Field(description="True: this webhook id was received before.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    mode: Literal["sandbox", "live"]


class NotReady(BaseModel):
    status: Literal["not_ready"] = "not_ready"
    problems: list[str]


class DemoToken(BaseModel):
    token: str
    customer: str


class DemoWidgetAnswer(BaseModel):
    public_token: str | None
    resumed: bool
