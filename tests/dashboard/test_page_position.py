"""The Grants page steps through a listing by keyset from the page it showed: the next and
the previous page from that page's rows, the last page from the end, a jump by number."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard import reads
from services.operations import LAST_PAGE, GrantFilter, GrantPage, PageCursor, RmGrant

T = datetime(2025, 1, 1, tzinfo=UTC)


def _row(gid: str) -> RmGrant:
    values = {name: None for name in RmGrant.__dataclass_fields__}
    values.update(grant_id=gid, status="active", has_token=True, refreshed_at=T,
                  unreadable=False, n_integrations=0, n_failing=0, n_syncing=0,
                  n_never_synced=0, created_at=T)
    return RmGrant(**values)


def test_the_next_previous_and_last_pages_go_by_keyset_a_jump_by_number() -> None:
    listing = (GrantFilter(status="active"), "created_at", False, 2)
    shown = GrantPage((_row("cgrant_a"), _row("cgrant_b")), total=9, page=3, page_size=2)
    position = reads.PagePosition.of(shown, listing)
    assert position.pages == 5
    assert reads.page_cursor(position, listing, 4) == PageCursor(T, "cgrant_b")
    assert reads.page_cursor(position, listing, 2) == PageCursor(T, "cgrant_a", before=True)
    assert reads.page_cursor(position, listing, 5) == LAST_PAGE
    assert reads.page_cursor(position, listing, 1) is None  # the first page: by number
    assert reads.page_cursor(None, listing, 4) is None
    # Another listing (a filter, the sort or the page size changed): by number.
    other = (GrantFilter(status="revoked"), "created_at", False, 2)
    assert reads.page_cursor(position, other, 4) is None
    # More matches than counted: no last page to go to.
    capped = GrantPage(shown.rows, total=10_000, page=3, page_size=2, total_exact=False)
    assert reads.PagePosition.of(capped, listing).pages is None
    assert reads.page_cursor(reads.PagePosition.of(capped, listing), listing, 5000) is None
