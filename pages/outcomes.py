"""Outcomes (admin): what the reconciler could not settle, the audit journal, the Kryptos
check at start; run a reconciler pass; resume an interrupted bulk run."""

from __future__ import annotations

import streamlit as st

from dashboard import actions, outcomes_view, reads, ui
from dashboard.context import page_context
from dashboard.formats import ABSENT
from services.operations import OperationError

ctx = page_context()
runtime, actor, ops = ctx.runtime, ctx.actor, ctx.ops
st.title("Outcomes")
st.caption(
    "A change whose outcome was never written (the console stopped, the audit store failed) "
    "is settled by the reconciler: it reads what Kryptos shows now and records a "
    "`reconciled` outcome. It runs at start and on a timer; what it cannot settle is listed "
    "here for someone to check by hand."
)

try:
    status = reads.reconciler_status(ops, actor)
except OperationError as exc:
    ui.show_error(exc)
    st.stop()

left, right = st.columns(2)
left.metric("Audit events waiting in the journal", status.journal_pending)
report = status.last_report
right.metric("Unsettled requests", len(report.unsettled) if report is not None else ABSENT)
if status.journal_pending:
    st.warning(
        f"{status.journal_pending} audit event(s) wait in the local journal for the audit "
        "store; the next pass writes them to the audit log.", icon=":material/pending_actions:")

if st.button("Run a reconciler pass now", key="reconcile_now"):
    try:
        report = actions.reconcile_now(ops, actor)
    except OperationError as exc:
        ui.show_error(exc)
    else:
        if report.error:
            st.error(f"The pass could not finish: the audit store answered {report.error}.")
        else:
            st.success(f"Pass done: {report.settled} settled, {len(report.unsettled)} left.")

st.subheader("Not settled")
if report is None:
    st.info("No pass has finished yet.")
elif report.error:
    st.error(f"The last pass could not finish: the audit store answered {report.error}.")
elif not report.unsettled:
    st.success("Every request older than a minute has an outcome.")
else:
    ui.table(outcomes_view.unsettled_rows(report))
if report is not None:
    st.caption(outcomes_view.last_pass(report))

st.subheader("Resume an interrupted bulk run")
st.caption("Runs again the grants of that run that have no settled outcome; a grant already "
           "at the target is left alone. The run's id is the target of its "
           "`guest.*.bulk` events in the audit log.")
with st.form("resume_bulk"):
    bulk_id = st.text_input("Bulk run id", key="resume_bulk_id")
    reason = st.text_input("Reason (empty: the run's own)", key="resume_reason")
    dry = st.checkbox("Dry run (show what would be done)", value=True, key="resume_dry")
    go = st.form_submit_button("Resume")
if go:
    try:
        with st.spinner("Resuming..."):
            result = actions.resume_bulk(ops, actor, bulk_id, reason or None, dry_run=dry)
    except OperationError as exc:
        ui.show_error(exc)
    else:
        if isinstance(result, actions.Held):  # the use case holds it for a second person
            st.info(ui.escape_markdown(result.summary()), icon=":material/approval_delegation:")
        else:
            st.success(outcomes_view.resume_summary(result, dry))
            if result.records_pending:
                ui.record_pending_note(True)
            ui.table(outcomes_view.resume_rows(result))

st.subheader("Kryptos")
if runtime.live_check is not None:
    ui.kryptos_check(runtime.live_check)
    if st.button("Check again", key="kryptos_recheck"):
        runtime.live_check.start()
        ui.kryptos_check(runtime.live_check, wait=12.0)
