"""The read model's value types: rows, filters, pages, counts, freshness."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from services.store.readmodel.tables import Queue, SyncState


def _now() -> datetime:
    return datetime.now(UTC)



# --- value types ----------------------------------------------------------------------------

def ago_text(age_seconds: float) -> str:
    """"12 s ago", "5 min ago", "2.0 h ago": how the pages say an age."""
    age = max(0.0, age_seconds)
    if age < 90:
        return f"{age:.0f} s ago"
    if age < 5400:
        return f"{age / 60:.0f} min ago"
    return f"{age / 3600:.1f} h ago"


@dataclass(frozen=True)
class RmIntegration:
    grant_id: str
    wallet_id: str
    name: str | None
    provider: str | None
    type: str | None
    status: str
    last_sync: datetime | None
    transactions: int | None
    message: str | None
    limit_exceeded: bool
    refreshed_at: datetime


@dataclass(frozen=True)
class RmGrant:
    """One grant as the read model knows it. `sync_state` None: integrations not read yet."""

    grant_id: str
    status: str
    workspace_id: str | None
    scopes: str | None
    created_at: datetime | None
    expires_at: datetime | None
    status_changed_at: datetime | None
    kryptos_user_id: str | None
    customer_ref: str | None
    has_token: bool
    masked_token: str | None
    user_kind: str | None
    transaction_limit: int | None
    limiter_enabled: bool | None
    limit_source: str | None
    limit_updated_at: datetime | None
    userinfo_refreshed_at: datetime | None
    integrations_refreshed_at: datetime | None
    grants_seen_at: datetime | None
    refreshed_at: datetime
    unreadable: bool
    error_message: str | None
    sync_state: str | None
    n_integrations: int
    n_failing: int
    n_syncing: int
    n_never_synced: int
    total_transactions: int | None
    last_sync: datetime | None

    @property
    def effective_limit(self) -> int | None:
        """The cap in force: None when the limiter is off or the limit is unknown."""
        return None if self.limiter_enabled is False else self.transaction_limit

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or _now()) - self.refreshed_at).total_seconds()


@dataclass(frozen=True)
class GrantDetailRow:
    grant: RmGrant
    integrations: tuple[RmIntegration, ...]


@dataclass(frozen=True)
class GrantFilter:
    """Filters of `ReadModel.page` / `iter_csv` (None: no filter).

    `search` matches grant id, customer reference or Kryptos user id, case-insensitively,
    as a substring (`search_mode="substring"`) or a prefix of one of them. `limit`: a number
    (the effective cap), "off" (limiter off), "unknown", or "custom" (known but matching no
    configured tier); `tier` names a configured tier (its limit, or "off"). `queue` is a
    work queue (active grants only). `awaiting_approval`: grants a pending approval request
    holds (a semi-join on `approval_grants`' primary key). `customer_ref`,
    `kryptos_user_id`: that exact value, case-insensitively (the lower-case indexes);
    `workspace_id`: that exact workspace."""

    search: str | None = None
    search_mode: Literal["substring", "prefix"] = "substring"
    status: Literal["active", "revoked"] | None = None
    kind: Literal["guest", "linked", "unknown"] | None = None
    has_token: bool | None = None
    integration_status: SyncState | Literal["never"] | None = None
    queue: Queue | None = None
    limit: int | Literal["off", "unknown", "custom"] | None = None
    tier: str | None = None
    awaiting_approval: bool = False  # only grants held by a pending approval request
    customer_ref: str | None = None
    kryptos_user_id: str | None = None
    workspace_id: str | None = None


@dataclass(frozen=True)
class PageCursor:
    """A keyset position for `ReadModel.page`: the page after (`before=False`) or before
    the row whose sort value is `value` and grant id `grant_id`. No `grant_id`: from the
    end, so `PageCursor(before=True)` is the last page. A deep page costs what the first
    one does (an index seek), where an OFFSET walks every row before it."""

    value: Any = None
    grant_id: str | None = None
    before: bool = False


LAST_PAGE = PageCursor(before=True)


@dataclass(frozen=True)
class GrantPage:
    """One page. `total` counts matches up to `COUNT_CAP`; `total_exact` False means
    there are more than `total`. `sort` is the column the rows are sorted by, for the
    cursors of the next and the previous page."""

    rows: tuple[RmGrant, ...]
    total: int
    page: int
    page_size: int
    total_exact: bool = True
    sort: str = "created_at"

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    def next_cursor(self) -> PageCursor | None:
        """The page after this one (None: this page is empty)."""
        if not self.rows:
            return None
        last = self.rows[-1]
        return PageCursor(getattr(last, self.sort), last.grant_id)

    def previous_cursor(self) -> PageCursor | None:
        if not self.rows:
            return None
        first = self.rows[0]
        return PageCursor(getattr(first, self.sort), first.grant_id, before=True)


@dataclass(frozen=True)
class Counts:
    total: int
    active: int
    revoked: int
    guest: int
    linked: int
    unknown_kind: int
    with_token: int
    without_token: int
    #: Work queues (active grants): a count per `QUEUES` name.
    queues: Mapping[str, int]
    integrations: int
    integrations_failing: int
    integrations_syncing: int
    #: Active grants with a token whose integrations were never read yet.
    never_refreshed: int


@dataclass(frozen=True)
class Freshness:
    """How fresh the read model is. `oldest`/`newest`: the rows' `refreshed_at`;
    `oldest_integrations`: the least recently read integrations of an active grant with a
    token (None when there are none or some were never read: see `never_refreshed`).
    `never_refreshed` is None when it was not counted (a page's light freshness), and
    counted up to `COUNT_CAP` by `ReadModel.freshness()`."""

    rows: int
    oldest: datetime | None
    newest: datetime | None
    oldest_integrations: datetime | None
    never_refreshed: int | None
    last_full_sync: datetime | None
    #: False: there are more than `never_refreshed` (the count stopped at `COUNT_CAP`).
    never_refreshed_exact: bool = True

    def age_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds since the grants list was last synced in full (None: never)."""
        if self.last_full_sync is None:
            return None
        return max(0.0, ((now or _now()) - self.last_full_sync).total_seconds())

    def as_of(self, now: datetime | None = None) -> str:
        """'as of 12 s ago' for page captions."""
        age = self.age_seconds(now)
        return "not synced yet" if age is None else f"as of {ago_text(age)}"

    def is_stale(self, max_age_s: float, now: datetime | None = None) -> bool:
        age = self.age_seconds(now)
        return age is None or age > max_age_s


@dataclass(frozen=True)
class GrantsApplied:
    listed: int
    written: int
    revoked: int
    reactivated: int = 0


@dataclass(frozen=True)
class UserFacts:
    """What user info says: kind and (Guests) the effective limit."""

    kryptos_user_id: str
    is_guest: bool
    transaction_limit: int | None


@dataclass(frozen=True)
class IntegrationsError:
    """Integrations could not be read (`message` is shown; it never holds a secret)."""

    message: str


