"""Grant reads: the read model's pages, counts, overview and freshness (cached under its
version), one grant's detail and history (cached per grant), and the CSV export.
"""

from __future__ import annotations

import io
from collections.abc import Hashable
from dataclasses import dataclass

from dashboard.reads.cache import CACHE, FRESH, read_key, rm_read_key
from services.kryptos.models import Integration
from services.operations import (
    LAST_PAGE,
    Actor,
    Counts,
    Freshness,
    GrantDetail,
    GrantFilter,
    GrantLookup,
    GrantPage,
    Operations,
    Overview,
    PageCursor,
)
from services.operations.history import collapse
from services.store import AuditEvent
from services.store.actions import AuditAction


def grant_page(ops: Operations, actor: Actor, filters: GrantFilter | None = None,
               sort: str = "created_at", page: int = 1, page_size: int = 100, *,
               descending: bool = False, cursor: PageCursor | None = None) -> GrantPage:
    """One page of grants from the read model, searched, filtered and sorted in SQL (by
    keyset from `cursor` when given: see `page_cursor`)."""
    key = rm_read_key(ops, actor, "grant_page", filters, sort, page, page_size, descending,
                      cursor)
    return CACHE.get_or_load(key, lambda: ops.grants.page(
        actor, filters, sort, page, page_size, descending=descending, cursor=cursor))


@dataclass(frozen=True)
class PagePosition:
    """Where a listing (filters, sort, page size) was last shown: its page number, the
    keyset cursors beside it and how many pages there are (None: more than counted). A
    few values a session keeps instead of the rows."""

    listing: Hashable
    page: int
    next: PageCursor | None
    previous: PageCursor | None
    pages: int | None

    @classmethod
    def of(cls, found: GrantPage, listing: Hashable) -> PagePosition:
        return cls(listing, found.page, found.next_cursor(), found.previous_cursor(),
                   found.pages if found.total_exact else None)


def page_cursor(shown: PagePosition | None, listing: Hashable, page: int) -> PageCursor | None:
    """How to reach page `page` of `listing` by keyset from the position shown last: the
    next or the previous page from its last or first row, the last page from the end;
    None: by page number (the first pages, or a jump)."""
    if shown is None or shown.listing != listing:
        return None
    if page == shown.page + 1:
        return shown.next
    if page == shown.page - 1 and page > 1:
        return shown.previous
    if shown.pages is not None and page == shown.pages and page > 1:
        return LAST_PAGE
    return None


def find_grant(ops: Operations, actor: Actor, text: str) -> GrantLookup:
    """What a search box's text names: one grant, or the Grants list filtered to it
    (index lookups in the read model, cached under its version)."""
    key = rm_read_key(ops, actor, "find_grant", text.strip())
    return CACHE.get_or_load(key, lambda: ops.grants.find(actor, text))


def counts(ops: Operations, actor: Actor) -> Counts:
    """The read model's counts and work queues."""
    return CACHE.get_or_load(rm_read_key(ops, actor, "counts"), lambda: ops.grants.counts(actor))


def freshness(ops: Operations, actor: Actor) -> Freshness:
    """How fresh the read model is (`as_of()`, `is_stale(s)`), read again every 2 s."""
    key = rm_read_key(ops, actor, "freshness")
    return FRESH.get_or_load(key, lambda: ops.grants.freshness(actor))


def export_grants_csv(ops: Operations, actor: Actor, filters: GrantFilter | None = None,
                      sort: str = "grant_id", *, descending: bool = False) -> str:
    """The filtered grants as CSV (never cached), written chunk by chunk from SQL; for a
    download made on demand (a callable handed to `st.download_button`)."""
    out = io.StringIO()
    ops.grants.export_csv(actor, filters, out, sort, descending=descending)
    return out.getvalue()


def overview(ops: Operations, actor: Actor) -> Overview:
    """The Overview's counts (read model), work queues and latest events, cached per actor
    and read-model version; dropped by any grant change."""
    key = rm_read_key(ops, actor, "overview")
    return CACHE.get_or_load(key, lambda: ops.grants.overview(actor))


def _no_failed_part(detail: GrantDetail) -> bool:
    parts = (detail.session, detail.holdings, detail.integrations, detail.userinfo)
    return all(p.error is None for p in parts)


def grant_detail(ops: Operations, actor: Actor, grant_id: str) -> GrantDetail:
    """One grant's parts, cached per actor and grant; never kept when a part failed."""
    key = read_key(ops, actor, "grant_detail", grant_id)
    return CACHE.get_or_load(key, lambda: ops.grants.grant_detail(actor, grant_id), _no_failed_part)


def grant_history(ops: Operations, actor: Actor, grant_id: str) -> tuple[AuditEvent, ...]:
    """The grant's audit events (newest first), cached per actor and grant."""
    key = read_key(ops, actor, "grant_history", grant_id)
    return CACHE.get_or_load(key, lambda: tuple(ops.grants.grant_history(actor, grant_id)))


def revoke_event(ops: Operations, actor: Actor, grant_id: str) -> AuditEvent | None:
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
