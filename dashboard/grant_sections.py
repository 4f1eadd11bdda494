"""The sections of the Grant detail page (`pages/grant_detail.py` draws them in order).

Upstream strings (aliases, names, messages) are shown with `st.text`, in dataframe cells or
as chart labels, never through Markdown. Tokens are shown masked only. Reads go through
`dashboard.reads`, changes through `dashboard.actions`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import actions, reads
from dashboard import timeline as timeline_view
from dashboard.context import PageContext
from dashboard.csv_io import csv_safe_frame
from dashboard.formats import fmt_ago, fmt_minute
from dashboard.resync_watch import ResyncWatch
from dashboard.ui import escape_markdown, record_pending_note, show_error, toast_done
from services.operations import (
    ConfirmationRequired,
    GrantDetail,
    OperationError,
    Part,
    Permission,
    can,
    validation,
)
from services.operations.history import approved_words, collapse, describe_event
from services.operations.limit_value import GuestLimit

T = TypeVar("T")

GRANTS_PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "grants.py")
POLL_SECONDS = 2.0
FLASH_KEY = "grant_flash"
PENDING_KEY = "grant_record_pending"  # the last change's audit record waits in the journal
SELECTED_KEY = "selected_grant_id"
LIMIT_FORM_KEYS = ("limit_value", "limit_limiter", "limit_tier", "limit_reason", "limit_ticket")
MODE_LABEL = {"latest": "Latest (new transactions)", "from_start": "From start (full re-import)"}
NO_TIER = "(no tier)"


def _kv(rows: list[tuple[str, str]]) -> None:
    """A two-column table of labels and (possibly upstream) values, rendered as cells."""
    st.dataframe(
        csv_safe_frame(pd.DataFrame(rows, columns=["Field", "Value"])), hide_index=True,
        width="stretch",
    )


def _revoked(detail: GrantDetail) -> bool:
    return detail.grant.status == "revoked"


def _part_value(detail: GrantDetail, part: Part[T]) -> T | None:
    """A part's value to render, or None after showing its error or note."""
    if part.error is not None and _revoked(detail) and getattr(
            part.error, "status", None) in (401, 403):
        # Expected once the grant is revoked (the banner above says why): not an error.
        st.caption("Not available: the grant is revoked.")
        return None
    if part.error is not None:
        show_error(part.error)
        return None
    if part.value is None:
        st.text(part.note or "Not available.")
    return part.value


# --- which grant ------------------------------------------------------------------------


def open_by_id() -> None:
    """The grant id input: opens the typed grant once it is a valid id (else says why)."""
    typed = st.text_input("Grant id", key="detail_open_id", placeholder="cgrant_...")
    if st.button("Open", key="detail_open"):
        try:
            chosen = validation.grant_id(typed)
        except OperationError as exc:
            show_error(exc)
            return
        st.session_state[SELECTED_KEY] = chosen
        st.query_params["grant"] = chosen
        st.rerun()


def chosen_grant() -> str:
    """The grant to show (query parameter, else the one chosen earlier); stops the page with
    the id input when there is none or it is not a grant id."""
    asked = st.query_params.get("grant") or st.session_state.get(SELECTED_KEY)
    if asked:
        try:
            gid = validation.grant_id(asked)
        except OperationError as exc:
            show_error(exc)
            # Never remember an id that is not one: the page would keep showing this error.
            st.session_state.pop(SELECTED_KEY, None)
            if "grant" in st.query_params:
                del st.query_params["grant"]
            st.text("Type the grant id again, or choose the grant on the Grants page.")
            open_by_id()
            st.stop()
    else:
        st.info("No grant selected. Choose one on the Grants page, or type its id.")
        open_by_id()
        st.stop()
    st.session_state[SELECTED_KEY] = gid
    if st.query_params.get("grant") != gid:
        st.query_params["grant"] = gid
    return gid


# --- the grant itself ---------------------------------------------------------------------


def grant(ctx: PageContext, gid: str) -> GrantDetail:
    """The grant's id, Refresh, the last change's message, and its facts; stops the page when
    the grant cannot be read."""
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        toast_done(flash)  # carries upstream text (the API's message): escaped
    record_pending_note(st.session_state.pop(PENDING_KEY, False))
    top1, top2 = st.columns([5, 1])
    top1.code(gid, language=None)
    if top2.button("Refresh", key="detail_refresh"):
        reads.refresh_grant(gid)
    try:
        with st.spinner("Reading the grant from Kryptos..."):
            detail = reads.grant_detail(ctx.ops, ctx.actor, gid)
    except OperationError as exc:
        show_error(exc)
        st.text("Open another grant by its id, or go back to the list.")
        open_by_id()
        if st.button("Back to grants", key="detail_back"):
            st.switch_page(GRANTS_PAGE)
        st.stop()
    if _revoked(detail):
        _revoked_banner(ctx, gid)
    _pending_banner(ctx, gid)
    for note in getattr(detail, "notes", ()):
        with st.container(border=True):
            st.text(note)
    g = detail.grant
    kind = {True: "Guest", False: "Linked", None: "unknown"}[detail.is_guest]
    _kv([
        ("Grant id", g.grant_id),
        ("Status", g.status),
        ("Customer reference", g.customer_ref or "-"),
        ("User", kind),
        ("Kryptos user id", g.kryptos_user_id or "-"),
        ("Workspace", g.workspace_id or "-"),
        ("Scopes", g.scopes or "-"),
        ("Created", fmt_minute(g.created_at)),
        ("Expires", fmt_minute(g.expires_at)),
        ("Token", g.masked_token or "not stored"),
    ])
    _facts_freshness(detail)
    return detail


def _facts_freshness(detail: GrantDetail) -> None:
    """How fresh the facts above are (the console's copy); the parts below are live."""
    row = getattr(detail, "row", None)
    live = "Session, holdings and integrations below are read from Kryptos now."
    if row is None:
        st.caption(f"Read from Kryptos now (the console's copy did not have this grant yet). "
                   f"{live}")
        return
    seen = row.grants_seen_at
    confirmed = (f"the grants list confirmed it {fmt_ago(seen)}" if seen is not None
                 else "no full sync has listed it yet")
    st.caption(f"Status and ids from the console's copy, as of {fmt_ago(row.refreshed_at)} "
               f"({confirmed}). {live}")


APPROVALS_LINK = "/approvals"


def pending_requests(ctx: PageContext, gid: str) -> list[Any]:
    """The pending approval requests on this grant (one indexed query, never cached:
    another replica's request must show); none when they cannot be read (the banner at the
    top of the page says why)."""
    try:
        return reads.pending_requests(ctx.ops, ctx.actor, gid)
    except OperationError:
        return []


def _request_words(r: Any) -> str:
    rec = r.record
    return (f"Request #{r.id} ({r.describe()}) by {rec.requester_username} at "
            f"{fmt_minute(rec.created_at)}")


def _pending_banner(ctx: PageContext, gid: str) -> None:
    """A change waiting for approval on this grant: what, who, when, and where to decide."""
    try:
        waiting = reads.pending_requests(ctx.ops, ctx.actor, gid)
    except OperationError as exc:  # said here once; the forms below then assume none
        show_error(exc)
        return
    for r in waiting:
        st.info(escape_markdown(f"Waiting for approval: {_request_words(r)}. Nothing is "
                                "changed until a second person approves it")
                + f" on the [Approvals page]({APPROVALS_LINK}).",
                icon=":material/pending_actions:")


def _revoked_banner(ctx: PageContext, gid: str) -> None:
    """Says plainly that the grant is revoked, and when and by whom when the viewer may know."""
    said = "This grant is revoked: its tokens no longer work, so session, holdings, "
    said += "integrations and user info cannot be read."
    if not can(ctx.actor, Permission.VIEW_GRANT_HISTORY):
        st.warning(said, icon=":material/block:")
        st.caption("When and by whom is shown to support, finance and admin (History).")
        return
    try:
        event = reads.revoke_event(ctx.ops, ctx.actor, gid)
    except OperationError as exc:
        st.warning(said, icon=":material/block:")
        show_error(exc)
        return
    if event is None:
        said += (" The console's audit log has no revoke of it: it was revoked outside this "
                 "console (by the customer, or directly through the Kryptos API).")
    else:
        said += (f" Revoked on {fmt_minute(event.ts)} by "
                 f"{event.actor_username}{approved_words(event)} through this console")
        said += f", reason: {event.reason}" if event.reason else ""
        said += f", ticket {event.ticket}." if event.ticket else "."
    st.warning(escape_markdown(said), icon=":material/block:")  # reason and ticket: typed text


# --- session ------------------------------------------------------------------------------


def session(detail: GrantDetail) -> None:
    st.subheader("Session")
    s = _part_value(detail, detail.session)
    if s is None:
        return
    if s.has_valid_session:
        st.success("The session is valid.", icon=":material/check_circle:")
    elif _revoked(detail):
        st.caption("The session is not valid: the grant is revoked.")
    else:
        st.error("The session is not valid.", icon=":material/block:")
    _kv([
        ("Reason", s.reason or "-"),
        ("Workspace name", s.workspace_name or "-"),
        ("User id", s.user_id or "-"),
        ("Granted scopes", s.granted_scopes or "-"),
    ])


# --- holdings -------------------------------------------------------------------------------


def _names(detail: GrantDetail) -> dict[str, str]:
    return {i.wallet_id: i.display_name for i in detail.integrations.value or ()}


HOLDING_COLUMNS = {
    "asset": st.column_config.TextColumn("Asset"),
    "name": st.column_config.TextColumn("Name"),
    "quantity": st.column_config.NumberColumn("Quantity", format="%,.6f"),
    "price": st.column_config.NumberColumn("Price", format="%,.4f"),
    "value": st.column_config.NumberColumn("Value", format="%,.2f"),
    "cost_basis": st.column_config.NumberColumn("Cost basis", format="%,.2f"),
    "pnl": st.column_config.NumberColumn("Unrealised P&L", format="%,.2f"),
    "change_24h": st.column_config.NumberColumn("24 h change", format="%.2f %%"),
}


def holdings(detail: GrantDetail) -> None:
    st.subheader("Holdings")
    h = _part_value(detail, detail.holdings)
    if h is None:
        return
    sm = h.summary
    cur = h.holdings[0].base_currency if h.holdings else "USD"
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(f"Total value ({cur})", f"{sm.total_value:,.2f}")
    m2.metric(f"Cost basis ({cur})", f"{sm.total_cost_basis:,.2f}")
    m3.metric(f"Unrealised P&L ({cur})", f"{sm.total_unrealized_pnl:,.2f}",
              delta=f"{sm.roi_percentage:,.2f} % ROI", delta_color="normal")
    # The API's 24 h change is a percentage, not an amount.
    m4.metric("24 h change", f"{sm.total_24h_change:,.2f} %")
    if not h.holdings:
        st.text("No holdings.")
        return
    hold = pd.DataFrame([
        {
            "asset": x.asset.symbol,
            "name": x.asset.public_name,
            "quantity": x.total_quantity,
            "price": x.market_price,
            "value": x.market_value,
            "cost_basis": x.cost_basis,
            "pnl": x.unrealized_pnl,
            "change_24h": x.change_24h,
        }
        for x in h.holdings
    ])
    st.dataframe(csv_safe_frame(hold), hide_index=True, key="holdings_table",
                 column_config=HOLDING_COLUMNS)
    names = _names(detail)
    by_wallet: dict[str, float] = {}
    for x in h.holdings:
        for d in x.distribution:
            label = names.get(d.wallet_id or "", d.wallet_id or d.provider or "unknown")
            by_wallet[label] = by_wallet.get(label, 0.0) + d.quantity * x.market_price
    c1, c2 = st.columns(2)
    with c1:
        _bar_chart(hold, "asset", "Asset", cur, "Value by asset", ["asset", "name"])
    with c2:
        if by_wallet:
            wallets = pd.DataFrame({"wallet": list(by_wallet), "value": list(by_wallet.values())})
            _bar_chart(wallets, "wallet", "Wallet", cur, "Value by wallet", ["wallet"])
        else:
            st.text("No per-wallet distribution in the holdings.")


def _bar_chart(frame: pd.DataFrame, by: str, label: str, cur: str, title: str,
               tips: list[str]) -> None:
    st.altair_chart(
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("value:Q", title=f"Value ({cur})"),
            y=alt.Y(f"{by}:N", sort="-x", title=label),
            tooltip=[*tips, alt.Tooltip("value:Q", format=",.2f")],
        )
        .properties(title=title),
        width="stretch",
    )


# --- integrations and resync -------------------------------------------------------------

INTEGRATION_COLUMNS = {
    "name": st.column_config.TextColumn("Name"),
    "provider": st.column_config.TextColumn("Provider"),
    "type": st.column_config.TextColumn("Type"),
    "status": st.column_config.TextColumn("Status"),
    "last_sync": st.column_config.DatetimeColumn("Last sync", format="YYYY-MM-DD HH:mm"),
    "transactions": st.column_config.NumberColumn("Transactions", format="%,d"),
    "message": st.column_config.TextColumn("Message", width="large"),
    "wallet_id": st.column_config.TextColumn("Wallet id"),
}


def _integration_row(i: Any) -> dict[str, Any]:
    return {
        "name": i.display_name,
        "provider": i.provider_public_name or i.provider,
        "type": i.type or "",
        "status": i.status.lower(),  # one style with the grant's "active"/"revoked"
        "last_sync": i.last_synced_at,
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
    found = _part_value(detail, detail.integrations)
    if found is not None:
        watch.adopt(gid, [i.wallet_id for i in found if i.is_syncing])
        if not found:
            st.text("No integrations.")
        else:
            st.dataframe(csv_safe_frame(pd.DataFrame([_integration_row(i) for i in found])),
                         hide_index=True, key="integrations_table",
                         column_config=INTEGRATION_COLUMNS)
        _resync_controls(ctx, detail, watch)
    if watch.watching(gid):
        st.caption("Resync in progress; the status refreshes by itself.")
        _resync_status(ctx, gid, _names(detail), watch)


def card_title(i: Any) -> str:
    """A resync card's title: two integrations may share a name, so the provider and the
    wallet (id, and address when known) tell them apart."""
    provider = i.provider_public_name or i.provider or "provider unknown"
    where = f"wallet {i.wallet_id}"
    if i.public_address:
        where += f", address {i.public_address}"
    return (f"{i.display_name} - {provider}, {i.type or 'integration'}, "
            f"status {i.status.lower()}\n{where}")


def _resync_controls(ctx: PageContext, detail: GrantDetail, watch: ResyncWatch) -> None:
    allowed = [m for m, p in (("latest", Permission.RESYNC_LATEST),
                              ("from_start", Permission.RESYNC_FROM_START))
               if can(ctx.actor, p)]
    found = detail.integrations.value or ()
    if not (found and allowed and detail.grant.status == "active"):
        return
    gid = detail.grant.grant_id
    st.markdown("**Resync**")
    for i in found:
        wid = i.wallet_id
        with st.container(border=True):
            st.text(card_title(i))
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


def _dialog_open(watch: ResyncWatch) -> bool:
    """The revoke dialog is open (or is being opened by this run's click)."""
    return watch.dialog_open or bool(st.session_state.get("revoke_open"))


@st.fragment(run_every=timedelta(seconds=POLL_SECONDS))
def _resync_status(ctx: PageContext, gid: str, names: dict[str, str],
                   watch: ResyncWatch) -> None:
    """Polls the watched integrations; once something settles the whole page is rerun to show
    it, except while the revoke dialog is open: then the outcome stays here until it closes."""
    poll = watch.poll(ctx.ops, ctx.actor, gid, names)
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


# --- Guest limit ------------------------------------------------------------------------

CONFIRM_KEY = "limit_pending"  # a change waiting for its confirmation (gid, kwargs, why, seen)
STALE_KEY = "limit_stale"  # the refusal of a change made against an old value
SEEN_KEY = "limit_seen"  # (gid, GuestLimit) drawn by the previous run: what the person saw


def seen_limit(detail: GrantDetail) -> GuestLimit:
    """What the page shows of the limit (the user info's; unknown when unread)."""
    return detail.limit


def guest_limit(ctx: PageContext, detail: GrantDetail) -> None:
    st.subheader("Transaction limit")
    if detail.is_guest is False:
        st.info("This is a Linked user: transaction limits apply to Guest users only.")
        return
    if detail.is_guest is None:
        st.caption("Guest or Linked is not known yet for this grant.")
    seen = seen_limit(detail)
    if seen.known:
        tier = reads.matching_tier(ctx.ops, seen)
        m1, m2, m3 = st.columns(3)
        m1.metric("Limiter", "on" if seen.limiter else "off")
        m2.metric("Effective limit", seen.label())
        m3.metric("Tier", tier.name if tier is not None else "none (custom limit)")
    else:
        st.text("Limiter, effective limit and tier: unknown (user info not available).")
    if can(ctx.actor, Permission.MANAGE_LIMITS) and detail.grant.status == "active":
        _limit_form(ctx, detail.grant.grant_id, seen)


def _limit_form(ctx: PageContext, gid: str, now: GuestLimit) -> None:
    # A click reruns the page, which reads the grant again (another tab's change included):
    # the change is made against what the previous run drew, i.e. what the person saw.
    drawn = st.session_state.get(SEEN_KEY)
    st.session_state[SEEN_KEY] = (gid, now)
    seen = drawn[1] if drawn is not None and drawn[0] == gid else now
    stale = st.session_state.pop(STALE_KEY, None)
    if stale is not None:
        st.error(escape_markdown(stale), icon=":material/sync_problem:")
        st.caption("The values above are the current ones: review them and apply again.")
    if _pending(ctx, gid):
        return
    tiers = [NO_TIER] + [t.name for t in reads.tiers(ctx.ops)]
    with st.form("limit_form"):
        st.caption(
            "Set a limit and/or switch the limiter, or apply a tier. A new limit switches "
            "the limiter on when it is left on \"keep\" (a limit with the limiter off is "
            "not enforced); choose \"off\" to store a limit without enforcing it."
        )
        _approval_caption(ctx, "limit", gid)
        f1, f2, f3 = st.columns(3)
        # Text, not a number input: "12.5" or "1e3" is refused with the reason, not rounded.
        typed = f1.text_input("New limit", key="limit_value",
                              placeholder="a whole number, e.g. 7500")
        beside: dict[str, Any] = {"transaction_limit": f1.empty()}
        limiter = f2.selectbox("Limiter", actions.LIMITER_CHOICES, key="limit_limiter")
        tier = f3.selectbox("Tier", tiers, key="limit_tier",
                            format_func=lambda n: reads.tier_label(ctx.ops, n))
        beside["tier"] = f3.empty()
        why = st.text_input("Reason", key="limit_reason")
        beside["reason"] = st.empty()
        ticket = st.text_input("Ticket (optional)", key="limit_ticket")
        beside["ticket"] = st.empty()
        if not st.form_submit_button("Apply limit"):
            return
        values = dict(limit=typed, limiter=limiter, tier=None if tier == NO_TIER else tier,
                      reason=why, ticket=ticket)
        try:
            check = actions.needs_confirmation(
                ctx.ops, ctx.actor, gid, seen, actions.limit_from_text(typed), limiter,
                values["tier"])
        except OperationError as exc:
            _refusal(exc, beside)
            return
        if check is not None:
            st.session_state[CONFIRM_KEY] = (gid, values, check, seen)
            st.rerun()
        _apply_limit(ctx, gid, seen, values, beside)


def _pending(ctx: PageContext, gid: str) -> bool:
    """The confirmation of a risky change (before -> after); True while it is shown."""
    pending = st.session_state.get(CONFIRM_KEY)
    if pending is None or pending[0] != gid:
        return False
    _, values, check, seen = pending
    with st.container(border=True):
        st.warning(escape_markdown(check) + " Apply it?", icon=":material/warning:")
        b1, b2 = st.columns(2)
        if b1.button("Yes, apply this change", key="limit_confirm", type="primary"):
            st.session_state.pop(CONFIRM_KEY, None)
            _apply_limit(ctx, gid, seen, values, {}, confirmed=True)
        if b2.button("Cancel", key="limit_cancel"):
            st.session_state.pop(CONFIRM_KEY, None)
            st.rerun()
    return True


def _refusal(exc: OperationError, beside: dict[str, Any]) -> None:
    """A refusal beside the field it is about, else as an error here."""
    spot = beside.get(getattr(exc, "field", ""))
    if spot is not None:
        spot.error(exc.user_message, icon=":material/error:")
    else:
        show_error(exc)


def _apply_limit(ctx: PageContext, gid: str, seen: GuestLimit, values: dict[str, Any],
                 beside: dict[str, Any], *, confirmed: bool = False) -> None:
    try:
        with st.spinner("Changing the limit..."), actions.watch_records() as pending:
            res = actions.submit_limit(ctx.ops, ctx.actor, gid, seen=seen,
                                       confirmed=confirmed, **values)
    except ConfirmationRequired as exc:  # the use case asks: show its question
        st.session_state[CONFIRM_KEY] = (gid, values, exc.question, seen)
        st.rerun()
    except OperationError as exc:
        if exc.code == "STALE":
            # Shown after a rerun, over the values read afresh (the cache was dropped).
            st.session_state[STALE_KEY] = exc.user_message
            st.rerun()
        _refusal(exc, beside)
        return
    st.session_state[FLASH_KEY] = res.summary()
    st.session_state[PENDING_KEY] = bool(pending) or bool(
        res.tier_item is not None and res.tier_item.record_pending)
    for k in LIMIT_FORM_KEYS:  # an empty form: a second click changes nothing
        st.session_state.pop(k, None)
    st.rerun()


def _approval_caption(ctx: PageContext, form: str, gid: str | None = None) -> None:
    note = actions.approval_note(ctx.ops, form, ctx.actor)
    if note:
        st.caption(note)
    kind = "revoke" if form == "revoke" else "limit"
    for r in pending_requests(ctx, gid) if gid is not None else ():
        if r.change.kind == kind:
            st.caption(escape_markdown(f"{_request_words(r)} already waits for approval: "
                                       "another request for this grant would be refused "
                                       "until it is decided."))


# --- danger zone -----------------------------------------------------------------------


@st.dialog("Revoke grant", on_dismiss="rerun")
def _revoke_dialog(ctx: PageContext, gid: str, watch: ResyncWatch) -> None:
    watch.dialog_open = True  # until the next full run (closing the dialog reruns)
    st.text(
        "Revoking stops the grant's tokens at once; the customer must connect again.\n"
        "Type the grant id again to confirm."
    )
    st.code(gid, language=None)
    _approval_caption(ctx, "revoke")
    reason = st.text_input("Reason", key="revoke_reason")
    ticket = st.text_input("Ticket (optional)", key="revoke_ticket")
    typed = st.text_input("Grant id, typed again", key="revoke_typed")
    if st.button("Revoke", type="primary", key="revoke_confirm"):
        try:
            with st.spinner("Revoking..."), actions.watch_records() as pending:
                msg = actions.confirm_revoke(ctx.ops, ctx.actor, gid, typed, reason, ticket)
        except OperationError as exc:
            show_error(exc)
        else:
            # The API's own message ("Grant revoked successfully") would say it twice.
            st.session_state[FLASH_KEY] = (msg.summary() if isinstance(msg, actions.Held)
                                           else f"Grant revoked ({gid}).")
            st.session_state[PENDING_KEY] = bool(pending)
            st.rerun()


def revoke(ctx: PageContext, detail: GrantDetail, watch: ResyncWatch) -> None:
    if not (can(ctx.actor, Permission.REVOKE_GRANT) and detail.grant.status == "active"):
        return
    st.subheader("Danger zone")
    gid = detail.grant.grant_id
    with st.container(border=True):
        st.text("Revoke this grant: its access and refresh tokens stop working at once.")
        waiting = [r for r in pending_requests(ctx, gid) if r.change.kind == "revoke"]
        if waiting:  # a second request would be refused: say where the first one is
            st.markdown(escape_markdown(f"A revoke request is already waiting: "
                                        f"{_request_words(waiting[0])}.")
                        + f" Decide it on the [Approvals page]({APPROVALS_LINK}).")
            return
        if st.button("Revoke grant...", key="revoke_open"):
            _revoke_dialog(ctx, gid, watch)


# --- history ---------------------------------------------------------------------------


def history(ctx: PageContext, gid: str) -> None:
    st.subheader("History")
    if not can(ctx.actor, Permission.VIEW_GRANT_HISTORY):
        st.caption("Who did what to this grant is shown to support, finance and admin.")
        return
    try:
        events = reads.grant_history(ctx.ops, ctx.actor, gid)
    except OperationError as exc:
        show_error(exc)
        return
    if not events:
        st.text("No recorded actions on this grant.")
        return
    # One row per change (its request and outcome together), said in words.
    st.dataframe(
        csv_safe_frame(pd.DataFrame([
            {
                "time": e.ts,
                "user": e.actor_username,
                "done": describe_event(e),
                "reason": e.reason or "",
                "ticket": e.ticket or "",
                "request_id": e.request_id or "",
            }
            for e in collapse(events)
        ])),
        hide_index=True,
        key="history_table",
        column_config={
            "time": st.column_config.DatetimeColumn("Time", format="YYYY-MM-DD HH:mm:ss"),
            "user": st.column_config.TextColumn("User"),
            "done": st.column_config.TextColumn("What was done", width="large"),
            "reason": st.column_config.TextColumn("Reason", width="medium"),
            "ticket": st.column_config.TextColumn("Ticket"),
            "request_id": st.column_config.TextColumn("Request id"),
        },
    )


# --- timeline (webhooks, recorded actions, resyncs) ------------------------------------

TIMELINE_COLUMNS = {
    "time": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "source": st.column_config.TextColumn("From"),
    "what": st.column_config.TextColumn("What happened", width="large"),
}


def timeline(ctx: PageContext, gid: str) -> None:
    """What Kryptos reported by webhook and what was done to the grant, newest first (upstream
    text in table cells only)."""
    st.subheader("Timeline")
    try:
        items = reads.timeline(ctx.ops, ctx.actor, gid)
    except OperationError as exc:
        show_error(exc)
        return
    if not reads.timeline_shows_actions(ctx.actor):
        st.caption("Webhooks from Kryptos only: the actions recorded on this grant are shown "
                   "to support, finance and admin.")
    if not items:
        st.text("Nothing yet: no webhook received for this grant and no recorded action.")
        return
    st.dataframe(csv_safe_frame(pd.DataFrame(timeline_view.rows(items))), hide_index=True,
                 width="stretch", key="timeline_table", column_config=TIMELINE_COLUMNS)


