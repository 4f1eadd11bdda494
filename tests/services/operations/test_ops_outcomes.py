"""Outcomes are never lost: a store failure after Kryptos acted, the reconciler,
a bulk run killed with SIGKILL and resumed, audit filters, the Kryptos check at start.

Everything runs against the sandbox over HTTP and a real SQLite file; the store failure is
another connection holding the database's write lock (BEGIN EXCLUSIVE)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

import services.store.db as store_db
from sandbox import start_sandbox
from services.kryptos.errors import KryptosError
from services.operations import Operations, ValidationError
from services.operations.health import check_connection
from services.operations.reconcile import Reconciler
from services.store import AuditFilter, AuditLog, TokenVault, open_database
from services.store.journal import AuditJournal
from services.store.trail import watch_pending

from .conftest import TIERS, Env, actor, load_vault, make_client

SUPPORT = actor("support")
FINANCE = actor("finance")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def jenv(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """`env` with a journal, and a SQLite busy timeout short enough to see a locked store."""
    monkeypatch.setattr(store_db, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    db = open_database(f"sqlite:///{tmp_path / 'console.db'}")
    audit = AuditLog(db)
    vault = TokenVault(db, Fernet.generate_key())
    load_vault(vault, sandbox.tokens())
    client = make_client(sandbox)
    ops = Operations(client, audit, vault, TIERS, max_workers=4,
                     journal=AuditJournal(tmp_path / "audit-journal.jsonl"))
    ops.ctx.trail.retry_delays = (0.05, 0.05)
    sandbox.clear_requests_log()
    yield Env(ops, sandbox, client, audit, vault)
    client.close()
    db.dispose()


class LockWhenRequested:
    """Takes the database's write lock as soon as `count` `requested` events of `action`
    are in the log (the change is then on its way to Kryptos), for `hold` seconds."""

    def __init__(self, path: Path, action: str, hold: float, count: int = 1) -> None:
        self.path, self.action, self.hold, self.count = path, action, hold, count
        self.locked = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                n = conn.execute("SELECT count(*) FROM audit_log WHERE action = ? AND outcome ="
                                 " 'requested'", (self.action,)).fetchone()[0]
                if n >= self.count:
                    break
                time.sleep(0.005)
            conn.execute("BEGIN EXCLUSIVE")
            self.locked.set()
            time.sleep(self.hold)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def join(self) -> None:
        self.thread.join(30)


def readable_guests(env: Env) -> list[str]:
    """Guest grants whose user info can be read (to see their limit upstream)."""
    out = []
    for t in env.stored(kind="guest"):
        try:
            env.client.get_userinfo(t["access_token"])
        except KryptosError:
            continue
        out.append(t["grant_id"])
    return out


def open_requests(audit: AuditLog) -> list[Any]:
    events = list(audit.iter_events())
    closed = {e.correlation_id for e in events if e.outcome != "requested"}
    return [e for e in events if e.outcome == "requested" and e.correlation_id not in closed]


# --- a store failure after upstream success ------------------------------------------------

def test_revoke_made_while_the_store_is_locked_is_reported_made(jenv: Env,
                                                                tmp_path: Path) -> None:
    gid = jenv.stored()[0]["grant_id"]
    jenv.sandbox.set_fault(path="/token/revoke", latency_ms=400, count=1)
    lock = LockWhenRequested(tmp_path / "console.db", "grant.revoke", hold=2.0)
    with watch_pending() as pending:
        message = jenv.ops.grants.revoke_grant(SUPPORT, gid, "customer asked to disconnect")
    assert lock.locked.is_set() and "revoked" in message.lower()
    assert pending  # the page says "made; record pending"
    assert gid not in {g.grant_id for g in jenv.client.list_grants()}  # it WAS made
    lock.join()
    assert [e.outcome for e in jenv.events(action="grant.revoke")] == ["requested"]
    # the store is back: the next pass replays the journal; nothing is left to reconcile
    report = Reconciler(jenv.ops.ctx, min_age=timedelta(0)).run_once()
    assert report.journal is not None and report.journal.replayed == 1
    assert report.open_requests == 0 and report.settled == 0
    end = jenv.events(action="grant.revoke")[-1]
    assert end.outcome == "succeeded" and end.params["journal"]["at"]
    assert jenv.ops.ctx.journal.pending() == [] and jenv.audit.verify_chain().ok


def test_bulk_run_with_the_store_locked_reports_no_false_failure(jenv: Env,
                                                                tmp_path: Path) -> None:
    guests = readable_guests(jenv)[:8]
    # every PATCH is slow: when the last request is recorded, the last round is in flight
    jenv.sandbox.set_fault(path="/developer/grants/", method="PATCH", latency_ms=700,
                           count=100)
    lock = LockWhenRequested(tmp_path / "console.db", "guest.tier.apply", hold=2.5,
                             count=len(guests))
    res = jenv.ops.limits.apply_tier(FINANCE, guests, "Plus", reason="promo for Q3 cohort")
    lock.join()
    assert lock.locked.is_set()
    assert res.records_pending >= 1
    tokens = {t["grant_id"]: t["access_token"] for t in jenv.stored()}
    for item in res.items:  # nothing that changed upstream is reported as failed
        changed = jenv.client.get_userinfo(tokens[item.grant_id]).transaction_limit == 10000
        assert changed == (item.outcome == "succeeded"), item
        if item.outcome == "failed":  # its request could not be recorded: not sent
            assert item.error_code == "AUDIT_UNAVAILABLE" and "nothing was changed" in \
                item.message
    jenv.sandbox.clear_faults()
    Reconciler(jenv.ops.ctx, min_age=timedelta(0)).run_once()
    assert open_requests(jenv.audit) == []
    per_grant = jenv.events(action="guest.tier.apply")
    made = res.counts["succeeded"]
    assert sorted(e.outcome for e in per_grant) == ["requested"] * made + ["succeeded"] * made
    summary = jenv.events(action="guest.tier.apply.bulk")
    assert [e.outcome for e in summary][0] == "requested" and len(summary) == 2


# --- the reconciler -------------------------------------------------------------------------

def _orphan(env: Env, action: str, target: str, **params: Any) -> str:
    """A `requested` event whose outcome was never written (the console died)."""
    ev = env.ops.ctx.event("alice", ["finance"], action, "requested", target_type="grant",
                           target_id=target, params=params or None)
    return ev.correlation_id


def test_reconciler_reads_what_happened_upstream(env: Env) -> None:
    guest = env.stored(kind="guest")[0]
    other = env.stored(kind="guest")[1]
    revoked = env.stored()[2]["grant_id"]
    # made upstream before the "crash": one limit and one revoke; another limit never sent
    env.client.update_transaction_limit(guest["grant_id"], transaction_limit=4321,
                                        enable_limiter=True)
    env.client.revoke_grant(revoked)
    made = _orphan(env, "guest.limit.update", guest["grant_id"], transaction_limit=4321,
                   enable_limiter=True)
    not_made = _orphan(env, "guest.limit.update", other["grant_id"], transaction_limit=4321,
                       enable_limiter=True)
    rev = _orphan(env, "grant.revoke", revoked)
    imp = env.ops.ctx.event("alice", ["support"], "token.import", "requested",
                            target_type="vault").correlation_id
    young = Reconciler(env.ops.ctx).run_once()  # everything is younger than a minute
    assert young.open_requests == 0

    report = Reconciler(env.ops.ctx, min_age=timedelta(0)).run_once()
    assert report.open_requests == 4 and report.settled == 3
    assert [u.correlation_id for u in report.unsettled] == [imp]
    assert "by hand" in report.unsettled[0].reason
    found = {e.correlation_id: e for e in env.events(outcome="reconciled")}
    assert found[made].after["transaction_limit"] == 4321 and found[made].after["at_target"]
    assert found[not_made].after["at_target"] is False
    assert found[rev].after == {"status": "revoked", "made": True, "source": "grants list"}
    assert found[made].actor_username == "console.reconciler"
    assert found[made].params["requested"]["transaction_limit"] == 4321
    # settled ones are not settled twice
    again = Reconciler(env.ops.ctx, min_age=timedelta(0)).run_once()
    assert again.settled == 0 and [u.correlation_id for u in again.unsettled] == [imp]


def test_reconciler_asks_the_session_when_the_grants_list_fails(env: Env) -> None:
    revoked, kept = env.stored()[0]["grant_id"], env.stored()[1]["grant_id"]
    env.client.revoke_grant(revoked)
    made = _orphan(env, "grant.revoke", revoked)
    not_made = _orphan(env, "grant.revoke", kept)
    env.sandbox.set_fault(path="/token/grants", status=503, count=100)
    report = Reconciler(env.ops.ctx, min_age=timedelta(0)).run_once()
    assert report.settled == 2 and report.unsettled == ()
    found = {e.correlation_id: e.after for e in env.events(outcome="reconciled")}
    assert found[made]["status"] == "revoked" and found[made]["source"] == "session"
    assert found[not_made]["status"] == "active" and found[not_made]["made"] is False


def test_reconciler_reads_a_resync_status(env: Env) -> None:
    row, integ = env.find_integration(lambda i: not i.is_csv)
    cid = _orphan(env, "integration.resync", row["grant_id"], wallet_id=integ.wallet_id,
                  mode="latest")
    report = Reconciler(env.ops.ctx, min_age=timedelta(0)).run_once()
    assert report.settled == 1
    [rec] = env.events(outcome="reconciled")
    assert rec.correlation_id == cid and rec.after["wallet_id"] == integ.wallet_id
    assert rec.after["status"] == integ.status


def test_reconciler_shows_what_it_read_in_the_read_model(env: Env) -> None:
    env.sync()
    row, integ = env.find_integration(lambda i: not i.is_csv and i.status == "COMPLETED")
    guest = next(t for t in env.stored(kind="guest") if t["grant_id"] != row["grant_id"])
    revoked = next(t["grant_id"] for t in env.stored()
                   if t["grant_id"] not in (row["grant_id"], guest["grant_id"]))
    # made upstream, the console died before it could show them
    env.client.update_transaction_limit(guest["grant_id"], transaction_limit=4321,
                                        enable_limiter=True)
    env.client.revoke_grant(revoked)
    env.client.resync_integration(integ.wallet_id, row["user_id"], "latest")
    _orphan(env, "guest.limit.update", guest["grant_id"], transaction_limit=4321,
            enable_limiter=True)
    _orphan(env, "grant.revoke", revoked)
    _orphan(env, "integration.resync", row["grant_id"], wallet_id=integ.wallet_id,
            mode="latest")
    rm = env.ops.readmodel
    assert rm.grant(guest["grant_id"]).grant.effective_limit != 4321
    report = Reconciler(env.ops.ctx, min_age=timedelta(0)).run_once()
    assert report.settled == 3
    assert rm.grant(guest["grant_id"]).grant.effective_limit == 4321
    assert rm.grant(revoked).grant.status == "revoked"
    shown = {i.wallet_id: i.status for i in rm.grant(row["grant_id"]).integrations}
    assert shown[integ.wallet_id] == "ONGOING"


# --- kill -9 in the middle of a bulk run of 200 grants -------------------------------------

BULK_SCRIPT = textwrap.dedent("""
    import json, sys
    from services.kryptos.client import KryptosClient
    from services.operations import Actor, Operations
    from services.settings import parse_tiers
    from services.store import AuditLog, TokenVault, open_database
    url, key, cfg, gids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    db = open_database(url)
    client = KryptosClient(**cfg)
    ops = Operations(client, AuditLog(db), TokenVault(db, key),
                     parse_tiers("Free=1000,Plus=10000,Pro=100000,Unlimited=off"),
                     max_workers=4)
    grants = open(gids).read().split()
    print("start", flush=True)
    ops.limits.apply_tier(Actor("finance", "Finance", frozenset({"finance"})), grants, "Pro",
                          reason="Q3 promotion for everyone")
    print("finished", flush=True)
""")


@pytest.fixture
def big_sandbox() -> Iterator[Any]:
    handle = start_sandbox(port=0, seed=11, grants=320, resync_delay=2.0)
    yield handle
    handle.stop()


def test_kill_9_mid_bulk_then_reconcile_and_resume(big_sandbox: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    key = Fernet.generate_key()
    db = open_database(url)
    audit = AuditLog(db)
    vault = TokenVault(db, key)
    client = make_client(big_sandbox)
    rows = []
    for t in big_sandbox.tokens():  # live grants whose state upstream can be read
        try:
            client.get_userinfo(t["access_token"])
        except KryptosError:
            continue
        rows.append(t)
    rows = rows[:200]
    assert len(rows) == 200
    load_vault(vault, rows)
    (tmp_path / "grants.txt").write_text("\n".join(r["grant_id"] for r in rows))
    cfg = dict(client_id=big_sandbox.client_id, client_secret=big_sandbox.client_secret,
               connect_url=big_sandbox.connect_url, data_url=big_sandbox.data_url,
               connect_timeout=2.0, read_timeout=5.0, max_retries=2, retry_budget=5.0)
    import json

    big_sandbox.set_latency(40)
    proc = subprocess.Popen(
        [sys.executable, "-c", BULK_SCRIPT, url, key.decode(), json.dumps(cfg),
         str(tmp_path / "grants.txt")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = [e for e in audit.iter_events(AuditFilter(action="guest.tier.apply"))
                    if e.outcome != "requested"]
            if len(done) >= 60:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
        out = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL and "finished" not in out
    big_sandbox.set_latency(0)
    orphans = open_requests(audit)
    assert any(e.target_type == "bulk" for e in orphans)  # the run's summary, at least

    ops = Operations(client, audit, vault, TIERS, max_workers=8)
    report = Reconciler(ops.ctx, min_age=timedelta(0)).run_once()
    assert report.unsettled == () and report.settled == len(orphans)
    assert open_requests(audit) == []  # every `requested` has its outcome
    tokens = {r["grant_id"]: r["access_token"] for r in rows}
    for rec in audit.iter_events(AuditFilter(outcome="reconciled", action="guest.tier.apply")):
        info = client.get_userinfo(tokens[rec.target_id])  # what it says is what is upstream
        assert rec.after["transaction_limit"] == info.transaction_limit
        assert rec.after["at_target"] == (info.is_guest and info.transaction_limit == 100000)
    [summary] = list(audit.iter_events(AuditFilter(outcome="reconciled",
                                                   action="guest.tier.apply.bulk")))
    assert summary.after["grants_not_tried"] > 0

    # resume: only grants not settled are run again; those already at Pro are left alone
    bulk_id = summary.target_id
    res = ops.limits.resume_bulk(FINANCE, bulk_id)
    settled = 200 - len(res.items)
    assert settled >= 60 and res.counts["failed"] == 0
    for r in rows:
        info = client.get_userinfo(r["access_token"])
        assert info.transaction_limit == 100000 or not info.is_guest
    again = ops.limits.resume_bulk(FINANCE, bulk_id, dry_run=True)
    assert again.counts["would_change"] == 0 and again.counts["failed"] == 0  # nothing left
    assert {e.params.get("resumes") for e in audit.iter_events(AuditFilter(
        action="guest.tier.apply.bulk", outcome="requested"))} == {None, bulk_id}
    client.close()
    db.dispose()


# --- audit filters, the Kryptos check ------------------------------------------------------

@pytest.mark.parametrize("flt", [
    AuditFilter(outcome="done"), AuditFilter(action="DROP TABLE"),
    AuditFilter(actor="a\x00b"), AuditFilter(since="yesterday"),  # type: ignore[arg-type]
])
def test_invalid_audit_filter_is_a_validation_error(env: Env, flt: AuditFilter) -> None:
    with pytest.raises(ValidationError):
        env.ops.audit.audit_page(FINANCE, flt)


def test_valid_audit_filters_still_work(env: Env) -> None:
    env.ops.auth.record_login(SUPPORT)
    assert env.ops.audit.audit_page(FINANCE, AuditFilter(outcome="reconciled")).total == 0
    assert env.ops.audit.audit_page(FINANCE, AuditFilter(action="auth.*")).total == 1


def test_kryptos_check_good_wrong_and_unreachable(sandbox: Any) -> None:
    good = check_connection(make_client(sandbox))
    assert good.ok and good.credentials_ok is True and good.problems == ()
    wrong = check_connection(make_client(sandbox, client_secret="wrong_secret"))
    assert not wrong.ok and wrong.credentials_ok is False
    assert "KRYPTOS_CLIENT_SECRET" in wrong.problems[0] and "wrong_secret" not in str(wrong)
    start = time.monotonic()
    gone = check_connection(make_client(sandbox, connect_url="http://127.0.0.1:9",
                                        data_url="http://127.0.0.1:9/api"), timeout=1.0)
    assert time.monotonic() - start < 5
    assert not gone.ok and gone.credentials_ok is None and len(gone.problems) == 2
