"""Audit log reads (not cached: every action appends to it).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.operations import Actor, Operations
from services.store import AuditFilter, AuditPage, ChainReport, parse_csv_export, parse_jsonl_export


def audit_page(ops: Operations, actor: Actor, filters: AuditFilter | None, page: int,
               page_size: int) -> AuditPage:
    """A page of the audit log, newest first; a page past the end gives the last page."""
    result = ops.audit.audit_page(actor, filters, page=page, page_size=page_size)
    if result.total and page > result.pages:
        result = ops.audit.audit_page(actor, filters, page=result.pages, page_size=page_size)
    return result


@dataclass(frozen=True)
class PreparedExport:
    """An export made from the Audit log page: what it holds and when it was made."""

    fmt: str
    content: str
    made_at: datetime
    events: int
    newest_seq: int | None


def export_audit(ops: Operations, actor: Actor, filters: AuditFilter | None,
                 fmt: str) -> PreparedExport:
    """The events matching `filters` as a file (oldest first), with what it covers."""
    content = ops.audit.export_audit(actor, filters, fmt)
    parse = parse_csv_export if fmt == "csv" else parse_jsonl_export
    exported = parse(io.StringIO(content))
    return PreparedExport(fmt, content, datetime.now(UTC), len(exported),
                          max((e.seq for e in exported), default=None))


def verify_audit(ops: Operations, actor: Actor,
                 expected_head: tuple[Any, Any] | None = None) -> ChainReport:
    """The audit chain's verification, optionally against a noted head."""
    return ops.audit.verify_audit(actor, expected_head=expected_head)


def audit_filter_choices(ops: Operations, actor: Actor) -> tuple[tuple[str, ...],
                                                                  tuple[str, ...]]:
    """The actions (catalogue) and actors (index skip scan, bounded) the pickers offer."""
    return ops.audit.filter_choices(actor)


def audit_event_links(ops: Operations, actor: Actor, event: Any) -> tuple[str | None,
                                                                           int | None]:
    """The grant and the approval request an event leads to (either may be None)."""
    return ops.audit.links(actor, event)
