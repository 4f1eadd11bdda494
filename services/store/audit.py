"""The audit log: one row per event, append-only, hash-chained.

Each row's `hash` is SHA-256 over the previous row's hash and the row's own canonical content
(`canonical_content`: JSON with sorted keys, the time as `YYYY-MM-DDTHH:MM:SS.mmmZ`); the
first row's `prev_hash` is 64 zeros. `seq` runs 1, 2, 3... without gaps, and the time never
goes backwards along `seq` (an append takes the later of the clock and the last row's time).
Appends are serialised (SQLite: BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE ... IN EXCLUSIVE
MODE), and the last hash is read under that lock, so concurrent writers never fork the chain.

The chain alone cannot show that its newest rows were deleted (what is left is a valid, shorter
chain). So an `AuditLog` given an `anchor_file` records, after each append, the newest head
(seq, hash, time) in that file, outside the database, and `verify_chain` compares the chain
with it and with a head an auditor noted earlier (`expected_head`).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import ColumnElement, Connection, and_, func, insert, select, true

from services.kryptos.models import mask_token
from services.store.db import Database
from services.store.errors import StoreError
from services.store.schema import audit_log

log = logging.getLogger(__name__)

OUTCOMES = ("requested", "succeeded", "failed", "denied")
ZERO_HASH = "0" * 64
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# Keys whose values are secrets: masked before they reach the log, wherever they are nested.
SECRET_KEYS = frozenset(
    {"access_token", "public_token", "link_token", "refresh_token", "id_token", "token",
     "client_secret", "secret", "password", "vault_key", "cookie_key", "authorization"}
)
_CHUNK = 5000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")

EXPORT_COLUMNS = (
    "seq", "event_id", "ts", "actor_username", "actor_roles", "action", "outcome",
    "target_type", "target_id", "params", "before", "after", "reason", "ticket",
    "error_code", "error_message", "request_id", "correlation_id", "prev_hash", "hash",
)


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

    seq: int
    event_id: str
    ts: datetime
    actor_username: str
    actor_roles: tuple[str, ...]
    action: str
    outcome: str
    target_type: str | None
    target_id: str | None
    params: Any
    before: Any
    after: Any
    reason: str | None
    ticket: str | None
    error_code: str | None
    error_message: str | None
    request_id: str | None
    correlation_id: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditFilter:
    """`since` inclusive, `until` exclusive (naive datetimes are taken as UTC). `action` is an
    exact match, or a prefix when it ends in `*` (`grant.*`)."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    target_id: str | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class ChainReport:
    """What `verify_chain` found. `checked`: rows whose links were verified, oldest first.

    `head_seq`/`head_hash`: the newest row, when the walk reached the end of the log (0 and
    `ZERO_HASH` for an empty log; None when the walk stopped at a broken row); an auditor
    notes them to pass later as `expected_head`. `anchor_checked`: the head kept in the
    anchor file (row `anchor_seq`) was compared with the chain; `expected_checked`: so was
    the `expected_head` given."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    anchor_checked: bool = False
    anchor_seq: int | None = None
    expected_checked: bool = False


@dataclass(frozen=True)
class AuditHead:
    """A head of the chain: a row's seq and hash, and its time when known."""

    seq: int
    hash: str
    ts: datetime | None = None


class AnchorError(StoreError):
    """The anchor file exists but does not hold a head (unreadable, corrupt, or edited)."""


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


# --- canonical form and hashing ------------------------------------------------------------

def _json_default(value: Any) -> Any:
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


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_json_default)


def format_ts(ts: datetime) -> str:
    """UTC, millisecond precision: `2024-06-01T12:00:00.123Z`."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(microsecond=(ms % 1000) * 1000)


def _dt_to_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_HASHED = (
    "seq", "event_id", "ts_ms", "actor_username", "actor_roles", "action", "outcome",
    "target_type", "target_id", "params", "before_value", "after_value", "reason", "ticket",
    "error_code", "error_message", "request_id", "correlation_id",
)


def canonical_content(row: Mapping[str, Any]) -> str:
    """The canonical JSON of a stored row's content (JSON columns as their stored text)."""
    content = {name: row[name] for name in _HASHED if name != "ts_ms"}
    content["ts"] = format_ts(_ms_to_dt(int(row["ts_ms"])))
    return _dumps(content)


def chain_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_content(row)).encode("utf-8")).hexdigest()


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            str(k): (mask_token(str(v)) if v is not None else None)
            if str(k).lower() in SECRET_KEYS else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _text(value: str | None, name: str, limit: int | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreError(f"Audit field '{name}' must be text.")
    value = value.strip()
    if not value:
        return None
    if limit is not None and len(value) > limit:
        # An event is never lost over its length (a failed login with a 5,000-character
        # username is still recorded): overlong short fields are cut and marked.
        value = value[: limit - 1] + "…"
    return value


def _json_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    try:
        return _dumps(_redact(value))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"Audit field '{name}' cannot be stored as JSON: {exc}") from None


def _prepare(event: NewAuditEvent) -> dict[str, Any]:
    """Validate and normalise an event into column values (without seq, time and hashes)."""
    username = _text(event.actor_username, "actor_username", 200)
    if not username:
        raise StoreError("An audit event needs an actor username.")
    if isinstance(event.actor_roles, str):
        raise StoreError("Audit field 'actor_roles' must be a list of role names, not a string.")
    roles = sorted({str(r) for r in event.actor_roles})
    if not isinstance(event.action, str) or not _ACTION_RE.match(event.action):
        raise StoreError(f"Audit action '{event.action}' must be a dotted verb like grant.revoke.")
    if event.outcome not in OUTCOMES:
        raise StoreError(f"Audit outcome '{event.outcome}' must be one of {', '.join(OUTCOMES)}.")
    return {
        "event_id": str(uuid.uuid4()),
        "actor_username": username,
        "actor_roles": _dumps(roles),
        "action": event.action,
        "outcome": event.outcome,
        "target_type": _text(event.target_type, "target_type", 50),
        "target_id": _text(event.target_id, "target_id", 200),
        "params": _json_text(event.params, "params"),
        "before_value": _json_text(event.before, "before"),
        "after_value": _json_text(event.after, "after"),
        "reason": _text(event.reason, "reason"),
        "ticket": _text(event.ticket, "ticket", 200),
        "error_code": _text(event.error_code, "error_code", 100),
        "error_message": _text(event.error_message, "error_message"),
        "request_id": _text(event.request_id, "request_id", 200),
        "correlation_id": _text(event.correlation_id, "correlation_id", 64) or uuid.uuid4().hex,
    }


def _event(row: Mapping[str, Any]) -> AuditEvent:
    def load(text: str | None) -> Any:
        return None if text is None else json.loads(text)

    return AuditEvent(
        seq=int(row["seq"]),
        event_id=row["event_id"],
        ts=_ms_to_dt(int(row["ts_ms"])),
        actor_username=row["actor_username"],
        actor_roles=tuple(load(row["actor_roles"]) or ()),
        action=row["action"],
        outcome=row["outcome"],
        target_type=row["target_type"],
        target_id=row["target_id"],
        params=load(row["params"]),
        before=load(row["before_value"]),
        after=load(row["after_value"]),
        reason=row["reason"],
        ticket=row["ticket"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        request_id=row["request_id"],
        correlation_id=row["correlation_id"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _export_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq, "event_id": event.event_id, "ts": format_ts(event.ts),
        "actor_username": event.actor_username, "actor_roles": list(event.actor_roles),
        "action": event.action, "outcome": event.outcome, "target_type": event.target_type,
        "target_id": event.target_id, "params": event.params, "before": event.before,
        "after": event.after, "reason": event.reason, "ticket": event.ticket,
        "error_code": event.error_code, "error_message": event.error_message,
        "request_id": event.request_id, "correlation_id": event.correlation_id,
        "prev_hash": event.prev_hash, "hash": event.hash,
    }


def neutralise_cell(value: str) -> str:
    """Prefix `'` to a cell a spreadsheet would run as a formula (leading =, +, -, @, tab, CR);
    cells that already start with `'` get one too, so `unneutralise_cell` is exact."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def unneutralise_cell(value: str) -> str:
    return value[1:] if value.startswith("'") else value


_JSON_EXPORT = frozenset({"actor_roles", "params", "before", "after"})


def parse_csv_export(source: TextIO) -> list[AuditEvent]:
    """Read back a CSV written by `AuditLog.export_csv` (for audits and round-trip checks)."""
    events = []
    for raw in csv.DictReader(source):
        cells = {k: unneutralise_cell(v) for k, v in raw.items()}
        data: dict[str, Any] = {}
        for name in EXPORT_COLUMNS:
            cell = cells[name]
            if name in _JSON_EXPORT:
                data[name] = json.loads(cell) if cell != "" else None
            else:
                data[name] = cell if cell != "" else None
        events.append(_from_export(data))
    return events


def parse_jsonl_export(source: TextIO) -> list[AuditEvent]:
    """Read back JSON Lines written by `AuditLog.export_jsonl`."""
    return [_from_export(json.loads(line)) for line in source if line.strip()]


def _from_export(data: Mapping[str, Any]) -> AuditEvent:
    ts = datetime.strptime(data["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return AuditEvent(
        seq=int(data["seq"]), event_id=data["event_id"], ts=ts,
        actor_username=data["actor_username"], actor_roles=tuple(data["actor_roles"] or ()),
        action=data["action"], outcome=data["outcome"], target_type=data["target_type"],
        target_id=data["target_id"], params=data["params"], before=data["before"],
        after=data["after"], reason=data["reason"], ticket=data["ticket"],
        error_code=data["error_code"], error_message=data["error_message"],
        request_id=data["request_id"], correlation_id=data["correlation_id"],
        prev_hash=data["prev_hash"], hash=data["hash"],
    )


def event_hash_matches(event: AuditEvent) -> bool:
    """Recompute an (exported) event's hash from its content and its `prev_hash`."""
    row = {
        "seq": event.seq, "event_id": event.event_id, "ts_ms": _dt_to_ms(event.ts),
        "actor_username": event.actor_username, "actor_roles": _dumps(list(event.actor_roles)),
        "action": event.action, "outcome": event.outcome, "target_type": event.target_type,
        "target_id": event.target_id,
        "params": None if event.params is None else _dumps(event.params),
        "before_value": None if event.before is None else _dumps(event.before),
        "after_value": None if event.after is None else _dumps(event.after),
        "reason": event.reason, "ticket": event.ticket, "error_code": event.error_code,
        "error_message": event.error_message, "request_id": event.request_id,
        "correlation_id": event.correlation_id,
    }
    return chain_hash(event.prev_hash, row) == event.hash


# --- the anchor: the newest head, kept outside the database ---------------------------------

ANCHOR_FORMAT = "kryptos-console-audit-anchor/1"


class AuditAnchor:
    """A small JSON file holding the newest head of the chain that any writer has seen.

    Several threads and processes update it: each update runs under an exclusive `flock` on
    a separate lock file (`<name>.lock`, never replaced), reads the stored head, and replaces
    the file (temp file in the same folder, then `os.replace`) only with a *newer* head whose
    chain still holds the stored one. So an older head never overwrites a newer one, and a
    head that the database no longer holds (rows deleted, then others appended) is kept as
    evidence instead of being overwritten. Readers need no lock: `os.replace` is atomic.

    No fsync: after a power cut the file may hold an older head (or the rename may be lost),
    which still verifies against the chain, only a weaker check. Paying a disk flush on
    every audit event for that is not worth it; the database itself is flushed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"AuditAnchor({str(self.path)!r})"

    def read(self) -> AuditHead | None:
        """The stored head; None when there is no file. `AnchorError` when it cannot be read
        or does not hold a head."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AnchorError(f"The audit anchor file {self.path} cannot be read "
                              f"({type(exc).__name__}: {exc.strerror or exc}).") from None
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or data.get("format") != ANCHOR_FORMAT:
                raise ValueError("not an audit anchor")
            ts = datetime.strptime(data["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            return audit_head(AuditHead(data["seq"], data["hash"], ts))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, StoreError):
            raise AnchorError(f"The audit anchor file {self.path} does not hold a valid head "
                              "(corrupt or edited).") from None

    def advance(self, head: AuditHead, holds: Callable[[AuditHead], bool]) -> str | None:
        """Store `head` unless the stored head is as new or newer. `holds(stored)` says
        whether the chain ending at `head` still contains the stored head; when it does not,
        the file is left alone. Returns None when done (or not needed), else why not."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                stored = self.read()
            except AnchorError as exc:
                return f"{exc.user_message} It is left as found; move it aside once checked."
            if stored is not None:
                if stored.seq >= head.seq:
                    return None
                if not holds(stored):
                    return (f"the log no longer holds row {stored.seq} with the anchored hash "
                            f"{stored.hash[:12]}...: rows were removed or rewritten. The "
                            f"anchor in {self.path} is kept as evidence; verify the chain.")
            self._replace(head)
            return None
        finally:
            os.close(fd)  # releases the flock

    def _replace(self, head: AuditHead) -> None:
        text = _dumps({"format": ANCHOR_FORMAT, "seq": head.seq, "hash": head.hash,
                       "ts": format_ts(head.ts or _utcnow())})
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                   dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


#: The anchor file is written at most this often (seconds). Writing it after every append
#: cost 33-44 % of the append rate here (bench/audit_bench.py --anchor compare; about 1-1.7
#: ms per append on SQLite and PostgreSQL alike: on ext4 the rename flushes the new file's
#: data, which the next commit's fsync then waits for); at most 4 writes a second cost 2-6 %,
#: within this machine's noise. A head is anchored within this delay, so only rows deleted
#: less than a quarter of a second after they were written (or written just before the
#: process was killed) escape the anchor check.
ANCHOR_INTERVAL_S = 0.25


@dataclass(frozen=True)
class _PendingHead:
    head: AuditHead
    known: dict[int, str]  # seq -> hash that the append knew without a query


class _Warner:
    """Logs anchor failures without flooding the log: the first at once, then at most one a
    minute with the number left out in between."""

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last = -interval
        self._skipped = 0

    def warn(self, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._interval:
                self._skipped += 1
                return
            skipped, self._skipped, self._last = self._skipped, 0, now
        more = f" ({skipped} similar warning(s) left out in the last minute)" if skipped else ""
        log.warning("Audit anchor not updated: %s%s", message, more)


def _when(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "time unknown"


# --- the log -------------------------------------------------------------------------------

def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """Append-only, hash-chained audit log in table `audit_log` of `db`."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = _utcnow,
                 anchor_file: str | os.PathLike[str] | None = None,
                 anchor_interval: float = ANCHOR_INTERVAL_S) -> None:
        """`anchor_file`: where to keep the newest head outside the database (see
        `AuditAnchor`); None keeps no anchor (then `verify_chain` cannot see the newest rows
        removed, unless given an `expected_head`). `anchor_interval`: the file is written at
        most once per this many seconds (0: after every append); a head not written yet is
        written by a timer at the end of the interval, and by `verify_chain` at once."""
        if anchor_interval < 0:
            raise ValueError("anchor_interval must not be negative")
        self._db = db
        self._clock = clock
        self.anchor = AuditAnchor(anchor_file) if anchor_file is not None else None
        self.anchor_interval = anchor_interval
        self._warner = _Warner()
        self._anchor_lock = threading.Lock()
        self._pending: _PendingHead | None = None  # newest head appended, not yet written
        self._anchored_at = -math.inf  # time.monotonic() of the last write
        self._timer: threading.Timer | None = None

    def __repr__(self) -> str:
        return f"AuditLog({self._db!r})"

    # writing

    def append(self, event: NewAuditEvent) -> AuditEvent:
        """Store one event at the end of the chain and return it as stored."""
        return self.append_many([event])[0]

    def append_many(self, events: Iterable[NewAuditEvent]) -> list[AuditEvent]:
        """Store several events in one transaction (one lock), in the given order."""
        prepared = [_prepare(e) for e in events]
        if not prepared:
            return []
        with self._db.write() as conn:
            rows = self._seal(conn, prepared)
            for start in range(0, len(rows), _CHUNK):
                conn.execute(insert(audit_log), rows[start:start + _CHUNK])
        if self.anchor is not None:
            self._anchor_rows(self.anchor, rows)
        return [_event(r) for r in rows]

    def _anchor_rows(self, anchor: AuditAnchor, rows: list[dict[str, Any]]) -> None:
        """Record the newest committed row in the anchor file, now or (within the interval)
        by a timer. The events are committed: nothing here can fail the append."""
        first, last = rows[0], rows[-1]
        head = AuditHead(int(last["seq"]), last["hash"], _ms_to_dt(int(last["ts_ms"])))
        # Hashes this append knows without a query: the row before its first, and its own.
        pending = _PendingHead(head, {int(first["seq"]) - 1: first["prev_hash"],
                                      head.seq: head.hash})
        with self._anchor_lock:
            if self._pending is None or head.seq > self._pending.head.seq:
                self._pending = pending
            wait = self._anchored_at + self.anchor_interval - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._timer_fired)
                    self._timer.name = "audit-anchor"
                    # Not a daemon: at a normal exit the interpreter waits (at most the
                    # interval) for the last head to be written.
                    self._timer.start()
                return
        self.flush_anchor()

    def _timer_fired(self) -> None:
        with self._anchor_lock:
            self._timer = None
        self.flush_anchor()

    def flush_anchor(self) -> None:
        """Write the newest appended head not yet in the anchor file (if any) now."""
        anchor = self.anchor
        if anchor is None:
            return
        with self._anchor_lock:
            pending, self._pending = self._pending, None
            if self._timer is not None and self._timer is not threading.current_thread():
                self._timer.cancel()  # nothing left for it to write
                self._timer = None
            if pending is None:
                return
            self._anchored_at = time.monotonic()
        head = pending.head

        def holds(stored: AuditHead) -> bool:
            if stored.seq in pending.known:
                return pending.known[stored.seq] == stored.hash
            # Rows appended in between by others (or within the interval): read the row.
            with self._db.read() as conn:
                found = conn.execute(
                    select(audit_log.c.hash).where(audit_log.c.seq == stored.seq)).scalar()
            return found == stored.hash

        try:
            problem = anchor.advance(head, holds)
        except Exception as exc:  # noqa: BLE001 - never fail (or lose) a committed event
            problem = f"{anchor.path}: {type(exc).__name__}: {exc}"
        if problem is not None:
            self._warner.warn(f"row {head.seq}: {problem}")

    def _seal(self, conn: Connection, prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self._db.is_sqlite:
            conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        last = conn.execute(
            select(audit_log.c.seq, audit_log.c.hash, audit_log.c.ts_ms)
            .order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        seq, prev_hash, last_ms = (0, ZERO_HASH, 0) if last is None else (
            int(last.seq), last.hash, int(last.ts_ms))
        rows = []
        for values in prepared:
            seq += 1
            last_ms = max(_dt_to_ms(self._clock()), last_ms)
            row = dict(values, seq=seq, ts_ms=last_ms, prev_hash=prev_hash)
            row["hash"] = prev_hash = chain_hash(prev_hash, row)
            rows.append(row)
        return rows

    # reading

    def _where(self, conn: Connection, f: AuditFilter, *,
               walk_seq: bool = False) -> list[ColumnElement[bool]] | None:
        """SQL conditions for a filter; None when the filter provably matches nothing.

        `walk_seq` (SQLite) hides the column indexes from the planner (`col || ''`), so that
        a page of dense matches is read by walking seq backwards and stopping at the page's
        end, instead of sorting every match."""
        c = audit_log.c

        def col(column: Any) -> Any:
            return column.op("||")("") if walk_seq else column

        where: list[ColumnElement[bool]] = []
        # Time only grows with seq, so a time range is also a seq range: bound seq with the
        # ts index (one seek per end) and let the per-column (col, seq) indexes do the rest.
        if f.since is not None:
            since = _dt_to_ms(f.since)
            lo = conn.execute(select(c.seq).where(c.ts_ms >= since)
                              .order_by(c.ts_ms, c.seq).limit(1)).scalar()
            if lo is None:
                return None
            where += [c.seq >= lo, c.ts_ms >= since]
        if f.until is not None:
            until = _dt_to_ms(f.until)
            hi = conn.execute(select(c.seq).where(c.ts_ms < until)
                              .order_by(c.ts_ms.desc(), c.seq.desc()).limit(1)).scalar()
            if hi is None:
                return None
            where += [c.seq <= hi, c.ts_ms < until]
        if f.actor:
            where.append(col(c.actor_username) == f.actor)
        if f.action:
            if f.action.endswith("*"):
                prefix = f.action[:-1]
                # A range instead of LIKE, so that the index serves it on both databases.
                where += [col(c.action) >= prefix, col(c.action) < prefix + "\U0010ffff"]
            else:
                where.append(col(c.action) == f.action)
        if f.target_id:
            where.append(col(c.target_id) == f.target_id)
        if f.outcome:
            if f.outcome not in OUTCOMES:
                raise StoreError(f"Outcome filter must be one of {', '.join(OUTCOMES)}.")
            # Four values only: with a more selective filter, keep SQLite off this index.
            selective = self._db.is_sqlite and (f.actor or f.action or f.target_id)
            outcome = c.outcome.op("||")("") if selective else col(c.outcome)
            where.append(outcome == f.outcome)
        return where

    def query(self, filters: AuditFilter | None = None, page: int = 1,
              page_size: int = 50) -> AuditPage:
        """One page of matching events, newest first, with the total number of matches."""
        filters = filters or AuditFilter()
        if page < 1 or not 1 <= page_size <= 1000:
            raise StoreError("page must be >= 1 and page_size between 1 and 1000.")
        with self._db.read() as conn:
            where = self._where(conn, filters)
            if where is None:
                return AuditPage([], 0, page, page_size)
            cond = and_(true(), *where)
            if where:
                total = int(conn.execute(
                    select(func.count()).select_from(audit_log).where(cond)).scalar() or 0)
            else:  # seq runs 1..n without gaps in an append-only log: no need to count
                total = int(conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0)
            if total == 0:
                return AuditPage([], 0, page, page_size)
            if self._db.is_sqlite and filters.action and filters.action.endswith("*"):
                # A prefix matches several index ranges, which SQLite would merge by sorting
                # every match; when matches are dense, walking seq backwards is far cheaper.
                span = int(conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0)
                if total * 20 >= span:
                    cond = and_(true(), *(self._where(conn, filters, walk_seq=True) or []))
            rows = conn.execute(
                select(audit_log).where(cond).order_by(audit_log.c.seq.desc())
                .limit(page_size).offset((page - 1) * page_size)
            ).mappings().all()
        return AuditPage([_event(r) for r in rows], total, page, page_size)

    def last_event(self, target_id: str, action: str | None = None,
                   outcome: str | None = None) -> AuditEvent | None:
        """The newest event about `target_id` (optionally of one action and outcome)."""
        page = self.query(AuditFilter(target_id=target_id, action=action, outcome=outcome),
                          page=1, page_size=1)
        return page.events[0] if page.events else None

    def iter_events(self, filters: AuditFilter | None = None) -> Iterator[AuditEvent]:
        """All matching events, oldest first, read in chunks (never all in memory)."""
        filters = filters or AuditFilter()
        after = 0
        while True:
            with self._db.read() as conn:
                where = self._where(conn, filters)
                if where is None:
                    return
                rows = conn.execute(
                    select(audit_log).where(and_(audit_log.c.seq > after, *where))
                    .order_by(audit_log.c.seq).limit(_CHUNK)
                ).mappings().all()
            if not rows:
                return
            for row in rows:
                yield _event(row)
            after = int(rows[-1]["seq"])

    def export_csv(self, filters: AuditFilter | None, out: TextIO) -> int:
        """Write matching events (oldest first, hashes included) as CSV; returns the count.
        Cells a spreadsheet would run as formulas are prefixed with `'`."""
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        count = 0
        for event in self.iter_events(filters):
            data = _export_row(event)
            cells = []
            for name in EXPORT_COLUMNS:
                value = data[name]
                if name in _JSON_EXPORT:
                    text = "" if value is None else _dumps(value)
                else:
                    text = "" if value is None else str(value)
                cells.append(neutralise_cell(text))
            writer.writerow(cells)
            count += 1
        return count

    def export_jsonl(self, filters: AuditFilter | None, out: TextIO) -> int:
        """Write matching events (oldest first, hashes included) as JSON Lines."""
        count = 0
        for event in self.iter_events(filters):
            out.write(_dumps(_export_row(event)) + "\n")
            count += 1
        return count

    def verify_chain(
        self, expected_head: AuditHead | tuple[int, str] | None = None
    ) -> ChainReport:
        """Walk the whole log in seq order and report the first row that does not match;
        then compare the chain with the anchor file's head (when this log keeps one) and
        with `expected_head` (a `(seq, hash)` an auditor noted earlier): a chain that ends
        before that row, or holds another hash there, lost its newest rows or was rewritten.

        `StoreError` for a malformed `expected_head`; an unreadable anchor is a finding."""
        expected = audit_head(expected_head) if expected_head is not None else None
        problems: list[tuple[int | None, str]] = []
        anchored: AuditHead | None = None
        if self.anchor is not None:
            self.flush_anchor()  # this process's newest head, if the interval held it back
            # Read before the walk: an anchor is written after its rows are committed, so
            # every row it names is visible to the walk that follows.
            try:
                anchored = self.anchor.read()
            except AnchorError as exc:
                problems.append((None, f"{exc.user_message} It may have been tampered with: "
                                       "compare it with a head noted earlier."))
        targets = {h.seq for h in (anchored, expected) if h is not None}
        seen: dict[int, str] = {}
        expected_seq, prev_hash, checked = 1, ZERO_HASH, 0
        after = 0
        while True:
            with self._db.read() as conn:
                rows = conn.execute(
                    select(audit_log).where(audit_log.c.seq > after)
                    .order_by(audit_log.c.seq).limit(_CHUNK)
                ).mappings().all()
            if not rows:
                break
            for row in rows:
                seq = int(row["seq"])
                bad = None
                if seq != expected_seq:
                    bad = (f"row {seq} follows row {expected_seq - 1}: "
                           f"{seq - expected_seq} row(s) missing")
                elif row["prev_hash"] != prev_hash:
                    bad = ("prev_hash does not match the previous row's hash "
                           "(the previous row was changed, or a row was removed or inserted)")
                elif chain_hash(prev_hash, row) != row["hash"]:
                    bad = "the row's content does not match its hash (the row was changed)"
                if bad is not None:
                    return ChainReport(ok=False, checked=checked, first_bad_seq=seq, reason=bad)
                checked += 1
                expected_seq, prev_hash = seq + 1, row["hash"]
                if seq in targets:
                    seen[seq] = row["hash"]
            after = int(rows[-1]["seq"])
        head_seq = expected_seq - 1
        if self.anchor is not None and anchored is None and not problems and head_seq:
            problems.append((None, (
                f"there is no audit anchor file at {self.anchor.path}, although the log has "
                f"{head_seq} row(s): it was removed or moved, it cannot be written there "
                "(the console's log then says why), or anchoring was switched on after these "
                "rows (the next event writes it); the newest rows cannot be checked against "
                "it.")))
        for want, noted in ((anchored, False), (expected, True)):
            if want is not None:
                problem = _compare_head(head_seq, seen.get(want.seq), want, noted)
                if problem is not None:
                    problems.append(problem)
        bad_seqs = [seq for seq, _ in problems if seq is not None]
        return ChainReport(
            ok=not problems, checked=checked,
            first_bad_seq=min(bad_seqs) if bad_seqs else None,
            reason="; ".join(text for _, text in problems) or None,
            head_seq=head_seq, head_hash=prev_hash,
            anchor_checked=anchored is not None, anchor_seq=anchored.seq if anchored else None,
            expected_checked=expected is not None,
        )

    def count(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0)


def _compare_head(head_seq: int, found: str | None, want: AuditHead,
                  noted: bool) -> tuple[int, str] | None:
    """(first bad seq, why) when a chain whose last row is `head_seq` (and whose row
    `want.seq` has hash `found`) does not hold the head `want`, else None. `noted`: `want`
    is a head an auditor noted, not the anchor file's."""
    short = f"{want.hash[:8]}…"
    if want.seq > head_seq:
        ends = f"the log ends at row {head_seq}" if head_seq else "the log is empty"
        source = "the head you noted" if noted else f"anchored {_when(want.ts)}"
        # Rows appended after a deletion reuse the deleted numbers: a lower bound.
        return head_seq + 1, (f"{ends} but row {want.seq} (hash {short}, {source}) existed: "
                              f"at least {want.seq - head_seq} newest row(s) were removed")
    if found != want.hash:
        source = ("you noted hash " + short if noted
                  else f"hash {short} was anchored {_when(want.ts)}")
        return want.seq, (f"row {want.seq} has hash {str(found)[:8]}…, but {source} for it: "
                          f"row {want.seq} or rows before it were replaced (newest rows "
                          "removed and others appended, or the chain rewritten)")
    return None


def new_correlation_id() -> str:
    return uuid.uuid4().hex


__all__ = [
    "AnchorError", "AuditAnchor", "AuditEvent", "AuditFilter", "AuditHead", "AuditLog",
    "AuditPage", "ChainReport", "NewAuditEvent", "OUTCOMES", "ZERO_HASH", "audit_head",
    "canonical_content", "chain_hash", "event_hash_matches",
    "format_ts", "neutralise_cell", "new_correlation_id", "parse_csv_export",
    "parse_jsonl_export", "unneutralise_cell",
]
