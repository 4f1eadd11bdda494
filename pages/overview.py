"""Overview: grant counts and work queues (from the read model: SQL, no upstream call),
integrations failing or syncing, and the latest audit events."""

from __future__ import annotations

import streamlit as st

from dashboard import overview_sections, reads, rm_sections, ui
from dashboard.charts import overview as overview_charts
from dashboard.context import page_context
from services.operations import OperationError, Permission, can

ctx = page_context()

head, refresh = st.columns([5, 1], vertical_alignment="bottom")
head.title("Overview")
if refresh.button("Refresh", key="overview_refresh", icon=":material/refresh:",
                  help="Read the counts again and ask the sync worker for a full sync."):
    try:
        reads.refresh_all(ctx.ops, ctx.actor)
    except OperationError as exc:
        ui.show_error(exc)

ready = rm_sections.freshness(ctx)
rm_sections.follow_first_sync(ctx)  # partial counts grow by themselves while it runs
try:
    ov = reads.overview(ctx.ops, ctx.actor)
except OperationError as exc:
    ui.show_error(exc)
    overview_sections.recent_failures(ctx)  # a local read: shown while the counts are not
    rm_sections.sync_status(ctx)
    st.stop()

if ready:
    st.subheader("Grants")
    cols = st.columns(4)
    cols[0].metric("Active", ov.active)
    cols[1].metric("Revoked", ov.revoked)
    cols[2].metric("Guest", ov.guest)
    cols[3].metric("Linked", ov.linked)
    cols = st.columns(4)
    cols[0].metric("With stored token", ov.with_token)
    cols[1].metric("Without stored token", ov.without_token)
    cols[2].metric("Kind unknown", ov.unknown_kind)

    rm_sections.queue_links(ov)

    st.subheader("Integrations")
    cols = st.columns(4)
    cols[0].metric("Failing now", ov.integrations_failing,
                   help="Integrations of active grants whose last sync failed or partly "
                        "failed, as last read: counted however long ago they failed.")
    cols[1].metric("Syncing now", ov.integrations_syncing,
                   help="Integrations of active grants syncing when last read.")
    cols[2].metric("Grants not readable", ov.integrations_unread,
                   help="Active grants with a stored token whose integrations could not be "
                        "read.")
    if ov.never_refreshed:
        cols[3].metric("Grants not read yet", ov.never_refreshed,
                       help="Active grants with a stored token whose integrations the sync "
                            "worker has not read yet.")

    overview_charts.overview_charts(ctx)

st.subheader("Latest audit events")
if not can(ctx.actor, Permission.READ_AUDIT):
    st.caption("The audit log is shown to finance and admin.")
elif not ov.latest_events:
    st.caption("No audit events yet.")
else:
    ui.table(ui.audit_rows(ov.latest_events), key="overview_events")

overview_sections.recent_failures(ctx, ov.integrations_failing if ready else None)
rm_sections.sync_status(ctx)
