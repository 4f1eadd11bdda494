"""Shared UI parts: error display, the mode badge, and safe rendering of upstream text.

Streamlit renders Markdown in `st.markdown`, `st.write` of strings, `st.title`, `st.info`...
Upstream text (aliases, names, messages) must never go through those: use `text()`
(`st.text`, no Markdown), `kv()` (a label we wrote, a value as code-free plain text) or
`st.dataframe` (cells are shown as text).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import streamlit as st

from dashboard.csv_io import screen_frame
from services.operations import (
    Actor,
    OperationError,
    Permission,
    RecordUnavailable,
    ValidationError,
    can,
)
from services.store.audit import AuditEvent, AuditFilter
from services.store.trail import RECORD_PENDING, AuditUnavailable, PendingRecords

if TYPE_CHECKING:
    from dashboard.runtime import Runtime
    from services.operations.health import LiveChecker

logger = logging.getLogger(__name__)

GENERIC_ERROR = (
    "Something went wrong in the console. Try again; if it keeps failing, give the time of "
    "the error to an administrator (details are in the server log)."
)

_MD_SPECIAL = "\\`*_{}[]()#+-.!|<>~$:"

#: Invisible, zero-width: breaks what Markdown's autolinking looks for without changing what
#: a person reads.
ZWSP = "\u200b"
# What GitHub-flavoured Markdown turns into a link with no Markdown syntax at all (a backslash
# escape does not stop it: the autolinker runs on the text after escapes are resolved):
# `scheme://...`, `www.` and an e-mail address (also behind `mailto:`/`xmpp:`).
_AUTOLINK_TRIGGERS = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)


def defuse_autolinks(value: str) -> str:
    """`value` with a zero-width space inside every `://`, `www.` and before every `@`, so
    that no Markdown renderer turns a bare URL or address in it into a working link."""
    return _AUTOLINK_TRIGGERS.sub(ZWSP, value)


def escape_markdown(value: object) -> str:
    """Escape a value so that Markdown and HTML in it show literally (for labels/captions),
    and so that no URL or e-mail address in it becomes a link (`defuse_autolinks`)."""
    out = []
    for ch in defuse_autolinks(str(value)):
        if ch in _MD_SPECIAL:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def text(value: object) -> None:
    """Show upstream text as plain text (never Markdown or HTML)."""
    st.text("" if value is None else str(value))


def kv(label: str, value: object) -> None:
    """A bold label we wrote, then an upstream value escaped so it shows literally."""
    shown = "—" if value is None or value == "" else escape_markdown(value)
    st.markdown(f"**{escape_markdown(label)}:** {shown}")


def show_error(exc: BaseException, action: str | None = None) -> None:
    """Show an error as a short message with what to do; never a traceback.

    `OperationError`s show their `user_message` and, as a caption, the code, request id and
    hint for support. Anything else is logged with its traceback on the server and shown as
    a generic message.
    """
    if isinstance(exc, AuditUnavailable | RecordUnavailable) and exc.change_made:
        # Made upstream: never shown as a failure (the message says the record is missing).
        st.warning(escape_markdown(exc.user_message), icon=":material/receipt_long:")
        return
    if isinstance(exc, AuditUnavailable):
        st.error(escape_markdown(exc.user_message), icon=":material/receipt_long:")
        return
    if isinstance(exc, OperationError):
        # The message carries the API's own text: escaped, so it can never render as Markdown.
        st.error(escape_markdown(exc.user_message), icon=":material/error:")
        meta = []
        # An input refused by the console's own checks needs no support: the message says
        # what to type. Codes from upstream or the system are worth quoting.
        if exc.code and not isinstance(exc, ValidationError):
            meta.append(f"code {exc.code}")
        if exc.request_id:
            meta.append(f"request id {exc.request_id}")
        if meta:
            st.caption(escape_markdown("For support: " + ", ".join(meta)))
        if exc.hint and exc.hint not in exc.user_message and not isinstance(exc, ValidationError):
            st.caption(escape_markdown(exc.hint))
        return
    logger.exception("unexpected error%s", f" during {action}" if action else "")
    st.error(GENERIC_ERROR, icon=":material/error:")


def roles_text(actor: Actor) -> str:
    return ", ".join(sorted(actor.roles)) or "no role"


def badge(runtime: Runtime, actor: Actor | None) -> None:
    """SANDBOX or LIVE, the client id (never the secret), and the signed-in user and roles."""
    mode = "SANDBOX" if runtime.is_sandbox else "LIVE"
    color = "orange" if runtime.is_sandbox else "green"
    parts = [f":{color}-badge[{mode}]", f"client {escape_markdown(runtime.client_id or '?')}"]
    if actor is not None:
        who = actor.display_name or actor.username
        parts.append(
            f"signed in as **{escape_markdown(who)}** (user {escape_markdown(actor.username)}, "
            f"roles: {escape_markdown(roles_text(actor))})"
        )
    with st.container(key="console_badge"):
        st.markdown(" · ".join(parts))


def record_pending_note(pending: PendingRecords | bool) -> None:
    """After a change that was made: say so when its audit record waits in the journal."""
    if pending:
        st.warning(RECORD_PENDING, icon=":material/pending_actions:")


def kryptos_check(checker: LiveChecker, *, wait: float = 0.0) -> None:
    """What the check of the Kryptos hosts and credentials found (waits up to `wait` s)."""
    result = checker.wait(wait) if wait > 0 else checker.result
    if result is None:
        if checker.running:
            st.info("Checking the Kryptos hosts and credentials... reload to see the result.",
                    icon=":material/hourglass_top:")
        else:
            st.warning("The Kryptos check could not run (see the server log).")
        return
    when = result.checked_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    if result.ok:
        st.success(f"Kryptos is reachable and accepts the console's credentials (checked "
                   f"{when}).", icon=":material/check_circle:")
    else:
        st.error(f"Kryptos check failed (checked {when}):", icon=":material/cloud_off:")
    for host in result.hosts:
        text(f"{'OK ' if host.ok else 'FAILED '} {host.name} at {host.url}: {host.message} "
             f"({host.elapsed_ms} ms)")


def kryptos_warning(runtime: Runtime, actor: Actor) -> None:
    """For admins: a banner on every page while the check at start found a problem."""
    checker = runtime.live_check
    if checker is None or "admin" not in actor.roles:
        return
    result = checker.result
    if result is not None and not result.ok:
        st.error("Kryptos check at start failed: " + escape_markdown("; ".join(result.problems))
                 + " (see the Outcomes page).", icon=":material/cloud_off:")


def loose_modes_warning(runtime: Runtime, actor: Actor) -> None:
    """For those who look after the console (`settle_outcomes`): a banner on every page
    while files or folders of its private data, found at start, are open to other local
    users."""
    if not runtime.loose_modes or not can(actor, Permission.SETTLE_OUTCOMES):
        return
    st.warning("The console's private data is readable by other local users of this "
               "server (found at start; restart once fixed):\n\n"
               + "\n".join(f"- {escape_markdown(w)}" for w in runtime.loose_modes),
               icon=":material/folder_open:")


def table(rows: Iterable[Mapping[str, Any]], **kwargs: Any) -> None:
    """Rows of upstream values as a dataframe (cells shown as text, never Markdown)."""
    import pandas as pd

    data = screen_frame(pd.DataFrame(list(rows)))
    st.dataframe(data, hide_index=True, width="stretch", **kwargs)


def audit_filter(
    since: date | None = None,
    until: date | None = None,
    actor: str | None = None,
    action: str | None = None,
    target_id: str | None = None,
    outcome: str | None = None,
) -> AuditFilter:
    """An audit-log filter from the page's widgets: dates are whole UTC days (`until`
    inclusive); empty texts mean "any"."""

    def clean(value: str | None) -> str | None:
        value = (value or "").strip()
        return value or None

    return AuditFilter(
        since=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
        until=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC) if until else None,
        actor=clean(actor),
        action=clean(action),
        target_id=clean(target_id),
        outcome=clean(outcome),
    )


def audit_rows(events: Iterable[AuditEvent]) -> list[dict[str, Any]]:
    """Audit events as table rows (plain values; shown with `table()`, never as Markdown)."""
    return [
        {
            "seq": e.seq,
            "time (UTC)": e.ts.strftime("%Y-%m-%d %H:%M:%S"),
            "actor": e.actor_username,
            "roles": ", ".join(e.actor_roles),
            "action": e.action,
            "outcome": e.outcome,
            "target": f"{e.target_type or ''} {e.target_id or ''}".strip(),
            "reason": e.reason or "",
            "ticket": e.ticket or "",
            "error": e.error_code or "",
            "request id": e.request_id or "",
        }
        for e in events
    ]


def toast_done(message: str) -> None:
    st.toast(escape_markdown(message), icon=":material/check_circle:")
