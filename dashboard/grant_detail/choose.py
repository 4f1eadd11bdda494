"""Which grant the page shows: the `?grant=` query parameter, else the one chosen earlier,
else the grant id input.
"""

from __future__ import annotations

import streamlit as st

from dashboard.ui import show_error
from services.operations import OperationError, validation

SELECTED_KEY = "selected_grant_id"


def open_by_id() -> None:
    """The grant id input: opens the typed grant once it is a valid id (else says why)."""
    typed = st.text_input("Grant id", key="detail_open_id", placeholder="cgrant_...")
    if st.button("Open", key="detail_open"):
        try:
            chosen = validation.grant_id(typed)
        except OperationError as exc:
            show_error(exc)
            return
        st.session_state[SELECTED_KEY] = chosen
        st.query_params["grant"] = chosen
        st.rerun()


def chosen_grant() -> str:
    """The grant to show (query parameter, else the one chosen earlier); stops the page with
    the id input when there is none or it is not a grant id."""
    asked = st.query_params.get("grant") or st.session_state.get(SELECTED_KEY)
    if asked:
        try:
            gid = validation.grant_id(asked)
        except OperationError as exc:
            show_error(exc)
            # Never remember an id that is not one: the page would keep showing this error.
            st.session_state.pop(SELECTED_KEY, None)
            if "grant" in st.query_params:
                del st.query_params["grant"]
            st.text("Type the grant id again, or choose the grant on the Grants page.")
            open_by_id()
            st.stop()
    else:
        st.info("No grant selected. Choose one on the Grants page, or type its id.")
        open_by_id()
        st.stop()
    st.session_state[SELECTED_KEY] = gid
    if st.query_params.get("grant") != gid:
        st.query_params["grant"] = gid
    return gid
