"""Sections of the Overview page beyond its counts (`pages/overview.py` draws them).

Upstream text (integration names, failure messages) is shown with `st.text` only."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import reads
from dashboard.context import PageContext
from dashboard.timeline import failure_line
from dashboard.ui import escape_markdown, show_error
from services.operations import OperationError, validation

DETAIL_PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "grant_detail.py")
SELECTED_KEY = "selected_grant_id"


def open_grant(grant_id: str) -> None:
    """Open the grant's detail page (as the Grants page does)."""
    st.session_state[SELECTED_KEY] = grant_id
    st.switch_page(DETAIL_PAGE, query_params={"grant": grant_id})


def _grant_id(value: str | None) -> str | None:
    try:
        return validation.grant_id(value) if value else None
    except OperationError:
        return None


def recent_failures(ctx: PageContext, failing_now: int | None = None) -> None:
    """Integration failures Kryptos reported by webhook in the last 24 hours, newest first,
    each with a button opening its grant. `failing_now`: the count of integrations failing
    as last read (the Integrations section's), so that the two say what each counts."""
    st.subheader("Integration failures (last 24 hours)")
    try:
        failures = reads.recent_failures(ctx.ops, ctx.actor)
    except OperationError as exc:
        show_error(exc)
        return
    if not failures:
        words = "No integration failure reported by webhook in the last 24 hours."
        if failing_now:
            words += (f" The {failing_now:,} integration(s) failing now (above) failed "
                      "earlier, or were found failing by reading them.")
        st.caption(words)
        return
    st.caption(f"{len(failures):,} failure(s) Kryptos reported by webhook in the last 24 "
               "hours, newest first; \"Failing now\" above counts the integrations still "
               "failing, however long ago they failed.")
    for n, failure in enumerate(failures):
        with st.container(border=True, key=f"failure_{n}"):
            line, action = st.columns([6, 1], vertical_alignment="center")
            line.text(failure_line(failure))
            gid = _grant_id(failure.grant_id)
            if gid is None:
                action.caption("grant unknown")
            elif action.button("Open grant", key=f"failure_open_{n}",
                               help=escape_markdown(f"Open {gid}")):
                open_grant(gid)
