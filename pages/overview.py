"""Overview: grant counts, integrations failing or syncing, and the latest audit events."""

from __future__ import annotations

import streamlit as st

from dashboard import overview_sections, reads, ui
from dashboard.context import page_context
from services.operations import OperationError, Permission, can

ctx = page_context()

head, refresh = st.columns([5, 1], vertical_alignment="bottom")
head.title("Overview")
if refresh.button("Refresh", key="overview_refresh", icon=":material/refresh:"):
    reads.refresh_all()

try:
    with st.spinner("Reading grants and integrations from Kryptos..."):
        ov = reads.overview(ctx.ops, ctx.actor)
except OperationError as exc:
    ui.show_error(exc)
    overview_sections.recent_failures(ctx)  # a local read: shown while Kryptos is not
    st.stop()

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

st.subheader("Integrations")
cols = st.columns(4)
cols[0].metric("Failing", ov.integrations_failing)
cols[1].metric("Syncing", ov.integrations_syncing)
cols[2].metric("Grants not readable", ov.integrations_unread,
               help="Active grants with a stored token whose integrations could not be read.")

st.subheader("Latest audit events")
if not can(ctx.actor, Permission.READ_AUDIT):
    st.caption("The audit log is shown to finance and admin.")
elif not ov.latest_events:
    st.caption("No audit events yet.")
else:
    ui.table(ui.audit_rows(ov.latest_events), key="overview_events")

overview_sections.recent_failures(ctx)
