"""The one way a page gets the runtime and the signed-in user: `ctx = page_context()`."""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from dashboard.runtime import Runtime, get_runtime
from dashboard.session_cookie import current_actor
from services.operations import Actor, Operations


class PageContext(NamedTuple):
    runtime: Runtime
    actor: Actor

    @property
    def ops(self) -> Operations:
        """The operations, to hand to `dashboard.reads` and `dashboard.actions`."""
        return self.runtime.ops  # type: ignore[no-any-return]


def page_context() -> PageContext:
    """The runtime and the logged-in actor; stops the page with a message when the console
    is not configured or nobody is logged in."""
    runtime = get_runtime()
    if not runtime.ok:
        st.error("The console is not configured; open the start page.")
        st.stop()
    actor = current_actor(runtime)
    if actor is None:
        st.warning("Please log in first.")
        st.stop()
    return PageContext(runtime, actor)
