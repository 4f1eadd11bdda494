"""`AuditLog`: the append-only, hash-chained log in table `audit_log`.

`seq` runs 1, 2, 3... without gaps, and the time never goes backwards along `seq` (an
append takes the later of the clock and the last row's time). Appends are serialised
(SQLite: BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE ... IN EXCLUSIVE MODE), and the last hash
is read under that lock, so concurrent writers, in this process or others, never fork the
chain.

Group commit: concurrent `append` calls in one process share one transaction (one lock,
one flush to disk). The first caller in leads: once it holds the lock it takes every event
queued so far, writes them in one transaction and wakes their callers; callers that arrive
meanwhile queue for the next leader. A caller returns only once its event is committed;
when a batch's transaction fails, every caller in it gets that error (nothing of the batch
is stored). Invalid events are refused before they join a batch.

Waiting for the disk: by default a commit returns once it is on disk (it survives a power
cut). `wait_for_disk=False` commits without that wait (`Database.write(durable=False)`):
the event survives a crash of the process, and a crash of the machine may lose the newest
such events, never one before an event that waited (the database's log is written in
order, so a commit that waits flushes everything before it too): the chain loses at most
a tail, never a link. Whether a transaction waits is fixed before it begins (SQLite's sync
level cannot change inside one), so a batch that does not wait takes only events that need
not, and one that waits takes every event queued. The anchor file only records heads that
waited: a head lost in a power cut must not be in the anchor, or the check would report
rows removed that were never on disk.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import Connection, func, insert, select, text

from services.store.audit.anchor import ANCHOR_INTERVAL_S, AnchorKeeper, AuditAnchor
from services.store.audit.changes import change_rows, limit_changes
from services.store.audit.events import (
    ZERO_HASH,
    AuditEvent,
    AuditHead,
    NewAuditEvent,
    audit_head,
    chain_hash,
    dt_to_ms,
    event_from_row,
)
from services.store.audit.export import write_csv, write_jsonl
from services.store.audit.query import AuditFilter, AuditPage, iter_events, query_page
from services.store.audit.redact import prepare
from services.store.audit.verify import ChainReport, verify_chain
from services.store.db import Database
from services.store.errors import StoreError
from services.store.schema import audit_log

#: At most this many actors in the Audit log's actor picker (a person types any other).
ACTORS_MAX = 200

# How long a leader holding the lock waits for callers still preparing their events.
GATHER_S = 0.002


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Waiter:
    """One caller's events in the append queue, and what became of them."""

    __slots__ = ("prepared", "wait_for_disk", "done", "rows", "error")

    def __init__(self, prepared: list[dict[str, Any]], wait_for_disk: bool = True) -> None:
        self.prepared = prepared
        self.wait_for_disk = wait_for_disk
        self.done = False
        self.rows: list[dict[str, Any]] = []
        self.error: BaseException | None = None


class AuditLog:
    """Append-only, hash-chained audit log in table `audit_log` of `db`."""

    #: Rows per statement when inserting, and per read when walking the log.
    chunk = 5000

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
        self._keeper = (AnchorKeeper(self.anchor, anchor_interval, self._row_hash)
                        if self.anchor is not None else None)
        lock = threading.Lock()
        self._queue_cond = threading.Condition(lock)  # a batch is done
        self._arrival = threading.Condition(lock)  # a caller has queued its events
        self._queue: list[_Waiter] = []
        self._leading = False  # a caller is writing a batch
        self._arriving = 0  # callers preparing their events, about to queue

    def __repr__(self) -> str:
        return f"AuditLog({self._db!r})"

    @property
    def db(self) -> Database:
        """The database the log is kept in (the console's one database)."""
        return self._db

    # writing

    def append(self, event: NewAuditEvent, *, wait_for_disk: bool = True) -> AuditEvent:
        """Store one event at the end of the chain and return it as stored."""
        return self.append_many([event], wait_for_disk=wait_for_disk)[0]

    def append_many(self, events: Iterable[NewAuditEvent], *,
                    wait_for_disk: bool = True) -> list[AuditEvent]:
        """Store several events in one transaction (one lock), in the given order, next to
        each other in the chain. Returns once they are committed; `wait_for_disk=False`:
        committed without waiting for the disk (see the module's docstring)."""
        with self._queue_cond:
            self._arriving += 1
        try:
            prepared = [prepare(e) for e in events]  # invalid events never join a batch
        except BaseException:
            with self._queue_cond:
                self._arrived(None)
            raise
        return [event_from_row(r) for r in self._commit(prepared, wait_for_disk)]

    def _arrived(self, waiter: _Waiter | None) -> None:
        """(Lock held.) A caller is done preparing: queue its events, if any."""
        self._arriving -= 1
        if waiter is not None:
            self._queue.append(waiter)
        self._arrival.notify_all()

    def _commit(self, prepared: list[dict[str, Any]], wait_for_disk: bool
                ) -> list[dict[str, Any]]:
        waiter = _Waiter(prepared, wait_for_disk)
        with self._queue_cond:
            self._arrived(waiter if prepared else None)
            if not prepared:
                return []
            while self._leading and not waiter.done:
                self._queue_cond.wait()
            lead = not waiter.done
            self._leading = self._leading or lead
        if lead:
            self._lead()
        if waiter.error is not None:
            raise waiter.error
        return waiter.rows

    def _take_queue(self, gather: float = 0.0, *, waits: bool = True) -> list[_Waiter]:
        """Everything queued (`waits=False`: only the events that need not wait for the
        disk; the others stay queued for the next leader); first wait (at most `gather`
        seconds) for the callers still preparing their events, so that they share this
        transaction."""
        deadline = time.monotonic() + gather
        with self._queue_cond:
            while self._arriving and (left := deadline - time.monotonic()) > 0:
                self._arrival.wait(left)
            if waits:
                batch, self._queue = self._queue, []
            else:
                batch = [w for w in self._queue if not w.wait_for_disk]
                self._queue = [w for w in self._queue if w.wait_for_disk]
        return batch

    def _lead(self) -> None:
        """Write one batch: everything queued when the database lock is held (so callers
        arriving while it is awaited join), the leader's own events included. The batch
        waits for the disk when any event queued before it began does."""
        batch: list[_Waiter] | None = None
        rows: list[dict[str, Any]] = []
        error: BaseException | None = None
        with self._queue_cond:
            waits = any(w.wait_for_disk for w in self._queue)
        try:
            with self._db.write(durable=waits) as conn:
                head = self._lock_head(conn)
                batch = self._take_queue(GATHER_S, waits=waits)
                sealed = self._seal(head, [values for w in batch for values in w.prepared])
                for start in range(0, len(sealed), self.chunk):
                    conn.execute(insert(audit_log), sealed[start:start + self.chunk])
                # The charts' row of each limit change (derived data, outside the chain).
                changes = change_rows(conn, sealed)
                for start in range(0, len(changes), self.chunk):
                    conn.execute(insert(limit_changes), changes[start:start + self.chunk])
            rows = sealed  # committed
        except Exception as exc:  # handed to every caller in the batch
            error = exc
        except BaseException:  # interrupted (KeyboardInterrupt...): only the leader's own
            error = StoreError("The audit event was not stored: its transaction was "
                               "interrupted.")
            raise
        finally:
            if batch is None:  # failed before the cut: it was everyone's transaction
                batch = self._take_queue(waits=waits)
            with self._queue_cond:
                start = 0
                for w in batch:
                    w.rows, w.error = rows[start:start + len(w.prepared)], error
                    start += len(w.prepared)
                    w.done = True
                self._leading = False
                self._queue_cond.notify_all()  # the callers done, and the next leader
        if rows and waits and self._keeper is not None:
            self._keeper.record(rows)

    def _lock_head(self, conn: Connection) -> tuple[int, str, int]:
        """Take the append lock (SQLite: BEGIN IMMEDIATE did) and read the chain's head:
        (seq, hash, ts_ms), (0, ZERO_HASH, 0) for an empty log."""
        if not self._db.is_sqlite:
            conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        last = conn.execute(
            select(audit_log.c.seq, audit_log.c.hash, audit_log.c.ts_ms)
            .order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        return (0, ZERO_HASH, 0) if last is None else (int(last.seq), last.hash,
                                                       int(last.ts_ms))

    def _seal(self, head: tuple[int, str, int],
              prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Number, time and hash `prepared` after `head`."""
        seq, prev_hash, last_ms = head
        rows = []
        for values in prepared:
            seq += 1
            last_ms = max(dt_to_ms(self._clock()), last_ms)
            row = dict(values, seq=seq, ts_ms=last_ms, prev_hash=prev_hash)
            row["hash"] = prev_hash = chain_hash(prev_hash, row)
            rows.append(row)
        return rows

    # the anchor

    def flush_anchor(self) -> None:
        """Write the newest appended head not yet in the anchor file (if any) now."""
        if self._keeper is not None:
            self._keeper.flush()

    def _row_hash(self, seq: int) -> str | None:
        with self._db.read() as conn:
            return conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == seq)).scalar()

    # reading

    def query(self, filters: AuditFilter | None = None, page: int = 1,
              page_size: int = 50) -> AuditPage:
        """One page of matching events, newest first, with the total number of matches."""
        return query_page(self._db, filters or AuditFilter(), page, page_size)

    def last_event(self, target_id: str, action: str | None = None,
                   outcome: str | None = None) -> AuditEvent | None:
        """The newest event about `target_id` (optionally of one action and outcome)."""
        page = self.query(AuditFilter(target_id=target_id, action=action, outcome=outcome),
                          page=1, page_size=1)
        return page.events[0] if page.events else None

    def iter_events(self, filters: AuditFilter | None = None) -> Iterator[AuditEvent]:
        """All matching events, oldest first, read in chunks (never all in memory)."""
        return iter_events(self._db, filters or AuditFilter(), self.chunk)

    def export_csv(self, filters: AuditFilter | None, out: TextIO) -> int:
        """Write matching events (oldest first, hashes included) as CSV; returns the count.
        Cells a spreadsheet would run as formulas are prefixed with `'`."""
        return write_csv(self.iter_events(filters), out)

    def export_jsonl(self, filters: AuditFilter | None, out: TextIO) -> int:
        """Write matching events (oldest first, hashes included) as JSON Lines."""
        return write_jsonl(self.iter_events(filters), out)

    def verify_chain(
        self, expected_head: AuditHead | tuple[int, str] | None = None
    ) -> ChainReport:
        """Walk the whole log in seq order and report the first row that does not match;
        then compare the chain with the anchor file's head (when this log keeps one) and
        with `expected_head` (a `(seq, hash)` an auditor noted earlier): a chain that ends
        before that row, or holds another hash there, lost its newest rows or was rewritten.

        `StoreError` for a malformed `expected_head`; an unreadable anchor is a finding."""
        expected = audit_head(expected_head) if expected_head is not None else None
        self.flush_anchor()  # this process's newest head, if the interval held it back
        return verify_chain(self._db, self.anchor, expected, self.chunk)

    def count_changed_targets(self, actor: str, actions: Iterable[str], since: datetime, *,
                              without_param: str | None = None) -> int:
        """How many distinct targets `actor` changed with `actions` since `since`: their
        `requested` event (which carries the params) has a `succeeded` outcome of the same
        correlation id, action and target. `without_param`: leave out changes whose params
        hold that key. The (actor, action, seq, ts) index bounded to the window's seq range,
        and the correlation id's index for each outcome."""
        c = audit_log.c
        done = audit_log.alias("done")
        with self._db.read() as conn:
            lo = conn.execute(select(c.seq).where(c.ts_ms >= dt_to_ms(since))
                              .order_by(c.ts_ms, c.seq).limit(1)).scalar()
            if lo is None:
                return 0
            succeeded = (select(done.c.seq).where(
                done.c.correlation_id == c.correlation_id, done.c.outcome == "succeeded",
                done.c.action == c.action, done.c.target_id == c.target_id).exists())
            q = (select(func.count(func.distinct(c.target_id)))
                 .where(c.actor_username == actor, c.action.in_(list(actions)),
                        c.seq >= lo, c.outcome == "requested", succeeded))
            if without_param is not None:
                q = q.where(func.coalesce(c.params, "").not_like(f'%"{without_param}":%'))
            return int(conn.execute(q).scalar() or 0)

    def param_of_correlation(self, correlation_id: str, key: str) -> Any:
        """`key`'s value in the params of the first event of this correlation id that
        carries it (the correlation index: the few events of one change), else None."""
        c = audit_log.c
        q = (select(c.params).where(c.correlation_id == correlation_id,
                                    c.params.like(f'%"{key}"%'))
             .order_by(c.seq).limit(5))
        with self._db.read() as conn:
            for (raw,) in conn.execute(q):
                try:
                    found = json.loads(raw or "null")
                except ValueError:
                    continue
                if isinstance(found, dict) and key in found:
                    return found[key]
        return None

    def distinct_actors(self, limit: int = ACTORS_MAX) -> list[str]:
        """The console's actors that have an event, in name order, at most `limit`: a skip
        scan of the (actor, seq) index, one probe per actor (a recursive query), so the cost
        grows with the number of actors, never with the log. The customer backend's actors
        (`customer:<ref>`, one per customer) are jumped over in one probe and left out."""
        q = text(
            "WITH RECURSIVE a(u) AS ("
            " SELECT min(actor_username) FROM audit_log"
            " UNION ALL"
            " SELECT (SELECT min(actor_username) FROM audit_log WHERE actor_username >"
            "  CASE WHEN a.u >= 'customer:' AND a.u < 'customer;' THEN 'customer;'"
            "  ELSE a.u END)"
            " FROM a WHERE a.u IS NOT NULL)"
            " SELECT u FROM a WHERE u IS NOT NULL LIMIT :n")
        with self._db.read() as conn:
            found = [str(r[0]) for r in conn.execute(q, {"n": int(limit) + 1})]
        return [u for u in found if not u.startswith("customer:")][:limit]

    def count(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0)
