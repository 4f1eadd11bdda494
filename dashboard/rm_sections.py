"""What the pages that show read-model data share: the freshness line ("as of
12 s ago", stale, first sync in progress), the Overview's work-queue links into the Grants
page, and the sync worker's state for admins."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import reads
from dashboard.context import PageContext
from dashboard.csv_io import screen_frame
from dashboard.formats import ABSENT, fmt_second, fmt_text
from dashboard.ui import show_error
from services.operations import QUEUES, OperationError, Overview, Permission, can

GRANTS_PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "grants.py")
#: Query parameter and session keys of the Grants page's work-queue filter.
QUEUE_PARAM = "queue"
QUEUE_LABELS = {
    "failing": "Failing",
    "syncing": "Syncing",
    "never_synced": "Never synced",
    "not_readable": "Not readable",
    "no_token": "No token",
}
QUEUE_HELP = {
    "failing": "Active grants with a failed or partly synced integration.",
    "syncing": "Active grants with an integration syncing now.",
    "never_synced": "Active grants with an integration that never synced.",
    "not_readable": "Active grants whose integrations could not be read.",
    "no_token": "Active grants whose access token is not stored.",
}
LOADING = "Loading grants… first sync in progress."
#: Rows are showing but the first full sync has not ended: counts still grow.
PARTIAL = ("First sync in progress: {rows:,} grant(s) loaded so far. Counts and lists are "
           "partial until it finishes.")
#: While the first sync runs, the Overview looks for new rows this often (seconds).
FIRST_SYNC_POLL_S = 3.0
#: Session key of the admin's "Sync worker" expander (open or not).
SYNC_BOX_KEY = "sync_worker_open"
#: Without a full sync for this many grants intervals, the data is labelled stale.
STALE_INTERVALS = 2


def _grants_interval(ctx: PageContext) -> float:
    settings = ctx.runtime.settings
    return float(getattr(settings, "sync_grants_interval", 300.0))


def freshness(ctx: PageContext) -> bool:
    """The caption under a title: "Grants as of 12 s ago", a stale warning, or the first
    sync's notice (partial counts while it runs). Returns False while the read model has
    no rows yet."""
    try:
        fresh = reads.freshness(ctx.ops, ctx.actor)
    except OperationError as exc:
        show_error(exc)
        return False
    if fresh.rows == 0 and fresh.last_full_sync is None:
        st.info(LOADING, icon=":material/hourglass_top:")
        return False
    if fresh.last_full_sync is None:
        st.info(PARTIAL.format(rows=fresh.rows), icon=":material/hourglass_top:")
        return True
    if fresh.is_stale(STALE_INTERVALS * _grants_interval(ctx)):
        st.warning(
            f"Stale: grants {fresh.as_of()} (the last full sync is older than expected; "
            "an administrator can see the sync worker's state on the Overview).",
            icon=":material/history:",
        )
    else:
        st.caption(f"Grants {fresh.as_of()}.", help="From the console's copy of Kryptos, "
                   "kept fresh by its sync worker; changes made here show at once.")
    return True


def follow_first_sync(ctx: PageContext) -> None:
    """While the first sync runs (rows shown, no full sync yet), rerun the page by itself
    when more rows have arrived, every `FIRST_SYNC_POLL_S` seconds, so partial counts grow
    without a click; nothing is drawn, and nothing runs once the first sync has ended."""
    try:
        fresh = reads.freshness(ctx.ops, ctx.actor)
    except OperationError:
        return  # the page's own freshness line has said what is wrong
    if fresh.last_full_sync is not None:
        return
    shown = fresh.rows

    @st.fragment(run_every=FIRST_SYNC_POLL_S)
    def watch() -> None:
        try:
            now = reads.freshness(ctx.ops, ctx.actor)
        except OperationError:
            return
        if now.rows != shown or now.last_full_sync is not None:
            st.rerun()

    watch()


def open_queue(queue: str) -> None:
    """Open the Grants page filtered to one work queue."""
    st.switch_page(GRANTS_PAGE, query_params={QUEUE_PARAM: queue})


def queue_links(ov: Overview) -> None:
    """The work queues, each count a button opening the Grants page filtered to it."""
    st.subheader("Work queues")
    # A wrapping row of buttons as wide as their words: at half a laptop's screen the counts
    # go to a second line instead of being cut off.
    row = st.container(horizontal=True, wrap=True)
    for name in QUEUES:
        n = int(ov.queues.get(name, 0))
        if row.button(f"{QUEUE_LABELS[name]}: {n:,}", key=f"queue_{name}",
                      help=QUEUE_HELP[name], width="content"):
            open_queue(name)


def _at_least(n: int, exact: bool) -> str:
    """A count as the sync view shows it: "more than 10,000" when it stopped at a cap."""
    return f"{n:,}" if exact else f"more than {n:,}"


def sync_status(ctx: PageContext) -> None:
    """Admins: the sync worker's state (holder, last full sync, stale rows, errors, rate)."""
    if not can(ctx.actor, Permission.VIEW_SYNC_STATUS):
        return
    # Read only while open: its staleness figures are index walks counted up to the read
    # model's cap, still more than every Overview run of an admin needs.
    box = st.expander("Sync worker", icon=":material/sync:", key=SYNC_BOX_KEY,
                      on_change="rerun")
    if not box.open:
        return
    with box:
        try:
            s = reads.sync_status(ctx.ops, ctx.actor, _grants_interval(ctx))
        except OperationError as exc:
            show_error(exc)
            return
        where = ("this process holds the lock" if s.holder_here
                 else "this process stands by" if s.runs_here else "not run by this process")
        rows = [
            ("Holder", f"{s.holder or 'none yet'} ({where})"),
            ("Last full sync", fmt_second(s.last_full_sync) if s.last_full_sync else "never"),
            ("Grants listed", ABSENT if s.grants_listed is None else f"{s.grants_listed:,}"),
            ("Rows", f"{s.rows:,}"),
            ("Rows stale", f"{_at_least(s.rows_stale, s.rows_stale_exact)} "
                           f"({_at_least(s.never_refreshed, s.never_refreshed_exact)} "
                           "never read)"),
            ("Calls a second", ABSENT if s.calls_per_second is None
             else f"{s.calls_per_second:.2f} (rate {s.rate or 0:.2f}/s)"),
            ("Errors", str(s.errors)),
            ("Last error", fmt_text(s.last_error)),
            ("State", "stale" if s.stale else "fresh"),
        ]
        # Grid cells neutralised like every grid's (the last error may carry upstream text).
        st.dataframe(screen_frame(pd.DataFrame(rows, columns=["what", "value"])),
                     hide_index=True, key="sync_status_table")
