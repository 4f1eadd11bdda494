"""The danger zone: Revoke, confirmed in a dialog by typing the grant id again.
"""

from __future__ import annotations

import streamlit as st

from dashboard import actions
from dashboard.context import PageContext
from dashboard.grant_detail.common import (
    APPROVALS_LINK,
    FLASH_KEY,
    PENDING_KEY,
    approval_caption,
    pending_requests,
    request_words,
)
from dashboard.resync_watch import ResyncWatch
from dashboard.ui import escape_markdown, show_error
from services.operations import GrantDetail, OperationError, Permission, can


@st.dialog("Revoke grant", on_dismiss="rerun")
def _revoke_dialog(ctx: PageContext, gid: str, watch: ResyncWatch) -> None:
    watch.dialog_open = True  # until the next full run (closing the dialog reruns)
    st.text(
        "Revoking stops the grant's tokens at once; the customer must connect again.\n"
        "Type the grant id again to confirm."
    )
    st.code(gid, language=None)
    approval_caption(ctx, "revoke")
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
            held = isinstance(msg, actions.Held)
            st.session_state[FLASH_KEY] = msg.summary() if held else f"Grant revoked ({gid})."
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
                                        f"{request_words(waiting[0])}.")
                        + f" Decide it on the [Approvals page]({APPROVALS_LINK}).")
            return
        if st.button("Revoke grant...", key="revoke_open"):
            _revoke_dialog(ctx, gid, watch)
