"""Outcomes never lost (store side): migration 0006, the local journal, the trail's retries.

The store failure is real: another connection holds SQLite's write lock (BEGIN EXCLUSIVE)
while the outcome is written."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

import services.store.db as store_db
from services.store import AuditFilter, AuditLog, Database, open_database
from services.store.audit import NewAuditEvent
from services.store.db import MIGRATIONS_DIR
from services.store.journal import AuditJournal
from services.store.trail import AuditTrail, AuditUnavailable, watch_pending


def ev(outcome: str = "requested", cid: str = "c1", **kw: object) -> NewAuditEvent:
    return NewAuditEvent(actor_username="alice", actor_roles=("support",),
                         action="grant.revoke", outcome=outcome, target_type="grant",
                         target_id=str(kw.pop("target_id", "cgrant_1")), correlation_id=cid,
                         **kw)  # type: ignore[arg-type]


# --- migration 0006 ------------------------------------------------------------------------

def test_migration_keeps_rows_chain_and_append_only(db_url: str) -> None:
    """From 0001 with events in it: rows, hashes and the append-only triggers survive, and
    the new outcomes are accepted while an unknown one is still refused by the database."""
    db = Database(db_url)
    with db.write() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    old = AuditLog(db)
    for i in range(5):
        old.append(ev("requested", f"c{i}"))
    db.dispose()

    db = open_database(db_url)
    try:
        log = AuditLog(db)
        assert log.count() == 5 and log.verify_chain().ok
        log.append(ev("reconciled", "c0"))
        log.append(ev("skipped", "c1"))
        assert log.verify_chain().ok
        with pytest.raises(Exception, match="append-only"):
            with db.write() as conn:
                conn.execute(text("UPDATE audit_log SET outcome = 'failed' WHERE seq = 1"))
        with pytest.raises(Exception, match="append-only"):
            with db.write() as conn:
                conn.execute(text("DELETE FROM audit_log WHERE seq = 1"))
        with pytest.raises(Exception, match="(?i)check"):
            with db.write() as conn:
                conn.execute(text(
                    "INSERT INTO audit_log (seq, event_id, ts_ms, actor_username, actor_roles,"
                    " action, outcome, correlation_id, prev_hash, hash) VALUES (99, 'e', 1,"
                    " 'x', '[]', 'grant.revoke', 'bogus', 'c', 'p', 'h')"))
        with db.read() as conn:
            indexes = conn.execute(text(
                "SELECT count(*) FROM sqlite_master WHERE type='index' AND tbl_name='audit_log'"
                " AND name LIKE 'ix_%'") if db.is_sqlite else text(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'audit_log' "
                "AND indexname LIKE 'ix_%'")).scalar()
        assert indexes >= 6
    finally:
        db.dispose()


# --- the journal ---------------------------------------------------------------------------

def test_journal_replay_is_idempotent_and_keeps_the_chain(db: Database, tmp_path: Path) -> None:
    log = AuditLog(db)
    journal = AuditJournal(tmp_path / "j" / "audit-journal.jsonl")
    log.append(ev("requested", "a"))
    first = journal.add(ev("succeeded", "a", after={"status": "revoked"}))
    journal.add(ev("failed", "b", error_code="X", params={"access_token": "cat_secretsecret1"}))
    assert "cat_secretsecret1" not in journal.path.read_text()  # redacted like the log
    assert len(journal) == 2
    # a replay cut short after its append (before the journal was rewritten)
    log.append(first.event)
    report = journal.replay(log)
    assert (report.replayed, report.already, report.left) == (1, 1, 0)
    assert journal.pending() == [] and journal.replay(log).replayed == 0
    events = list(log.iter_events())
    assert [e.outcome for e in events] == ["requested", "succeeded", "failed"]
    assert events[1].params["journal"]["id"] == first.journal_id  # original time kept
    assert log.verify_chain().ok


def test_journal_sets_torn_lines_aside(tmp_path: Path, db: Database) -> None:
    journal = AuditJournal(tmp_path / "audit-journal.jsonl")
    journal.add(ev("succeeded"))
    with open(journal.path, "a", encoding="utf-8") as fh:
        fh.write('{"actor_username": "al')  # a crash mid-line
    report = journal.replay(AuditLog(db))
    assert (report.replayed, report.unreadable, report.left) == (1, 1, 0)
    assert journal.path.with_name("audit-journal.jsonl.unreadable").read_text().startswith(
        '{"actor_username": "al')


# --- the trail with a locked store ---------------------------------------------------------

class Locker:
    """Holds SQLite's write lock from another connection (BEGIN EXCLUSIVE) when told."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def lock(self) -> None:
        self.conn.execute("BEGIN EXCLUSIVE")

    def unlock(self) -> None:
        self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def sqlite_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setattr(store_db, "SQLITE_BUSY_TIMEOUT_S", 0.2)  # a locked write fails fast
    db = open_database(f"sqlite:///{tmp_path / 'console.db'}")
    yield db
    db.dispose()


def test_outcome_goes_to_the_journal_when_the_store_stays_locked(
        sqlite_db: Database, tmp_path: Path) -> None:
    log = AuditLog(sqlite_db)
    journal = AuditJournal(tmp_path / "audit-journal.jsonl")
    trail = AuditTrail(log, journal=journal, retry_delays=(0.05, 0.05))
    locker = Locker(tmp_path / "console.db")
    made = []

    def body() -> tuple[str, dict, dict]:
        made.append("revoked upstream")
        locker.lock()  # the store goes away after Kryptos acted
        return "Grant revoked.", {"status": "active"}, {"status": "revoked"}

    try:
        with watch_pending() as pending:
            value = trail.run("alice", ["support"], "grant.revoke", body, target_id="cgrant_1")
    finally:
        locker.unlock()
        locker.close()
    assert value == "Grant revoked." and made  # told it was made, not a failure
    assert pending and len(pending.correlation_ids) == 1
    cid = pending.correlation_ids[0]
    assert [e.outcome for e in log.iter_events()] == ["requested"]  # only the request so far
    assert [e.event.correlation_id for e in journal.pending()] == [cid]
    report = journal.replay(log)
    assert report.replayed == 1
    events = list(log.iter_events(AuditFilter(action="grant.revoke")))
    assert [(e.outcome, e.correlation_id) for e in events] == [
        ("requested", cid), ("succeeded", cid)]
    assert events[1].after == {"status": "revoked"} and log.verify_chain().ok


def test_a_short_lock_is_outlasted_by_the_retries(sqlite_db: Database, tmp_path: Path) -> None:
    log = AuditLog(sqlite_db)
    journal = AuditJournal(tmp_path / "audit-journal.jsonl")
    trail = AuditTrail(log, journal=journal, retry_delays=(0.3, 0.3, 0.3))
    locker = Locker(tmp_path / "console.db")

    def body() -> tuple[str, None, None]:
        locker.lock()
        threading.Timer(0.35, locker.unlock).start()
        return "ok", None, None

    with watch_pending() as pending:
        trail.run("alice", ["support"], "grant.revoke", body, target_id="cgrant_1")
    time.sleep(0.1)
    locker.close()
    assert not pending and journal.pending() == []
    assert [e.outcome for e in log.iter_events()] == ["requested", "succeeded"]


def test_without_any_record_the_change_is_still_reported_as_made(
        sqlite_db: Database, tmp_path: Path) -> None:
    """No journal (or an unwritable one): the person is told the change WAS made."""
    log = AuditLog(sqlite_db)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the journal's folder should be")
    trail = AuditTrail(log, journal=AuditJournal(blocked / "audit-journal.jsonl"),
                       retry_delays=(0.01,))
    locker = Locker(tmp_path / "console.db")

    def body() -> tuple[str, None, None]:
        locker.lock()
        return "ok", None, None

    try:
        with pytest.raises(AuditUnavailable) as info:
            trail.run("alice", ["support"], "grant.revoke", body, target_id="cgrant_1")
    finally:
        locker.unlock()
        locker.close()
    assert info.value.change_made and "WAS made" in info.value.user_message


def test_journal_lines_are_json_with_the_original_time(tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "audit-journal.jsonl")
    entry = journal.add(ev("succeeded"))
    [line] = journal.path.read_text().splitlines()
    data = json.loads(line)
    assert data["params"]["journal"] == {"id": entry.journal_id,
                                         "at": data["params"]["journal"]["at"]}
    assert data["params"]["journal"]["at"].endswith("Z")
    assert (journal.path.stat().st_mode & 0o777) == 0o600


def test_the_next_outcome_written_replays_the_journal(db: Database, tmp_path: Path) -> None:
    log = AuditLog(db)
    journal = AuditJournal(tmp_path / "audit-journal.jsonl")
    journal.add(ev("succeeded", "old"))
    trail = AuditTrail(log, journal=journal)
    trail.run("alice", ["support"], "grant.revoke", lambda: ("ok", None, None),
              target_id="cgrant_2")
    deadline = time.monotonic() + 10
    while journal.has_pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not journal.has_pending()
    assert "old" in {e.correlation_id for e in log.iter_events(AuditFilter(outcome="succeeded"))}
