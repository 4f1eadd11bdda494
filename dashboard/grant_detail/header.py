"""The top of the Grant detail page: the grant's id, Refresh, the last change's message,
the revoked and waiting-for-approval banners, and the grant's facts.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import reads
from dashboard.context import PageContext
from dashboard.formats import ABSENT, fmt_ago, fmt_minute
from dashboard.grant_detail.choose import open_by_id
from dashboard.grant_detail.common import (
    APPROVALS_LINK,
    FLASH_KEY,
    PENDING_KEY,
    is_revoked,
    kv_table,
    request_words,
)
from dashboard.ui import escape_markdown, record_pending_note, show_error, toast_done
from services.operations import GrantDetail, OperationError, Permission, can
from services.operations.history import approved_words

GRANTS_PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "grants.py")


def grant(ctx: PageContext, gid: str) -> GrantDetail:
    """The grant's id, Refresh, the last change's message, and its facts; stops the page when
    the grant cannot be read."""
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        toast_done(flash)  # carries upstream text (the API's message): escaped
    record_pending_note(st.session_state.pop(PENDING_KEY, False))
    # One row that wraps: at half a laptop's screen the buttons go under the id rather than
    # being cut to "Refr…" in fixed columns.
    top = st.container(horizontal=True, wrap=True, vertical_alignment="center")
    # Inline code, not `st.code`: the code block's syntax highlighter is a script of its
    # own that a new tab loads and runs before the page is drawn (the biggest share of the
    # browser's work on this page). `gid` passed `validation.grant_id`: no Markdown in it.
    top.markdown(f"`{gid}`", width="content")
    if top.button("Refresh", key="detail_refresh", icon=":material/refresh:"):
        reads.refresh_grant(gid)
    # The Grants page restores the filters it had (its search, queue, page).
    if top.button("Back to grants", key="detail_back_to_list", icon=":material/arrow_back:"):
        st.switch_page(GRANTS_PAGE)
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
    if is_revoked(detail):
        _revoked_banner(ctx, gid)
    _pending_banner(ctx, gid)
    for note in getattr(detail, "notes", ()):
        with st.container(border=True):
            st.text(note)
    g = detail.grant
    kind = {True: "Guest", False: "Linked", None: "unknown"}[detail.is_guest]
    kv_table([
        ("Grant id", g.grant_id),
        ("Status", g.status),
        ("Customer reference", g.customer_ref or ABSENT),
        ("User", kind),
        ("Kryptos user id", g.kryptos_user_id or ABSENT),
        ("Workspace", g.workspace_id or ABSENT),
        ("Scopes", g.scopes or ABSENT),
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
    if seen is None:
        source = (f"Status and ids from the console's copy, written {fmt_ago(row.refreshed_at)}; "
                  "no full sync has listed this grant yet.")
    elif seen >= row.refreshed_at:
        source = (f"Status and ids from the console's copy, last confirmed by Kryptos' grants "
                  f"list {fmt_ago(seen)}.")
    else:  # written since the list last showed it (a change, a webhook, this page)
        source = (f"Status and ids from the console's copy, updated {fmt_ago(row.refreshed_at)}"
                  f" (Kryptos' grants list last showed the grant {fmt_ago(seen)}).")
    st.caption(f"{source} {live}")


def _pending_banner(ctx: PageContext, gid: str) -> None:
    """A change waiting for approval on this grant: what, who, when, and where to decide."""
    try:
        waiting = reads.pending_requests(ctx.ops, ctx.actor, gid)
    except OperationError as exc:  # said here once; the forms below then assume none
        show_error(exc)
        return
    for r in waiting:
        st.info(escape_markdown(f"Waiting for approval: {request_words(r)}. Nothing is "
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
