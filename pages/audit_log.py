"""Audit log (finance, admin): filters, paging, export (CSV, JSON Lines), chain verification."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import streamlit as st

from dashboard import reads, ui
from dashboard.audit_view import Verification, event_details, verification_notice
from dashboard.charts import audit as audit_chart
from dashboard.context import page_context
from dashboard.formats import fmt_second
from dashboard.grants_list import open_grant
from dashboard.navigation import page_opened_anew
from services.operations import OperationError

APPROVALS_PAGE = str(Path(__file__).resolve().parent / "approvals.py")

OUTCOMES = ["any", "requested", "succeeded", "failed", "denied", "skipped", "reconciled"]
PAGE_SIZES = [25, 50, 100, 200]
FORMATS = {"csv": ("CSV", "text/csv", "csv"), "jsonl": ("JSON Lines", "application/x-ndjson",
                                                       "jsonl")}
PAGE_KEY = "audit_page_no"
EXPORT_KEY = "audit_export_data"
VERIFY_KEY = "audit_verify_report"


def _forget_results() -> None:
    """A prepared export and a verification describe the log as it was when they were made:
    dropped when the page is opened again or any input changes."""
    st.session_state.pop(EXPORT_KEY, None)
    st.session_state.pop(VERIFY_KEY, None)


ctx = page_context()
if page_opened_anew():
    _forget_results()
st.title("Audit log")


def _filters_changed() -> None:
    st.session_state[PAGE_KEY] = 1
    _forget_results()


def _move(delta: int) -> None:
    st.session_state[PAGE_KEY] = max(1, int(st.session_state.get(PAGE_KEY, 1)) + delta)


def _picked(source: str, into: str) -> None:
    """A picker fills its text filter (which still takes a word or a prefix typed)."""
    st.session_state[into] = st.session_state.get(source) or ""
    _filters_changed()


try:
    action_choices, actor_choices = reads.audit_filter_choices(ctx.ops, ctx.actor)
except OperationError as exc:
    ui.show_error(exc)
    st.stop()

audit_chart.events_by_outcome(ctx, since_key="audit_since", until_key="audit_until",
                             on_change=_filters_changed)

with st.expander("Filters", expanded=True, icon=":material/filter_list:"):
    p1, p2, _ = st.columns(3)
    p1.selectbox("Pick an actor", actor_choices, index=None, key="audit_actor_pick",
                 placeholder="Any actor", on_change=_picked,
                 help="The actors that have an event in the log.",
                 args=("audit_actor_pick", "audit_actor"))
    p2.selectbox("Pick an action", action_choices, index=None, key="audit_action_pick",
                 placeholder="Any action", on_change=_picked,
                 help="Every action the console records.",
                 args=("audit_action_pick", "audit_action"))
    c1, c2, c3 = st.columns(3)
    since = c1.date_input("From (UTC day)", value=None, key="audit_since",
                          on_change=_filters_changed)
    until = c2.date_input("To (UTC day, inclusive)", value=None, key="audit_until",
                          on_change=_filters_changed)
    outcome = c3.selectbox("Outcome", OUTCOMES, key="audit_outcome", on_change=_filters_changed)
    who = c1.text_input("Actor (username)", key="audit_actor", on_change=_filters_changed,
                        help="In any case: SUPPORT finds support.")
    action = c2.text_input("Action", key="audit_action", on_change=_filters_changed,
                           help="A word of the action's name (revoke, limit), the whole name "
                                "(grant.revoke), or a prefix ending in * (grant.*).")
    target = c3.text_input("Target id", key="audit_target", on_change=_filters_changed,
                           help="A grant id, or a customer reference (its grants' events and "
                                "the customer's own).")

filters = ui.audit_filter(since=since, until=until, actor=who, action=action, target_id=target,
                          outcome=None if outcome == "any" else outcome)
page_size = st.session_state.get("audit_page_size", 50)
page_no = int(st.session_state.get(PAGE_KEY, 1))

try:
    with st.spinner("Reading the audit log..."):
        result = reads.audit_page(ctx.ops, ctx.actor, filters, page_no, page_size)
    if result.page != page_no:  # asked past the end: the last page is shown
        st.session_state[PAGE_KEY] = result.page
except OperationError as exc:
    ui.show_error(exc)
    st.stop()

st.caption(f"{result.total} event(s), newest first · page {result.page} of {result.pages}")
if result.events:
    # Rows taller than 4 rem let the grid wrap a reason instead of cutting it; the whole
    # text is also in Event details below.
    ui.table(ui.audit_rows(result.events), key="audit_table", row_height=72,
             column_config={"reason": st.column_config.TextColumn("reason", width="large")})
else:
    st.info("No event matches these filters.")

nav = st.columns([1, 1, 2, 4], vertical_alignment="bottom")
nav[0].button("Previous", key="audit_prev", on_click=_move, args=(-1,),
              disabled=result.page <= 1, icon=":material/chevron_left:")
nav[1].button("Next", key="audit_next", on_click=_move, args=(1,),
              disabled=result.page >= result.pages, icon=":material/chevron_right:")
nav[2].selectbox("Page size", PAGE_SIZES, index=PAGE_SIZES.index(50), key="audit_page_size",
                 on_change=_filters_changed)

if result.events:
    with st.expander("Event details", icon=":material/info:"):
        by_seq = {e.seq: e for e in result.events}
        seq = st.selectbox("Event", list(by_seq), key="audit_detail_seq",
                           format_func=lambda s: f"#{s} {by_seq[s].action} ({by_seq[s].outcome})")
        event = by_seq[seq]
        try:
            grant_link, request_link = reads.audit_event_links(ctx.ops, ctx.actor, event)
        except OperationError as exc:
            ui.show_error(exc)
            grant_link = request_link = None
        l1, l2, _ = st.columns([1, 1, 2])
        if grant_link is not None and l1.button(f"Open grant {grant_link}",
                                                key="audit_open_grant",
                                                icon=":material/person_search:"):
            open_grant(grant_link)
        if request_link is not None and l2.button(f"Open approval request #{request_link}",
                                                  key="audit_open_request",
                                                  icon=":material/approval_delegation:"):
            st.switch_page(APPROVALS_PAGE, query_params={"request": str(request_link)})
        st.json(event_details(event))

st.subheader("Export")
st.caption("An export holds every event matching the filters, oldest first (the table above is "
           "newest first), so that an auditor can recompute the hash chain from the file. It "
           "is a snapshot: events added later are not in it.")
e1, e2 = st.columns([2, 1], vertical_alignment="bottom")
fmt = e1.radio("Format", list(FORMATS), format_func=lambda f: FORMATS[f][0], horizontal=True,
               key="audit_export_fmt", on_change=_forget_results)
if e2.button("Prepare export", key="audit_export", icon=":material/download:"):
    try:
        with st.spinner("Exporting..."):
            st.session_state[EXPORT_KEY] = reads.export_audit(ctx.ops, ctx.actor, filters, fmt)
    except OperationError as exc:
        ui.show_error(exc)
held = st.session_state.get(EXPORT_KEY)
if held is not None:
    label, mime, ext = FORMATS[held.fmt]
    covered = (f"{held.events} event(s), up to #{held.newest_seq}" if held.events
               else "no event")
    st.caption(f"Prepared at {fmt_second(held.made_at)}: {covered}, oldest first.")
    st.download_button(f"Download {label} (the events matching the filters)",
                       data=held.content,
                       file_name=f"audit-log-{held.made_at.strftime('%Y%m%dT%H%M%SZ')}.{ext}",
                       mime=mime, key="audit_download")

st.subheader("Integrity")
st.caption("Each event carries a hash of the previous one; verifying recomputes the chain "
           "(all events, whatever the filters) and compares its newest event with the head "
           "kept outside the database, so that events removed from the end are noticed too.")


def _verify(expected: tuple[str, str] | None = None) -> None:
    # A verification that fails to run leaves no earlier result standing beside its error.
    st.session_state.pop(VERIFY_KEY, None)
    try:
        with st.spinner("Verifying..."):
            report = reads.verify_audit(ctx.ops, ctx.actor, expected)
    except OperationError as exc:
        ui.show_error(exc)
        return
    noted = None if expected is None else (int(expected[0]), expected[1].strip().lower())
    st.session_state[VERIFY_KEY] = Verification(report, datetime.now(UTC), noted)


if st.button("Verify the chain", key="audit_verify", icon=":material/verified:"):
    _verify()
with st.expander("Check against a head you noted", icon=":material/pin:"):
    with st.form("audit_expect_form", border=False):
        f1, f2 = st.columns([1, 4])
        # Text: a mistyped row ("12a", "1.5") is refused with the reason, not rounded.
        row = f1.text_input("Row", key="audit_expect_seq", placeholder="e.g. 1234")
        digest = f2.text_input("Hash (64 characters)", key="audit_expect_hash",
                               max_chars=64)
        if st.form_submit_button("Verify against this head", icon=":material/verified:"):
            _verify((row, digest))

verified = st.session_state.get(VERIFY_KEY)
if verified is not None:
    report = verified.report
    notice = verification_notice(verified)
    {"success": st.success, "warning": st.warning, "error": st.error}[notice.kind](
        notice.text, icon=notice.icon)
    if not report.ok and report.reason:
        ui.text(report.reason)
    if report.ok and report.head_seq:
        st.caption(f"Head: row {report.head_seq} · hash {report.head_hash[:8]}… — note it "
                   "to check later that nothing after it was removed (the whole hash, to "
                   "copy, is below).")
        st.code(report.head_hash, language=None)
    elif report.head_seq:
        st.caption(f"The log now ends at row {report.head_seq} · hash "
                   f"{report.head_hash[:8]}…: not a head to note until the above is explained.")
