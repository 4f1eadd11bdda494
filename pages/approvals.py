"""Approvals (support, finance, admin; shown when approvals are on): requests waiting for me
(approve or reject), my requests (cancel), and the history of decided requests."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import actions, reads, ui
from dashboard.approvals_view import counts_words, item_rows, many_results, summary_rows
from dashboard.context import page_context
from dashboard.formats import fmt_minute
from services.operations import OperationError
from services.operations.approvals import STATES

FLASH_KEY = "approvals_flash"
RESULT_KEY = "approvals_result"
MANY_KEY = "approvals_many_results"


def _details(ctx: Any, r: Any) -> None:
    rec = r.record
    ui.kv("Change", r.describe())
    ui.kv("Requested by", f"{rec.requester_username} at {fmt_minute(rec.created_at)}")
    ui.kv("Reason", rec.reason)
    ui.kv("Ticket", rec.ticket)
    ui.kv("Expires", fmt_minute(rec.expires_at))
    ui.kv("Why it needs approval", rec.params.get("policy"))
    st.caption("Dry run when requested (before -> after) and each grant's before as the "
               "console knows it now; grants changed since the request are left as they are.")
    try:
        now = reads.before_now(ctx.ops, ctx.actor, r)
    except OperationError as exc:
        ui.show_error(exc)
        now = None
    ui.table(item_rows(r.items, now), key=f"appr_items_{r.id}")


def _decide(kind: str, run: Any, request_id: int) -> None:
    try:
        with st.spinner("Working..."):
            done = run()
    except OperationError as exc:
        ui.show_error(exc)
        return
    said = counts_words(done)
    st.session_state[FLASH_KEY] = (f"Request #{request_id} {kind}." +
                                   (f" Result: {said}." if said else ""))
    st.session_state[RESULT_KEY] = (request_id, done.result_items)
    st.rerun()


def _waiting(ctx: Any, r: Any) -> None:
    with st.container(border=True, key=f"appr_box_{r.id}"):
        st.markdown(f"**Request #{r.id}: {ui.escape_markdown(r.label)}**")
        _details(ctx, r)
        ok = st.checkbox("I have checked this change", key=f"appr_ok_{r.id}")
        why = st.text_input("Reason for a rejection", key=f"appr_reason_{r.id}")
        c1, c2 = st.columns(2)
        if c1.button("Approve and execute", key=f"appr_approve_{r.id}", type="primary"):
            if not ok:
                st.warning("Tick \"I have checked this change\" first.")
            else:
                _decide("approved and executed",
                        lambda: actions.approve_request(ctx.ops, ctx.actor, r.id), r.id)
        if c2.button("Reject", key=f"appr_reject_{r.id}"):
            if not ok:
                st.warning("Tick \"I have checked this change\" first.")
            else:
                _decide("rejected",
                        lambda: actions.reject_request(ctx.ops, ctx.actor, r.id, why), r.id)


def _mine(ctx: Any, mine: list[Any]) -> None:
    ui.table(summary_rows(mine), key="appr_mine_table")
    for r in (m for m in mine if m.state == "pending"):
        with st.container(border=True, key=f"appr_mine_{r.id}"):
            st.text(f"Request #{r.id} ({r.describe()}) is waiting.")
            ok = st.checkbox(f"Withdraw request #{r.id}", key=f"appr_cancel_ok_{r.id}")
            if st.button("Cancel request", key=f"appr_cancel_{r.id}", disabled=not ok):
                _decide("cancelled",
                        lambda r=r: actions.cancel_request(ctx.ops, ctx.actor, r.id), r.id)


def _decide_many(ctx: Any, ids: list[int], decision: str, why: str) -> None:
    """Several requests, one confirm: the use case checks and audits each; the page lists
    each one's result."""
    try:
        with st.spinner("Working..."):
            results = actions.decide_requests(ctx.ops, ctx.actor, ids, decision, why)
    except OperationError as exc:
        ui.show_error(exc)
        return
    st.session_state[MANY_KEY] = many_results(results, decision)
    st.session_state.pop("appr_pick", None)
    st.rerun()


def _find(ctx: Any) -> None:
    """Filter and search all requests; select pending ones to approve or reject at once."""
    with st.expander("Find requests, decide several at once", expanded=True,
                     icon=":material/manage_search:"):
        c1, c2, c3, c4 = st.columns(4)
        state = c1.selectbox("State", ["any", *STATES], key="appr_f_state")
        kind = c2.selectbox("Kind", ["any", "revoke", "limit"], key="appr_f_kind")
        who = c3.text_input("Requested by", key="appr_f_requester",
                            help="A username, exactly as it is in the table.")
        query = c4.text_input("Request # or grant id", key="appr_f_query",
                              help="A request number (12 or #12), or a grant id: the pending "
                                   "requests that hold it.")
        try:
            found = reads.approvals_find(ctx.ops, ctx.actor,
                                         state=None if state == "any" else state,
                                         kind=None if kind == "any" else kind,
                                         requester=who, query=query)
        except OperationError as exc:
            ui.show_error(exc)
            return
        st.caption(f"{len(found)} request(s), newest first (at most 200).")
        if not found:
            st.info("No request matches these filters.")
            return
        ui.table(summary_rows(found), key="appr_found_table")
        pending = {r.id: r for r in found if r.state == "pending"}
        if not pending:
            return
        picked = st.multiselect(
            "Select pending requests", list(pending), key="appr_pick",
            format_func=lambda i: f"#{i} {pending[i].describe()} "
                                  f"(by {pending[i].record.requester_username})")
        decision = st.radio("Decision", ["approve", "reject"], horizontal=True,
                            key="appr_many_decision",
                            format_func=lambda d: {"approve": "Approve and execute",
                                                   "reject": "Reject"}[d])
        why = ""
        if decision == "reject":
            why = st.text_input("Reason for the rejection", key="appr_many_reason")
        ok = st.checkbox("I have checked these changes", key="appr_many_ok")
        label = ("Approve" if decision == "approve" else "Reject") + f" {len(picked)} selected"
        if st.button(label, key="appr_many_go", type="primary", disabled=not picked):
            if not ok:
                st.warning("Tick \"I have checked these changes\" first.")
            else:
                _decide_many(ctx, list(picked), decision, why)


ctx = page_context()
st.title("Approvals")
# A link to one request (the Audit log's "Open approval request"): that request shown.
linked = st.query_params.get("request")
if linked and linked.isdigit() and st.session_state.get("appr_linked") != linked:
    st.session_state["appr_linked"] = linked
    st.session_state["appr_f_query"] = f"#{linked}"
    for k in ("appr_f_state", "appr_f_kind"):
        st.session_state[k] = "any"
    st.session_state["appr_f_requester"] = ""
flash = st.session_state.pop(FLASH_KEY, None)
if flash:
    st.success(ui.escape_markdown(flash), icon=":material/check_circle:")
    shown = st.session_state.pop(RESULT_KEY, None)
    if shown and shown[1]:
        ui.table(item_rows(shown[1]), key="appr_result_table")
many = st.session_state.pop(MANY_KEY, None)
if many:
    st.info(ui.escape_markdown(many[0]), icon=":material/checklist:")
    ui.table(many[1], key="appr_many_results")
_find(ctx)

try:
    waiting = reads.approvals_waiting(ctx.ops, ctx.actor)
    mine = reads.approvals_mine(ctx.ops, ctx.actor)
    history = reads.approvals_history(ctx.ops, ctx.actor)
except OperationError as exc:
    ui.show_error(exc)
    st.stop()

st.subheader(f"Waiting for me ({len(waiting)})")
if not waiting:
    st.caption("Nothing waits for your approval.")
for req in waiting:
    _waiting(ctx, req)

st.subheader("My requests")
if mine:
    _mine(ctx, mine)
else:
    st.caption("You have made no request.")

st.subheader("History")
if history:
    ui.table(summary_rows(history), key="appr_history_table")
    shown_ids = [r.id for r in history if r.result_items]
    if shown_ids:
        pick = st.selectbox("Each grant's outcome of request", shown_ids,
                            format_func=lambda i: f"#{i}", key="appr_history_pick")
        chosen = next(r for r in history if r.id == pick)
        st.caption(f"Request #{chosen.id}: {chosen.outcome()}.")
        ui.table(item_rows(chosen.result_items), key="appr_history_items")
else:
    st.caption("No request has been decided yet.")
