"""Public result types of the operations (frozen dataclasses). No secret is ever in a repr."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from services.kryptos.models import Holdings, Integration, SessionStatus, UserInfo
from services.operations.errors import OperationError
from services.operations.limit_value import UNKNOWN, GuestLimit

T = TypeVar("T")

GrantStatus = Literal["active", "revoked"]
UserKind = Literal["guest", "linked"]
BulkOutcome = Literal["would_change", "unchanged", "succeeded", "failed", "skipped"]
LookupField = Literal["customer_ref", "kryptos_user_id", "workspace_id"]


def user_kind(value: str | None) -> UserKind | None:
    """A stored user kind as a `UserKind`; None when it is not known."""
    if value == "guest":
        return "guest"
    if value == "linked":
        return "linked"
    return None


@dataclass(frozen=True)
class GrantRow:
    """A grant as the console sees it: the API's list joined with the vault."""

    grant_id: str
    workspace_id: str | None
    scopes: str
    created_at: datetime | None
    expires_at: datetime | None
    status: GrantStatus
    customer_ref: str | None
    user_kind: UserKind | None
    has_token: bool
    masked_token: str | None
    kryptos_user_id: str | None


@dataclass(frozen=True)
class Part(Generic[T]):
    """One independently fetched part of a page: a value, or an error, or a plain note."""

    value: T | None = None
    error: OperationError | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


@dataclass(frozen=True)
class GrantDetail:
    grant: GrantRow
    session: Part[SessionStatus]
    holdings: Part[Holdings]
    integrations: Part[tuple[Integration, ...]]
    userinfo: Part[UserInfo]
    notes: tuple[str, ...] = ()  # plain sentences: no token stored, grants list unreadable
    row: Any = None  # services.store.readmodel.RmGrant as the read model has it (or None)

    @property
    def has_token(self) -> bool:
        return self.grant.has_token

    @property
    def is_guest(self) -> bool | None:
        """True/False from the user info (`sub` starts `anon_`), else from the vault, else None."""
        if self.userinfo.ok and self.userinfo.value is not None:
            return self.userinfo.value.is_guest
        if self.grant.user_kind is not None:
            return self.grant.user_kind == "guest"
        return None

    @property
    def limit(self) -> GuestLimit:
        """The user's transaction limit as the user info says (unknown when unread)."""
        if self.userinfo.ok and self.userinfo.value is not None:
            return GuestLimit.from_userinfo(self.userinfo.value.transaction_limit)
        return UNKNOWN


@dataclass(frozen=True)
class LimitChange:
    grant_id: str
    before_limit: int | None
    before_limiter: bool | None
    after_limit: int | None
    after_limiter: bool | None
    resync: Any = None  # services.kryptos.models.LimitResync | None
    before_reported: bool = False  # the API's answer carried the previous values
    before_known: bool = True  # False: nobody could say what the limit was before


@dataclass(frozen=True)
class ResyncOutcome:
    grant_id: str
    wallet_id: str
    mode: str
    integration_type: str
    status: str
    job_id: str | None


@dataclass(frozen=True)
class BulkItem:
    grant_id: str
    customer_ref: str | None
    outcome: BulkOutcome
    before: GuestLimit = UNKNOWN
    after: GuestLimit = UNKNOWN  # unknown in a dry run when it cannot be foreseen
    error_code: str | None = None
    message: str | None = None
    record_pending: bool = False  # made, but its audit record waits in the journal


@dataclass(frozen=True)
class BulkResult:
    items: tuple[BulkItem, ...]
    dry_run: bool
    tier: str
    bulk_id: str | None = None  # the run's id (`resume_bulk` takes it)

    @property
    def records_pending(self) -> int:
        """Grants changed whose audit record waits in the journal."""
        return sum(1 for i in self.items if i.record_pending)

    def count(self, outcome: BulkOutcome) -> int:
        return sum(1 for i in self.items if i.outcome == outcome)

    @property
    def counts(self) -> Mapping[str, int]:
        keys = ("would_change", "unchanged", "succeeded", "failed", "skipped")
        return {k: self.count(k) for k in keys}  # type: ignore[arg-type]

    @property
    def failed(self) -> tuple[BulkItem, ...]:
        return tuple(i for i in self.items if i.outcome == "failed")


@dataclass(frozen=True)
class Overview:
    active: int
    revoked: int
    guest: int
    linked: int
    unknown_kind: int
    with_token: int
    without_token: int
    integrations_failing: int
    integrations_syncing: int
    integrations_unread: int  # grants whose integrations could not be read
    latest_events: tuple[Any, ...] = ()  # services.store AuditEvent
    #: Work queues over active grants (services.store.readmodel.QUEUES -> count).
    queues: Mapping[str, int] = field(default_factory=dict)
    #: Active grants with a token whose integrations were never read yet.
    never_refreshed: int = 0
    freshness: Any = None  # services.store.readmodel.Freshness of the counts


@dataclass(frozen=True)
class LinkTokenIssued:
    link_token: str = field(repr=False)
    masked: str = ""
    expires_at: datetime | None = None
    customer_ref: str = ""
    resumed: bool = False
    grant_id: str | None = None


@dataclass(frozen=True)
class GrantLookup:
    """What a typed grant id, customer reference, Kryptos user id or workspace names
    (`GrantListReads.find`): one grant to open (`grant_id`), or the Grants list to show,
    either the grants whose `field` is exactly `text` (several share it) or, nothing being
    exact, a search for `text`."""

    text: str
    grant_id: str | None = None
    field: LookupField | None = None

    @property
    def opens_grant(self) -> bool:
        return self.grant_id is not None

    def filters(self) -> dict[str, str]:
        """The Grants list's filter for a list answer (field=value, or the search)."""
        if self.field is None:
            return {"search": self.text}
        return {self.field: self.text}

