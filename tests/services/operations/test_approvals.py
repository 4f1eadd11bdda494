"""Four-eyes approval (services/operations/approvals.py): policy, same person refused, a
second approver executes, two approvers at once (one execution, on SQLite and PostgreSQL),
expiry, permissions re-checked, grants changed in between, approvals off."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet

from services.operations import OperationError, Operations, PermissionDenied
from services.operations.approval_policy import ApprovalPolicy, Change
from services.store import AuditFilter, AuditLog, TokenVault, open_database
from services.store.approvals import ApprovalStore
from tests.services.store.conftest import (  # noqa: F401 (fixtures)
    _PG_SKIP_REASON,
    _pg_schema_url,
    db_url,
    pg_base_url,
)

from .conftest import TIERS, actor, load_vault, make_client

SAM = actor("support", name="sam")
SUE = actor("support", name="sue")
FAY = actor("finance", name="fay")
FRED = actor("finance", name="fred")
ADA = actor("admin", name="ada")
ROLES = {"sam": ["support"], "sue": ["support"], "fay": ["finance"], "fred": ["finance"],
         "ada": ["admin"]}


class Env:
    """Operations over one database (SQLite file or PostgreSQL schema) and the sandbox;
    `replica()` builds a second console over the same database."""

    def __init__(self, sandbox: Any, url: str, policy: ApprovalPolicy) -> None:
        self.sandbox, self.url, self.policy = sandbox, url, policy
        self.roles: dict[str, list[str] | None] = dict(ROLES)
        self.key = Fernet.generate_key()
        self._open: list[Any] = []
        self.ops = self.replica(load=True)

    def replica(self, *, load: bool = False) -> Operations:
        db = open_database(self.url)
        vault = TokenVault(db, self.key)
        if load:
            load_vault(vault, self.sandbox.tokens(), with_kind=True)
        client = make_client(self.sandbox)
        ops = Operations(client, AuditLog(db), vault, TIERS, max_workers=4,
                         approval_policy=self.policy)
        ops.approvals.roles_of = self.roles.get
        self._open.append((client, db))
        return ops

    def close(self) -> None:
        for client, db in self._open:
            client.close()
            db.dispose()

    def events(self, **flt: Any) -> list[Any]:
        page = self.ops.ctx.audit_log.query(AuditFilter(**flt), page=1, page_size=1000)
        return list(reversed(page.events))

    def guests(self, n: int) -> list[str]:
        return [t["grant_id"] for t in self.sandbox.tokens()
                if t["kind"] == "guest" and not t["revoked"]][:n]

    def active(self, gid: str) -> bool:
        return any(t["grant_id"] == gid and not t["revoked"] for t in self.sandbox.tokens())

    def limit_of(self, gid: str) -> int | None:
        token = next(t["access_token"] for t in self.sandbox.tokens() if t["grant_id"] == gid)
        return self.ops.ctx.client.get_userinfo(token).transaction_limit

    def upstream(self, method: str, prefix: str) -> list[dict]:
        return [r for r in self.sandbox.requests_log()
                if r["method"] == method and r["path"].startswith(prefix)]


@pytest.fixture
def env(sandbox: Any, tmp_path: Any, migrated_sqlite: Callable[[Any], str]) -> Iterator[Env]:
    e = Env(sandbox, migrated_sqlite(tmp_path / "console.db"), ApprovalPolicy())
    sandbox.clear_requests_log()
    yield e
    e.close()


@pytest.fixture
def any_env(sandbox: Any, db_url: str) -> Iterator[Env]:  # noqa: F811
    e = Env(sandbox, db_url, ApprovalPolicy())
    sandbox.clear_requests_log()
    yield e
    e.close()


# --- policy -------------------------------------------------------------------------------


def test_policy_defaults(env: Env) -> None:
    na = env.ops.approvals.needs_approval
    g = env.guests(12)
    assert na(Change.revoke(g[0])) == "A revoke cannot be undone."
    assert na(Change.guest_limit(g[0], 100_000, True)) is None
    assert "above 100,000" in (na(Change.guest_limit(g[0], 100_001, True)) or "")
    assert "limiter off" in (na(Change.guest_limit(g[0], None, False)) or "")
    assert na(Change.apply_tier(g[:10], "Free")) is None
    assert "12 grants" in (na(Change.apply_tier(g, "Free")) or "")
    assert "limiter off" in (na(Change.apply_tier(g[:1], "Unlimited")) or "")
    assert na(Change.apply_limit(g[:10], 5000, True)) is None
    assert na(Change.apply_limit(g[:2], 500_000, True)) is not None


def test_approvals_switched_off(sandbox: Any, tmp_path: Any) -> None:
    e = Env(sandbox, f"sqlite:///{tmp_path / 'off.db'}", ApprovalPolicy.off())
    try:
        g = e.guests(12)
        assert e.ops.approvals.needs_approval(Change.revoke(g[0])) is None
        assert e.ops.approvals.needs_approval(Change.apply_tier(g, "Unlimited")) is None
    finally:
        e.close()


def test_policy_thresholds_are_configurable() -> None:
    p = ApprovalPolicy(bulk_over=2, limit_over=50)
    assert p.why("guest.tier.apply.bulk", 3, 10, True)
    assert p.why("guest.limit.update", 1, 51, True)
    assert p.why("guest.limit.update", 1, 50, True) is None


# --- request, same person, second approver ------------------------------------------------


def test_request_records_dry_run_and_audits(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close",
                                    "SUP-1")
    assert req.state == "pending" and req.record.requester_username == "sam"
    assert req.items[0]["before"] == "active" and req.items[0]["after"] == "revoked"
    assert req.record.expires_at - req.record.created_at == timedelta(hours=24)
    assert env.active(gid)  # nothing changed yet
    ev = env.events(action="approval.requested")
    assert [(e.actor_username, e.outcome, e.target_id, e.ticket) for e in ev] == [
        ("sam", "succeeded", str(req.id), "SUP-1")]
    assert ev[0].correlation_id == req.record.correlation_id


def test_a_revoke_request_names_the_customer_and_refuses_what_is_not_active(env: Env) -> None:
    gid = env.guests(1)[0]
    stored = env.ops.ctx.vault.get(gid)
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    assert stored is not None and req.items[0]["customer_ref"] == stored.customer_ref
    gone = next(t["grant_id"] for t in env.sandbox.tokens() if t["revoked"])
    for gid in (gone, "cgrant_nobody_has_this_one"):  # revoked already; unknown
        with pytest.raises(OperationError) as info:
            env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
        assert info.value.code == "GRANT_NOT_ACTIVE"


def test_the_same_person_in_another_case_is_refused(env: Env) -> None:
    """An approver named `SUPPORT` is `support`: not a second person."""
    env.roles["support"] = ["support"]
    requester = actor("support", name="support")
    shouting = actor("support", name="SUPPORT")
    assert shouting == requester
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(requester, Change.revoke(gid), "customer asked to close")
    with pytest.raises(OperationError) as err:
        env.ops.approvals.approve(shouting, req.id)
    assert err.value.code == "SAME_PERSON"
    assert env.active(gid) and not env.upstream("POST", "/token/revoke")
    assert env.ops.approvals.store.get(req.id).state == "pending"  # type: ignore[union-attr]
    assert [(e.actor_username, e.error_code) for e in env.events(outcome="denied")] == [
        ("support", "SAME_PERSON")]


def test_request_needs_the_permission(env: Env) -> None:
    with pytest.raises(PermissionDenied):
        env.ops.approvals.request(FAY, Change.revoke(env.guests(1)[0]), "not mine to ask")
    assert [e.outcome for e in env.events(action="approval.requested")] == ["denied"]


def test_same_person_refused(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    with pytest.raises(OperationError) as err:
        env.ops.approvals.approve(SAM, req.id)
    assert err.value.code == "SAME_PERSON"
    with pytest.raises(OperationError) as err:
        env.ops.approvals.reject(SAM, req.id, "changed my mind")
    assert err.value.code == "SAME_PERSON"
    assert env.active(gid) and not env.upstream("POST", "/token/revoke")
    assert env.ops.approvals.store.get(req.id).state == "pending"  # type: ignore[union-attr]
    denied = env.events(outcome="denied")
    assert [(e.action, e.error_code) for e in denied] == [
        ("approval.approved", "SAME_PERSON"), ("approval.rejected", "SAME_PERSON")]


def test_approver_needs_the_permission(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    with pytest.raises(PermissionDenied):
        env.ops.approvals.approve(FAY, req.id)  # finance may not revoke
    assert env.active(gid)
    assert [r.id for r in env.ops.approvals.list_waiting_for(FAY)] == []
    assert [r.id for r in env.ops.approvals.list_waiting_for(SUE)] == [req.id]
    assert [r.id for r in env.ops.approvals.list_waiting_for(SAM)] == []  # own request
    assert env.ops.approvals.waiting_count(ADA) == 1


def test_second_approver_executes_once_and_links_by_correlation_id(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    done = env.ops.approvals.approve(SUE, req.id)
    assert done.state == "executed" and done.record.decided_by == "sue"
    assert [i["outcome"] for i in done.result_items] == ["succeeded"]
    assert not env.active(gid)
    assert len(env.upstream("POST", "/token/revoke")) == 1
    cid = req.record.correlation_id
    linked = [(e.actor_username, e.action, e.outcome) for e in env.events()
              if e.correlation_id == cid]
    assert linked == [
        ("sam", "approval.requested", "succeeded"),
        ("sue", "approval.approved", "requested"),
        ("sam", "grant.revoke", "requested"),
        ("sam", "grant.revoke", "succeeded"),
        ("sue", "approval.approved", "succeeded"),
    ]
    with pytest.raises(OperationError) as err:  # a second approval executes nothing
        env.ops.approvals.approve(ADA, req.id)
    assert err.value.code == "ALREADY_DECIDED"
    assert len(env.upstream("POST", "/token/revoke")) == 1
    assert [r.id for r in env.ops.approvals.history(ADA)] == [req.id]
    assert [r.id for r in env.ops.approvals.list_mine(SAM)] == [req.id]


def test_reject_and_cancel(env: Env) -> None:
    g1, g2 = env.guests(2)
    r1 = env.ops.approvals.request(SAM, Change.revoke(g1), "customer asked to close")
    r2 = env.ops.approvals.request(SAM, Change.revoke(g2), "customer asked to close")
    with pytest.raises(OperationError):
        env.ops.approvals.reject(SUE, r1.id, "")  # a reason is required
    rej = env.ops.approvals.reject(SUE, r1.id, "no ticket for this")
    assert rej.state == "rejected" and rej.record.decision_reason == "no ticket for this"
    with pytest.raises(OperationError) as err:
        env.ops.approvals.cancel(SUE, r2.id)
    assert err.value.code == "NOT_REQUESTER"
    assert env.ops.approvals.cancel(SAM, r2.id).state == "cancelled"
    with pytest.raises(OperationError) as err:
        env.ops.approvals.approve(SUE, r2.id)
    assert err.value.code == "ALREADY_DECIDED"
    assert env.active(g1) and env.active(g2)
    assert [(e.action, e.outcome) for e in env.events(action="approval.rejected")] == [
        ("approval.rejected", "requested"), ("approval.rejected", "succeeded")]
    assert [e.outcome for e in env.events(action="approval.cancelled")] == [
        "denied", "requested", "succeeded"]


# --- two approvers at once ----------------------------------------------------------------


def test_two_approvers_at_once_execute_once(any_env: Env) -> None:
    """Two consoles (own engines) approve the same request at the same moment: one wins,
    the other is told it is already decided; Kryptos sees one revoke."""
    e = any_env
    gid = e.guests(1)[0]
    req = e.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    replicas = [e.replica(), e.replica()]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def approve(ops: Operations, who: Any) -> None:
        barrier.wait()
        try:
            ops.approvals.approve(who, req.id)
            out = "executed"
        except OperationError as exc:
            out = exc.code or "error"
        with lock:
            outcomes.append(out)

    threads = [threading.Thread(target=approve, args=(ops, who))
               for ops, who in zip(replicas, (SUE, ADA), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["ALREADY_DECIDED", "executed"]
    assert len(e.upstream("POST", "/token/revoke")) == 1
    assert [ev.outcome for ev in e.events(action="grant.revoke")] == ["requested", "succeeded"]
    assert sorted(ev.outcome for ev in e.events(action="approval.approved")) == [
        "failed", "requested", "requested", "succeeded"]
    assert e.ops.approvals.store.get(req.id).state == "executed"  # type: ignore[union-attr]


def test_store_transition_is_won_once(db_url: str) -> None:  # noqa: F811
    """Eight threads, own engines, one conditional UPDATE each: exactly one wins."""
    dbs = [open_database(db_url) for _ in range(8)]
    try:
        store = ApprovalStore(dbs[0])
        rec = store.create(action="grant.revoke", params={"grant_ids": ["g"]}, requester="sam",
                           roles=["support"], reason="a reason", ticket=None,
                           ttl=timedelta(hours=1), correlation_id="c" * 32)
        barrier = threading.Barrier(len(dbs))
        wins: list[bool] = []

        def claim(db: Any, i: int) -> None:
            barrier.wait()
            wins.append(ApprovalStore(db).transition(rec.id, "pending", "approved",
                                                     decided_by=f"u{i}", unexpired=True))

        threads = [threading.Thread(target=claim, args=(db, i)) for i, db in enumerate(dbs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(wins) == [False] * 7 + [True]
        got = store.get(rec.id)
        assert got is not None and got.state == "approved" and got.decided_by
    finally:
        for db in dbs:
            db.dispose()


_CLAIM = """
import os, sys, time
from services.store.approvals import ApprovalStore
from services.store.db import open_database
url, rid, who, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
db = open_database(url)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
won = ApprovalStore(db).transition(rid, "pending", "approved", decided_by=who, unexpired=True)
print("won" if won else "lost", flush=True)
db.dispose()
"""


def test_store_transition_is_won_once_across_processes(db_url: str, tmp_path) -> None:  # noqa: F811
    """Four processes (replicas) take the same request at once: exactly one wins. (Plain
    subprocesses: multiprocessing's spawn re-imports the test run's __main__.)"""
    import subprocess
    import sys

    db = open_database(db_url)
    go = tmp_path / "go"
    try:
        rec = ApprovalStore(db).create(
            action="grant.revoke", params={"grant_ids": ["g"]}, requester="sam",
            roles=["support"], reason="a reason", ticket=None, ttl=timedelta(hours=1),
            correlation_id="d" * 32)
        procs = [subprocess.Popen([sys.executable, "-c", _CLAIM, db_url, str(rec.id), f"p{i}",
                                   str(go)], stdout=subprocess.PIPE, text=True)
                 for i in range(4)]
        for p in procs:  # every one connected before any goes
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        results = []
        for i, p in enumerate(procs):
            out, _ = p.communicate(timeout=60)
            assert p.returncode == 0
            results.append((f"p{i}", out.strip() == "won"))
        assert sorted(won for _, won in results) == [False, False, False, True]
        winner = next(who for who, won in results if won)
        got = ApprovalStore(db).get(rec.id)
        assert got is not None and got.state == "approved" and got.decided_by == winner
    finally:
        db.dispose()


# --- expiry -------------------------------------------------------------------------------


def test_expiry_on_read_and_audited_once(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    assert env.ops.approvals.expire_due() == 0
    later = datetime.now(UTC) + timedelta(hours=25)
    assert env.ops.approvals.expire_due(later) == 1
    assert env.ops.approvals.expire_due(later) == 0  # audited once
    with pytest.raises(OperationError) as err:
        env.ops.approvals.approve(SUE, req.id)
    assert err.value.code == "ALREADY_DECIDED"
    assert env.active(gid)
    ev = env.events(action="approval.expired")
    assert [(e.actor_username, e.target_id) for e in ev] == [("system", str(req.id))]
    assert ev[0].correlation_id == req.record.correlation_id


def test_expired_on_read_with_a_zero_ttl(sandbox: Any, tmp_path: Any) -> None:
    e = Env(sandbox, f"sqlite:///{tmp_path / 'ttl.db'}", ApprovalPolicy(ttl_hours=0))
    try:
        req = e.ops.approvals.request(SAM, Change.revoke(e.guests(1)[0]), "customer asked")
        assert e.ops.approvals.list_waiting_for(SUE) == []  # expired when read
        assert e.ops.approvals.store.get(req.id).state == "expired"  # type: ignore[union-attr]
    finally:
        e.close()


def test_expiry_timer(sandbox: Any, tmp_path: Any) -> None:
    e = Env(sandbox, f"sqlite:///{tmp_path / 'timer.db'}", ApprovalPolicy(ttl_hours=0))
    try:
        req = e.ops.approvals.request(SAM, Change.revoke(e.guests(1)[0]), "customer asked")
        stop = e.ops.approvals.start_expiry_timer(0.05)
        try:
            # Bounded generously (a loaded CI machine): the state and its event, both.
            for _ in range(400):
                if (e.ops.approvals.store.get(req.id).state == "expired"  # type: ignore
                        and e.events(action="approval.expired")):
                    break
                threading.Event().wait(0.05)
        finally:
            stop.set()
        assert e.ops.approvals.store.get(req.id).state == "expired"  # type: ignore
        assert len(e.events(action="approval.expired")) == 1
    finally:
        e.close()


# --- re-checks at execution ---------------------------------------------------------------


def test_requester_permission_removed_before_approval(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    env.roles["sam"] = ["viewer"]
    with pytest.raises(OperationError) as err:
        env.ops.approvals.approve(SUE, req.id)
    assert err.value.code == "REQUESTER_NOT_PERMITTED"
    env.roles["sam"] = None  # removed from the users file
    with pytest.raises(OperationError) as err:
        env.ops.approvals.approve(SUE, req.id)
    assert err.value.code == "REQUESTER_NOT_PERMITTED"
    assert env.active(gid) and not env.upstream("POST", "/token/revoke")
    assert env.ops.approvals.store.get(req.id).state == "pending"  # type: ignore[union-attr]
    env.roles["sam"] = ["support"]
    assert env.ops.approvals.approve(SUE, req.id).state == "executed"


def test_approver_permission_removed(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    with pytest.raises(PermissionDenied):
        env.ops.approvals.approve(actor("viewer", name="sue"), req.id)
    assert env.active(gid)


def test_revoked_in_between_is_not_changed(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    env.ops.ctx.client.revoke_grant(gid)  # someone else, elsewhere
    env.sandbox.clear_requests_log()
    done = env.ops.approvals.approve(SUE, req.id)
    item = done.result_items[0]
    assert item["outcome"] == "skipped" and item["error_code"] == "CHANGED_SINCE_REQUEST"
    assert not env.upstream("POST", "/token/revoke")
    assert not env.events(action="grant.revoke")


def test_bulk_limit_grant_changed_in_between(env: Env) -> None:
    g = env.guests(3)
    req = env.ops.approvals.request(FAY, Change.apply_limit(g, 250_000, True),
                                    "large customers raised")
    befores = [i["before"] for i in req.items]
    assert all(i["after"] == 250_000 for i in req.items)
    env.ops.ctx.client.update_transaction_limit(g[1], transaction_limit=4321,
                                                enable_limiter=True)
    done = env.ops.approvals.approve(FRED, req.id)
    by = {i["grant_id"]: i for i in done.result_items}
    assert by[g[1]]["outcome"] == "skipped"
    assert by[g[1]]["error_code"] == "CHANGED_SINCE_REQUEST"
    assert by[g[0]]["outcome"] == by[g[2]]["outcome"] == "succeeded"
    assert env.limit_of(g[0]) == env.limit_of(g[2]) == 250_000
    assert env.limit_of(g[1]) == 4321
    assert befores[1] != 4321
    cid = req.record.correlation_id
    summary = env.events(action="guest.limit.update.bulk")
    assert summary and all(e.correlation_id == cid for e in summary)
    assert [e.actor_username for e in summary] == ["fay", "fay"]  # the requester's change


def test_single_limit_above_threshold_then_approved(env: Env) -> None:
    gid = env.guests(1)[0]
    change = Change.guest_limit(gid, 150_000, True)
    assert env.ops.approvals.needs_approval(change)
    req = env.ops.approvals.request(FAY, change, "VIP customer, contract 77")
    assert req.items[0]["after"] == 150_000
    done = env.ops.approvals.approve(ADA, req.id)
    assert done.result_items[0]["outcome"] == "succeeded"
    assert env.limit_of(gid) == 150_000
    ev = env.events(action="guest.limit.update")
    assert [e.correlation_id for e in ev] == [req.record.correlation_id] * 2


def test_tier_on_many_grants(env: Env) -> None:
    g = env.guests(12)
    req = env.ops.approvals.request(FAY, Change.apply_tier(g, "Plus"), "spring promotion")
    done = env.ops.approvals.approve(FRED, req.id)
    assert done.record.result["counts"] == {"succeeded": 12}  # type: ignore[index]
    assert all(env.limit_of(x) == 10_000 for x in g[:3])


def test_a_failed_read_at_approval_leaves_the_request_pending(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    env.sandbox.set_fault(path="/token/grants", status=503, code="SERVICE_UNAVAILABLE",
                          count=20)
    with pytest.raises(OperationError):
        env.ops.approvals.approve(SUE, req.id)
    assert env.ops.approvals.store.get(req.id).state == "pending"  # type: ignore[union-attr]
    assert env.active(gid)
    env.sandbox.clear_faults()
    assert env.ops.approvals.approve(SUE, req.id).state == "executed"
    assert not env.active(gid)


def test_find_and_decide_many_each_checked_on_both_databases(any_env: Env) -> None:
    """`find` filters in one query (a grant id by the pending grants' index); `decide_many`
    decides each request by itself: the approver's own is refused, the others go on."""
    e = any_env
    g1, g2, g3 = e.guests(3)
    r1 = e.ops.approvals.request(SAM, Change.revoke(g1), "customer asked")
    r2 = e.ops.approvals.request(ADA, Change.revoke(g2), "customer asked")
    r3 = e.ops.approvals.request(SUE, Change.revoke(g3), "customer asked")
    find = e.ops.approvals.find
    assert [r.id for r in find(ADA)] == [r3.id, r2.id, r1.id]
    assert [r.id for r in find(ADA, requester="sam")] == [r1.id]
    assert [r.id for r in find(ADA, query=g2)] == [r2.id]
    assert [r.id for r in find(ADA, query=f"#{r3.id}")] == [r3.id]
    assert find(ADA, kind="limit") == []
    done = e.ops.approvals.decide_many(ADA, [r1.id, r2.id, r3.id], "approve")
    assert [(rid, err.code if err else None) for rid, _, err in done] == [
        (r1.id, None), (r2.id, "SAME_PERSON"), (r3.id, None)]
    assert not e.active(g1) and e.active(g2) and not e.active(g3)
    assert [r.id for r in find(ADA, state="pending")] == [r2.id]
    assert [r.id for r in find(ADA, state="executed")] == [r3.id, r1.id]
    assert find(ADA, query=g2, state="executed") == []
    with pytest.raises(OperationError):
        e.ops.approvals.decide_many(SUE, [r2.id], "reject", "")  # no reason: nothing decided
    assert e.ops.approvals.decide_many(SUE, [r2.id], "reject", "no ticket")[0][2] is None
    assert [r.id for r in find(ADA, state="rejected")] == [r2.id]
