"""Overview: grant counts and work queues (from the read model: SQL, no upstream call),
integrations failing or syncing, and the latest audit events."""

from __future__ import annotations

from typing import Any

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
def _figures() -> Any:
    return st.container(horizontal=True, wrap=True, gap="large")


try:
    ov = reads.overview(ctx.ops, ctx.actor)
except OperationError as exc:
    ui.show_error(exc)
    overview_sections.recent_failures(ctx)  # a local read: shown while the counts are not
    rm_sections.sync_status(ctx)
    st.stop()

if ready:
    st.subheader("Grants")
    # Wrapping rows of figures as wide as their words: fixed columns cut a label or a
    # count at half a laptop's screen.
    row = _figures()
    row.metric("Active", ov.active, width="content")
    row.metric("Revoked", ov.revoked, width="content")
    row.metric("Guest", ov.guest, width="content")
    row.metric("Linked", ov.linked, width="content")
    row = _figures()
    row.metric("With stored token", ov.with_token, width="content")
    row.metric("Without stored token", ov.without_token, width="content")
    row.metric("Kind unknown", ov.unknown_kind, width="content")

    rm_sections.queue_links(ov)

    st.subheader("Integrations")
    row = _figures()
    row.metric("Failing now", ov.integrations_failing, width="content",
                   help="Integrations of active grants whose last sync failed or partly "
                        "failed, as last read: counted however long ago they failed.")
    row.metric("Syncing now", ov.integrations_syncing, width="content",
                   help="Integrations of active grants syncing when last read.")
    row.metric("Grants not readable", ov.integrations_unread, width="content",
                   help="Active grants with a stored token whose integrations could not be "
                        "read.")
    if ov.never_refreshed:
        row.metric("Grants not read yet", ov.never_refreshed, width="content",
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
