"""A grant's history in words: what each audit event did, with the values that changed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from services.operations.four_eyes import credit
from services.operations.limit_value import GuestLimit
from services.store.actions import AuditAction
from services.store.audit import AuditEvent

MODE_WORDS = {"latest": "latest (new transactions)", "from_start": "from start (full re-import)"}
OUTCOME_WORDS = {"requested": "requested", "succeeded": "done", "failed": "failed",
                 "denied": "refused (not allowed)"}
_WHAT = {
    AuditAction.GRANT_VIEW: "Viewed",
    AuditAction.GRANT_REVOKE: "Revoke",
    AuditAction.INTEGRATION_RESYNC: "Resync",
    AuditAction.LIMIT_UPDATE: "Limit change",
    AuditAction.TIER_APPLY: "Tier",
    AuditAction.LINK_TOKEN_CREATE: "Link token",
    AuditAction.TOKEN_EXCHANGE: "Connected",
    AuditAction.TOKEN_IMPORT: "Token imported",
    AuditAction.AUDIT_READ: "History read",
}


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _limit(fields: Mapping[str, Any]) -> str:
    if not fields or all(fields.get(k) is None for k in ("transaction_limit", "enable_limiter")):
        return "unknown"
    return GuestLimit.from_json(fields).words()


def _details(ev: AuditEvent) -> str:
    params, before, after = _map(ev.params), _map(ev.before), _map(ev.after)
    action = ev.action
    if action == AuditAction.INTEGRATION_RESYNC:
        parts = [f"wallet {params.get('wallet_id') or 'unknown'}"]
        if params.get("mode"):
            parts.append(f"mode {MODE_WORDS.get(params['mode'], params['mode'])}")
        if after.get("integration_type"):
            parts.append(f"type {after['integration_type']}")
        return ", ".join(parts)
    if action in (AuditAction.LIMIT_UPDATE, AuditAction.TIER_APPLY):
        tier = f"tier {params['tier']}: " if params.get("tier") else ""
        if ev.outcome == "succeeded":
            return f"{tier}limit {_limit(before)} → {_limit(after)}"
        return f"{tier}limit to {_limit(params)}"
    if action == AuditAction.GRANT_REVOKE and ev.outcome == "succeeded":
        return "status active → revoked"
    if action in (AuditAction.TOKEN_EXCHANGE, AuditAction.TOKEN_IMPORT,
                  AuditAction.LINK_TOKEN_CREATE):
        parts = []
        ref = params.get("customer_ref") or after.get("customer_ref")
        if ref:
            parts.append(f"customer {ref}")
        if after.get("stored"):
            parts.append(f"token {after['stored']}")
        if after.get("resumed"):
            parts.append("resumes the grant's session")
        return ", ".join(parts)
    return ""


def collapse(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """One event per change, newest first: the outcome of each requested/outcome pair, with
    the request's params (what was asked) when the outcome has none; a request without an
    outcome stays as it is."""
    groups: dict[str, list[AuditEvent]] = {}
    for ev in events:
        groups.setdefault(ev.correlation_id, []).append(ev)
    out = []
    for group in groups.values():
        final = max(group, key=lambda e: e.seq)
        asked = next((e for e in group if e.outcome == "requested"), None)
        if asked is not None and final.params is None and asked.params is not None:
            final = replace(final, params=asked.params)
        out.append(final)
    return sorted(out, key=lambda e: e.seq, reverse=True)


def describe_event(ev: AuditEvent) -> str:
    """One line: what was done, to what values, and how it ended ("Limit change: limit
    7,500 → 3,000 — done"; "Resync: wallet w_1, mode latest (new transactions) — failed:
    ...")."""
    what = _WHAT.get(ev.action, ev.action)  # type: ignore[call-overload]
    details = _details(ev)
    text = f"{what}: {details}" if details else what
    outcome = OUTCOME_WORDS.get(ev.outcome, ev.outcome)
    text = f"{text} — {outcome}"
    if ev.outcome in ("failed", "denied") and ev.error_message:
        text += f": {ev.error_message}"
    return text + approved_words(ev)


def approved_words(ev: AuditEvent) -> str:
    """", approved by sue (request #12)" for a change an approval executed, else ""."""
    who = credit(ev.params)
    return f", approved by {who[0]} (request #{who[1]})" if who is not None else ""


def performed_by(ev: AuditEvent) -> str:
    """Who made the change: "sam", or "sam, approved by sue (request #12)"."""
    return ev.actor_username + approved_words(ev)


__all__ = ["MODE_WORDS", "OUTCOME_WORDS", "approved_words", "collapse", "describe_event",
           "performed_by"]
