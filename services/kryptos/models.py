"""Typed, frozen models of the Kryptos API's answers.

Each `from_api` reads the documented fields, tolerates unknown extra fields, keeps the newer
optional fields listed in the API notes when present, and raises `MalformedResponseError`
when a documented required field is missing or of the wrong type. Secrets (access tokens)
are kept out of every repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.kryptos.errors import MalformedResponseError

DEFAULT_SCOPES = (
    "openid profile offline_access email portfolios:read transactions:read integrations:read "
    "tax:read accounting:read reports:read workspace:read users:read"
)

RESYNC_MODES = ("latest", "from_start")


def mask_token(token: str | None) -> str:
    """`cat_abc123xyz789` -> `cat_ab...89`. Never shows more than 6 + 2 characters."""
    if not token:
        return ""
    prefix, sep, rest = token.partition("_")
    if not sep:
        prefix, rest = "", token
    head = rest[:2]
    tail = rest[-2:] if len(rest) > 6 else ""
    return f"{prefix}{sep}{head}...{tail}"


# --- field readers ------------------------------------------------------------------------

def _req(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise MalformedResponseError(f"{where}: field '{key}' is missing.")
    value = data[key]
    if kind is float:
        kind = (int, float)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in ((int, float), int)):
        raise MalformedResponseError(f"{where}: field '{key}' has an unexpected type.")
    return value


def _opt(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(data, Mapping) or data.get(key) is None:
        return None
    return _req(data, key, kind, where)


def _num(data: Mapping[str, Any], key: str, where: str) -> float:
    """An optional number field; 0.0 when it is absent or null."""
    value = _opt(data, key, float, where)
    return 0.0 if value is None else float(value)


def _ms_to_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedResponseError("A timestamp is not a number of milliseconds.")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _iso_to_dt(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedResponseError(f"{where}: a date is not a string.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedResponseError(f"{where}: '{value}' is not an ISO 8601 date.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedResponseError(f"{where}: expected an object.")
    return value


# --- Connect API --------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkToken:
    link_token: str = field(repr=False)
    expires_at: datetime | None
    user_id: str | None = None
    workspace_id: str | None = None
    has_existing_grant: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> LinkToken:
        w = "link token"
        return cls(
            link_token=_req(data, "link_token", str, w),
            expires_at=_iso_to_dt(data.get("expires_at"), w),
            user_id=_opt(data, "user_id", str, w),
            workspace_id=_opt(data, "workspace_id", str, w),
            has_existing_grant=bool(_opt(data, "has_existing_grant", bool, w) or False),
        )


@dataclass(frozen=True)
class TokenExchange:
    access_token: str = field(repr=False)
    grant_id: str
    token_type: str
    expires_in: int
    scope: str
    workspace_id: str | None

    @property
    def masked_token(self) -> str:
        return mask_token(self.access_token)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> TokenExchange:
        w = "token exchange"
        return cls(
            access_token=_req(data, "access_token", str, w),
            grant_id=_req(data, "grant_id", str, w),
            token_type=_opt(data, "token_type", str, w) or "Bearer",
            expires_in=int(_opt(data, "expires_in", int, w) or 0),
            scope=_opt(data, "scope", str, w) or "",
            workspace_id=_opt(data, "workspace_id", str, w),
        )


@dataclass(frozen=True)
class SessionStatus:
    has_valid_session: bool
    reason: str | None = None
    user_id: str | None = None
    workspace_id: str | None = None
    workspace_name: str | None = None
    granted_scopes: str | None = None
    grant_id: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> SessionStatus:
        w = "session status"
        return cls(
            has_valid_session=_req(data, "has_valid_session", bool, w),
            reason=_opt(data, "reason", str, w),
            user_id=_opt(data, "user_id", str, w),
            workspace_id=_opt(data, "workspace_id", str, w),
            workspace_name=_opt(data, "workspace_name", str, w),
            granted_scopes=_opt(data, "granted_scopes", str, w),
            grant_id=_opt(data, "grant_id", str, w),
        )


@dataclass(frozen=True)
class Grant:
    grant_id: str
    workspace_id: str | None
    scopes: str
    created_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Grant:
        w = "grant"
        data = _mapping(data, w)
        return cls(
            grant_id=_req(data, "grant_id", str, w),
            workspace_id=_opt(data, "workspace_id", str, w),
            scopes=_opt(data, "scopes", str, w) or "",
            created_at=_iso_to_dt(data.get("created_at"), w),
            expires_at=_iso_to_dt(data.get("expires_at"), w),
        )


@dataclass(frozen=True)
class ResyncResult:
    mode: str
    integration_type: str
    wallet_id: str
    status: str
    job_id: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ResyncResult:
        w = "resync"
        return cls(
            mode=_req(data, "mode", str, w),
            integration_type=_opt(data, "integration_type", str, w) or "",
            wallet_id=_req(data, "wallet_id", str, w),
            status=_req(data, "status", str, w),
            job_id=_opt(data, "job_id", str, w),
        )


@dataclass(frozen=True)
class LimitResync:
    """The newer `resync` block of a limit change: integrations re-queued by the new cap."""

    triggered: tuple[str, ...]
    failed: tuple[str, ...]
    skipped: int

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> LimitResync:
        w = "limit resync"
        data = _mapping(data, w)

        def ids(key: str) -> tuple[str, ...]:
            value = data.get(key) or []
            if not isinstance(value, list):
                raise MalformedResponseError(f"{w}: '{key}' is not a list.")
            return tuple(
                str(v.get("wallet_id") or v.get("walletId") or v)
                if isinstance(v, Mapping)
                else str(v)
                for v in value
            )

        return cls(ids("triggered"), ids("failed"), int(_opt(data, "skipped", int, w) or 0))


@dataclass(frozen=True)
class TransactionLimit:
    grant_id: str
    user_id: str | None
    transaction_limit: int | None
    enable_limiter: bool | None
    previous_transaction_limit: int | None = None
    previous_enable_limiter: bool | None = None
    resync: LimitResync | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> TransactionLimit:
        w = "transaction limit"
        resync = data.get("resync")
        return cls(
            grant_id=_req(data, "grant_id", str, w),
            user_id=_opt(data, "user_id", str, w),
            transaction_limit=_opt(data, "transaction_limit", int, w),
            enable_limiter=_opt(data, "enable_limiter", bool, w),
            previous_transaction_limit=_opt(data, "previous_transaction_limit", int, w),
            previous_enable_limiter=_opt(data, "previous_enable_limiter", bool, w),
            resync=LimitResync.from_api(resync) if resync is not None else None,
        )


# --- data API -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Asset:
    token_id: str
    symbol: str
    public_name: str
    chain_id: str | None
    logo_url: str | None
    type: str
    category: str | None


@dataclass(frozen=True)
class AssetDistribution:
    quantity: float
    provider: str | None
    wallet_id: str | None
    allocation_percentage: float
    is_calculated_balance: bool


@dataclass(frozen=True)
class Holding:
    asset: Asset
    total_quantity: float
    cost_basis: float
    market_price: float
    market_value: float
    unrealized_pnl: float
    roi: float
    base_currency: str
    change_24h: float
    has_calculated_balance: bool
    distribution: tuple[AssetDistribution, ...]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Holding:
        w = "holding"
        data = _mapping(data, w)
        a = _mapping(_req(data, "asset", Mapping, w), "holding asset")
        dist = []
        for d in _opt(data, "assetDistribution", list, w) or []:
            d = _mapping(d, "asset distribution")
            account = _mapping(d.get("account") or {}, "asset distribution account")
            dist.append(
                AssetDistribution(
                    quantity=_num(d, "quantity", "asset distribution"),
                    provider=_opt(account, "provider", str, "account"),
                    wallet_id=_opt(account, "walletId", str, "account"),
                    allocation_percentage=_num(d, "allocationPercentage", "asset distribution"),
                    is_calculated_balance=bool(d.get("isCalculatedBalance") or False),
                )
            )
        return cls(
            asset=Asset(
                token_id=_opt(a, "tokenId", str, "asset") or "",
                symbol=_req(a, "symbol", str, "asset"),
                public_name=_opt(a, "publicName", str, "asset") or "",
                chain_id=_opt(a, "chainId", str, "asset"),
                logo_url=_opt(a, "logoUrl", str, "asset"),
                type=_opt(a, "type", str, "asset") or "crypto",
                category=_opt(a, "category", str, "asset"),
            ),
            total_quantity=_num(data, "totalQuantity", w),
            cost_basis=_num(data, "costbasis", w),
            market_price=_num(data, "marketPrice", w),
            market_value=_num(data, "marketValue", w),
            unrealized_pnl=_num(data, "unrealizedPnL", w),
            roi=_num(data, "roi", w),
            base_currency=_opt(data, "baseCurrency", str, w) or "USD",
            change_24h=_num(data, "24hrChange", w),
            has_calculated_balance=bool(data.get("hasCalculatedBalance") or False),
            distribution=tuple(dist),
        )


@dataclass(frozen=True)
class HoldingsSummary:
    total_value: float
    total_cost_basis: float
    total_unrealized_pnl: float
    roi_percentage: float
    total_24h_change: float

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> HoldingsSummary:
        w = "holdings summary"
        data = _mapping(data or {}, w)
        return cls(
            total_value=_num(data, "totalValue", w),
            total_cost_basis=_num(data, "totalCostBasis", w),
            total_unrealized_pnl=_num(data, "totalUnrealizedPnL", w),
            roi_percentage=_num(data, "roiPercentage", w),
            total_24h_change=_num(data, "total24hrChange", w),
        )


@dataclass(frozen=True)
class Holdings:
    holdings: tuple[Holding, ...]
    summary: HoldingsSummary
    user_id: str | None
    timestamp: datetime | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Holdings:
        w = "holdings"
        data = _mapping(data, w)
        rows = _req(data, "holdings", list, w)
        return cls(
            holdings=tuple(Holding.from_api(h) for h in rows),
            summary=HoldingsSummary.from_api(data.get("summary") or {}),
            user_id=_opt(data, "user_id", str, w),
            timestamp=_ms_to_dt(data.get("timestamp")),
        )


SYNCING_STATUSES = frozenset({"ONGOING", "SYNCING"})
FAILING_STATUSES = frozenset({"FAILED", "PARTIALLY SYNCED"})


@dataclass(frozen=True)
class Integration:
    wallet_id: str
    provider: str
    provider_public_name: str | None
    public_address: str | None
    alias: str | None
    status: str
    message: str | None
    last_sync_log: Mapping[str, str] | None
    limit_exceeded: bool
    added_on: datetime | None
    last_synced_at: datetime | None
    category: str | None
    type: str | None
    total_transactions: int | None
    is_contract: bool = False
    logo_url: str | None = None

    @property
    def is_csv(self) -> bool:
        return (self.type or "").lower() == "csv"

    @property
    def is_syncing(self) -> bool:
        return self.status.upper() in SYNCING_STATUSES

    @property
    def is_failing(self) -> bool:
        return self.status.upper() in FAILING_STATUSES

    @property
    def display_name(self) -> str:
        return self.alias or self.provider_public_name or self.provider or self.wallet_id

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Integration:
        w = "integration"
        data = _mapping(data, w)
        log = data.get("lastSyncLog")
        if log is not None and not isinstance(log, Mapping):
            raise MalformedResponseError(f"{w}: 'lastSyncLog' is not an object.")
        return cls(
            wallet_id=_req(data, "walletId", str, w),
            provider=_opt(data, "provider", str, w) or "",
            provider_public_name=_opt(data, "providerPublicName", str, w),
            public_address=_opt(data, "publicAddress", str, w),
            alias=_opt(data, "alias", str, w),
            status=_opt(data, "status", str, w) or "active",
            message=_opt(data, "message", str, w),
            last_sync_log=dict(log) if log is not None else None,
            limit_exceeded=bool(data.get("limitExceeded") or False),
            added_on=_ms_to_dt(data.get("addedOn")),
            last_synced_at=_ms_to_dt(data.get("lastSyncedAt")),
            category=_opt(data, "category", str, w),
            type=_opt(data, "type", str, w),
            total_transactions=_opt(data, "totalTransactions", int, w),
            is_contract=bool(data.get("isContract") or False),
            logo_url=_opt(data, "logoUrl", str, w),
        )


@dataclass(frozen=True)
class UserInfo:
    sub: str
    name: str | None
    email: str | None
    email_verified: bool | None
    preferred_username: str | None
    language: str | None
    transaction_limit: int | None
    scopes: tuple[str, ...]

    @property
    def is_guest(self) -> bool:
        """Guests (anonymous users) have ids starting `anon_`."""
        return self.sub.startswith("anon_")

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> UserInfo:
        w = "user info"
        data = _mapping(data, w)
        info = _mapping(_req(data, "userInfo", Mapping, w), w)
        scopes = data.get("scopes") or []
        if isinstance(scopes, str):
            scopes = scopes.split()
        return cls(
            sub=_req(info, "sub", str, w),
            name=_opt(info, "name", str, w),
            email=_opt(info, "email", str, w),
            email_verified=_opt(info, "email_verified", bool, w),
            preferred_username=_opt(info, "preferred_username", str, w),
            language=_opt(info, "language", str, w),
            transaction_limit=_opt(info, "transaction_limit", int, w),
            scopes=tuple(str(s) for s in scopes),
        )


@dataclass(frozen=True)
class Health:
    status: str
    service: str | None
    version: str | None
    environment: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Health:
        w = "health"
        return cls(
            status=_req(data, "status", str, w),
            service=_opt(data, "service", str, w),
            version=_opt(data, "version", str, w),
            environment=_opt(data, "environment", str, w),
        )
