"""The soak bench's checks (bench/soak_checks.py) against the sandbox over HTTP and a real
store: a change the UI claimed is found or reported lost, a `requested` event without its
own outcome is unsettled, and the read model is compared with the sandbox."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bench.soak_checks import (
    Action,
    Claim,
    check_all,
    read_model_mismatches,
    read_sandbox,
    unsettled_events,
)
from services.operations import Operations
from services.operations.approval_policy import ApprovalPolicy, Change
from services.store import AuditLog, TokenVault, open_database
from services.store.approvals import ApprovalStore
from tests.services.operations.conftest import TIERS, actor, load_vault, make_client

FINANCE = actor("finance", name="finance")
SUPPORT = actor("support", name="support")
ADMIN = actor("admin", name="admin")


@pytest.fixture
def ops(sandbox: Any, tmp_path: Any) -> Iterator[Operations]:
    db = open_database(f"sqlite:///{tmp_path / 'console.db'}")
    vault = TokenVault(db, Fernet.generate_key())
    load_vault(vault, sandbox.tokens(), with_kind=True)
    client = make_client(sandbox)
    o = Operations(client, AuditLog(db), vault, TIERS, approval_policy=ApprovalPolicy())
    yield o
    client.close()
    db.dispose()


def _guests(sandbox: Any, n: int) -> list[str]:
    sc = sandbox.scenarios()
    special = {v["grant_id"] for v in sc.values() if isinstance(v, dict) and "grant_id" in v}
    special |= set(sc.get("revoked", [])) | set(sc.get("not_exported", []))
    found = [t["grant_id"] for t in sandbox.tokens()
             if t["kind"] == "guest" and not t["revoked"] and t["grant_id"] not in special]
    return found[:n]


def _action(kind: str, started: float, **kw: Any) -> Action:
    return Action("finance", kind, started, time.time(), "done", **kw)


def _lost(ops: Operations, sandbox: Any, actions: list[Action], grants: list[str]) -> list[str]:
    client = make_client(sandbox)
    try:
        return check_all(ops, sandbox, client, actions, grants).lost
    finally:
        client.close()


def test_a_claimed_limit_is_found_and_a_wrong_or_undone_one_is_lost(ops, sandbox) -> None:
    gid = _guests(sandbox, 1)[0]
    t0 = time.time()
    ops.limits.set_guest_limit(FINANCE, gid, 4321, True, "soak check", confirmed=True)
    claimed = _action("set_limit", t0, grants=(gid,), claims=[Claim("limit", gid, 4321)])
    assert _lost(ops, sandbox, [claimed], [gid]) == []

    # the page said another value: no succeeded event sets it
    wrong = _action("set_limit", t0, grants=(gid,), claims=[Claim("limit", gid, 999)])
    assert len(_lost(ops, sandbox, [wrong], [gid])) == 1

    # the sandbox lost it (changed behind the console's back, no later request recorded)
    client = make_client(sandbox)
    try:
        client.update_transaction_limit(gid, 1000, True)
    finally:
        client.close()
    lost = _lost(ops, sandbox, [claimed], [gid])
    assert len(lost) == 1 and "the sandbox has 1000" in lost[0]

    # a later change made through the console explains the new value: not lost
    ops.limits.set_guest_limit(FINANCE, gid, 2000, True, "soak check, later",
                                confirmed=True)
    assert _lost(ops, sandbox, [claimed], [gid]) == []


def test_a_held_then_approved_revoke_is_checked_from_the_stored_request(ops, sandbox) -> None:
    gid = _guests(sandbox, 2)[1]
    t0 = time.time()
    req = ops.approvals.request(SUPPORT, Change.revoke(gid), "customer asked")
    held = Action("support", "revoke", t0, time.time(), "held", grants=(gid,),
                  request_id=req.id)
    assert _lost(ops, sandbox, [held], [gid]) == []
    other = Action("support", "revoke", t0, time.time(), "held", grants=("cgrant_other",),
                   request_id=req.id)
    assert any(f"is for {gid}, not a grant the page had" in x
               for x in _lost(ops, sandbox, [other], [gid]))
    # a bulk request holds some of the grants selected (those that would change)
    selected = Action("finance", "bulk_large", t0, time.time(), "held",
                      grants=(gid, "cgrant_unchanged"), request_id=req.id)
    assert _lost(ops, sandbox, [selected], [gid]) == []
    ops.approvals.approve(ADMIN, req.id)
    approved = Action("admin", "approve", t0, time.time(), "done", request_id=req.id, value=1)
    assert _lost(ops, sandbox, [approved], [gid]) == []
    said_two = Action("admin", "approve", t0, time.time(), "done", request_id=req.id, value=2)
    assert any("the page said 2 succeeded" in x for x in _lost(ops, sandbox, [said_two], [gid]))
    missing = Action("admin", "approve", t0, time.time(), "done", request_id=req.id + 99)
    assert any("not in the approval store" in x for x in _lost(ops, sandbox, [missing], [gid]))


def test_a_requested_event_needs_its_own_outcome(ops, sandbox) -> None:
    gid = _guests(sandbox, 3)[2]
    cid = uuid.uuid4().hex
    # an approval's own pair and the change it ran share the correlation id: the change's
    # `requested` stays open although another event of the same id has an outcome
    ops.ctx.event("admin", ["admin"], "approval.approved", "requested", cid,
                  target_type="approval", target_id="7")
    ops.ctx.event("support", ["support"], "grant.revoke", "requested", cid,
                  target_type="grant", target_id=gid)
    ops.ctx.event("admin", ["admin"], "approval.approved", "succeeded", cid,
                  target_type="approval", target_id="7")
    events = list(ops.ctx.audit_log.iter_events())
    open_ = unsettled_events(events)
    assert [(e.action, e.target_id) for e in open_] == [("grant.revoke", gid)]

    ops.ctx.event("support", ["support"], "grant.revoke", "failed", cid,
                  target_type="grant", target_id=gid)
    assert unsettled_events(list(ops.ctx.audit_log.iter_events())) == []


def test_a_request_left_approved_is_stuck(ops, sandbox) -> None:
    gid = _guests(sandbox, 4)[3]
    req = ops.approvals.request(SUPPORT, Change.revoke(gid), "customer asked")
    ApprovalStore(ops.ctx.audit_log.db).transition(req.id, "pending", "approved",
                                                   decided_by="admin")
    client = make_client(sandbox)
    try:
        found = check_all(ops, sandbox, client, [], [gid])
    finally:
        client.close()
    assert len(found.stuck_requests) == 1 and f"request #{req.id}" in found.stuck_requests[0]
    assert not found.ok


def test_the_read_model_is_compared_with_the_sandbox(ops, sandbox) -> None:
    a, b = _guests(sandbox, 6)[4:6]
    client = make_client(sandbox)
    ops.readmodel.apply_grants(client.list_grants())
    try:
        # a limit the read model was never told: unknown, not a mismatch
        state = read_sandbox(sandbox, client)
        assert read_model_mismatches(ops, state, [a]) == ([], 1)
        ops.limits.set_guest_limit(FINANCE, a, 3333, True, "soak check", confirmed=True)
        state = read_sandbox(sandbox, client)
        assert read_model_mismatches(ops, state, [a]) == ([], 0)
        # changed upstream behind the console: the read model still says 3333
        client.update_transaction_limit(a, 5555, True)
        client.revoke_grant(b)
        state = read_sandbox(sandbox, client)
        found, _ = read_model_mismatches(ops, state, [a, b])
    finally:
        client.close()
    assert len(found) == 2
    assert any(a in x and "3333" in x and "5555" in x for x in found)
    assert any(b in x and "'active' in the read model" in x for x in found)
