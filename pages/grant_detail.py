"""Grant detail: session, holdings, integrations (resync), Guest limit, revoke, timeline,
history.

Each section is drawn by `dashboard.grant_sections`.
"""

from __future__ import annotations

import streamlit as st

from dashboard import grant_sections as sections
from dashboard.context import page_context
from dashboard.resync_watch import ResyncWatch

ctx = page_context()
st.title("Grant detail")
gid = sections.chosen_grant()
watch = ResyncWatch.of(st.session_state)
watch.begin_run(gid)  # a full run: the revoke dialog is not open (yet)

detail = sections.grant(ctx, gid)
sections.session(detail)
sections.holdings(detail)
sections.integrations(ctx, detail, watch)
sections.guest_limit(ctx, detail)
sections.revoke(ctx, detail, watch)
sections.timeline(ctx, gid)
sections.history(ctx, gid)
