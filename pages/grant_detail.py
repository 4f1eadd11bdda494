"""Grant detail: session, holdings, integrations (resync), Guest limit, revoke, timeline,
history.

Each section is drawn by a module of `dashboard.grant_detail`.
"""

from __future__ import annotations

import streamlit as st

from dashboard.context import page_context
from dashboard.grant_detail import choose, header, history, integrations, limit, parts, revoke
from dashboard.resync_watch import ResyncWatch

ctx = page_context()
st.title("Grant detail")
gid = choose.chosen_grant()
watch = ResyncWatch.of(st.session_state)
watch.begin_run(gid)  # a full run: the revoke dialog is not open (yet)

detail = header.grant(ctx, gid)
parts.session(detail)
parts.holdings(detail)
integrations.integrations(ctx, detail, watch)
limit.guest_limit(ctx, detail)
revoke.revoke(ctx, detail, watch)
history.timeline(ctx, gid)
history.history(ctx, gid)
