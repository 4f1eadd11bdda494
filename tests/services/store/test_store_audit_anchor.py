"""Removal of the audit log's newest rows (the chain's tail) is noticed: through the anchor
file kept outside the database, and through a head an auditor noted. SQLite and PostgreSQL.

What an auditor sees is the `ChainReport`: `ok`, `first_bad_seq`, the `reason` in words, and
the head it checked (`head_seq`, `head_hash`)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from services.operations import Actor, Operations, PermissionDenied, ValidationError
from services.settings import load_settings
from services.store import AuditLog, Database, NewAuditEvent, StoreError, open_database
from services.store import audit as audit_module
from services.store.__main__ import main as store_cli
from services.store.audit import AuditAnchor, AuditHead
from services.store.audit import anchor as anchor_module
from tests.services.store.test_store_audit import as_attacker
from tests.services.store.test_store_concurrency import append_concurrently

AUDIT_LOGGER = "services.store.audit"
FINANCE = Actor("fiona", "Fiona", frozenset({"finance"}))
SUPPORT = Actor("sam", "Sam", frozenset({"support"}))


def ev(i: int = 0, actor: str = "user") -> NewAuditEvent:
    return NewAuditEvent(actor_username=actor, actor_roles=["support"], action="grant.revoke",
                         outcome="requested", target_type="grant", target_id=f"grant_{i}")


def anchored_log(db: Database, tmp_path: Path, **kw) -> AuditLog:
    return AuditLog(db, anchor_file=tmp_path / "audit-anchor.json", **kw)


def fill(log: AuditLog, n: int) -> list:
    return [log.append(ev(i)) for i in range(n)]


def stored_anchor(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# --- a clean log -----------------------------------------------------------------------------

def test_clean_log_verifies_and_reports_its_head(db: Database, tmp_path: Path) -> None:
    log = anchored_log(db, tmp_path)
    events = fill(log, 12)
    report = log.verify_chain()
    assert report.ok and report.reason is None and report.first_bad_seq is None
    assert (report.checked, report.head_seq, report.head_hash) == (12, 12, events[-1].hash)
    assert report.anchor_checked and report.anchor_seq == 12
    anchor = stored_anchor(tmp_path / "audit-anchor.json")
    assert (anchor["seq"], anchor["hash"]) == (12, events[-1].hash)
    # a head noted earlier, still in the log with its hash: fine
    noted = log.verify_chain(expected_head=(5, events[4].hash.upper()))
    assert noted.ok and noted.expected_checked and noted.head_seq == 12


def test_empty_log_without_anchor_file_is_ok(db: Database, tmp_path: Path) -> None:
    report = anchored_log(db, tmp_path).verify_chain()
    assert report.ok and (report.checked, report.head_seq) == (0, 0)
    assert not report.anchor_checked


# --- the tail removed ------------------------------------------------------------------------

def test_tail_deletion_is_caught_by_the_anchor(db: Database, tmp_path: Path) -> None:
    log = anchored_log(db, tmp_path)
    events = fill(log, 10)
    log.flush_anchor()
    as_attacker(db, "DELETE FROM audit_log WHERE seq > 7")
    report = log.verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 8 and report.checked == 7
    assert (report.head_seq, report.head_hash) == (7, events[6].hash)
    assert report.anchor_checked and report.anchor_seq == 10
    assert report.reason.startswith(
        f"the log ends at row 7 but row 10 (hash {events[-1].hash[:8]}…, anchored ")
    assert report.reason.endswith("UTC) existed: at least 3 newest row(s) were removed")
    # what is left is a valid chain: without the anchor it would pass
    assert AuditLog(db).verify_chain().ok


def test_tail_deletion_is_caught_by_a_noted_head(db: Database) -> None:
    log = AuditLog(db)  # no anchor at all: only the auditor's note
    events = fill(log, 10)
    first = log.verify_chain()
    noted = (first.head_seq, first.head_hash)
    as_attacker(db, "DELETE FROM audit_log WHERE seq > 7")
    report = log.verify_chain(expected_head=noted)
    assert not report.ok and report.first_bad_seq == 8 and report.head_seq == 7
    assert report.expected_checked and not report.anchor_checked
    # Without an anchor, a noted row past the end may be a typo: that is said first.
    assert report.check_what_you_typed
    assert report.reason == (
        "the newest row is 7, so there is no row 10 to compare with the head you noted: check "
        f"what you typed. If row 10 (hash {events[-1].hash[:8]}…) is what you noted, at least 3 "
        "newest row(s) were removed.")


def test_a_mistyped_row_says_check_what_you_typed_and_a_wrong_hash_says_replaced(
        db: Database) -> None:
    log = AuditLog(db)
    fill(log, 5)
    head = log.verify_chain()
    typo = log.verify_chain(expected_head=(head.head_seq + 50, head.head_hash))
    assert not typo.ok and typo.check_what_you_typed
    assert "check what you typed" in typo.reason and "replaced" not in typo.reason
    wrong = log.verify_chain(expected_head=(head.head_seq, "ab" * 32))
    assert not wrong.ok and not wrong.check_what_you_typed
    assert "replaced" in wrong.reason and "check what you typed" not in wrong.reason
    good = log.verify_chain(expected_head=(head.head_seq, head.head_hash))
    assert good.ok and not good.check_what_you_typed


def test_whole_log_emptied_is_caught(db: Database, tmp_path: Path) -> None:
    log = anchored_log(db, tmp_path)
    fill(log, 4)
    log.flush_anchor()
    as_attacker(db, "DELETE FROM audit_log")
    report = log.verify_chain()
    assert not report.ok and report.first_bad_seq == 1 and report.head_seq == 0
    assert report.reason.startswith("the log is empty but row 4 ")


def test_tail_deleted_then_new_events_written_past_it_is_still_caught(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The console keeps appending after the deletion, reusing the deleted row numbers and
    going past the anchored one: the anchor is not overwritten by the new chain's head."""
    anchor_path = tmp_path / "audit-anchor.json"
    log = anchored_log(db, tmp_path, anchor_interval=0)
    events = fill(log, 10)
    as_attacker(db, "DELETE FROM audit_log WHERE seq > 7")
    with caplog.at_level(logging.WARNING, logger=AUDIT_LOGGER):
        fill(log, 6)  # rows 8..13
    assert stored_anchor(anchor_path)["seq"] == 10  # kept as evidence
    assert stored_anchor(anchor_path)["hash"] == events[-1].hash
    assert any("no longer holds row 10" in r.getMessage() for r in caplog.records)
    report = log.verify_chain()
    assert not report.ok and report.first_bad_seq == 10 and report.head_seq == 13
    assert report.reason.startswith(f"row 10 has hash {report_hash(db, 10)[:8]}…, but hash "
                                    f"{events[-1].hash[:8]}… was anchored ")
    assert "replaced" in report.reason


def report_hash(db: Database, seq: int) -> str:
    with db.read() as conn:
        return conn.execute(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": seq}).scalar()


def test_a_noted_head_with_another_hash_is_reported(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 5)
    report = log.verify_chain(expected_head=(3, "ab" * 32))
    assert not report.ok and report.first_bad_seq == 3 and report.head_seq == 5
    assert "you noted hash abababab…" in report.reason


def test_a_broken_row_is_still_reported_first(db: Database, tmp_path: Path) -> None:
    log = anchored_log(db, tmp_path)
    fill(log, 8)
    as_attacker(db, "UPDATE audit_log SET actor_username = 'mallory' WHERE seq = 5")
    report = log.verify_chain()
    assert not report.ok and report.first_bad_seq == 5 and report.head_seq is None
    assert "content does not match" in report.reason


@pytest.mark.parametrize("head", [(0, "a" * 64), (-1, "a" * 64), (True, "a" * 64),
                                  ("3", "a" * 64), (3, "a" * 63), (3, "g" * 64), (3, None),
                                  (3,), "3:" + "a" * 64])
def test_malformed_noted_head_is_refused(db: Database, head) -> None:
    with pytest.raises(StoreError):
        AuditLog(db).verify_chain(expected_head=head)


# --- the anchor file itself ------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"{garbage", b"", b"\xff\xfe", b"[1, 2]",
                                     b'{"format": "kryptos-console-audit-anchor/1", '
                                     b'"seq": 3, "hash": "zz", "ts": "2024-01-01T00:00:00.000Z"}',
                                     b'{"seq": 3, "hash": "' + b"a" * 64 + b'"}'])
def test_corrupt_anchor_is_reported_not_a_crash(db: Database, tmp_path: Path,
                                                content: bytes) -> None:
    log = anchored_log(db, tmp_path)
    fill(log, 3)
    log.flush_anchor()
    anchor_path = tmp_path / "audit-anchor.json"
    anchor_path.write_bytes(content)
    report = log.verify_chain()
    assert not report.ok and report.first_bad_seq is None and not report.anchor_checked
    assert "does not hold a valid head" in report.reason and "tampered" in report.reason
    assert report.head_seq == 3 and report.checked == 3  # the chain itself was still walked
    # an append neither fails nor overwrites the evidence
    log.append(ev(9))
    log.flush_anchor()
    assert anchor_path.read_bytes() == content
    assert AuditLog(db).count() == 4


def test_missing_anchor_file_for_a_non_empty_log_is_reported(db: Database,
                                                             tmp_path: Path) -> None:
    log = anchored_log(db, tmp_path)
    fill(log, 3)
    log.flush_anchor()
    (tmp_path / "audit-anchor.json").unlink()
    report = log.verify_chain()
    assert not report.ok and report.first_bad_seq is None and report.head_seq == 3
    assert "no audit anchor file" in report.reason


def test_an_anchor_edited_to_another_hash_is_reported(db: Database, tmp_path: Path) -> None:
    log = anchored_log(db, tmp_path)
    fill(log, 4)
    log.flush_anchor()
    path = tmp_path / "audit-anchor.json"
    data = stored_anchor(path)
    data["hash"] = "0" * 64
    path.write_text(json.dumps(data), encoding="utf-8")
    report = log.verify_chain()
    assert not report.ok and report.first_bad_seq == 4


def test_an_older_head_never_overwrites_a_newer_one(tmp_path: Path) -> None:
    anchor = AuditAnchor(tmp_path / "a.json")
    assert anchor.read() is None
    assert anchor.advance(AuditHead(5, "b" * 64), lambda _: True) is None
    assert anchor.advance(AuditHead(4, "c" * 64), lambda _: True) is None
    assert anchor.advance(AuditHead(5, "d" * 64), lambda _: True) is None
    assert anchor.read() == AuditHead(5, "b" * 64, anchor.read().ts)
    assert anchor.advance(AuditHead(6, "e" * 64), lambda held: held.hash == "b" * 64) is None
    assert anchor.read().seq == 6
    # no temp file left behind; the lock file stays (it is never replaced)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.json.lock"]


def fail_replace(src, dst):  # noqa: ANN001 - same signature as os.replace
    raise OSError(30, "Read-only file system")


@pytest.mark.parametrize("where", ["missing folder", "folder is a file", "read-only"])
def test_anchor_write_failure_does_not_lose_the_event(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    if where == "missing folder":
        path = tmp_path / "no-such-folder" / "audit-anchor.json"
    elif where == "folder is a file":
        (tmp_path / "plain-file").write_text("x")
        path = tmp_path / "plain-file" / "audit-anchor.json"
    else:  # the tests may run as root, which a chmod does not stop: fail the rename itself
        path = tmp_path / "audit-anchor.json"
        monkeypatch.setattr(anchor_module.os, "replace", fail_replace)
    log = AuditLog(db, anchor_file=path, anchor_interval=0)
    with caplog.at_level(logging.WARNING, logger=AUDIT_LOGGER):
        stored = log.append(ev(1, actor="kept"))
        second = log.append(ev(2, actor="kept"))
    assert [e.seq for e in (stored, second)] == [1, 2]
    assert AuditLog(db).count() == 2 and AuditLog(db).verify_chain().ok
    warnings = [r for r in caplog.records
                if r.name == AUDIT_LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1  # the first failure at once, the next ones held back a minute
    assert warnings[0].getMessage().startswith("Audit anchor not updated: row 1: ")
    assert not path.exists()
    if path.parent.is_dir():
        assert not list(path.parent.glob(".*.tmp"))  # the temp file was cleaned up


# --- many writers ----------------------------------------------------------------------------

@pytest.mark.parametrize("interval", [0, audit_module.ANCHOR_INTERVAL_S])
def test_eight_threads_leave_the_anchor_at_the_true_head(db: Database, tmp_path: Path,
                                                         interval: float) -> None:
    log = anchored_log(db, tmp_path, anchor_interval=interval)
    threads_n, per_thread = 8, 40
    append_concurrently(log, threads_n, per_thread, lambda n, i: ev(i, actor=f"writer{n}"))
    report = log.verify_chain()  # writes a head the interval held back
    assert report.ok, report.reason
    assert report.head_seq == threads_n * per_thread and report.anchor_seq == report.head_seq
    anchor = stored_anchor(tmp_path / "audit-anchor.json")
    assert (anchor["seq"], anchor["hash"]) == (report.head_seq, report.head_hash)


WRITER = textwrap.dedent("""
    import sys
    from services.store import AuditLog, NewAuditEvent, open_database
    url, anchor, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    db = open_database(url)
    log = AuditLog(db, anchor_file=anchor, anchor_interval=0)
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        log.append(NewAuditEvent(name, ["support"], "integration.resync", "requested",
                                 target_id=f"{name}-{i}"))
    db.dispose()
""")


def test_two_processes_leave_the_anchor_at_the_true_head(db_url: str, tmp_path: Path) -> None:
    anchor_path = tmp_path / "audit-anchor.json"
    open_database(db_url).dispose()  # migrated before the writers start
    count = 60
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(anchor_path), name,
                          str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for name in ("proc_a", "proc_b", "proc_c")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(timeout=120) == 0
    db = open_database(db_url)
    try:
        report = AuditLog(db, anchor_file=anchor_path).verify_chain()
    finally:
        db.dispose()
    assert report.ok, report.reason
    assert report.head_seq == 3 * count and report.anchor_seq == 3 * count


def test_the_interval_holds_writes_back_and_a_timer_catches_up(db: Database,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "audit-anchor.json"
    log = anchored_log(db, tmp_path, anchor_interval=1.0)
    fill(log, 1)  # the first append writes at once
    assert stored_anchor(path)["seq"] == 1
    fill(log, 4)
    assert stored_anchor(path)["seq"] == 1  # held back for the interval
    deadline = time.monotonic() + 10
    while stored_anchor(path)["seq"] != 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_anchor(path)["seq"] == 5  # written by the timer, with no further append


def test_verify_writes_a_head_held_back(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "audit-anchor.json"
    log = anchored_log(db, tmp_path, anchor_interval=3600)
    fill(log, 3)
    assert stored_anchor(path)["seq"] == 1
    assert log.verify_chain().anchor_seq == 3 and stored_anchor(path)["seq"] == 3


# --- operations, settings and the command line -----------------------------------------------

def test_operations_verify_with_a_noted_head_is_audited(db: Database, tmp_path: Path) -> None:
    log = anchored_log(db, tmp_path)
    ops = Operations(None, log, None, ())
    fill(log, 4)
    first = ops.audit.verify_audit(FINANCE)
    assert first.ok and first.anchor_checked
    noted = (first.head_seq, first.head_hash)
    assert ops.audit.verify_audit(FINANCE, expected_head=(str(noted[0]), f" {noted[1]} ")).ok
    as_attacker(db, f"DELETE FROM audit_log WHERE seq >= {noted[0]}")
    report = ops.audit.verify_audit(FINANCE, expected_head=noted)
    assert not report.ok and report.first_bad_seq is not None
    done = [e for e in log.iter_events() if e.action == "audit.verify"][-1]
    assert done.outcome == "succeeded"
    assert done.after["ok"] is False and done.after["expected_checked"] is True
    assert done.after["head_seq"] == report.head_seq
    requested = [e for e in log.iter_events() if e.action == "audit.verify"][-2]
    assert requested.params == {"expected_head": {"seq": noted[0], "hash": noted[1]}}


@pytest.mark.parametrize("head, field", [((None, "a" * 64), "row"), ((0, "a" * 64), "row"),
                                         ((2, ""), "hash"), ((2, "xyz"), "hash"),
                                         ((2,), "expected_head"),
                                         ("2:" + "a" * 64, "expected_head")])
def test_operations_refuse_a_malformed_head_before_auditing(db: Database, head,
                                                            field: str) -> None:
    log = AuditLog(db)
    ops = Operations(None, log, None, ())
    with pytest.raises(ValidationError) as caught:
        ops.audit.verify_audit(FINANCE, expected_head=head)
    assert caught.value.field == field
    assert log.count() == 0  # nothing attempted, nothing audited


def test_operations_verify_still_needs_the_permission(db: Database) -> None:
    log = AuditLog(db)
    with pytest.raises(PermissionDenied):
        Operations(None, log, None, ()).audit.verify_audit(SUPPORT, expected_head=(1, "a" * 64))
    assert [(e.action, e.outcome) for e in log.iter_events()] == [("audit.verify", "denied")]


def test_settings_anchor_file(tmp_path: Path) -> None:
    absent = tmp_path / "absent.toml"
    default = load_settings(env={"CONSOLE_DATA_DIR": str(tmp_path)}, secrets_path=absent)
    assert default.effective_audit_anchor_file == tmp_path / "audit-anchor.json"
    env = load_settings(env={"CONSOLE_AUDIT_ANCHOR_FILE": "/srv/anchor/a.json"},
                        secrets_path=absent)
    assert env.effective_audit_anchor_file == Path("/srv/anchor/a.json")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[console]\naudit_anchor_file = "/elsewhere/b.json"\n', encoding="utf-8")
    assert load_settings(env={}, secrets_path=secrets).effective_audit_anchor_file == Path(
        "/elsewhere/b.json")


def test_operations_from_settings_anchor_the_log(tmp_path: Path) -> None:
    settings = load_settings(env={"CONSOLE_DATA_DIR": str(tmp_path / "data")},
                             secrets_path=tmp_path / "absent.toml")
    ops = Operations.from_settings(settings, client=object())
    ops.auth.record_login(FINANCE)
    assert ops.audit.verify_audit(FINANCE).anchor_checked
    assert stored_anchor(tmp_path / "data" / "audit-anchor.json")["seq"] >= 1


def test_cli_verify_audit(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    anchor_path = tmp_path / "anchor.json"
    for name, value in {"DATABASE_URL": db_url, "CONSOLE_AUDIT_ANCHOR_FILE": str(anchor_path),
                        "CONSOLE_DATA_DIR": str(tmp_path),
                        "CONSOLE_SECRETS_FILE": str(tmp_path / "absent.toml")}.items():
        monkeypatch.setenv(name, value)
    db = open_database(db_url)
    try:
        log = AuditLog(db, anchor_file=anchor_path)
        events = fill(log, 6)
        log.flush_anchor()
        assert store_cli(["verify-audit"]) == 0
        out = capsys.readouterr().out
        assert "intact: 6 row(s)" in out and f"head: 6:{events[-1].hash}" in out
        assert store_cli(["verify-audit", "--expect", f"4:{events[3].hash}"]) == 0
        assert store_cli(["verify-audit", "--expect", "4:nothex"]) == 2
        assert "64 hexadecimal" in capsys.readouterr().err
        as_attacker(db, "DELETE FROM audit_log WHERE seq > 4")
        assert store_cli(["verify-audit"]) == 1
        assert "BROKEN at row 5: the log ends at row 4 but row 6" in capsys.readouterr().out
    finally:
        db.dispose()
