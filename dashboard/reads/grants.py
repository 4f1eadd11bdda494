"""Grant reads: the read model's pages, counts, overview and freshness (cached under its
version), one grant's detail and history (cached per grant), and the CSV export.
"""

from __future__ import annotations

import io

from dashboard.reads.cache import ALL, CACHE, FRESH, read_key, rm_read_key
from services.kryptos.models import Integration
from services.operations import (
    Actor,
    Counts,
    Freshness,
    GrantDetail,
    GrantFilter,
    GrantLookup,
    GrantPage,
    GrantRow,
    Operations,
    Overview,
)
from services.operations.history import collapse
from services.store import AuditEvent
from services.store.actions import AuditAction


def grant_page(ops: Operations, actor: Actor, filters: GrantFilter | None = None,
               sort: str = "created_at", page: int = 1, page_size: int = 100, *,
               descending: bool = False) -> GrantPage:
    """One page of grants from the read model, searched, filtered and sorted in SQL."""
    key = rm_read_key(ops, actor, "grant_page", filters, sort, page, page_size, descending)
    return CACHE.get_or_load(key, lambda: ops.grants.page(
        actor, filters, sort, page, page_size, descending=descending))


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
    key = read_key(ops, actor, "list_grants", ALL, search, status, kind, has_token)
    return CACHE.get_or_load(
        key,
        lambda: tuple(
            ops.grants.list_grants(
                actor, search=search, status=status, kind=kind, has_token=has_token)
        ),
    )


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
