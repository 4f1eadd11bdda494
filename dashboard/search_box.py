"""The search box every page has in its sidebar: a grant id, customer reference, Kryptos
user id or workspace opens the grant, or the Grants list filtered to it (the rule:
`GrantListReads.find`)."""

from __future__ import annotations

import streamlit as st

from dashboard import grants_list, reads
from dashboard.ui import show_error
from services.operations import Actor, OperationError, Operations, Permission, can


def search_box(ops: Operations, actor: Actor) -> None:
    """Drawn in the sidebar for whoever may list grants."""
    if not can(actor, Permission.VIEW_GRANTS):
        return
    with st.sidebar.form("grant_search", border=False, clear_on_submit=True):
        typed = st.text_input("Find a grant", key="grant_search_text",
                              placeholder="id, reference, user id, workspace",
                              help="Customer reference, grant id, Kryptos user id or "
                                   "workspace: an exact one opens its grant (or the list "
                                   "of the grants sharing it), anything else searches the "
                                   "Grants list.")
        if st.form_submit_button("Find", width="stretch"):
            try:
                grants_list.show_lookup(reads.find_grant(ops, actor, typed))
            except OperationError as exc:
                with st.sidebar:
                    show_error(exc)
