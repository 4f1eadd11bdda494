"""The navigation: which pages a role sees, in which order, and the refusal of a page's
address opened by a user without its permission (audited `page.view` `denied`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard import actions, reads
from dashboard.runtime import Runtime
from services.operations import Actor, OperationError, Permission, permissions_for
from services.store.actions import AuditAction
from services.store.errors import StoreError

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PageSpec:
    """A page of the navigation and the permission a user needs to see it. A user without
    it who opens the page's address gets a refusal, audited `page.view` `denied` with the
    page's address as target."""

    path: str  # relative to the project root
    title: str
    icon: str
    permission: Permission
    default: bool = False

    @property
    def url_path(self) -> str:
        """The page's address (Streamlit derives it from the file name)."""
        return Path(self.path).stem


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/overview.py", "Overview", ":material/dashboard:", Permission.VIEW_GRANTS,
             default=True),
    PageSpec("pages/grants.py", "Grants", ":material/list:", Permission.VIEW_GRANTS),
    PageSpec("pages/grant_detail.py", "Grant detail", ":material/person_search:",
             Permission.VIEW_GRANTS),
    PageSpec("pages/guest_limits.py", "Guest limits", ":material/tune:",
             Permission.MANAGE_LIMITS),
    PageSpec("pages/audit_log.py", "Audit log", ":material/history:", Permission.READ_AUDIT),
    PageSpec("pages/connect.py", "Connect a customer", ":material/link:",
             Permission.MANAGE_TOKENS),
    PageSpec("pages/my_account.py", "My account", ":material/account_circle:",
             Permission.VIEW_GRANTS),
    PageSpec("pages/outcomes.py", "Outcomes", ":material/rule:",
             Permission.SETTLE_OUTCOMES),
    PageSpec("pages/users.py", "Users", ":material/group:", Permission.MANAGE_USERS),
)

#: The Approvals page: in the navigation only when approvals are on (see `pages_for`); for
#: support, finance and admin (the roles that decide changes and read grants' history).
APPROVALS_PAGE = PageSpec("pages/approvals.py", "Approvals", ":material/approval_delegation:",
                          Permission.VIEW_GRANT_HISTORY)


def _table(approvals: bool) -> tuple[PageSpec, ...]:
    """PAGES, with the Approvals page before My account when approvals are on."""
    if not approvals:
        return PAGES
    last = tuple(p for p in PAGES if p.url_path == "my_account")
    return tuple(p for p in PAGES if p not in last) + (APPROVALS_PAGE,) + last


def all_pages(*, approvals: bool = False) -> tuple[PageSpec, ...]:
    """Every page of the console, in menu order (`approvals`: with the Approvals page). A
    logged-out session registers each address with the login form, so that a link to any
    of them shows the login and then that page."""
    return _table(approvals)


def nav_title(runtime: Runtime, actor: Actor, spec: PageSpec) -> str:
    """A page's title in the navigation: "Approvals (2)" when two requests wait for the
    actor."""
    if spec is not APPROVALS_PAGE:
        return spec.title
    try:
        n = reads.approvals_waiting_count(runtime.operations, actor)
    except (OperationError, StoreError) as exc:
        logger.warning("approvals count unavailable: %s", exc.user_message)
        return spec.title
    return f"{spec.title} ({n})" if n else spec.title


#: Title of a page registered only to refuse it (its address typed by a user without access).
REFUSED_TITLE = "Not available"

CURRENT_PAGE_KEY = "_console_current_page"
PREVIOUS_PAGE_KEY = "_console_previous_page"


def pages_for(roles: frozenset[str] | set[str] | tuple[str, ...], *,
              approvals: bool = False) -> list[PageSpec]:
    """The pages a user with these roles may see, in menu order (`approvals`: with the
    Approvals page)."""
    allowed = permissions_for(roles)
    return [p for p in _table(approvals) if p.permission in allowed]


def pages_refused(roles: frozenset[str] | set[str] | tuple[str, ...], *,
                  approvals: bool = False) -> list[PageSpec]:
    """The pages a user with these roles may not use (registered hidden, to refuse them)."""
    allowed = permissions_for(roles)
    return [p for p in _table(approvals) if p.permission not in allowed]


def refuse_page(runtime: Runtime, actor: Actor, spec: PageSpec) -> bool:
    """For a page's address opened by a user without its permission: one `page.view`
    `denied` event naming the page (not the page's actions: none was attempted), and the
    refusal alone. Returns False (nothing shown) when the operations in fact allow it."""
    refused = actions.refusal(runtime.operations, actor, spec.permission,
                              AuditAction.PAGE_VIEW, "page", spec.url_path)
    if refused is None:
        return False
    st.title(REFUSED_TITLE)
    st.error(refused.user_message, icon=":material/block:")
    st.caption("This page is not part of your role. Use the pages in the menu, or ask an "
               "administrator for the role you need.")
    return True


def note_page_run(url_path: str) -> None:
    """Called by the entrypoint before each page run: remembers the page of the previous run,
    so that a page can tell a first run after being opened from a rerun of itself."""
    st.session_state[PREVIOUS_PAGE_KEY] = st.session_state.get(CURRENT_PAGE_KEY)
    st.session_state[CURRENT_PAGE_KEY] = url_path


def page_opened_anew() -> bool:
    """True in the first run of a page after it was opened (from another page, the login, or
    a new browser session); False when the page reruns itself (a click, an input)."""
    return st.session_state.get(PREVIOUS_PAGE_KEY) != st.session_state.get(CURRENT_PAGE_KEY)
