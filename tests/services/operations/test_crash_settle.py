"""Every change is settled after a crash: a real console process (crash_driver.py) is killed
with SIGKILL while the sandbox has made its change and holds the answer; after a restart
and one reconciler pass every `requested` event has its own outcome, no approval request is
left `approved`, and the read model shows what Kryptos holds.

Cases: a direct limit change, an approval-run revoke, an approval-run tier change of 12
grants, a bulk run of 50. On a SQLite file and a PostgreSQL schema; the sandbox over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from sandbox import SandboxHandle, start_sandbox
from services.kryptos.client import KryptosClient
from services.kryptos.errors import KryptosError
from services.operations import Operations
from services.operations.approval_policy import ApprovalPolicy, Change
from services.operations.reconcile import ACTOR, NOT_TRIED, Reconciler
from services.store import AuditFilter, AuditLog, TokenVault, open_database
from services.store.approvals import ApprovalStore
from services.store.readmodel import ReadModel
from services.sync import SyncWorker
from tests.databases import SqliteTemplate, at_head
from tests.services.store.conftest import (  # noqa: F401 (fixtures)
    _PG_SKIP_REASON,
    _pg_schema_url,
    db_url,
    pg_base_url,
)

from .conftest import TIERS, actor, load_vault, make_client

ROOT = Path(__file__).resolve().parents[3]
FAY = actor("finance", name="fay")  # asks
FRED = actor("finance", name="fred")  # approves limits
SAM = actor("support", name="sam")  # asks for a revoke
SUE = actor("support", name="sue")  # approves it


@pytest.fixture(scope="module")
def crash_sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, seed=23, grants=140, resync_delay=2.0)
    yield handle
    handle.stop()


@dataclass
class Console:
    """The console's database and the sandbox; `restart()` is a fresh console over both."""

    sandbox: SandboxHandle
    url: str
    key: bytes
    rows: dict[str, dict]  # grant id -> the sandbox's token row (readable, not revoked)
    opened: list[Any] = field(default_factory=list)

    def ops(self) -> Operations:
        db = open_database(self.url)
        client = make_client(self.sandbox)
        self.opened.append((client, db))
        return Operations(client, AuditLog(db), TokenVault(db, self.key), TIERS,
                          max_workers=4, approval_policy=ApprovalPolicy(),
                          readmodel=ReadModel(db, TIERS))

    def guests(self, n: int) -> list[str]:
        found = [g for g, r in self.rows.items() if r["kind"] == "guest"][:n]
        assert len(found) == n, f"the sandbox has only {len(found)} readable Guests"
        return found

    def kill_while_held(self, case: str, args: dict[str, Any], path: str, method: str,
                        ready: Callable[[int], bool], hold_from: Callable[[], bool] = bool,
                        approvals: bool = True) -> None:
        """Run the driver; once `hold_from()` is true hold every `method path` after it is
        made; SIGKILL the driver once `ready(held answers)`; release the holds."""
        spec = {"database_url": self.url, "vault_key": self.key.decode(),
                "sandbox_url": self.sandbox.base_url, "case": case, "args": args,
                "approvals": approvals}
        hold = None
        if hold_from is bool:
            hold = self.sandbox.hold_after_apply(path, method=method, ms=90_000)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.services.operations.crash_driver", json.dumps(spec)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()
                if hold is None and hold_from():
                    hold = self.sandbox.hold_after_apply(path, method=method, ms=90_000)
                if hold is not None and ready(self.sandbox.holding(hold)):
                    break
                time.sleep(0.02)
            else:
                raise AssertionError("the driver never reached the held call")
            os.kill(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
            self.sandbox.clear_faults()  # the held answers go to a dead socket
        assert proc.returncode == -signal.SIGKILL and "finished" not in out

    def settle(self) -> tuple[Operations, Any]:
        """A restart: a new console over the same database, and one reconciler pass."""
        ops = self.ops()
        report = Reconciler(ops.ctx, min_age=timedelta(0)).run_once()
        return ops, report


@pytest.fixture(scope="module")
def readable_rows(crash_sandbox: SandboxHandle) -> dict[str, dict]:
    """The live grants whose state upstream can be read, found once: the sandbox's reset
    (before each test) brings back the same grants and tokens (seed 23)."""
    crash_sandbox.reset()
    client = make_client(crash_sandbox)
    rows = {}
    try:
        for t in crash_sandbox.tokens():
            if t["revoked"]:
                continue
            try:
                client.get_userinfo(t["access_token"])
            except KryptosError:
                continue
            rows[t["grant_id"]] = t
    finally:
        client.close()
    return rows


@pytest.fixture
def console(crash_sandbox: SandboxHandle, readable_rows: dict[str, dict],
            db_url: str,  # noqa: F811
            sqlite_template: SqliteTemplate) -> Iterator[Console]:
    crash_sandbox.reset()
    # The reset gives back the grants `readable_rows` read (checked by their tokens).
    assert {t["grant_id"]: t["access_token"] for t in crash_sandbox.tokens()
            if t["grant_id"] in readable_rows} == {
        g: t["access_token"] for g, t in readable_rows.items()}
    url = db_url
    key = Fernet.generate_key()
    at_head(url, sqlite_template)  # a copy of the migrated template, not the migrations
    db = open_database(url)
    vault = TokenVault(db, key)
    rows = {g: dict(t) for g, t in readable_rows.items()}
    load_vault(vault, list(rows.values()), with_kind=True)
    worker = SyncWorker(make_client(crash_sandbox, max_retries=0), vault,
                        ReadModel(db, TIERS), rate=1000, name="test")
    try:
        worker.run_once(force=True)
    finally:
        worker.stop()
        worker.client.close()
    c = Console(crash_sandbox, url, key, rows)
    assert_read_model_matches(c, list(rows))  # the copy starts equal to Kryptos
    yield c
    for opened_client, opened_db in c.opened:
        opened_client.close()
        opened_db.dispose()
    db.dispose()


# --- what a user (and an auditor) would notice ------------------------------------------

def unpaired(audit: AuditLog) -> list[Any]:
    """`requested` events with no outcome of their own (same correlation id, action and
    target), whatever else shares their correlation id."""
    waiting: dict[tuple, list[Any]] = {}
    for ev in audit.iter_events():
        key = (ev.correlation_id, ev.action, ev.target_id)
        if ev.outcome == "requested":
            waiting.setdefault(key, []).append(ev)
        elif ev.outcome != "denied" and waiting.get(key):
            seq = (ev.params or {}).get("requested_seq") if ev.outcome == "reconciled" else None
            evs = waiting[key]
            evs.remove(next((e for e in evs if e.seq == seq), evs[0]))
    return [e for evs in waiting.values() for e in evs]


def upstream(c: Console, client: KryptosClient, gid: str) -> tuple[str, int | None]:
    """(status, effective limit) as Kryptos holds it now."""
    if gid not in client.listed_grant_ids():
        return "revoked", None
    info = client.get_userinfo(c.rows[gid]["access_token"])
    return "active", info.transaction_limit


def assert_read_model_matches(c: Console, gids: list[str]) -> None:
    db = open_database(c.url)
    rm = ReadModel(db, TIERS)
    client = make_client(c.sandbox)
    listed = client.listed_grant_ids()
    try:
        for gid in gids:
            row = rm.grant(gid)
            assert row is not None, gid
            g = row.grant
            if gid not in listed:
                assert g.status == "revoked", gid
                continue
            want = client.get_userinfo(c.rows[gid]["access_token"]).transaction_limit
            assert (g.status, g.effective_limit) == ("active", want), gid
    finally:
        client.close()
        db.dispose()


def assert_settled(c: Console, report: Any, ops: Operations) -> None:
    assert report.error is None and report.unsettled == (), report
    assert unpaired(ops.ctx.audit_log) == []
    assert ApprovalStore(ops.ctx.audit_log.db).count("approved") == 0  # none stuck


# --- the cases ----------------------------------------------------------------------------

def test_direct_limit_change_killed_in_flight(console: Console) -> None:
    gid = console.guests(1)[0]
    console.kill_while_held("limit", {"by": "fay", "grant_id": gid, "limit": 4321,
                                      "reason": "trial extension"},
                            "/developer/grants/", "PATCH", lambda held: held >= 1)
    ops, report = console.settle()
    assert report.settled == 1
    assert_settled(console, report, ops)
    [rec] = list(ops.ctx.audit_log.iter_events(AuditFilter(outcome="reconciled")))
    assert rec.after["transaction_limit"] == 4321 and rec.after["at_target"] is True
    # the Grants page shows what Kryptos holds, not the value before the change
    assert_read_model_matches(console, [gid])
    assert ops.readmodel.grant(gid).grant.effective_limit == 4321


def test_approval_run_revoke_killed_in_flight(console: Console) -> None:
    gid = next(iter(console.rows))
    ops = console.ops()
    req = ops.approvals.request(SAM, Change.revoke(gid), "customer asked to disconnect")
    console.kill_while_held("approve", {"by": "sue", "role": "support",
                                        "request_id": req.id},
                            "/token/revoke", "POST", lambda held: held >= 1)
    assert upstream(console, ops.ctx.client, gid)[0] == "revoked"  # it reached Kryptos
    ops, report = console.settle()
    assert_settled(console, report, ops)
    rec = ops.approvals.get(SUE, req.id).record
    assert rec.state == "executed" and rec.result["error_code"] == "INTERRUPTED"
    [item] = rec.result["items"]
    assert (item["grant_id"], item["outcome"], item["after"]) == (gid, "succeeded", "revoked")
    found = {e.action: e for e in ops.ctx.audit_log.iter_events(
        AuditFilter(outcome="reconciled"))}
    assert set(found) == {"grant.revoke", "approval.approved"}
    assert found["grant.revoke"].after["made"] is True
    assert found["approval.approved"].after["state"] == "executed"
    assert found["approval.approved"].actor_username == ACTOR
    assert_read_model_matches(console, [gid])


def test_approval_run_tier_change_of_12_killed_in_flight(console: Console) -> None:
    gids = console.guests(12)
    ops = console.ops()
    req = ops.approvals.request(FAY, Change.apply_tier(gids, "Plus"), "promo for Q3 cohort")
    # four workers: wait until all four PATCHes are made and held, then kill
    console.kill_while_held("approve", {"by": "fred", "role": "finance",
                                        "request_id": req.id},
                            "/developer/grants/", "PATCH", lambda held: held >= 4)
    ops, report = console.settle()
    assert_settled(console, report, ops)
    rec = ops.approvals.get(FRED, req.id).record
    assert rec.state == "executed" and rec.result["error_code"] == "INTERRUPTED"
    items = {i["grant_id"]: i for i in rec.result["items"]}
    assert list(items) == gids
    for gid in gids:  # each grant's outcome is what Kryptos holds
        _, limit = upstream(console, ops.ctx.client, gid)
        if items[gid]["outcome"] == "succeeded":
            assert limit == 10000 and items[gid]["after"] == 10000, items[gid]
        else:
            assert items[gid]["outcome"] == NOT_TRIED and limit != 10000, items[gid]
    assert rec.result["counts"]["succeeded"] == 4  # the four held ones were made
    assert sum(rec.result["counts"].values()) == 12
    assert_read_model_matches(console, gids)


def test_approval_run_tier_change_killed_after_most_outcomes_were_written(
        console: Console) -> None:
    """The execution wrote the outcomes of 11 grants and died while the 12th was held: the
    request ends `executed` with 12 successes, the 11 read from their written outcomes."""
    gids = console.guests(12)
    ops = console.ops()
    audit = ops.ctx.audit_log
    req = ops.approvals.request(FAY, Change.apply_tier(gids, "Plus"), "promo for Q3 cohort")

    def eleven_written(held: int) -> bool:
        return held >= 1 and sum(
            1 for e in audit.iter_events(AuditFilter(action="guest.tier.apply"))
            if e.outcome == "succeeded") >= 11

    console.kill_while_held("approve", {"by": "fred", "role": "finance",
                                        "request_id": req.id},
                            f"/developer/grants/{gids[-1]}/", "PATCH", eleven_written)
    ops, report = console.settle()
    assert_settled(console, report, ops)
    rec = ops.approvals.get(FRED, req.id).record
    assert rec.state == "executed" and rec.result["error_code"] == "INTERRUPTED"
    assert rec.result["counts"] == {"succeeded": 12}
    assert all(i["after"] == 10000 for i in rec.result["items"]), rec.result["items"]
    assert_read_model_matches(console, gids)


def test_bulk_run_of_50_killed_in_flight(console: Console) -> None:
    gids = console.guests(50)
    audit = console.ops().ctx.audit_log

    def twenty_done() -> bool:
        return sum(1 for e in audit.iter_events(AuditFilter(action="guest.tier.apply"))
                   if e.outcome == "succeeded") >= 20

    console.kill_while_held("bulk", {"by": "fay", "grant_ids": gids, "tier": "Pro",
                                     "reason": "Q3 promotion for everyone"},
                            "/developer/grants/", "PATCH", lambda held: held >= 4,
                            hold_from=twenty_done, approvals=False)
    ops, report = console.settle()
    assert_settled(console, report, ops)
    held = [e for e in ops.ctx.audit_log.iter_events(
        AuditFilter(outcome="reconciled", action="guest.tier.apply"))]
    assert len(held) >= 4 and all(e.after["at_target"] for e in held)
    [summary] = list(ops.ctx.audit_log.iter_events(
        AuditFilter(outcome="reconciled", action="guest.tier.apply.bulk")))
    assert summary.after["grants_not_tried"] > 0
    assert_read_model_matches(console, gids)


# --- approvals settled from the request's state (no process killed) ---------------------

def test_an_approval_that_died_before_taking_the_request_leaves_it_pending(
        console: Console) -> None:
    ops = console.ops()
    gid = next(iter(console.rows))
    req = ops.approvals.request(SAM, Change.revoke(gid), "customer asked to disconnect")
    # the approver's process wrote its `requested` and died before the conditional UPDATE
    ops.ctx.event("sue", ["support"], "approval.approved", "requested", req.record.correlation_id,
                  target_type="approval", target_id=str(req.id))
    ops, report = console.settle()
    assert report.settled == 1
    assert_settled(console, report, ops)
    [rec] = list(ops.ctx.audit_log.iter_events(AuditFilter(outcome="reconciled")))
    assert rec.after == {"state": "pending", "made": False, "source": "approval request"}
    assert ops.approvals.get(SUE, req.id).state == "pending"  # still waits for a decision
    assert upstream(console, ops.ctx.client, gid)[0] == "active"


def test_a_request_left_approved_after_its_approval_was_recorded_is_finished(
        console: Console) -> None:
    ops = console.ops()
    gids = console.guests(2)
    req = ops.approvals.request(FAY, Change.apply_limit(gids, 2500, True), "pilot cohort")
    store = ApprovalStore(ops.ctx.audit_log.db)
    # the execution failed and its outcome was written, but the final move was lost
    assert store.transition(req.id, "pending", "approved", decided_by="fred")
    cid = req.record.correlation_id
    for outcome in ("requested", "failed"):
        ops.ctx.event("fred", ["finance"], "approval.approved", outcome, cid,
                      target_type="approval", target_id=str(req.id))
    ops, report = console.settle()
    assert_settled(console, report, ops)
    rec = ops.approvals.get(FRED, req.id).record
    assert rec.state == "executed" and rec.result["counts"] == {NOT_TRIED: 2}
    [ev] = list(ops.ctx.audit_log.iter_events(AuditFilter(outcome="reconciled")))
    assert ev.action == "approval.approved" and ev.after["state"] == "executed"
    assert_read_model_matches(console, gids)
