"""The only page shown when the console cannot start: what is missing and how to set it,
and what the check of the Kryptos hosts and credentials found."""

from __future__ import annotations

import streamlit as st

from dashboard.ui import kryptos_check, text
from services.operations.health import LiveChecker


def render_setup(problems: tuple[str, ...], mode: str,
                 checker: LiveChecker | None = None) -> None:
    st.title("Console setup needed")
    st.error(
        f"The console cannot start in {mode} mode until the following is fixed. "
        "Nothing else is available until then.",
        icon=":material/build:",
    )
    for number, problem in enumerate(problems, start=1):
        with st.container(border=True):
            text(f"{number}. {problem}")
    if checker is not None:
        st.subheader("Kryptos")
        kryptos_check(checker, wait=3.0)
    st.caption(
        "Settings come from the environment or from .streamlit/secrets.toml (see "
        ".streamlit/secrets.toml.example). Restart the console after changing them."
    )
