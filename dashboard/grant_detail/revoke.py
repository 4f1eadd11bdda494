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
    pending_requests,
    request_words,
)
from dashboard.resync_watch import ResyncWatch
from dashboard.ui import escape_markdown, show_error
from services.operations import GrantDetail, OperationError, Permission, can


@st.dialog("Revoke grant", on_dismiss="rerun")
def _revoke_dialog(ctx: PageContext, gid: str, watch: ResyncWatch) -> None:
    watch.dialog_open = True  # until the next full run (closing the dialog reruns)
    held = actions.approval_note(ctx.ops, "revoke", ctx.actor) is not None
    if held:  # what the button does is file a request: the words say so
        st.text("This files a revoke request: nothing changes until a second person with the "
                "permission approves it on the Approvals page. Once approved, the grant's "
                "tokens stop working and the customer must connect again.\n"
                "Type the grant id again to confirm the request.")
    else:
        st.text("Revoking stops the grant's tokens at once; the customer must connect again.\n"
                "Type the grant id again to confirm.")
    st.code(gid, language=None)
    reason = st.text_input("Reason", key="revoke_reason")
    beside = {"reason": st.empty()}
    ticket = st.text_input("Ticket (optional)", key="revoke_ticket")
    beside["ticket"] = st.empty()
    typed = st.text_input("Grant id, typed again", key="revoke_typed")
    beside["typed_id"] = st.empty()
    label = "Request the revoke" if held else "Revoke"
    if st.button(label, type="primary", key="revoke_confirm"):
        try:
            with st.spinner("Filing the request..." if held else "Revoking..."), \
                    actions.watch_records() as pending:
                msg = actions.confirm_revoke(ctx.ops, ctx.actor, gid, typed, reason, ticket)
        except OperationError as exc:
            spot = beside.get(getattr(exc, "field", ""))
            if spot is not None:  # the first field in the form's order that is wrong
                spot.error(exc.user_message, icon=":material/error:")
            else:
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
        if actions.approval_note(ctx.ops, "revoke", ctx.actor) is not None:
            st.text("Ask for this grant to be revoked: once a second person approves, its "
                    "access and refresh tokens stop working.")
        else:
            st.text("Revoke this grant: its access and refresh tokens stop working at once.")
        waiting = [r for r in pending_requests(ctx, gid) if r.change.kind == "revoke"]
        if waiting:  # a second request would be refused: say where the first one is
            st.markdown(escape_markdown(f"A revoke request is already waiting: "
                                        f"{request_words(waiting[0])}.")
                        + f" Decide it on the [Approvals page]({APPROVALS_LINK}).")
            return
        if st.button("Revoke grant...", key="revoke_open"):
            _revoke_dialog(ctx, gid, watch)
