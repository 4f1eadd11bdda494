"""Entrypoint: `streamlit run dashboard/app.py`.

Builds the runtime, logs the session in, shows the badge and the navigation allowed by the
user's roles, then runs the chosen page. In live mode with something missing it shows only
the setup page.
"""

from __future__ import annotations

import logging

import streamlit as st

from dashboard import heap, login, navigation, ui
from dashboard.runtime import get_runtime
from dashboard.search_box import search_box
from dashboard.session_cookie import login_gate
from dashboard.setup_page import render_setup
from services import logs

logger = logging.getLogger(__name__)

st.set_page_config(page_title="Kryptos Connect console", page_icon=":material/key:",
                   layout="wide")

runtime = get_runtime()
# This script run is the console's request: its log lines carry the run's id.
logs.bind(request_id=logs.new_request_id("run"), correlation_id=None)
if not runtime.ok:
    render_setup(runtime.problems, runtime.mode, runtime.live_check)
    st.stop()

approvals_on = runtime.operations.approvals.policy.enabled
actor = login_gate(runtime)
if actor is None:
    # Every page's address shows the login too (not "Page not found" over it), under the
    # same address: Streamlit keys a page by its address, so once logged in the same run
    # opens the page that was asked for, with its query (a grant's link opens that grant).
    stand_ins = [
        st.Page(login.login_page, title="Log in", icon=":material/login:",
                url_path=spec.url_path)
        for spec in navigation.all_pages(approvals=approvals_on) if not spec.default
    ]
    st.navigation([st.Page(login.login_page, title="Log in", icon=":material/login:",
                           default=True), *stand_ins], position="hidden").run()
    # Once per process, once the form is drawn (while a person types): keeps the
    # collection Streamlit makes after every run cheap (dashboard/heap.py).
    heap.freeze_startup_heap()
    st.stop()

specs = navigation.pages_for(actor.roles, approvals=approvals_on)
available = [s for s in specs if (navigation.PROJECT_ROOT / s.path).is_file()]
missing = [s.path for s in specs if s not in available]
if missing:
    logger.warning("page files missing, left out of the navigation: %s", ", ".join(missing))

if not available:
    ui.badge(runtime, actor)
    st.warning("Your account has no role that gives access to a page. Ask an administrator.")
    login.logout_button(runtime, actor)
    st.stop()

# The pages of other roles are registered too, hidden from the menu, so that their address
# typed or bookmarked by this user shows a refusal (audited by the operations) rather than
# Streamlit's "Page not found".
refused = [s for s in navigation.pages_refused(actor.roles, approvals=approvals_on)
           if (navigation.PROJECT_ROOT / s.path).is_file()]
entries = [
    (s, st.Page(navigation.PROJECT_ROOT / s.path, title=navigation.nav_title(runtime, actor, s),
                icon=s.icon, default=s.default))
    for s in available
] + [
    (s, st.Page(navigation.PROJECT_ROOT / s.path, title=navigation.REFUSED_TITLE,
                icon=":material/block:", visibility="hidden"))
    for s in refused
]
page = st.navigation([p for _, p in entries], position="sidebar")
spec = next(s for s, p in entries if p is page)
ui.badge(runtime, actor)
ui.kryptos_warning(runtime, actor)
ui.loose_modes_warning(runtime, actor)
login.logout_button(runtime, actor)
search_box(runtime.operations, actor)
navigation.note_page_run(spec.url_path)
try:
    if spec in available or not navigation.refuse_page(runtime, actor, spec):
        page.run()
finally:
    # Once per process, when its first run is a logged-in one (a session cookie): see
    # above.
    heap.freeze_startup_heap()
