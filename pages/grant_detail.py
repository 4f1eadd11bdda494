"""Grant detail: session, holdings, integrations (resync), Guest limit, revoke, history.

Upstream strings (aliases, names, messages) are shown with `st.text`, in dataframe cells or
as chart labels, never through Markdown. Tokens are shown masked only.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data, grant_actions
from dashboard.auth import require_actor
from dashboard.runtime import get_runtime
from dashboard.ui import escape_markdown, show_error, toast_done
from services.operations import GrantDetail, OperationError, Permission, can, validation
from services.store.actions import AuditAction

GRANTS_PAGE = str(Path(__file__).resolve().parent / "grants.py")
POLL_SECONDS = 2.0
WATCH_KEY = "resync_watch"  # {grant_id: {wallet_id: mode}}
FLASH_KEY = "grant_flash"
SELECTED_KEY = "selected_grant_id"
# True while the revoke dialog is open (set by the dialog, reset by every full run of the page):
# the resync poller must not rerun the whole app then, or the dialog closes and loses its input.
DIALOG_KEY = "revoke_dialog_open"
SETTLED_KEY = "resync_settled"  # {grant_id: [status line]}: settled while the dialog was open
FAILS_KEY = "resync_status_failures"  # {grant_id: {wallet_id: failed status reads in a row}}
LOST_KEY = "resync_status_lost"  # {grant_id: {wallet_id: message}}: status given up on
STATUS_ATTEMPTS = 3  # status reads that may fail in a row before the page gives up
LIMIT_FORM_KEYS = ("limit_value", "limit_limiter", "limit_tier", "limit_reason", "limit_ticket")
MODE_LABEL = {"latest": "Latest (new transactions)", "from_start": "From start (full re-import)"}

rt = get_runtime()
ops = rt.ops
actor = require_actor()


def _fmt_limit(value: int | None) -> str:
    return "no limit" if value is None else f"{value:,}"


def _fmt_dt(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


def _kv(rows: list[tuple[str, str]]) -> None:
    """A two-column table of labels and (possibly upstream) values, rendered as cells."""
    st.dataframe(
        pd.DataFrame(rows, columns=["Field", "Value"]), hide_index=True, width="stretch"
    )


# --- which grant ------------------------------------------------------------------------


def _open_by_id() -> None:
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


st.title("Grant detail")
asked = st.query_params.get("grant") or st.session_state.get(SELECTED_KEY)
gid: str | None = None
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
        _open_by_id()
        st.stop()
if gid is None:
    st.info("No grant selected. Choose one on the Grants page, or type its id.")
    _open_by_id()
    st.stop()
st.session_state[SELECTED_KEY] = gid
if st.query_params.get("grant") != gid:
    st.query_params["grant"] = gid
st.session_state[DIALOG_KEY] = False  # a full run: the revoke dialog is not open (yet)
st.session_state.get(SETTLED_KEY, {}).pop(gid, None)  # this run reads them afresh

flash = st.session_state.pop(FLASH_KEY, None)
if flash:
    toast_done(flash)  # carries upstream text (the API's message): escaped

top1, top2 = st.columns([5, 1])
top1.code(gid, language=None)
if top2.button("Refresh", key="detail_refresh"):
    data.invalidate_grant(gid)

try:
    with st.spinner("Reading the grant from Kryptos..."):
        detail: GrantDetail = data.grant_detail(ops, actor, gid)
except OperationError as exc:
    show_error(exc)
    st.text("Open another grant by its id, or go back to the list.")
    _open_by_id()
    if st.button("Back to grants", key="detail_back"):
        st.switch_page(GRANTS_PAGE)
    st.stop()

g = detail.grant
revoked = g.status == "revoked"


def _revoke_event() -> Any:
    """The console's record of this grant's revoke (newest succeeded), or None."""
    events = data.grant_history(ops, actor, gid)
    return next(
        (e for e in events
         if e.action == AuditAction.GRANT_REVOKE and e.outcome == "succeeded"), None
    )


def _revoked_banner() -> None:
    """Says plainly that the grant is revoked, and when and by whom when the viewer may know."""
    said = "This grant is revoked: its tokens no longer work, so session, holdings, "
    said += "integrations and user info cannot be read."
    if not can(actor, Permission.VIEW_GRANT_HISTORY):
        st.warning(said, icon=":material/block:")
        st.caption("When and by whom is shown to support, finance and admin (History).")
        return
    try:
        event = _revoke_event()
    except OperationError as exc:
        st.warning(said, icon=":material/block:")
        show_error(exc)
        return
    if event is None:
        said += (" The console's audit log has no revoke of it: it was revoked outside this "
                 "console (by the customer, or directly through the Kryptos API).")
    else:
        said += (f" Revoked on {event.ts.strftime('%Y-%m-%d %H:%M UTC')} by "
                 f"{event.actor_username} through this console")
        said += f", reason: {event.reason}" if event.reason else ""
        said += f", ticket {event.ticket}." if event.ticket else "."
    st.warning(escape_markdown(said), icon=":material/block:")  # reason and ticket: typed text


if revoked:
    _revoked_banner()
for note in getattr(detail, "notes", ()):
    with st.container(border=True):
        st.text(note)

kind = {True: "Guest", False: "Linked", None: "unknown"}[detail.is_guest]
_kv(
    [
        ("Grant id", g.grant_id),
        ("Status", g.status),
        ("Customer reference", g.customer_ref or "-"),
        ("User", kind),
        ("Kryptos user id", g.kryptos_user_id or "-"),
        ("Workspace", g.workspace_id or "-"),
        ("Scopes", g.scopes or "-"),
        ("Created", _fmt_dt(g.created_at)),
        ("Expires", _fmt_dt(g.expires_at)),
        ("Token", g.masked_token or "not stored"),
    ]
)


def _part_problem(part: Any) -> bool:
    """Show a part's error or note; True when there is no value to render."""
    if part.error is not None and revoked and getattr(part.error, "status", None) in (401, 403):
        # Expected once the grant is revoked (the banner above says why): not an error.
        st.caption("Not available: the grant is revoked.")
        return True
    if part.error is not None:
        show_error(part.error)
        return True
    if part.value is None:
        st.text(part.note or "Not available.")
        return True
    return False


# --- session ------------------------------------------------------------------------------

st.subheader("Session")
if not _part_problem(detail.session):
    s = detail.session.value
    if s.has_valid_session:
        st.success("The session is valid.", icon=":material/check_circle:")
    elif revoked:
        st.caption("The session is not valid: the grant is revoked.")
    else:
        st.error("The session is not valid.", icon=":material/block:")
    _kv(
        [
            ("Reason", s.reason or "-"),
            ("Workspace name", s.workspace_name or "-"),
            ("User id", s.user_id or "-"),
            ("Granted scopes", s.granted_scopes or "-"),
        ]
    )

# --- holdings -------------------------------------------------------------------------------

integrations = detail.integrations.value or ()
names = {i.wallet_id: i.display_name for i in integrations}

st.subheader("Holdings")
if not _part_problem(detail.holdings):
    h = detail.holdings.value
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
    else:
        hold = pd.DataFrame(
            [
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
            ]
        )
        st.dataframe(
            hold,
            hide_index=True,
            key="holdings_table",
            column_config={
                "asset": st.column_config.TextColumn("Asset"),
                "name": st.column_config.TextColumn("Name"),
                "quantity": st.column_config.NumberColumn("Quantity", format="%.6f"),
                "price": st.column_config.NumberColumn("Price", format="%.4f"),
                "value": st.column_config.NumberColumn("Value", format="%.2f"),
                "cost_basis": st.column_config.NumberColumn("Cost basis", format="%.2f"),
                "pnl": st.column_config.NumberColumn("Unrealised P&L", format="%.2f"),
                "change_24h": st.column_config.NumberColumn("24 h change", format="%.2f %%"),
            },
        )
        by_wallet: dict[str, float] = {}
        for x in h.holdings:
            for d in x.distribution:
                label = names.get(d.wallet_id or "", d.wallet_id or d.provider or "unknown")
                by_wallet[label] = by_wallet.get(label, 0.0) + d.quantity * x.market_price
        c1, c2 = st.columns(2)
        with c1:
            st.altair_chart(
                alt.Chart(hold)
                .mark_bar()
                .encode(
                    x=alt.X("value:Q", title=f"Value ({cur})"),
                    y=alt.Y("asset:N", sort="-x", title="Asset"),
                    tooltip=["asset", "name", alt.Tooltip("value:Q", format=",.2f")],
                )
                .properties(title="Value by asset"),
                width="stretch",
            )
        with c2:
            if by_wallet:
                wallets = pd.DataFrame(
                    {"wallet": list(by_wallet), "value": list(by_wallet.values())}
                )
                st.altair_chart(
                    alt.Chart(wallets)
                    .mark_bar()
                    .encode(
                        x=alt.X("value:Q", title=f"Value ({cur})"),
                        y=alt.Y("wallet:N", sort="-x", title="Wallet"),
                        tooltip=["wallet", alt.Tooltip("value:Q", format=",.2f")],
                    )
                    .properties(title="Value by wallet"),
                    width="stretch",
                )
            else:
                st.text("No per-wallet distribution in the holdings.")

# --- integrations and resync -------------------------------------------------------------

st.subheader("Integrations")
allowed_modes = [
    m
    for m, p in (("latest", Permission.RESYNC_LATEST), ("from_start", Permission.RESYNC_FROM_START))
    if can(actor, p)
]
watch: dict[str, dict[str, str]] = st.session_state.setdefault(WATCH_KEY, {})
watching = watch.setdefault(gid, {})
lost: dict[str, str] = st.session_state.setdefault(LOST_KEY, {}).setdefault(gid, {})
fails: dict[str, int] = st.session_state.setdefault(FAILS_KEY, {}).setdefault(gid, {})


def _integration_row(i: Any) -> dict[str, Any]:
    return {
        "name": i.display_name,
        "provider": i.provider_public_name or i.provider,
        "type": i.type or "",
        "status": i.status,
        "last_sync": i.last_synced_at,
        "transactions": i.total_transactions,
        "message": i.message or "",
        "wallet_id": i.wallet_id,
    }


for lost_wid, lost_message in list(lost.items()):
    # Stays until dismissed or until that integration is resynced again.
    with st.container(border=True):
        st.warning(escape_markdown(lost_message), icon=":material/help:")
        if st.button("Dismiss", key=f"resync_lost_dismiss_{lost_wid}"):
            lost.pop(lost_wid, None)
            st.rerun()

if not _part_problem(detail.integrations):
    if not integrations:
        st.text("No integrations.")
    else:
        st.dataframe(
            pd.DataFrame([_integration_row(i) for i in integrations]),
            hide_index=True,
            key="integrations_table",
            column_config={
                "name": st.column_config.TextColumn("Name"),
                "provider": st.column_config.TextColumn("Provider"),
                "type": st.column_config.TextColumn("Type"),
                "status": st.column_config.TextColumn("Status"),
                "last_sync": st.column_config.DatetimeColumn(
                    "Last sync", format="YYYY-MM-DD HH:mm"
                ),
                "transactions": st.column_config.NumberColumn("Transactions", format="%d"),
                "message": st.column_config.TextColumn("Message", width="large"),
                "wallet_id": st.column_config.TextColumn("Wallet id"),
            },
        )
    if integrations and allowed_modes and g.status == "active":
        st.markdown("**Resync**")
        for i in integrations:
            wid = i.wallet_id
            with st.container(border=True):
                st.text(f"{i.display_name} ({i.type or 'integration'}, status {i.status})")
                modes = list(allowed_modes)
                if i.is_csv and "from_start" in modes:
                    modes = ["from_start"] + [m for m in modes if m != "from_start"]
                c1, c2, c3 = st.columns([2, 3, 1], vertical_alignment="bottom")
                mode = c1.selectbox(
                    "Mode", modes, format_func=MODE_LABEL.get, key=f"resync_mode_{wid}"
                )
                reason = c2.text_input(
                    "Reason (required for from start)", key=f"resync_reason_{wid}"
                )
                if c3.button(
                    "Resync", key=f"resync_{wid}", disabled=wid in watching
                ):
                    try:
                        with st.spinner("Asking Kryptos to resync..."):
                            out = grant_actions.request_resync(
                                ops, actor, gid, wid, mode, reason or None
                            )
                    except OperationError as exc:
                        show_error(exc)
                    else:
                        watching[wid] = mode
                        lost.pop(wid, None)
                        fails.pop(wid, None)
                        toast_done(f"Resync queued: {out.status}")


def _status_lost_message(wid: str, exc: OperationError) -> str:
    name = names.get(wid) or wid
    return (
        f"The resync of {name} was requested, but its status could not be read "
        f"{STATUS_ATTEMPTS} times in a row, so the page stopped checking. It may still be "
        "running: press Refresh at the top to read the integrations again and look at its "
        f"status and last sync (the History shows whether the request succeeded). "
        f"Last error: {exc.user_message}"
    )


def _dialog_open() -> bool:
    """The revoke dialog is open (or is being opened by this run's click)."""
    return bool(st.session_state.get(DIALOG_KEY) or st.session_state.get("revoke_open"))


@st.fragment(run_every=timedelta(seconds=POLL_SECONDS))
def _resync_status() -> None:
    """Re-reads the watched integrations until none is ONGOING/SYNCING, then stops.

    A failed status read is tried again on the next poll, up to `STATUS_ATTEMPTS` in a row;
    then the page stops watching and leaves a message (`LOST_KEY`) that stays. Once something
    settles the whole page is rerun to show it, except while the revoke dialog is open (a
    rerun would close it and lose what was typed): then the final status stays here and the
    rest of the page catches up on its next run.
    """
    current = st.session_state.get(WATCH_KEY, {}).get(gid, {})
    failures = st.session_state.setdefault(FAILS_KEY, {}).setdefault(gid, {})
    given_up = st.session_state.setdefault(LOST_KEY, {}).setdefault(gid, {})
    done = st.session_state.setdefault(SETTLED_KEY, {}).setdefault(gid, [])
    settled: list[str] = []
    for wid in list(current):
        try:
            it = ops.grants.integration(actor, gid, wid)
        except OperationError as exc:
            failures[wid] = failures.get(wid, 0) + 1
            if failures[wid] < STATUS_ATTEMPTS:
                st.text(f"{names.get(wid) or wid}: status not read "
                        f"(try {failures[wid]} of {STATUS_ATTEMPTS}); trying again.")
                continue
            failures.pop(wid, None)
            given_up[wid] = _status_lost_message(wid, exc)
            settled.append(wid)
            continue
        failures.pop(wid, None)
        line = f"{it.display_name}: {it.status}" + (f" - {it.message}" if it.message else "")
        if it.is_syncing:
            st.text(line)
        else:
            settled.append(wid)
            done.append(line)
    if settled:
        for wid in settled:
            current.pop(wid, None)
        data.invalidate_grant(gid)
        if not _dialog_open():
            st.rerun(scope="app")  # the fragment is not drawn again once nothing is watched
    # Something settled and we are still here: the revoke dialog is open. Keep the outcome
    # in sight until it closes.
    for line in done:
        st.text(line)
    for message in given_up.values() if _dialog_open() else ():
        st.warning(escape_markdown(message), icon=":material/help:")
    if done and not current:
        st.caption("Resync finished; the rest of the page shows it once the dialog is closed.")


if watching:
    st.caption("Resync in progress; the status refreshes by itself.")
    _resync_status()

# --- Guest limit ------------------------------------------------------------------------

st.subheader("Transaction limit")
if detail.is_guest is False:
    st.info("This is a Linked user: transaction limits apply to Guest users only.")
else:
    if detail.is_guest is None:
        st.caption("Guest or Linked is not known yet for this grant.")
    if detail.userinfo.ok:
        st.metric("Effective limit", _fmt_limit(detail.effective_limit))
    else:
        st.text("Effective limit: unknown (user info not available).")
    if can(actor, Permission.MANAGE_LIMITS) and g.status == "active":
        tiers = ["(no tier)"] + [t.name for t in ops.tiers]
        with st.form("limit_form"):
            st.caption(
                "Set a limit and/or switch the limiter, or apply a tier. A new limit switches "
                "the limiter on when it is left on \"keep\" (a limit with the limiter off is "
                "not enforced); choose \"off\" to store a limit without enforcing it."
            )
            f1, f2, f3 = st.columns(3)
            new_limit = f1.number_input(
                "New limit", min_value=1, step=1, value=None, key="limit_value"
            )
            limiter = f2.selectbox(
                "Limiter", grant_actions.LIMITER_CHOICES, key="limit_limiter"
            )
            tier = f3.selectbox(
                "Tier", tiers, key="limit_tier",
                format_func=lambda n: next(
                    (t.describe() for t in ops.tiers if t.name == n), n
                ),
            )
            why = st.text_input("Reason", key="limit_reason")
            ticket = st.text_input("Ticket (optional)", key="limit_ticket")
            if st.form_submit_button("Apply limit"):
                try:
                    with st.spinner("Changing the limit..."):
                        res = grant_actions.submit_limit(
                            ops, actor, gid,
                            limit=int(new_limit) if new_limit is not None else None,
                            limiter=limiter,
                            tier=None if tier == tiers[0] else tier,
                            reason=why, ticket=ticket,
                        )
                except OperationError as exc:
                    show_error(exc)
                else:
                    st.session_state[FLASH_KEY] = res.summary()
                    for k in LIMIT_FORM_KEYS:  # an empty form: a second click changes nothing
                        st.session_state.pop(k, None)
                    st.rerun()

# --- danger zone -----------------------------------------------------------------------


@st.dialog("Revoke grant", on_dismiss="rerun")
def _revoke_dialog() -> None:
    st.session_state[DIALOG_KEY] = True  # until the next full run (closing the dialog reruns)
    st.text(
        "Revoking stops the grant's tokens at once; the customer must connect again.\n"
        "Type the grant id again to confirm."
    )
    st.code(gid, language=None)
    reason = st.text_input("Reason", key="revoke_reason")
    ticket = st.text_input("Ticket (optional)", key="revoke_ticket")
    typed = st.text_input("Grant id, typed again", key="revoke_typed")
    if st.button("Revoke", type="primary", key="revoke_confirm"):
        try:
            with st.spinner("Revoking..."):
                msg = grant_actions.confirm_revoke(ops, actor, gid, typed, reason, ticket)
        except OperationError as exc:
            show_error(exc)
        else:
            st.session_state[FLASH_KEY] = f"Grant revoked. {msg}"
            st.rerun()


if can(actor, Permission.REVOKE_GRANT) and g.status == "active":
    st.subheader("Danger zone")
    with st.container(border=True):
        st.text("Revoke this grant: its access and refresh tokens stop working at once.")
        if st.button("Revoke grant...", key="revoke_open"):
            _revoke_dialog()

# --- history ---------------------------------------------------------------------------

st.subheader("History")


def _history() -> None:
    try:
        events = data.grant_history(ops, actor, gid)
    except OperationError as exc:
        show_error(exc)
        return
    if not events:
        st.text("No recorded actions on this grant.")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "time": e.ts,
                        "user": e.actor_username,
                        "action": e.action,
                        "outcome": e.outcome,
                        "reason": e.reason or "",
                        "ticket": e.ticket or "",
                        "error": e.error_code or "",
                        "request_id": e.request_id or "",
                    }
                    for e in events
                ]
            ),
            hide_index=True,
            key="history_table",
            column_config={
                "time": st.column_config.DatetimeColumn("Time", format="YYYY-MM-DD HH:mm:ss"),
            },
        )


if can(actor, Permission.VIEW_GRANT_HISTORY):
    _history()
else:
    st.caption("Who did what to this grant is shown to support, finance and admin.")
