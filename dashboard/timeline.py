"""A grant's timeline in plain words: the webhooks Kryptos sent about it and the actions
recorded in the audit log (the console's staff, the customer backend's customers), merged
newest first. Also the Overview's line for a recent integration failure.

No Streamlit here. The texts carry upstream strings (aliases, messages, reasons): the page
shows them as table cells or `st.text`, never as Markdown."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dashboard.formats import fmt_bool, fmt_limit, fmt_second
from services.kryptos.models import Integration
from services.operations.history import approved_words
from services.operations.timeline import GrantTimeline, RecentFailure, integration_of
from services.store.actions import AuditAction
from services.store.audit import AuditEvent
from services.store.webhook_events import WebhookEvent

SOURCE_KRYPTOS = "Kryptos (webhook)"
SOURCE_CONSOLE = "console"
SOURCE_CUSTOMER = "customer (backend)"
CUSTOMER_PREFIX = "customer:"
SYNC_DONE = "COMPLETED"


@dataclass(frozen=True)
class TimelineItem:
    """One line of the timeline. `kind`: failure, resync, connect, limit, revoke, access or
    other (for styling and filtering)."""

    at: datetime
    source: str
    what: str
    kind: str


# --- webhooks --------------------------------------------------------------------------


def integration_label(integ: Integration) -> str:
    """'Coinbase (wallet w_123)'."""
    return f"{integ.display_name} (wallet {integ.wallet_id})"


def _count(n: int | None) -> str:
    if n is None:
        return ""
    return f" — {n:,} transaction{'s' if n != 1 else ''}"


def webhook_text(event: WebhookEvent) -> tuple[str, str]:
    """(what, kind) of a webhook in plain words."""
    integ = integration_of(event)
    if integ is None:
        return f"Kryptos event {event.type}", "other"
    label = integration_label(integ)
    status = (integ.status or "").upper()
    if event.type == "integration.created":
        said = f", status {integ.status}" if integ.is_failing else ""
        said += f": {integ.message}" if integ.is_failing and integ.message else ""
        return f"Integration added: {label}{said}", "connect"
    if event.type == "integration.failed" or integ.is_failing:
        said = integ.message or "no message given"
        return f"Integration failed: {said} ({label})", "failure"
    if event.type == "integration.deleted":
        return f"Integration removed: {label}", "other"
    if integ.is_syncing:
        return f"Resync of {label} started", "resync"
    if status == SYNC_DONE:
        return f"Resync of {label} completed{_count(integ.total_transactions)}", "resync"
    extra = f": {integ.message}" if integ.message else ""
    return f"{label} is now {integ.status}{extra}", "other"


def webhook_item(event: WebhookEvent) -> TimelineItem:
    what, kind = webhook_text(event)
    return TimelineItem(event.received_at, SOURCE_KRYPTOS, what, kind)


# --- audit events ----------------------------------------------------------------------


def who(event: AuditEvent) -> str:
    """Who did it: "sam", "sam, approved by sue (request #12)", "customer c-1"."""
    name = event.actor_username
    if name.startswith(CUSTOMER_PREFIX):
        return f"customer {name[len(CUSTOMER_PREFIX):]}"
    return name + approved_words(event)


def _why(event: AuditEvent) -> str:
    out = f": {event.reason}" if event.reason else ""
    return out + (f" (ticket {event.ticket})" if event.ticket else "")


def _limit_change(event: AuditEvent) -> str:
    before = event.before if isinstance(event.before, Mapping) else {}
    after = event.after if isinstance(event.after, Mapping) else {}
    parts = []
    b_lim, a_lim = before.get("transaction_limit"), after.get("transaction_limit")
    if b_lim != a_lim or not (before or after):
        parts.append(f"Limit changed {_limit(b_lim)} -> {_limit(a_lim)}")
    else:
        parts.append(f"Limit kept at {_limit(a_lim)}")
    b_on, a_on = before.get("enable_limiter"), after.get("enable_limiter")
    if b_on != a_on:
        parts.append(f"limiter {fmt_bool(b_on)} -> {fmt_bool(a_on)}")
    tier = (event.params or {}).get("tier") if isinstance(event.params, Mapping) else None
    if tier:
        parts.append(f"tier {tier}")
    return ", ".join(parts)


def _limit(value: Any) -> str:
    return "unknown" if value is None else fmt_limit(value)


def _wallet(event: AuditEvent, names: Mapping[str, str]) -> str:
    params = event.params if isinstance(event.params, Mapping) else {}
    wid = params.get("wallet_id")
    if not isinstance(wid, str):
        return "an integration"
    return f"{names[wid]} (wallet {wid})" if wid in names else f"wallet {wid}"


def _mode(event: AuditEvent) -> str:
    params = event.params if isinstance(event.params, Mapping) else {}
    return {"from_start": "from start", "latest": "latest"}.get(str(params.get("mode")), "")


def _failed(event: AuditEvent) -> str:
    said = event.error_message or event.error_code or "no reason recorded"
    return f" failed: {said}"


Worded = tuple[str, str]


def _resync(e: AuditEvent, by: str, names: Mapping[str, str]) -> Worded:
    mode = _mode(e)
    head = f"Resync{f' ({mode})' if mode else ''} of {_wallet(e, names)}"
    if e.outcome == "succeeded":
        return f"{head} requested by {by}{_why(e)}", "resync"
    if e.outcome == "failed":
        return f"{head} asked by {by}{_failed(e)}", "failure"
    return f"{head} being requested by {by}", "resync"


def _limit_event(e: AuditEvent, by: str, names: Mapping[str, str]) -> Worded:
    if e.outcome == "succeeded":
        return f"{_limit_change(e)} by {by}{_why(e)}", "limit"
    if e.outcome == "failed":
        return f"Limit change by {by}{_failed(e)}", "failure"
    return f"Limit change being made by {by}", "limit"


def _simple(done: str, doing: str, kind: str, *, with_why: bool = False) -> Any:
    """Wording of an action with no details: `done`/`doing` name it ("Grant revoked" /
    "Revoke")."""

    def word(e: AuditEvent, by: str, names: Mapping[str, str]) -> Worded:
        if e.outcome == "succeeded":
            return f"{done} by {by}{_why(e) if with_why else ''}", kind
        if e.outcome == "failed":
            return f"{doing} by {by}{_failed(e)}", kind
        return f"{doing} being made by {by}", kind

    return word


_WORDING = {
    AuditAction.INTEGRATION_RESYNC: _resync,
    AuditAction.LIMIT_UPDATE: _limit_event,
    AuditAction.TIER_APPLY: _limit_event,
    AuditAction.GRANT_REVOKE: _simple("Grant revoked", "Revoke", "revoke", with_why=True),
    AuditAction.GRANT_DISCONNECT: _simple("Disconnected", "Disconnect", "revoke"),
    AuditAction.TOKEN_EXCHANGE: _simple("Connected: access token stored", "Token exchange",
                                        "connect"),
    AuditAction.LINK_TOKEN_CREATE: _simple("Widget opened again (session resume)",
                                           "Link token", "connect"),
    AuditAction.SESSION_CHECK: _simple("Session checked", "Session check", "access"),
    AuditAction.HOLDINGS_READ: _simple("Holdings read", "Holdings read", "access"),
}


def audit_text(event: AuditEvent, names: Mapping[str, str] | None = None) -> Worded:
    """(what, kind) of an audit event in plain words; `names`: wallet id -> display name."""
    by = who(event)
    if event.outcome == "denied":
        return f"Refused to {by}: {event.action} (no permission)", "access"
    word = _WORDING.get(event.action)  # type: ignore[call-overload]
    if word is None:
        return f"{event.action} {event.outcome} by {by}{_why(event)}", "other"
    return word(event, by, names or {})


def _outcomes(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """Each change once: a `requested` event is dropped when its outcome is recorded, and
    its params (wallet, mode, tier: written on the `requested` event) go to the outcome."""
    events = list(events)
    asked = {e.correlation_id: e.params for e in events if e.outcome == "requested"}
    settled = {e.correlation_id for e in events if e.outcome != "requested"}
    out = []
    for e in events:
        if e.outcome == "requested" and e.correlation_id in settled:
            continue
        if e.params is None and asked.get(e.correlation_id) is not None:
            e = replace(e, params=asked[e.correlation_id])
        out.append(e)
    return out


def audit_item(event: AuditEvent, names: Mapping[str, str] | None = None) -> TimelineItem:
    what, kind = audit_text(event, names)
    source = (SOURCE_CUSTOMER if event.actor_username.startswith(CUSTOMER_PREFIX)
              else SOURCE_CONSOLE)
    return TimelineItem(event.ts, source, what, kind)


def wallet_names(events: Iterable[WebhookEvent]) -> dict[str, str]:
    """Wallet id -> display name, from the integrations the webhooks carried (newest wins)."""
    names: dict[str, str] = {}
    for event in events:  # newest first: keep the first name seen
        integ = integration_of(event)
        if integ is not None:
            names.setdefault(integ.wallet_id, integ.display_name)
    return names


def merge(timeline: GrantTimeline) -> list[TimelineItem]:
    """The grant's webhooks and audit events as one list, newest first."""
    names = wallet_names(timeline.webhooks)
    items = [webhook_item(e) for e in timeline.webhooks]
    items += [audit_item(e, names) for e in _outcomes(timeline.audit)]
    return sorted(items, key=lambda i: i.at, reverse=True)


def rows(items: Iterable[TimelineItem]) -> list[dict[str, Any]]:
    """Table rows (plain values)."""
    return [{"time": i.at, "source": i.source, "what": i.what} for i in items]


# --- the Overview's failures -----------------------------------------------------------


def failure_line(failure: RecentFailure) -> str:
    """'2026-12-01 14:03:05 UTC · customer acme-7 · Integration failed: ... (Coinbase, ...)'."""
    what, _ = webhook_text(failure.event)
    owner = (f"customer {failure.customer_ref}" if failure.customer_ref
             else f"grant {failure.grant_id}" if failure.grant_id else "unknown grant")
    return f"{fmt_second(failure.event.received_at)} · {owner} · {what}"


__all__ = ["TimelineItem", "audit_item", "audit_text", "failure_line", "integration_label",
           "merge", "rows", "wallet_names", "webhook_item", "webhook_text"]
