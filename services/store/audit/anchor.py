"""The anchor: the newest head of the chain, kept in a file outside the database.

The chain alone cannot show that its newest rows were deleted (what is left is a valid,
shorter chain). So an `AuditLog` given an `anchor_file` records, after each append, the
newest head (seq, hash, time) in that file, through an `AnchorKeeper` that writes it at
most once per interval; `verify_chain` compares the chain with it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.store.audit.events import (
    AuditHead,
    audit_head,
    dumps,
    format_ts,
    ms_to_dt,
    parse_ts,
)
from services.store.errors import StoreError

# The audit package's logger name, the one operators' logging configuration names.
log = logging.getLogger("services.store.audit")

ANCHOR_FORMAT = "kryptos-console-audit-anchor/1"


class AnchorError(StoreError):
    """The anchor file exists but does not hold a head (unreadable, corrupt, or edited)."""


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
            ts = parse_ts(data["ts"])
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
        text = dumps({"format": ANCHOR_FORMAT, "seq": head.seq, "hash": head.hash,
                       "ts": format_ts(head.ts or datetime.now(UTC))})
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



class AnchorKeeper:
    """Writes the newest committed head of one `AuditLog` to its anchor file: at once, or
    (within `interval` seconds of the last write) by a timer at the end of the interval.
    `row_hash(seq)` reads a row's hash from the database (None when there is no such row)."""

    def __init__(self, anchor: AuditAnchor, interval: float,
                 row_hash: Callable[[int], str | None]) -> None:
        if interval < 0:
            raise ValueError("anchor_interval must not be negative")
        self.anchor = anchor
        self.interval = interval
        self._row_hash = row_hash
        self._warner = _Warner()
        self._lock = threading.Lock()
        self._pending: _PendingHead | None = None  # newest head appended, not yet written
        self._written_at = -math.inf  # time.monotonic() of the last write
        self._timer: threading.Timer | None = None

    def record(self, rows: list[dict[str, Any]]) -> None:
        """Note the newest of `rows` (just committed, in seq order) for the file. The events
        are committed: nothing here can fail the append."""
        first, last = rows[0], rows[-1]
        head = AuditHead(int(last["seq"]), last["hash"], ms_to_dt(int(last["ts_ms"])))
        # Hashes this append knows without a query: the row before its first, and its own.
        pending = _PendingHead(head, {int(first["seq"]) - 1: first["prev_hash"],
                                      head.seq: head.hash})
        with self._lock:
            if self._pending is None or head.seq > self._pending.head.seq:
                self._pending = pending
            wait = self._written_at + self.interval - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._timer_fired)
                    self._timer.name = "audit-anchor"
                    # Not a daemon: at a normal exit the interpreter waits (at most the
                    # interval) for the last head to be written.
                    self._timer.start()
                return
        self.flush()

    def _timer_fired(self) -> None:
        with self._lock:
            self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write the newest recorded head not yet in the file (if any) now."""
        with self._lock:
            pending, self._pending = self._pending, None
            if self._timer is not None and self._timer is not threading.current_thread():
                self._timer.cancel()  # nothing left for it to write
                self._timer = None
            if pending is None:
                return
            self._written_at = time.monotonic()
        head = pending.head

        def holds(stored: AuditHead) -> bool:
            if stored.seq in pending.known:
                return pending.known[stored.seq] == stored.hash
            # Rows appended in between by others (or within the interval): read the row.
            return self._row_hash(stored.seq) == stored.hash

        try:
            problem = self.anchor.advance(head, holds)
        except Exception as exc:  # noqa: BLE001 - never fail (or lose) a committed event
            problem = f"{self.anchor.path}: {type(exc).__name__}: {exc}"
        if problem is not None:
            self._warner.warn(f"row {head.seq}: {problem}")
