"""Audit log on SQLite and PostgreSQL: append, immutability, tamper evidence, queries,
exports."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.store import (
    AuditFilter,
    AuditLog,
    Database,
    NewAuditEvent,
    StoreError,
    open_database,
    parse_csv_export,
    parse_jsonl_export,
)
from services.store import audit as audit_module
from services.store.audit import ZERO_HASH, event_hash_matches
from services.store.db import MIGRATIONS_DIR

T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def stepping_clock(start: datetime = T0, step: timedelta = timedelta(minutes=1)):
    counter = itertools.count()
    return lambda: start + step * next(counter)


def ev(i: int = 0, **kw) -> NewAuditEvent:
    base = dict(actor_username=f"user{i % 3}", actor_roles=["support"], action="grant.revoke",
                outcome="requested", target_type="grant", target_id=f"grant_{i % 5}")
    base.update(kw)
    return NewAuditEvent(**base)


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append(ev(i))


def test_append_stores_every_field_and_links_the_chain(db: Database) -> None:
    log = AuditLog(db)
    first = log.append(NewAuditEvent(
        actor_username="alice", actor_roles=["finance", "admin", "admin"],
        action="guest.limit.update", outcome="requested", target_type="grant",
        target_id="grant_1", params={"limit": 1000, "limiter": True, "mode": None},
        before={"limit": 500}, after={"limit": 1000}, reason="upgrade", ticket="T-1",
        correlation_id="corr-1"))
    second = log.append(NewAuditEvent(
        actor_username="alice", actor_roles=["admin"], action="guest.limit.update",
        outcome="failed", target_id="grant_1", error_code="GRANT_NOT_FOUND",
        error_message="no such grant", request_id="req-9", correlation_id="corr-1"))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == ZERO_HASH and second.prev_hash == first.hash
    assert first.actor_roles == ("admin", "finance")
    assert first.ts.tzinfo is not None and first.ts.microsecond % 1000 == 0
    assert first.params == {"limit": 1000, "limiter": True, "mode": None}
    stored = log.query(AuditFilter(target_id="grant_1")).events
    assert stored == [second, first]
    assert stored[0].error_code == "GRANT_NOT_FOUND" and stored[0].request_id == "req-9"
    assert stored[1].before == {"limit": 500} and stored[1].ticket == "T-1"


def test_correlation_id_is_generated_and_secrets_are_masked(db: Database) -> None:
    log = AuditLog(db)
    event = log.append(ev(params={"access_token": "cat_supersecretvalue99",
                                  "nested": [{"public_token": "pub_abcdefgh1234"}]}))
    assert len(event.correlation_id) == 32
    stored = log.query().events[0]
    assert stored.params == {"access_token": "cat_su...99",
                             "nested": [{"public_token": "pub_ab...34"}]}
    with db.read() as conn:
        raw = conn.execute(text("SELECT params FROM audit_log")).scalar()
    assert "supersecret" not in raw and "abcdefgh" not in raw


@pytest.mark.parametrize("kw, message", [
    ({"action": "Revoke"}, "dotted verb"),
    ({"outcome": "done"}, "outcome"),
    ({"actor_username": " "}, "actor"),
    ({"actor_roles": "admin"}, "list of role names"),
    ({"params": {"x": float("nan")}}, "JSON"),
])
def test_invalid_events_are_refused(db: Database, kw: dict, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        AuditLog(db).append(ev(**kw))
    assert AuditLog(db).count() == 0


def test_time_never_goes_backwards(db: Database) -> None:
    times = iter([T0, T0 - timedelta(hours=1), T0 + timedelta(seconds=1)])
    log = AuditLog(db, clock=lambda: next(times))
    stamps = [log.append(ev(i)).ts for i in range(3)]
    assert stamps == [T0, T0, T0 + timedelta(seconds=1)]


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET reason = 'edited' WHERE seq = 2",
    "DELETE FROM audit_log WHERE seq = 2",
    "DELETE FROM audit_log",
])
def test_update_and_delete_are_refused(db: Database, statement: str) -> None:
    log = AuditLog(db)
    fill(log, 3)
    with pytest.raises(DBAPIError, match="append-only"):
        with db.write() as conn:
            conn.execute(text(statement))
    assert log.count() == 3 and log.verify_chain().ok


def test_truncate_is_refused_on_postgresql(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has no TRUNCATE")
    fill(AuditLog(db), 2)
    with pytest.raises(DBAPIError, match="append-only"):
        with db.write() as conn:
            conn.execute(text("TRUNCATE audit_log"))


def as_attacker(db: Database, *statements: str) -> None:
    """Run statements with the append-only triggers out of the way, as someone with direct
    access to the database could."""
    with db.write() as conn:
        if db.is_sqlite:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        else:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete"))
        for statement in statements:
            conn.execute(text(statement))


def test_edited_row_is_caught_at_that_row(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 8)
    assert log.verify_chain().ok
    as_attacker(db, "UPDATE audit_log SET actor_username = 'mallory' WHERE seq = 5")
    report = log.verify_chain()
    assert not report.ok and report.first_bad_seq == 5 and report.checked == 4
    assert "changed" in report.reason


def test_edited_and_rehashed_row_is_caught_at_the_next_row(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 6)
    with db.read() as conn:
        row = dict(conn.execute(text("SELECT * FROM audit_log WHERE seq = 3")).mappings().one())
    row["reason"] = "covered up"
    forged = audit_module.chain_hash(row["prev_hash"], row)
    as_attacker(db, f"UPDATE audit_log SET reason = 'covered up', hash = '{forged}' "
                     "WHERE seq = 3")
    report = log.verify_chain()
    assert report.first_bad_seq == 4 and "prev_hash" in report.reason


def test_deleted_row_is_caught_as_a_gap(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 6)
    as_attacker(db, "DELETE FROM audit_log WHERE seq = 4")
    report = log.verify_chain()
    assert report.first_bad_seq == 5 and "missing" in report.reason


def test_reordered_rows_are_caught(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 6)
    as_attacker(db,
                 "UPDATE audit_log SET seq = -3 WHERE seq = 3",
                 "UPDATE audit_log SET seq = 3 WHERE seq = 4",
                 "UPDATE audit_log SET seq = 4 WHERE seq = -3")
    assert log.verify_chain().first_bad_seq == 3


def test_inserted_row_is_caught(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 3)
    last = log.query().events[0]
    as_attacker(db, f"""INSERT INTO audit_log (seq, event_id, ts_ms, actor_username,
        actor_roles, action, outcome, correlation_id, prev_hash, hash) VALUES
        (4, 'forged', 1717243200000, 'mallory', '["admin"]', 'grant.revoke', 'succeeded',
         'c', '{last.hash}', '{"f" * 64}')""")
    report = log.verify_chain()
    assert report.first_bad_seq == 4 and report.checked == 3


def test_verify_chain_reads_in_chunks(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AuditLog, "chunk", 7)
    log = AuditLog(db)
    log.append_many(ev(i) for i in range(30))
    assert log.verify_chain().checked == 30
    as_attacker(db, "UPDATE audit_log SET outcome = 'denied' WHERE seq = 22")
    assert log.verify_chain().first_bad_seq == 22
    assert len(list(log.iter_events())) == 30


def test_query_filters_pages_and_last_event(db: Database) -> None:
    log = AuditLog(db, clock=stepping_clock())
    for i in range(40):
        log.append(ev(i, action="grant.revoke" if i % 2 else "integration.resync",
                      outcome="succeeded" if i % 4 == 0 else "requested"))
    everything = log.query(page_size=1000)
    assert everything.total == 40
    assert [e.seq for e in everything.events] == list(range(40, 0, -1))

    page2 = log.query(AuditFilter(), page=2, page_size=15)
    assert [e.seq for e in page2.events] == list(range(25, 10, -1))
    assert page2.pages == 3 and log.query(page=4, page_size=15).events == []

    def seqs(**kw) -> list[int]:
        page = log.query(AuditFilter(**kw), page_size=1000)
        assert page.total == len(page.events)
        return [e.seq for e in page.events]

    assert seqs(actor="user1") == [s for s in range(40, 0, -1) if (s - 1) % 3 == 1]
    assert seqs(action="grant.revoke") == [s for s in range(40, 0, -1) if (s - 1) % 2]
    assert seqs(action="grant.*") == seqs(action="grant.revoke")
    assert seqs(action="guest.*") == []
    assert seqs(target_id="grant_2") == [38, 33, 28, 23, 18, 13, 8, 3]
    assert seqs(outcome="succeeded") == [37, 33, 29, 25, 21, 17, 13, 9, 5, 1]
    since, until = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
    assert seqs(since=since, until=until) == list(range(20, 10, -1))
    assert seqs(since=since.replace(tzinfo=None)) == list(range(40, 10, -1))
    assert seqs(until=T0) == [] and seqs(since=T0 + timedelta(days=1)) == []
    assert seqs(since=since, until=until, actor="user0", action="grant.*") == [16]

    last = log.last_event("grant_2")
    assert last is not None and last.seq == 38
    assert log.last_event("grant_2", action="grant.revoke", outcome="succeeded") is None
    assert log.last_event("grant_2", outcome="succeeded").seq == 33
    assert log.last_event("nobody") is None
    with pytest.raises(StoreError):
        log.query(AuditFilter(outcome="maybe"))


def test_csv_export_round_trips_and_neutralises_formulas(db: Database) -> None:
    log = AuditLog(db, clock=stepping_clock())
    log.append(ev(1, reason="=HYPERLINK(\"http://evil\",\"x\")", ticket="+1",
                  error_message="-2+3", params={"limit": -5, "note": "=cmd"}))
    log.append(ev(2, reason="@SUM(A1)", target_id="'quoted", before={"a": [1, "b"]}))
    log.append(ev(3, actor_username="other", reason="plain, with \"quotes\"\nand newline"))
    out = io.StringIO()
    assert log.export_csv(AuditFilter(actor="user1"), out) == 1
    out = io.StringIO()
    assert log.export_csv(None, out) == 3
    text_out = out.getvalue()
    assert "'=HYPERLINK" in text_out and ",'+1," in text_out and "'@SUM(A1)" in text_out
    assert "''quoted" in text_out
    for line in text_out.splitlines():
        for cell in line.split(","):
            assert not cell.startswith(("=", "+", "-", "@"))
    back = parse_csv_export(io.StringIO(text_out))
    assert back == sorted(log.query().events, key=lambda e: e.seq)
    assert all(event_hash_matches(e) for e in back)


def test_jsonl_export_round_trips(db: Database) -> None:
    log = AuditLog(db, clock=stepping_clock())
    for i in range(5):
        log.append(ev(i, params={"i": i, "text": "é ✓"}, after={"ok": True}))
    out = io.StringIO()
    assert log.export_jsonl(AuditFilter(target_id="grant_1"), out) == 1
    out = io.StringIO()
    assert log.export_jsonl(AuditFilter(), out) == 5
    back = parse_jsonl_export(io.StringIO(out.getvalue()))
    assert back == [log.query(page_size=10).events[4 - i] for i in range(5)]
    assert all(event_hash_matches(e) for e in back)
    tampered = back[2].__class__(**{**back[2].__dict__, "reason": "changed"})
    assert not event_hash_matches(tampered)


def migrations_head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    [head] = ScriptDirectory.from_config(config).get_heads()  # one line of history
    return head


def test_migrations_are_idempotent_and_recorded(db_url: str) -> None:
    first = open_database(db_url)
    second = open_database(db_url)
    try:
        with second.read() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == migrations_head()
        AuditLog(first).append(ev())
        assert AuditLog(second).count() == 1
    finally:
        first.dispose()
        second.dispose()


def test_unreachable_database_fails_clearly(tmp_path) -> None:
    with pytest.raises(StoreError, match="Cannot open the database"):
        open_database("postgresql+psycopg://nobody:pw@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError, match="Unsupported"):
        open_database("mysql://x@127.0.0.1/db")
    assert "pw" not in repr(Database("postgresql://nobody:pw@127.0.0.1:1/none"))


def test_overlong_fields_are_cut_not_refused(db: Database) -> None:
    event = AuditLog(db).append(ev(actor_username="x" * 5000, outcome="denied",
                                   action="auth.login_failed", target_id="g" * 300))
    assert len(event.actor_username) == 200 and event.actor_username.endswith("…")
    assert len(event.target_id) == 200
    assert AuditLog(db).verify_chain().ok


def test_distinct_actors_by_the_index_leave_customers_out(db: Database) -> None:
    log = AuditLog(db)
    for name in ["zoe", "customer:c-1", "alice", "customer:c-2", "cli:ops", "alice", "bob"]:
        log.append(ev(actor_username=name))
    assert log.distinct_actors() == ["alice", "bob", "cli:ops", "zoe"]
    assert log.distinct_actors(limit=2) == ["alice", "bob"]
