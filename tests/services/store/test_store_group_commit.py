"""Group commit: concurrent appends share one transaction, every caller gets its own
events back once they are committed, and a batch whose transaction fails fails every
caller in it. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from services.store import AuditEvent, AuditLog, Database, NewAuditEvent

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def ev(actor: str, target: str) -> NewAuditEvent:
    return NewAuditEvent(actor, ["support"], "grant.revoke", "requested", target_id=target)


@pytest.mark.parametrize("threads_n", [4, 8])
def test_concurrent_callers_get_their_own_committed_events(db: Database,
                                                           threads_n: int) -> None:
    log = AuditLog(db)
    per_thread = 60
    start = threading.Barrier(threads_n)
    got: dict[int, list[AuditEvent]] = {}
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            got[n] = [log.append(ev(f"w{n}", f"w{n}-{i}")) for i in range(per_thread)]
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = log.verify_chain()
    assert report.ok and report.checked == threads_n * per_thread
    stored = {e.seq: e for e in log.iter_events()}
    for n, events in got.items():
        assert [e.target_id for e in events] == [f"w{n}-{i}" for i in range(per_thread)]
        assert all(stored[e.seq] == e for e in events)  # returned as committed
        assert [e.seq for e in events] == sorted(e.seq for e in events)


class HeldLeader:
    """Holds the first batch's transaction open (its clock blocks), so that the appends
    started meanwhile queue up and are written by the next leader, all at once."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._first = True

    def clock(self) -> datetime:
        if self._first:
            self._first = False
            self.entered.set()
            assert self.release.wait(30)
        return T0


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def counting_commits(db: Database) -> Iterator[list[int]]:
    commits: list[int] = []

    def on_commit(_conn: object) -> None:
        commits.append(1)

    event.listen(db.engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(db.engine, "commit", on_commit)


def run_queued(log: AuditLog, held: HeldLeader, followers: list[NewAuditEvent]
               ) -> tuple[AuditEvent | BaseException, list[AuditEvent | BaseException]]:
    """One append held in its transaction, then `followers` appended from one thread each
    while it is held; returns what each call returned or raised."""
    results: dict[int, AuditEvent | BaseException] = {}

    def call(n: int, new: NewAuditEvent) -> None:
        try:
            results[n] = log.append(new)
        except BaseException as exc:  # returned to the test
            results[n] = exc

    first = threading.Thread(target=call, args=(-1, ev("leader", "first")))
    first.start()
    assert held.entered.wait(30)
    threads = [threading.Thread(target=call, args=(n, new)) for n, new in enumerate(followers)]
    for t in threads:
        t.start()
    wait_for(lambda: len(log._queue) == len(followers))
    held.release.set()
    for t in [first, *threads]:
        t.join(30)
    return results[-1], [results[n] for n in range(len(followers))]


def test_appends_queued_behind_a_transaction_share_the_next_one(db: Database) -> None:
    held = HeldLeader()
    log = AuditLog(db, clock=held.clock)
    with counting_commits(db) as commits:
        first, rest = run_queued(log, held, [ev(f"f{n}", f"t{n}") for n in range(7)])
    assert len(commits) == 2  # the held transaction, then one for all seven
    assert isinstance(first, AuditEvent) and first.seq == 1
    assert all(isinstance(r, AuditEvent) for r in rest)
    assert sorted(r.seq for r in rest) == list(range(2, 9))  # type: ignore[union-attr]
    assert {r.target_id for r in rest} == {f"t{n}" for n in range(7)}  # type: ignore[union-attr]
    assert log.verify_chain().ok and log.count() == 8


def refuse_poison(db: Database) -> None:
    """A trigger (as a failing disk or constraint would) that fails any transaction
    inserting an event by the actor `poison`."""
    with db.write() as conn:
        if db.is_sqlite:
            conn.execute(text(
                "CREATE TRIGGER audit_poison BEFORE INSERT ON audit_log "
                "WHEN NEW.actor_username = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poison refused'); END"))
        else:
            conn.execute(text(
                "CREATE FUNCTION audit_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.actor_username = 'poison' THEN RAISE EXCEPTION 'poison refused'; "
                "END IF; RETURN NEW; END $$"))
            conn.execute(text("CREATE TRIGGER audit_poison BEFORE INSERT ON audit_log "
                              "FOR EACH ROW EXECUTE FUNCTION audit_poison()"))


def test_a_failed_batch_fails_every_caller_in_it_and_stores_none(db: Database,
                                                                 tmp_path: Path) -> None:
    refuse_poison(db)
    held = HeldLeader()
    anchor = tmp_path / "anchor.json"
    log = AuditLog(db, clock=held.clock, anchor_file=anchor, anchor_interval=0)
    followers = [ev("ok1", "a"), ev("poison", "b"), ev("ok2", "c")]
    first, rest = run_queued(log, held, followers)
    assert isinstance(first, AuditEvent) and first.seq == 1  # its own batch: committed
    assert all(isinstance(r, DBAPIError) and "poison refused" in str(r) for r in rest)
    assert log.count() == 1  # nothing of the failed batch, the innocent events included
    assert json.loads(anchor.read_text())["seq"] == 1  # rows never committed: not anchored
    after = log.append(ev("ok3", "d"))  # the next batch starts clean
    assert after.seq == 2 and after.prev_hash == first.hash
    assert log.verify_chain().ok


def test_an_invalid_event_fails_only_its_caller(db: Database) -> None:
    log = AuditLog(db)
    with pytest.raises(Exception, match="dotted verb"):
        log.append_many([ev("a", "x"), NewAuditEvent("b", [], "Bad", "requested")])
    assert log.count() == 0  # checked before it joins any batch
    assert log.append(ev("a", "x")).seq == 1


@contextmanager
def commit_levels(db: Database) -> Iterator[list[tuple[bool, int]]]:
    """(waited for the disk, newest seq) of every commit that holds audit events, read
    from the database inside the transaction as it commits."""
    seen: list[tuple[bool, int]] = []

    def on_commit(conn: Any) -> None:
        if db.is_sqlite:  # 2: FULL, the WAL synced at commit; 1: NORMAL
            waits = conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        else:
            waits = conn.exec_driver_sql("SHOW synchronous_commit").scalar() != "off"
        seq = conn.exec_driver_sql("SELECT max(seq) FROM audit_log").scalar()
        if seq is not None and (not seen or seq > seen[-1][1]):
            seen.append((waits, int(seq)))

    event.listen(db.engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(db.engine, "commit", on_commit)


def test_an_event_that_waits_for_the_disk_never_shares_a_commit_that_does_not(
        db: Database) -> None:
    log = AuditLog(db)
    locked, release = threading.Event(), threading.Event()

    def blocker() -> None:  # another writer holds the append lock
        with db.write() as conn:
            if not db.is_sqlite:
                conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
            locked.set()
            assert release.wait(30)

    results: dict[str, AuditEvent] = {}

    def call(name: str, waits: bool) -> None:
        results[name] = log.append(ev(name, name), wait_for_disk=waits)

    holder = threading.Thread(target=blocker)
    holder.start()
    assert locked.wait(30)
    with commit_levels(db) as commits:
        leader = threading.Thread(target=call, args=("lead", False))
        leader.start()  # decides not to wait, then waits for the lock
        wait_for(lambda: log._leading)
        names = {"w1": True, "n1": False, "w2": True, "n2": False}
        threads = [threading.Thread(target=call, args=(n, w)) for n, w in names.items()]
        for t in threads:
            t.start()
        wait_for(lambda: len(log._queue) == 5)
        release.set()
        for t in [holder, leader, *threads]:
            t.join(30)
    assert len(commits) == 2  # the leader's batch without the two that wait, then theirs
    first, second = commits
    assert first == (False, 3) and second == (True, 5)
    assert {results[n].seq for n in ("lead", "n1", "n2")} == {1, 2, 3}
    assert {results[n].seq for n in ("w1", "w2")} == {4, 5}
    assert log.verify_chain().ok


def test_the_anchor_holds_only_heads_that_waited_for_the_disk(db: Database,
                                                               tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    log = AuditLog(db, anchor_file=anchor, anchor_interval=0)
    with commit_levels(db) as commits:
        log.append(ev("a", "x"), wait_for_disk=False)
        assert not anchor.exists()  # a power cut could lose row 1: not anchored
        log.append(ev("b", "y"))
        assert json.loads(anchor.read_text())["seq"] == 2  # row 2's commit flushed row 1 too
        log.append(ev("c", "z"), wait_for_disk=False)
        assert json.loads(anchor.read_text())["seq"] == 2
    assert commits == [(False, 1), (True, 2), (False, 3)]
    report = log.verify_chain()
    assert report.ok and report.checked == 3
