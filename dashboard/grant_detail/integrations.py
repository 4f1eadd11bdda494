"""The integrations table, a resync control per integration, and the resync status poller
(a fragment that reruns the page once a watched resync settles).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import actions
from dashboard.context import PageContext
from dashboard.csv_io import screen_frame
from dashboard.formats import fmt_minute
from dashboard.grant_detail.common import part_value, wallet_names
from dashboard.resync_watch import ResyncWatch
from dashboard.ui import escape_markdown, record_pending_note, show_error, toast_done
from services.kryptos.models import Integration
from services.operations import GrantDetail, OperationError, Permission, can

POLL_SECONDS = 2.0
MODE_LABEL = {"latest": "Latest (new transactions)", "from_start": "From start (full re-import)"}


INTEGRATION_COLUMNS = {
    "name": st.column_config.TextColumn("Name"),
    "provider": st.column_config.TextColumn("Provider"),
    "type": st.column_config.TextColumn("Type"),
    "status": st.column_config.TextColumn("Status"),
    "last_sync": st.column_config.TextColumn("Last sync"),  # text: "never", not "None"
    "transactions": st.column_config.NumberColumn("Transactions", format="%,d"),
    "message": st.column_config.TextColumn("Message", width="large"),
    "wallet_id": st.column_config.TextColumn("Wallet id"),
}


def _integration_row(i: Integration) -> dict[str, Any]:
    return {
        "name": i.display_name,
        "provider": i.provider_public_name or i.provider,
        "type": i.type or "",
        "status": i.status.lower(),  # one style with the grant's "active"/"revoked"
        "last_sync": fmt_minute(i.last_synced_at) if i.last_synced_at else "never",
        "transactions": i.total_transactions,
        "message": i.message or "",
        "wallet_id": i.wallet_id,
    }


def integrations(ctx: PageContext, detail: GrantDetail, watch: ResyncWatch) -> None:
    """The integrations table, a resync control per integration, and the resync poller."""
    gid = detail.grant.grant_id
    st.subheader("Integrations")
    for wid, message in watch.lost(gid).items():
        # Stays until dismissed or until that integration is resynced again.
        with st.container(border=True):
            st.warning(escape_markdown(message), icon=":material/help:")
            if st.button("Dismiss", key=f"resync_lost_dismiss_{wid}"):
                watch.dismiss(gid, wid)
                st.rerun()
    found = part_value(detail, detail.integrations)
    if found is not None:
        watch.adopt(gid, [i.wallet_id for i in found if i.is_syncing])
        if not found:
            st.text("No integrations.")
        else:
            st.dataframe(screen_frame(pd.DataFrame([_integration_row(i) for i in found])),
                         hide_index=True, key="integrations_table",
                         column_config=INTEGRATION_COLUMNS)
        carded = _resync_controls(ctx, detail, watch)  # each card shows its own resync
    else:
        carded = set()
    rest = [wid for wid in watch.watching(gid) if wid not in carded]
    if rest:
        st.caption("Resync in progress; the status refreshes by itself.")
        _resync_status(ctx, gid, wallet_names(detail), watch, rest)


def card_title(i: Integration, *, resyncing: bool = False) -> str:
    """A resync card's title: two integrations may share a name, so the provider and the
    wallet (id, and address when known) tell them apart. While its resync is watched the
    status read before it is not shown (it would say "completed" under a running resync)."""
    provider = i.provider_public_name or i.provider or "provider unknown"
    where = f"wallet {i.wallet_id}"
    if i.public_address:
        where += f", address {i.public_address}"
    status = "resyncing" if resyncing else i.status.lower()
    return (f"{i.display_name} - {provider}, {i.type or 'integration'}, "
            f"status {status}\n{where}")


def _resync_controls(ctx: PageContext, detail: GrantDetail, watch: ResyncWatch) -> set[str]:
    """A card per integration with its resync control, and on the card its resync's
    progress or how it finished; the wallets given a card (none without the permission or
    on a revoked grant)."""
    allowed = [m for m, p in (("latest", Permission.RESYNC_LATEST),
                              ("from_start", Permission.RESYNC_FROM_START))
               if can(ctx.actor, p)]
    found = detail.integrations.value or ()
    if not (found and allowed and detail.grant.status == "active"):
        return set()
    gid = detail.grant.grant_id
    names = wallet_names(detail)
    st.markdown("**Resync**")
    for i in found:
        wid = i.wallet_id
        with st.container(border=True):
            st.text(card_title(i, resyncing=wid in watch.watching(gid)))
            modes = list(allowed)
            if i.is_csv and "from_start" in modes:
                modes = ["from_start"] + [m for m in modes if m != "from_start"]
            c1, c2, c3 = st.columns([2, 3, 1], vertical_alignment="bottom")
            mode = c1.selectbox("Mode", modes, format_func=lambda m: MODE_LABEL.get(m, m),
                                key=f"resync_mode_{wid}")
            reason = c2.text_input("Reason (required for from start)", key=f"resync_reason_{wid}")
            if c3.button("Resync", key=f"resync_{wid}", disabled=wid in watch.watching(gid)):
                asked = datetime.now(UTC)  # its webhooks may arrive before the answer
                try:
                    with st.spinner("Asking Kryptos to resync..."), \
                            actions.watch_records() as pending:
                        out = actions.request_resync(ctx.ops, ctx.actor, gid, wid, mode,
                                                     reason or None)
                except OperationError as exc:
                    show_error(exc)
                else:
                    watch.started(gid, wid, mode, at=asked)
                    toast_done(f"Resync of {i.display_name} requested "
                               f"({MODE_LABEL.get(out.mode, out.mode).lower()}); Kryptos says "
                               f"{out.status.lower()}.")
                    record_pending_note(pending)
            if wid in watch.watching(gid):
                _card_progress(ctx, gid, wid, names, watch)
            elif wid in watch.finished(gid):
                st.success(escape_markdown(f"Resync finished: {watch.finished(gid)[wid]}"),
                           icon=":material/check_circle:")
    return {i.wallet_id for i in found}


def _dialog_open(watch: ResyncWatch) -> bool:
    """The revoke dialog is open (or is being opened by this run's click)."""
    return watch.dialog_open or bool(st.session_state.get("revoke_open"))


@st.fragment(run_every=timedelta(seconds=POLL_SECONDS))
def _card_progress(ctx: PageContext, gid: str, wid: str, names: dict[str, str],
                   watch: ResyncWatch) -> None:
    """One card's resync: polled on the card; once it settles the whole page is rerun (the
    table, the card's status and its "finished" message), except while the revoke dialog
    is open: then the outcome stays here until it closes."""
    poll = watch.poll(ctx.ops, ctx.actor, gid, names, only=[wid])
    if poll.settled and not _dialog_open(watch):
        st.rerun(scope="app")
    if wid in watch.watching(gid):
        st.caption("Resync in progress; the status refreshes by itself.")
        for line in poll.progress:
            st.text(line)
    elif wid in watch.finished(gid):
        st.text(watch.finished(gid)[wid])
        st.caption("Resync finished; the rest of the page shows it once the dialog is closed.")


@st.fragment(run_every=timedelta(seconds=POLL_SECONDS))
def _resync_status(ctx: PageContext, gid: str, names: dict[str, str],
                   watch: ResyncWatch, wallets: list[str]) -> None:
    """Polls the watched integrations; once something settles the whole page is rerun to show
    it, except while the revoke dialog is open: then the outcome stays here until it closes."""
    poll = watch.poll(ctx.ops, ctx.actor, gid, names, only=wallets)
    for line in poll.progress:
        st.text(line)
    if poll.settled and not _dialog_open(watch):
        st.rerun(scope="app")  # the fragment is not drawn again once nothing is watched
    done = watch.settled_lines(gid)
    for line in done:
        st.text(line)
    for message in watch.lost(gid).values() if _dialog_open(watch) else ():
        st.warning(escape_markdown(message), icon=":material/help:")
    if done and not watch.watching(gid):
        st.caption("Resync finished; the rest of the page shows it once the dialog is closed.")
