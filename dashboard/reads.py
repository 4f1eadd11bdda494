"""Every read the pages make, and the cache that keeps them for a short time.

Pages never call the operations: they read through the functions here and change through
`dashboard.actions` (which drops what it changed from this cache). The cache keys, the
single flight and the reasons for not using `st.cache_data` are in docs/architecture.md
("Console cache", "Decisions and why").

No Streamlit import here.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from dashboard.timeline import TimelineItem, merge
from services.kryptos.models import Integration
from services.operations import (
    UNKNOWN,
    Actor,
    Counts,
    Freshness,
    GrantDetail,
    GrantFilter,
    GrantPage,
    GrantRow,
    GuestLimit,
    Operations,
    Overview,
    Permission,
    RmGrant,
    SyncView,
    can,
)
from services.operations.history import collapse
from services.operations.timeline import IntegrationNews, RecentFailure
from services.settings import Tier
from services.store import parse_csv_export, parse_jsonl_export
from services.store.actions import AuditAction

T = TypeVar("T")

TTL_SECONDS = 30.0
MAX_ENTRIES = 512
#: The read model's change counter is read at most this often per process (one cheap query):
#: a change made on another replica shows within about this long.
VERSION_POLL_SECONDS = 1.0
#: The freshness caption ("as of 12 s ago") is read again after this long.
FRESHNESS_TTL = 2.0
#: Rows the Guest limits picker shows at most (the rest is reached by its filter).
CANDIDATES_MAX = 500

_ALL = "*"  # the grant key of reads that span every grant (lists, overview)


@dataclass(frozen=True)
class _Key:
    ops_id: int
    username: str
    roles: tuple[str, ...]
    read: str
    grant: str  # a grant id, or _ALL
    args: tuple[Hashable, ...]


@dataclass
class _Flight:
    """A load in progress: callers of the same key wait for it instead of loading again."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class ReadCache:
    """A small thread-safe TTL cache of read results, with invalidation by grant id and a
    single flight per key (a second caller of a key being loaded waits for that load)."""

    def __init__(
        self,
        ttl: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[_Key, tuple[float, Any]] = {}
        self._flights: dict[_Key, _Flight] = {}
        self._generation = 0  # bumped by every invalidation
        self.hits = 0
        self.misses = 0

    def get_or_load(
        self, key: _Key, load: Callable[[], T], keep: Callable[[T], bool] | None = None
    ) -> T:
        """The cached value of `key`, or `load()`'s (kept unless `keep(value)` is False)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] > self._clock():
                self.hits += 1
                return found[1]
            flight = self._flights.get(key)
            owner = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            generation = self._generation
        if not owner:
            return self._wait(flight)
        # Load outside the lock: reads can be slow, and other keys must not wait on us.
        try:
            value = load()
        except BaseException as exc:
            self._land(key, flight, error=exc)
            raise
        self._land(key, flight, value=value)
        with self._lock:
            self.misses += 1
            if generation != self._generation:
                # Something was invalidated while we read: what we read may predate that
                # change, so hand it to this caller (and those who waited) only.
                return value
            if keep is not None and not keep(value):
                return value  # e.g. a partly failed read: tried again on the next call
            self._entries[key] = (self._clock() + self.ttl, value)
            if len(self._entries) > self.max_entries:
                self._evict(self._clock())
        return value

    def _land(self, key: _Key, flight: _Flight, value: Any = None,
              error: BaseException | None = None) -> None:
        flight.value, flight.error = value, error
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.done.set()

    @staticmethod
    def _wait(flight: _Flight) -> Any:
        flight.done.wait()
        if flight.error is not None:
            raise flight.error  # the same read failed for the caller who made it
        return flight.value

    def _evict(self, now: float) -> None:
        for k in [k for k, (exp, _) in self._entries.items() if exp <= now]:
            del self._entries[k]
        while len(self._entries) > self.max_entries:
            oldest = min(self._entries, key=lambda k: self._entries[k][0])
            del self._entries[oldest]

    def _drop(self, stale: Callable[[_Key], bool]) -> int:
        with self._lock:
            self._generation += 1
            # A load in flight for a stale key may predate the change: later callers start
            # their own instead of waiting for it.
            for k in [k for k in self._flights if stale(k)]:
                del self._flights[k]
            gone = [k for k in self._entries if stale(k)]
            for k in gone:
                del self._entries[k]
            return len(gone)

    def invalidate(self, grant_id: str) -> int:
        """Drop what a change to `grant_id` makes stale: its own reads and every list."""
        return self._drop(lambda k: k.grant in (grant_id, _ALL))

    def invalidate_lists(self) -> int:
        """Drop the reads that span every grant (a grant may have been added)."""
        return self._drop(lambda k: k.grant == _ALL)

    def clear(self) -> None:
        self._drop(lambda k: True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


CACHE = ReadCache()
#: Freshness of the read model (its sync time moves without a version bump): a short TTL.
FRESH = ReadCache(ttl=FRESHNESS_TTL, max_entries=64)


class VersionClock:
    """The read model's version per operations object, read at most once per `poll`
    seconds per process: read-model reads are cached under the version, so a change made
    anywhere (this process, another replica, the sync worker) shows at the next poll."""

    def __init__(self, poll: float = VERSION_POLL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.poll = poll
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[int, tuple[float, int]] = {}
        self.reads = 0

    def version(self, ops: Operations) -> int:
        with self._lock:
            seen = self._seen.get(id(ops))
            if seen is not None and self._clock() - seen[0] < self.poll:
                return seen[1]
        value = ops.grants.version()
        with self._lock:
            self.reads += 1
            self._seen[id(ops)] = (self._clock(), value)
        return value

    def forget(self) -> None:
        """Read the version again at the next call (after a change in this process)."""
        with self._lock:
            self._seen.clear()


VERSIONS = VersionClock()


def _key(ops: object, actor: Actor, read: str, grant: str, *args: Hashable) -> _Key:
    return _Key(id(ops), actor.username, tuple(sorted(actor.roles)), read, grant, args)


def invalidate_grant(grant_id: str) -> None:
    """After a change of `grant_id` (whatever its outcome): drops its detail and history for
    every user, and every grant list and overview."""
    CACHE.invalidate(grant_id)
    VERSIONS.forget()


def invalidate_lists() -> None:
    """After a change that may have added a grant we do not know the id of."""
    CACHE.invalidate_lists()
    VERSIONS.forget()


def invalidate_all() -> None:
    """Drop every cached read (after a bulk change or an import)."""
    CACHE.clear()
    FRESH.clear()
    VERSIONS.forget()


def refresh_grant(grant_id: str) -> None:
    """The grant page's Refresh button: read the grant (and the lists) again."""
    invalidate_grant(grant_id)


def refresh_all(ops: Operations | None = None, actor: Actor | None = None) -> None:
    """The Overview's Refresh button: read everything again, and ask the sync worker
    (whichever process holds it) for a full grants sync at its next step."""
    invalidate_all()
    if ops is not None and actor is not None:
        ops.grants.request_sync(actor)


# --- the read model (cached under its version: see VersionClock) -------------------------


def _rm_key(ops: Operations, actor: Actor, read: str, *args: Hashable) -> _Key:
    return _key(ops, actor, read, _ALL, VERSIONS.version(ops), *args)


def grant_page(ops: Operations, actor: Actor, filters: GrantFilter | None = None,
               sort: str = "created_at", page: int = 1, page_size: int = 100, *,
               descending: bool = False) -> GrantPage:
    """One page of grants from the read model, searched, filtered and sorted in SQL."""
    key = _rm_key(ops, actor, "grant_page", filters, sort, page, page_size, descending)
    return CACHE.get_or_load(key, lambda: ops.grants.page(
        actor, filters, sort, page, page_size, descending=descending))


def counts(ops: Operations, actor: Actor) -> Counts:
    """The read model's counts and work queues."""
    return CACHE.get_or_load(_rm_key(ops, actor, "counts"), lambda: ops.grants.counts(actor))


def freshness(ops: Operations, actor: Actor) -> Freshness:
    """How fresh the read model is (`as_of()`, `is_stale(s)`), read again every 2 s."""
    key = _rm_key(ops, actor, "freshness")
    return FRESH.get_or_load(key, lambda: ops.grants.freshness(actor))


def export_grants_csv(ops: Operations, actor: Actor, filters: GrantFilter | None = None,
                      sort: str = "grant_id", *, descending: bool = False) -> str:
    """The filtered grants as CSV (never cached), written chunk by chunk from SQL; for a
    download made on demand (a callable handed to `st.download_button`)."""
    out = io.StringIO()
    ops.grants.export_csv(actor, filters, out, sort, descending=descending)
    return out.getvalue()


def sync_status(ops: Operations, actor: Actor, grants_interval: float = 300.0) -> SyncView:
    """The sync worker's state (admins; never cached)."""
    return ops.sync.status(actor, grants_interval)


# --- grants -------------------------------------------------------------------------------


def list_grants(
    ops: Operations,
    actor: Actor,
    *,
    search: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    has_token: bool | None = None,
) -> tuple[GrantRow, ...]:
    """The grants list, searched and filtered by the operations, cached per actor and filters.

    The one way a page gets a filtered grants list (the Grants page and the Guest limits
    picker): the filter itself is the operations' (`list_grants`)."""
    search = (search or "").strip() or None
    key = _key(ops, actor, "list_grants", _ALL, search, status, kind, has_token)
    return CACHE.get_or_load(
        key,
        lambda: tuple(
            ops.grants.list_grants(
                actor, search=search, status=status, kind=kind, has_token=has_token)
        ),
    )


def bulk_candidates(ops: Operations, actor: Actor, search: str | None = None
                    ) -> tuple[RmGrant, ...]:
    """The grants a bulk limit change may target: active Guest grants, then active grants
    whose kind is not known yet, matching `search`, from the read model (at most
    `CANDIDATES_MAX`; `bulk_candidate_count` says how many match)."""
    search = (search or "").strip() or None
    rows: list[RmGrant] = []
    for kind in ("guest", "unknown"):
        if len(rows) >= CANDIDATES_MAX:
            break
        found = grant_page(ops, actor, GrantFilter(search=search, status="active", kind=kind),
                           "grant_id", 1, CANDIDATES_MAX - len(rows))
        rows.extend(found.rows)
    return tuple(rows)


def bulk_candidate_count(ops: Operations, actor: Actor, search: str | None = None) -> int:
    """How many grants `bulk_candidates` would list without its cap."""
    search = (search or "").strip() or None
    return sum(grant_page(ops, actor, GrantFilter(search=search, status="active", kind=kind),
                          "grant_id", 1, 1).total for kind in ("guest", "unknown"))


def limits_of(rows: Iterable[RmGrant]) -> dict[str, GuestLimit]:
    """Each read-model row's limit, without an upstream call: unknown where neither user
    info nor a console change told the read model yet."""
    return {r.grant_id: (GuestLimit.of(r.transaction_limit, r.limiter_enabled)
                         if r.limit_source is not None else UNKNOWN) for r in rows}


def overview(ops: Operations, actor: Actor) -> Overview:
    """The Overview's counts (read model), work queues and latest events, cached per actor
    and read-model version; dropped by any grant change."""
    key = _rm_key(ops, actor, "overview")
    return CACHE.get_or_load(key, lambda: ops.grants.overview(actor))


def _no_failed_part(detail: GrantDetail) -> bool:
    parts = (detail.session, detail.holdings, detail.integrations, detail.userinfo)
    return all(p.error is None for p in parts)


def grant_detail(ops: Operations, actor: Actor, grant_id: str) -> GrantDetail:
    """One grant's parts, cached per actor and grant; never kept when a part failed."""
    key = _key(ops, actor, "grant_detail", grant_id)
    return CACHE.get_or_load(key, lambda: ops.grants.grant_detail(actor, grant_id), _no_failed_part)


def grant_history(ops: Operations, actor: Actor, grant_id: str) -> tuple[Any, ...]:
    """The grant's audit events (newest first), cached per actor and grant."""
    key = _key(ops, actor, "grant_history", grant_id)
    return CACHE.get_or_load(key, lambda: tuple(ops.grants.grant_history(actor, grant_id)))


def revoke_event(ops: Operations, actor: Actor, grant_id: str) -> Any:
    """The console's record of the grant's revoke (the newest succeeded one, with its
    request's params: an approval's credit), or None."""
    return next(
        (e for e in collapse(grant_history(ops, actor, grant_id))
         if e.action == AuditAction.GRANT_REVOKE and e.outcome == "succeeded"),
        None,
    )


def integration(ops: Operations, actor: Actor, grant_id: str, wallet_id: str) -> Integration:
    """One integration as it is now (the resync status poll: never cached)."""
    return ops.grants.integration(actor, grant_id, wallet_id)


# --- webhooks (a local database read each: never cached, they arrive at any time) ---------


def timeline(ops: Operations, actor: Actor, grant_id: str) -> tuple[TimelineItem, ...]:
    """The grant's webhooks and recorded actions in plain words, newest first (the actions
    only for those who may read the grant's history)."""
    return tuple(merge(ops.timeline.grant_timeline(actor, grant_id)))


def timeline_shows_actions(actor: Actor) -> bool:
    """Whether `timeline` includes the recorded actions for this actor."""
    return can(actor, Permission.VIEW_GRANT_HISTORY)


def recent_failures(ops: Operations, actor: Actor) -> tuple[RecentFailure, ...]:
    """Integration failures reported by webhook in the last 24 hours, newest first (10 at
    most), each with its grant when known."""
    return ops.timeline.recent_failures(actor)


def integration_news(ops: Operations, actor: Actor, grant_id: str, wallet_id: str,
                     since: datetime) -> IntegrationNews | None:
    """The newest webhook about this integration received after `since`, or None."""
    return ops.timeline.integration_news(actor, grant_id, wallet_id, since)


# --- limits -------------------------------------------------------------------------------


def tiers(ops: Operations) -> tuple[Tier, ...]:
    """The configured tier presets."""
    return tuple(ops.tiers)


def matching_tier(ops: Operations, limit: GuestLimit) -> Tier | None:
    """The configured tier whose limit is this one (None: unknown, or no tier matches)."""
    return ops.limits.matching_tier(limit)


def tier_label(ops: Operations, name: str) -> str:
    """A tier's name with what it sets (for select boxes); the name when it is not a tier."""
    return next((t.describe() for t in tiers(ops) if t.name == name), name)


# --- audit log (not cached: every action appends to it) ------------------------------------


def audit_page(ops: Operations, actor: Actor, filters: Any, page: int, page_size: int) -> Any:
    """A page of the audit log, newest first; a page past the end gives the last page."""
    result = ops.audit.audit_page(actor, filters, page=page, page_size=page_size)
    if result.total and page > result.pages:
        result = ops.audit.audit_page(actor, filters, page=result.pages, page_size=page_size)
    return result


@dataclass(frozen=True)
class PreparedExport:
    """An export made from the Audit log page: what it holds and when it was made."""

    fmt: str
    content: str
    made_at: datetime
    events: int
    newest_seq: int | None


def export_audit(ops: Operations, actor: Actor, filters: Any, fmt: str) -> PreparedExport:
    """The events matching `filters` as a file (oldest first), with what it covers."""
    content = ops.audit.export_audit(actor, filters, fmt)
    parse = parse_csv_export if fmt == "csv" else parse_jsonl_export
    exported = parse(io.StringIO(content))
    return PreparedExport(fmt, content, datetime.now(UTC), len(exported),
                          max((e.seq for e in exported), default=None))


def verify_audit(ops: Operations, actor: Actor,
                 expected_head: tuple[Any, Any] | None = None) -> Any:
    """The audit chain's verification (`ChainReport`), optionally against a noted head."""
    return ops.audit.verify_audit(actor, expected_head=expected_head)


# --- approvals (not cached: small, and a decision must show at once) ------------------------


def approvals_waiting(ops: Operations, actor: Actor) -> list[Any]:
    """Pending requests this actor may decide (oldest first)."""
    return ops.approvals.list_waiting_for(actor)


def approvals_mine(ops: Operations, actor: Actor) -> list[Any]:
    return ops.approvals.list_mine(actor)


def approvals_history(ops: Operations, actor: Actor) -> list[Any]:
    return ops.approvals.history(actor)


def before_now(ops: Operations, actor: Actor, request: Any) -> dict[str, Any]:
    """A request's grants' *before* as the read model has it now (not cached)."""
    return ops.approvals.before_now(actor, request)


def pending_requests(ops: Operations, actor: Actor, grant_id: str) -> list[Any]:
    """The pending approval requests holding this grant (not cached: one indexed query, and
    another replica's request must show at once)."""
    return ops.approvals.pending_for_grant(actor, grant_id)


def approvals_waiting_count(ops: Operations, actor: Actor) -> int:
    """For the navigation's "Approvals (n)"."""
    return ops.approvals.waiting_count(actor)


def reconciler_status(ops: Operations, actor: Actor) -> Any:
    """The reconciler's state (admins): journal backlog and its last pass. Not cached."""
    return ops.reconciler.status(actor)
