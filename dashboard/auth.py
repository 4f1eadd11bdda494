"""Login, logout, server-side sessions and the acting user: the facade the entrypoint and
the pages use. Each job lives in its own module:

- `dashboard/session_cookie.py`: the signed login cookie, the per-run session check
  (`login_gate`), the acting user (`current_actor`), the client's address.
- `dashboard/login.py`: the login form and its flow (password, lockout, second factor
  step), logout.
- `dashboard/account.py`: second factor set-up and the admin unlock (My account).
- `dashboard/navigation.py`: the page table (`PAGES`, `pages_for`, `pages_refused`) and
  page refusals.

Policy: docs/architecture.md, "Sessions and logins".
"""

from __future__ import annotations

from dashboard.account import (
    ADDRESS_SCOPE,
    STORE_DOWN,
    enrol,
    login_locks,
    new_totp_secret,
    set_up_totp,
    show_enrolment,
    unlock,
)
from dashboard.login import (
    CODE_KEY,
    PENDING_KEY,
    attempt_login,
    check_code,
    complete_login,
    confirm_enrolment,
    login_page,
    logout,
    logout_button,
)
from dashboard.navigation import (
    APPROVALS_PAGE,
    PAGES,
    PROJECT_ROOT,
    REFUSED_TITLE,
    PageSpec,
    all_pages,
    nav_title,
    note_page_run,
    page_opened_anew,
    pages_for,
    pages_refused,
    refuse_page,
)
from dashboard.session_cookie import (
    client_address,
    current_actor,
    current_session_id,
    decode_cookie,
    encode_cookie,
    login_gate,
)

__all__ = [
    "ADDRESS_SCOPE", "APPROVALS_PAGE", "CODE_KEY", "PAGES", "PENDING_KEY", "PROJECT_ROOT",
    "REFUSED_TITLE", "STORE_DOWN", "PageSpec", "attempt_login", "check_code", "client_address",
    "complete_login", "confirm_enrolment", "current_actor", "current_session_id",
    "decode_cookie", "encode_cookie", "enrol", "login_gate", "login_locks", "login_page",
    "logout", "logout_button", "nav_title", "new_totp_secret", "note_page_run",
    "page_opened_anew", "pages_for", "pages_refused", "refuse_page", "set_up_totp",
    "show_enrolment", "unlock", "all_pages",
]
