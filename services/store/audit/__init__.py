"""The audit log: one row per event, append-only, hash-chained.

Modules: `events` (event types, field list, canonical form and hashing), `redact` (checks
and secret masking of new events), `log` (`AuditLog`: appends with group commit, reads),
`query` (filters and pages), `export` (CSV/JSON Lines and reading them back), `anchor` (the
newest head kept in a file, and its timer), `verify` (chain verification), `changes`
(the charts' row of each limit change, written with its event, outside the chain).
"""

from __future__ import annotations

import uuid

from services.store.audit.anchor import (
    ANCHOR_FORMAT,
    ANCHOR_INTERVAL_S,
    AnchorError,
    AnchorKeeper,
    AuditAnchor,
)
from services.store.audit.events import (
    EXPORT_COLUMNS,
    OUTCOMES,
    ZERO_HASH,
    AuditEvent,
    AuditHead,
    NewAuditEvent,
    audit_head,
    canonical_content,
    chain_hash,
    event_hash_matches,
    format_ts,
)
from services.store.audit.export import parse_csv_export, parse_jsonl_export
from services.store.audit.log import AuditLog
from services.store.audit.query import AuditFilter, AuditPage
from services.store.audit.redact import SECRET_KEYS
from services.store.audit.verify import ChainReport


def new_correlation_id() -> str:
    return uuid.uuid4().hex


__all__ = [
    "ANCHOR_FORMAT", "ANCHOR_INTERVAL_S", "EXPORT_COLUMNS", "OUTCOMES", "SECRET_KEYS",
    "ZERO_HASH", "AnchorError", "AnchorKeeper", "AuditAnchor", "AuditEvent", "AuditFilter",
    "AuditHead", "AuditLog", "AuditPage", "ChainReport", "NewAuditEvent", "audit_head",
    "canonical_content", "chain_hash", "event_hash_matches", "format_ts",
    "new_correlation_id", "parse_csv_export", "parse_jsonl_export",
]
