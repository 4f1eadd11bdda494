"""A durable local journal for audit events the store could not take.

When an outcome cannot be written after Kryptos acted (the database is locked or down), the
trail appends the event here (JSON lines, fsynced) and `replay` later appends it to the audit
log as a new event: the chain is never rewritten. Each journalled event carries
`params.journal = {"id", "at"}` (its own id and the time it happened), which makes a replay
idempotent: an id already in the log is not appended twice."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from services.private_files import open_private, private_dir
from services.store.audit import AuditEvent, AuditFilter, NewAuditEvent
from services.store.audit.events import format_ts, json_default
from services.store.audit.redact import redact
from services.store.errors import StoreError

log = logging.getLogger(__name__)

#: The `params` key a journalled event carries.
JOURNAL_KEY = "journal"
#: Seconds a replay waits for one already running in this process (then it gives up).
REPLAY_WAIT = 60.0


@runtime_checkable
class ReplayTarget(Protocol):
    def append(self, event: NewAuditEvent) -> AuditEvent: ...

    def iter_events(self, filters: AuditFilter | None = None) -> Iterator[AuditEvent]: ...


@dataclass(frozen=True)
class JournalEntry:
    journal_id: str
    at: datetime
    event: NewAuditEvent


@dataclass(frozen=True)
class ReplayReport:
    replayed: int = 0
    already: int = 0  # found in the log (an earlier replay was cut short)
    left: int = 0  # still in the journal (the store failed again)
    unreadable: int = 0  # torn lines moved aside
    error: str | None = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditJournal:
    """Audit events waiting for the store, in one JSON-lines file (`path`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._replaying = threading.Lock()

    def __repr__(self) -> str:
        return f"AuditJournal({str(self.path)!r})"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The journal's file lock (shared by every process using this journal)."""
        private_dir(self.path.parent)
        with open_private(self._lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def add(self, event: NewAuditEvent, *, at: datetime | None = None) -> JournalEntry:
        """Append the event durably (written and fsynced before this returns)."""
        when = (at or datetime.now(UTC)).astimezone(UTC)
        jid = uuid.uuid4().hex
        params = dict(event.params or {})
        params[JOURNAL_KEY] = {"id": jid, "at": format_ts(when)}
        stored = replace(event, params=params, actor_roles=tuple(event.actor_roles))
        entry = JournalEntry(jid, when, stored)
        line = _line(entry)
        with self._locked():
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)
        return entry

    def _read(self) -> tuple[list[JournalEntry], list[str]]:
        entries: list[JournalEntry] = []
        bad: list[str] = []
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return entries, bad
        for raw in text.splitlines():
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
                data["actor_roles"] = tuple(data["actor_roles"])
                event = NewAuditEvent(**data)
                meta = (event.params or {})[JOURNAL_KEY]  # KeyError: not a journal line
                at = datetime.strptime(meta["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                entries.append(JournalEntry(str(meta["id"]), at, event))
            except (ValueError, TypeError, KeyError):
                bad.append(raw)
        return entries, bad

    def has_pending(self) -> bool:
        """Cheap: whether the journal file holds anything (no lock, no parsing)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def pending(self) -> list[JournalEntry]:
        """The events waiting for the store, oldest first."""
        with self._locked():
            return self._read()[0]

    def __len__(self) -> int:
        return len(self.pending())

    def pending_correlation_ids(self) -> set[str]:
        return {e.event.correlation_id for e in self.pending() if e.event.correlation_id}

    def replay(self, target: ReplayTarget) -> ReplayReport:
        """Append the journalled events to the audit log, oldest first, skipping any already
        there; what was appended leaves the journal. Stops at the first store failure. Waits
        for a replay running in this process; gives up at once if another process replays."""
        if not self._replaying.acquire(timeout=REPLAY_WAIT):  # one at a time in a process
            return ReplayReport(error="a replay is already running")
        try:
            return self._replay_locked(target)
        finally:
            self._replaying.release()

    def _replay_locked(self, target: ReplayTarget) -> ReplayReport:
        private_dir(self.path.parent)
        with open_private(self.path.with_name(self.path.name + ".replay"), "a+") as guard:
            try:  # one replayer across processes: check-then-append must not race
                fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return ReplayReport(error="another process is replaying")
            try:
                return self._replay(target)
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def _replay(self, target: ReplayTarget) -> ReplayReport:
        with self._locked():
            entries, bad = self._read()
        if bad:
            self._set_aside(bad)
        done: set[str] = set()
        replayed = already = 0
        error = None
        for entry in entries:
            try:
                if self._in_log(target, entry):
                    already += 1
                else:
                    target.append(entry.event)
                    replayed += 1
            except StoreError as exc:  # the log refuses this event itself: never retried
                log.error("audit journal: event %s refused by the log: %s", entry.journal_id,
                          exc.user_message)
                self._set_aside([_line(entry)])
            except Exception as exc:  # noqa: BLE001 - the store is still down: keep the rest
                error = type(exc).__name__
                break
            done.add(entry.journal_id)
        left = self._drop(done, bad)
        return ReplayReport(replayed, already, left, len(bad), error)

    @staticmethod
    def _in_log(target: ReplayTarget, entry: JournalEntry) -> bool:
        ev = entry.event
        flt = AuditFilter(since=entry.at - timedelta(seconds=1), action=ev.action,
                          outcome=ev.outcome, target_id=ev.target_id)
        for found in target.iter_events(flt):
            meta = found.params.get(JOURNAL_KEY) if isinstance(found.params, Mapping) else None
            if isinstance(meta, Mapping) and meta.get("id") == entry.journal_id:
                return True
        return False

    def _drop(self, done: set[str], bad: list[str]) -> int:
        """Rewrite the journal without the replayed entries (and torn lines); returns how
        many are left. Entries added meanwhile are kept."""
        with self._locked():
            entries, _ = self._read()
            if not self.path.exists():
                return 0
            keep = [e for e in entries if e.journal_id not in done]
            lines = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                     if line.strip() and line not in bad and _line_id(line) not in done]
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open_private(tmp, "w") as fh:
                fh.write("".join(line + "\n" for line in lines))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
            return len(keep)

    def _set_aside(self, bad: list[str]) -> None:
        aside = self.path.with_name(self.path.name + ".unreadable")
        log.warning("audit journal: %d unreadable line(s) moved to %s", len(bad), aside)
        with open_private(aside, "a") as fh:
            fh.write("".join(line + "\n" for line in bad))
            fh.flush()
            os.fsync(fh.fileno())


def _line(entry: JournalEntry) -> str:
    return json.dumps(redact(asdict(entry.event)), default=json_default, ensure_ascii=False,
                      separators=(",", ":"), sort_keys=True)


def _line_id(line: str) -> str | None:
    try:
        return str(json.loads(line)["params"][JOURNAL_KEY]["id"])
    except (ValueError, TypeError, KeyError):
        return None


__all__ = ["JOURNAL_KEY", "AuditJournal", "JournalEntry", "ReplayReport"]
