"""Audit event types, their one field list, and the canonical form that is hashed.

Each row's `hash` is SHA-256 over the previous row's hash and the row's own canonical content
(`canonical_content`: JSON with sorted keys, the time as `YYYY-MM-DDTHH:MM:SS.mmmZ`); the
first row's `prev_hash` is 64 zeros. The fields of `AuditEvent`, in order, are the export
columns; each field's `metadata` says its table column and kind, and every mapping (table
row, export, canonical form) is derived from them here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from services.store.errors import StoreError

if TYPE_CHECKING:
    from services.store.db import RowLike

OUTCOMES = ("requested", "succeeded", "failed", "denied", "skipped", "reconciled")
ZERO_HASH = "0" * 64
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")

# Field kinds: how a value is kept in the table and in an export.
_INT, _TS, _TEXT, _JSON, _ROLES, _LINK = "int", "ts", "text", "json", "roles", "link"


def _f(kind: str, column: str | None = None) -> Any:
    return field(metadata={"kind": kind, "column": column})


@dataclass(frozen=True)
class NewAuditEvent:
    """What a caller knows about an event. Never put a token in any field."""

    actor_username: str
    actor_roles: Sequence[str]
    action: str
    outcome: str
    target_type: str | None = None
    target_id: str | None = None
    params: Mapping[str, Any] | None = None
    before: Any = None
    after: Any = None
    reason: str | None = None
    ticket: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class AuditEvent:
    """A stored event. `ts` is an aware UTC datetime with millisecond precision."""

    seq: int = _f(_INT)
    event_id: str = _f(_TEXT)
    ts: datetime = _f(_TS, "ts_ms")
    actor_username: str = _f(_TEXT)
    actor_roles: tuple[str, ...] = _f(_ROLES)
    action: str = _f(_TEXT)
    outcome: str = _f(_TEXT)
    target_type: str | None = _f(_TEXT)
    target_id: str | None = _f(_TEXT)
    params: Any = _f(_JSON)
    before: Any = _f(_JSON, "before_value")
    after: Any = _f(_JSON, "after_value")
    reason: str | None = _f(_TEXT)
    ticket: str | None = _f(_TEXT)
    error_code: str | None = _f(_TEXT)
    error_message: str | None = _f(_TEXT)
    request_id: str | None = _f(_TEXT)
    correlation_id: str = _f(_TEXT)
    prev_hash: str = _f(_LINK)
    hash: str = _f(_LINK)


@dataclass(frozen=True)
class _Field:
    name: str  # the AuditEvent attribute and the export column
    column: str  # the audit_log column
    kind: str


FIELDS: tuple[_Field, ...] = tuple(
    _Field(f.name, f.metadata["column"] or f.name, f.metadata["kind"]) for f in fields(AuditEvent)
)
#: Export columns (CSV header, JSON Lines keys), in order.
EXPORT_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)
#: Export columns whose values are JSON (CSV cells hold their JSON text).
JSON_EXPORT: frozenset[str] = frozenset(f.name for f in FIELDS if f.kind in (_JSON, _ROLES))
#: The fields the hash covers: all but the links themselves.
HASHED: tuple[_Field, ...] = tuple(f for f in FIELDS if f.kind != _LINK)


@dataclass(frozen=True)
class AuditHead:
    """A head of the chain: a row's seq and hash, and its time when known."""

    seq: int
    hash: str
    ts: datetime | None = None


def audit_head(value: AuditHead | tuple[int, str] | Sequence[Any]) -> AuditHead:
    """An `AuditHead` from `(seq, hash)`: seq a whole number >= 1, hash 64 hex characters
    (case and surrounding spaces ignored). Raises `StoreError` otherwise."""
    if isinstance(value, AuditHead):
        seq, digest = value.seq, value.hash
    else:
        try:
            seq, digest = value
        except (TypeError, ValueError):
            raise StoreError("A head is a pair (row number, hash).") from None
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise StoreError("A head's row number must be a whole number of at least 1.")
    if not isinstance(digest, str) or not _HASH_RE.match(digest.strip().lower()):
        raise StoreError("A head's hash must be 64 hexadecimal characters.")
    ts = value.ts if isinstance(value, AuditHead) else None
    return AuditHead(seq, digest.strip().lower(), ts)


# --- canonical JSON and time -----------------------------------------------------------------

def json_default(value: Any) -> Any:
    """JSON for the values an event may hold (times, dates, decimals, enums, sets)."""
    if isinstance(value, datetime):
        return format_ts(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"type {type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 kept, NaN refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=json_default)


def format_ts(ts: datetime) -> str:
    """UTC, millisecond precision: `2024-06-01T12:00:00.123Z`."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(microsecond=(ms % 1000) * 1000)


def dt_to_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def canonical_content(row: RowLike) -> str:
    """The canonical JSON of a stored row's content (JSON columns as their stored text).
    Keys are the column names, except the time: `ts`, formatted."""
    content = {f.column: row[f.column] for f in HASHED if f.kind != _TS}
    content["ts"] = format_ts(ms_to_dt(int(row["ts_ms"])))
    return dumps(content)


def chain_hash(prev_hash: str, row: RowLike) -> str:
    return hashlib.sha256((prev_hash + canonical_content(row)).encode("utf-8")).hexdigest()


# --- the mappings, one per direction, all from FIELDS -----------------------------------------

def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _same(value: Any) -> Any:
    return value


_FROM_COLUMN: dict[str, Callable[[Any], Any]] = {
    _INT: int, _TS: lambda v: ms_to_dt(int(v)), _JSON: _load,
    _ROLES: lambda v: tuple(_load(v) or ()),
}
_TO_COLUMN: dict[str, Callable[[Any], Any]] = {
    _TS: dt_to_ms, _JSON: lambda v: None if v is None else dumps(v),
    _ROLES: lambda v: dumps(list(v)),
}
_TO_EXPORT: dict[str, Callable[[Any], Any]] = {_TS: format_ts, _ROLES: list}
_FROM_EXPORT: dict[str, Callable[[Any], Any]] = {
    _INT: int, _TS: parse_ts, _ROLES: lambda v: tuple(v or ()),
}


def event_from_row(row: RowLike) -> AuditEvent:
    """A stored `audit_log` row as an `AuditEvent`."""
    return AuditEvent(**{f.name: _FROM_COLUMN.get(f.kind, _same)(row[f.column])
                         for f in FIELDS})


def row_from_event(event: AuditEvent) -> dict[str, Any]:
    """The `audit_log` row (column values) an `AuditEvent` was read from."""
    return {f.column: _TO_COLUMN.get(f.kind, _same)(getattr(event, f.name)) for f in FIELDS}


def export_record(event: AuditEvent) -> dict[str, Any]:
    """An event as plain JSON-able values keyed by export column."""
    return {f.name: _TO_EXPORT.get(f.kind, _same)(getattr(event, f.name)) for f in FIELDS}


def event_from_export(data: Mapping[str, Any]) -> AuditEvent:
    """The inverse of `export_record`."""
    return AuditEvent(**{f.name: _FROM_EXPORT.get(f.kind, _same)(data[f.name])
                         for f in FIELDS})


def event_hash_matches(event: AuditEvent) -> bool:
    """Recompute an (exported) event's hash from its content and its `prev_hash`."""
    return chain_hash(event.prev_hash, row_from_event(event)) == event.hash
