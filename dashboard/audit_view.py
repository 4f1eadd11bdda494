"""The Audit log page's words (pages/audit_log.py): what a chain verification found, as the
notice an auditor reads, and an event's details as shown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from dashboard.formats import fmt_second
from services.store import AuditEvent, ChainReport


@dataclass(frozen=True)
class Verification:
    """A verification the page keeps until its inputs change."""

    report: ChainReport
    made_at: datetime
    expected: tuple[int, str] | None = None  # the head the auditor asked to check, if any


@dataclass(frozen=True)
class Notice:
    kind: Literal["success", "warning", "error"]
    text: str
    icon: str


def verification_notice(verified: Verification) -> Notice:
    """What the verification found, in the auditor's words: intact (and against which
    heads), a noted row past the end (most likely a typo), or where and how it is broken."""
    report = verified.report
    when = f"Verified at {fmt_second(verified.made_at)}"
    also = []
    if report.anchor_checked:
        also.append(f"it holds the head kept outside the database (event #{report.anchor_seq})")
    if verified.expected is not None:
        also.append(f"event #{verified.expected[0]} has the hash you noted")
    if report.ok:
        return Notice("success", f"{when}: the chain is intact, {report.checked} event(s) "
                      "checked" + (f"; {' and '.join(also)}" if also else "") + ". Events "
                      "added since are not covered; verify again to include them.",
                      ":material/check_circle:")
    if report.check_what_you_typed and verified.expected is not None:
        return Notice("warning", f"{when}: there is no event #{verified.expected[0]} yet: the "
                      f"log ends at event #{report.head_seq}. Check what you typed (the row "
                      "and the hash you noted). If it is right, the newest events were "
                      "removed.", ":material/help:")
    if report.head_seq is None:  # the walk stopped at a row that does not match
        return Notice("error", f"{when}: the chain is broken at event #{report.first_bad_seq}: "
                      f"the events before it ({report.checked}) are intact; this one or an "
                      "earlier one was changed, removed or inserted outside the console.",
                      ":material/gpp_bad:")
    if report.first_bad_seq is None:  # the anchor file could not be used
        return Notice("error", f"{when}: the {report.checked} event(s) in the log link up, "
                      "but the head kept outside the database could not be checked, so events "
                      "removed from the end would not show. Find out why (below) before "
                      "trusting the log.", ":material/gpp_bad:")
    if report.first_bad_seq > report.head_seq:
        return Notice("error", f"{when}: events are missing from the end of the log. It ends "
                      f"at event #{report.head_seq}, but later events existed: they were "
                      "removed outside the console (the events that remain link up).",
                      ":material/gpp_bad:")
    return Notice("error", f"{when}: event #{report.first_bad_seq} is not the one recorded "
                  "earlier: the newest events were removed and others written after them, or "
                  "the chain was rewritten outside the console.", ":material/gpp_bad:")


def event_details(event: AuditEvent) -> dict[str, Any]:
    """An event's fields beyond the table's columns, as the details panel shows them."""
    return {
        "event_id": event.event_id, "reason": event.reason, "ticket": event.ticket,
        "correlation_id": event.correlation_id, "params": event.params,
        "before": event.before, "after": event.after, "error_message": event.error_message,
        "prev_hash": event.prev_hash, "hash": event.hash,
    }


__all__ = ["Notice", "Verification", "event_details", "verification_notice"]
