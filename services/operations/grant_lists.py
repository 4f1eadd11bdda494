"""The grant lists and counts the pages show, from the read model (page, counts,
freshness, overview, CSV export). A base of `GrantOps`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TextIO

from services.kryptos.models import Grant
from services.operations import validation
from services.operations.context import OpsContext
from services.operations.errors import OperationError, ValidationError
from services.operations.models import GrantLookup, GrantRow, LookupField, Overview
from services.operations.permissions import Actor, Permission, can
from services.store.actions import AuditAction
from services.store.audit import AuditEvent, AuditFilter
from services.store.errors import StoreError
from services.store.readmodel import (
    MAX_PAGE_SIZE,
    SORTS,
    Counts,
    Freshness,
    GrantFilter,
    GrantPage,
    PageCursor,
)
from services.store.vault import VaultEntry

LATEST_EVENTS = 10
#: `find`: the fields looked up after the grant id, in this order.
# The fields an exact lookup tries after the grant id, in order (`GrantLookup.field`).
LOOKUP_FIELDS: tuple[LookupField, ...] = ("customer_ref", "kryptos_user_id", "workspace_id")
MAX_LOOKUP = 320


class GrantListReads:
    """Lists, counts and exports of grants (permission VIEW_GRANTS)."""

    ctx: OpsContext

    def overview(self, actor: Actor) -> Overview:
        """Counts over all grants and the work queues (one SQL scan of the read model), and
        the latest audit events."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        c: Counts = self._store(self.ctx.readmodel.counts)
        fresh = self._light_freshness(c.total, c.never_refreshed)
        events: tuple[AuditEvent, ...] = ()
        if can(actor, Permission.READ_AUDIT):
            page = self.ctx.audit_log.query(AuditFilter(), page=1, page_size=LATEST_EVENTS)
            events = tuple(page.events)
        return Overview(
            active=c.active, revoked=c.revoked, guest=c.guest, linked=c.linked,
            unknown_kind=c.unknown_kind, with_token=c.with_token,
            without_token=c.without_token, integrations_failing=c.integrations_failing,
            integrations_syncing=c.integrations_syncing,
            integrations_unread=c.queues["not_readable"], latest_events=events,
            queues=dict(c.queues), never_refreshed=c.never_refreshed, freshness=fresh,
        )

    # --- the read model -------------------------------------------------------------------

    @staticmethod
    def _store(read: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(*args, **kwargs)
        except StoreError as exc:
            raise OperationError("Reading the console's copy of the grants failed: "
                                 f"{exc.user_message}", code="STORE_ERROR") from None

    def version(self) -> int:
        """The read model's change counter (no permission: it says nothing about grants)."""
        return int(self._store(self.ctx.readmodel.version))

    def counts(self, actor: Actor) -> Counts:
        """The Overview's counts and work queues, from the read model."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        counts: Counts = self._store(self.ctx.readmodel.counts)
        return counts

    def freshness(self, actor: Actor) -> Freshness:
        """How fresh the read model is, for a page's "as of 12 s ago": its rows and last
        full sync (an index-only count cached per version, and one key read). Left out
        (None): the rows' own oldest/newest times and the never-read grants, which need a
        scan of every row (the Overview has them from its counts)."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        return self._light_freshness(self._store(self.ctx.readmodel.row_count), None)

    def _light_freshness(self, rows: int, never_refreshed: int | None) -> Freshness:
        last = self._store(self.ctx.readmodel.sync_state).get("last_full_sync")
        return Freshness(rows, None, None, None, never_refreshed,
                         datetime.fromisoformat(last) if last else None)

    def request_sync(self, actor: Actor) -> None:
        """Ask the sync worker (whichever process holds it) for a full grants sync at its
        next step: a Refresh button (not audited: it changes nothing a page shows)."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        self._store(self.ctx.readmodel.request_full_sync)

    def page(self, actor: Actor, filters: GrantFilter | None = None, sort: str = "created_at",
             page: int = 1, page_size: int = 100, *, descending: bool = False,
             cursor: PageCursor | None = None) -> GrantPage:
        """One page of grants, searched, filtered, sorted and counted in SQL; with a
        `cursor` (`GrantPage.next_cursor()`, `previous_cursor()`, `LAST_PAGE`) the page
        beside it by keyset, however deep."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        _check_page(sort, page, page_size)
        found: GrantPage = self._store(self.ctx.readmodel.page, filters, sort, page,
                                       page_size, descending=descending, cursor=cursor)
        return found

    def find(self, actor: Actor, text: str) -> GrantLookup:
        """What one search box's text names, by index, never a scan of the grants: the
        grant whose id it is; else the one grant with that customer reference, Kryptos user
        id or workspace (in that order; several: the list of them); else a search of the
        list for it (substring of id, reference or user id)."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        typed = (text or "").strip()
        if not typed:
            raise ValidationError("search", "Please type a grant id, a customer reference, "
                                            "a Kryptos user id or a workspace.")
        if len(typed) > MAX_LOOKUP:
            raise ValidationError("search", f"Please type at most {MAX_LOOKUP} characters.")
        found: dict[str, tuple[str, ...]] = self._store(self.ctx.readmodel.exact_matches,
                                                        typed, 2)
        if found.get("grant_id"):
            return GrantLookup(typed, grant_id=found["grant_id"][0])
        for field in LOOKUP_FIELDS:
            ids = found.get(field, ())
            if len(ids) == 1:
                return GrantLookup(typed, grant_id=ids[0])
            if ids:
                return GrantLookup(typed, field=field)
        if typed.startswith("cgrant_") and validation.GRANT_ID_RE.match(typed):
            # A grant id the console's copy does not have yet (a grant made since the last
            # sync): Grant detail reads it from Kryptos.
            return GrantLookup(typed, grant_id=typed)
        return GrantLookup(typed)

    def export_csv(self, actor: Actor, filters: GrantFilter | None, out: TextIO,
                   sort: str = "grant_id", *, descending: bool = False) -> int:
        """The filtered grants as CSV written to `out`, streamed from SQL in chunks (every
        text cell through the formula guard). Returns the number of grants written."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        _check_page(sort, 1, 1)
        return int(self._store(self.ctx.readmodel.iter_csv, filters, out, sort,
                               descending=descending))


def grant_row(gid: str, g: Grant | None, e: VaultEntry | None, status: str) -> GrantRow:
    kind = getattr(e, "user_kind", None)
    return GrantRow(
        grant_id=gid,
        workspace_id=(g.workspace_id if g is not None else None)
        or getattr(e, "workspace_id", None),
        scopes=g.scopes if g is not None else "",
        created_at=g.created_at if g is not None else None,
        expires_at=g.expires_at if g is not None else None,
        status=status,  # type: ignore[arg-type]
        customer_ref=getattr(e, "customer_ref", None),
        user_kind=kind if kind in ("guest", "linked") else None,
        has_token=e is not None,
        masked_token=getattr(e, "masked_token", None),
        kryptos_user_id=getattr(e, "kryptos_user_id", None),
    )


def _check_page(sort: str, page: int, page_size: int) -> None:
    if sort not in SORTS:
        raise ValidationError("sort", f"must be one of {', '.join(SORTS)}.")
    if not isinstance(page, int) or page < 1:
        raise ValidationError("page", "must be a whole number of at least 1.")
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationError("page_size", f"must be between 1 and {MAX_PAGE_SIZE}.")
