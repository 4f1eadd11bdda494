"""Four-eyes at the use-case seam (services/operations/four_eyes.py): a direct call with
approvals on is held and Kryptos is unchanged; only an approval's proof lets a held change
through; the bulk threshold counts a person's recent changes; one pending request per grant
and kind (on SQLite and PostgreSQL, across replicas); both people credited; the real
outcome of each grant; the risky-change confirmation demanded by the use case."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboard.timeline import audit_text
from services.operations import (
    BulkResult,
    ConfirmationRequired,
    GrantFilter,
    Held,
    LimitChange,
    OperationError,
)
from services.operations.approval_policy import ApprovalPolicy, Change
from services.operations.four_eyes import ApprovalExecution
from services.operations.history import collapse, describe_event
from services.store import Database, open_database
from services.store.approvals import AlreadyRequested, ApprovalStore
from tests.services.store.conftest import (  # noqa: F401 (fixtures)
    _PG_SKIP_REASON,
    _pg_schema_url,
    db,
    db_url,
    pg_base_url,
)

from .test_approvals import ADA, FAY, FRED, SAM, SUE, Env

# --- the review's attack: the use cases called directly -----------------------------------


@pytest.fixture
def env(sandbox: Any, tmp_path: Any, migrated_sqlite: Callable[[Any], str]) -> Iterator[Env]:
    e = Env(sandbox, migrated_sqlite(tmp_path / "console.db"), ApprovalPolicy())
    sandbox.clear_requests_log()
    yield e
    e.close()


@pytest.fixture
def any_env(sandbox: Any, db: Database) -> Iterator[Env]:  # noqa: F811
    e = Env(sandbox, db.url.render_as_string(hide_password=False), ApprovalPolicy())
    sandbox.clear_requests_log()
    yield e
    e.close()


def test_support_revoking_directly_is_held_and_kryptos_unchanged(env: Env) -> None:
    gid = env.guests(1)[0]
    out = env.ops.grants.revoke_grant(SAM, gid, "customer asked to close", "SUP-9")
    assert isinstance(out, Held)
    assert out.why == "A revoke cannot be undone."
    assert out.request.state == "pending" and out.request.record.requester_username == "sam"
    assert env.active(gid) and not env.upstream("POST", "/token/revoke")
    assert not env.events(action="grant.revoke")
    assert [e.outcome for e in env.events(action="approval.requested")] == ["succeeded"]


def test_finance_setting_five_million_directly_is_held_and_kryptos_unchanged(env: Env) -> None:
    gid = env.guests(1)[0]
    before = env.limit_of(gid)
    out = env.ops.limits.set_guest_limit(FAY, gid, 5_000_000, True, "VIP customer")
    assert isinstance(out, Held) and "above 100,000" in out.why
    assert out.request.items[0]["after"] == 5_000_000
    assert env.limit_of(gid) == before
    assert not env.upstream("PATCH", "/developer/grants/")
    assert not env.events(action="guest.limit.update")
    done = env.ops.approvals.approve(FRED, out.request.id)
    assert done.result_items[0]["outcome"] == "succeeded"
    assert env.limit_of(gid) == 5_000_000


def test_bulk_runs_and_their_resume_ask_the_policy(env: Env) -> None:
    g = env.guests(12)
    held = env.ops.limits.apply_tier(FAY, g, "Plus", "spring promotion")
    assert isinstance(held, Held) and "12 grants" in held.why
    held2 = env.ops.limits.apply_limit(FAY, env.guests(13)[12:], None, False, "lift the cap")
    assert isinstance(held2, Held) and "limiter off" in held2.why
    assert not env.upstream("PATCH", "/developer/grants/")
    env.ops.approvals.cancel(FAY, held.request.id)
    # An interrupted run (every PATCH failed, approvals off on another console) is resumed
    # here with approvals on: the policy is asked for the remaining grants.
    off = env.replica()
    off.four_eyes.policy = ApprovalPolicy.off()
    for x in g[:3]:
        env.sandbox.set_fault(path=f"/developer/grants/{x}/transaction-limit", status=400,
                              code="INVALID_REQUEST", count=10)
    run = off.limits.apply_limit(FAY, g[:3], 20_000, True, "raise a little")
    env.sandbox.clear_faults()
    assert isinstance(run, BulkResult) and run.count("failed") == 3
    env.ops.four_eyes.policy = ApprovalPolicy(bulk_over=2)
    resumed = env.ops.limits.resume_bulk(FAY, str(run.bulk_id))
    assert isinstance(resumed, Held) and "3 grants" in resumed.why
    assert resumed.request.change.grant_ids == tuple(g[:3])
    assert all(env.limit_of(x) != 20_000 for x in g[:3])


def test_only_a_live_approval_lets_a_held_change_through(env: Env) -> None:
    gid = env.guests(1)[0]
    req = env.ops.approvals.request(SAM, Change.revoke(gid), "customer asked to close")
    rec = env.ops.approvals.store.get(req.id)
    assert rec is not None
    forged = ApprovalExecution(object(), rec, "sue")  # not the gate's own
    with pytest.raises(OperationError) as info:
        env.ops.grants.revoke_grant(SAM, gid, "customer asked", approval=forged)
    assert info.value.code == "APPROVAL_INVALID"
    with pytest.raises(OperationError):  # the gate's, but the request is still pending
        env.ops.four_eyes.issue(rec)
    assert env.active(gid)
    env.ops.approvals.approve(SUE, req.id)
    done = env.ops.approvals.store.get(req.id)
    assert done is not None and done.state == "executed"
    other = env.guests(1)[0]
    replay = ApprovalExecution(env.ops.four_eyes._key, done, "sue")  # executed: spent
    with pytest.raises(OperationError) as info:
        env.ops.grants.revoke_grant(SAM, other, "customer asked", approval=replay)
    assert info.value.code == "APPROVAL_INVALID" and env.active(other)


# --- the bulk window -------------------------------------------------------------------------


def test_splitting_a_run_is_held_on_the_eleventh_grant(env: Env) -> None:
    g = env.guests(12)
    first = env.ops.limits.apply_limit(FAY, g[:10], 20_000, True, "ten of them")
    assert isinstance(first, BulkResult) and first.count("succeeded") == 10
    note = env.ops.four_eyes.form_note("limit", FAY) or ""
    assert "You changed 10 grants in the last hour: a change that takes you past 10" in note
    out = env.ops.limits.set_guest_limit(FAY, g[10], 20_000, True, "one more")
    assert isinstance(out, Held)
    assert out.why == "You changed 10 grants in the last hour; with this one 11, more than 10."
    assert env.limit_of(g[10]) != 20_000
    # Another person's count is their own.
    assert isinstance(env.ops.limits.set_guest_limit(FRED, g[11], 20_000, True, "mine too"),
                      LimitChange)


def test_changes_made_by_approvals_and_old_ones_do_not_count(env: Env) -> None:
    g = env.guests(12)
    req = env.ops.approvals.request(FAY, Change.apply_tier(g[:11], "Plus"), "promotion")
    env.ops.approvals.approve(FRED, req.id)
    assert env.ops.four_eyes.recent_changes(FAY) == 0
    env.ops.limits.apply_limit(FAY, g[:10], 20_000, True, "ten of them")
    assert env.ops.four_eyes.recent_changes(FAY) == 10
    later = datetime.now(UTC) + timedelta(hours=1, seconds=5)
    assert env.ops.four_eyes.recent_changes(FAY, now=later) == 0  # out of the window
    env.ops.four_eyes.policy = ApprovalPolicy(bulk_window=600)
    assert env.ops.four_eyes.recent_changes(FAY, now=later - timedelta(minutes=50)) == 0
    assert env.ops.four_eyes.recent_changes(FAY) == 10


# --- one pending request per grant and kind ------------------------------------------------


def test_a_second_request_for_the_same_grant_names_the_waiting_one(env: Env) -> None:
    gid = env.guests(1)[0]
    first = env.ops.grants.revoke_grant(SAM, gid, "customer asked to close")
    assert isinstance(first, Held)
    for call in (lambda: env.ops.grants.revoke_grant(SUE, gid, "closing it too"),
                 lambda: env.ops.approvals.request(SUE, Change.revoke(gid), "again")):
        with pytest.raises(OperationError) as info:
            call()
        msg = info.value.user_message
        assert info.value.code == "ALREADY_REQUESTED"
        assert f"#{first.request.id}" in msg and "by sam" in msg and "Approvals page" in msg
        assert "UTC" in msg
    # A limit change is another kind: it may wait beside the revoke.
    lim = env.ops.limits.set_guest_limit(FAY, gid, 500_000, True, "VIP customer")
    assert isinstance(lim, Held)
    # A bulk request that overlaps the waiting limit request is refused as a whole.
    with pytest.raises(OperationError) as info:
        env.ops.limits.apply_tier(FAY, [*env.guests(11), gid], "Plus", "promotion")
    assert info.value.code == "ALREADY_REQUESTED" and f"#{lim.request.id}" in (
        info.value.user_message)
    env.ops.approvals.reject(SUE, first.request.id, "not confirmed by the customer")
    again = env.ops.grants.revoke_grant(SUE, gid, "confirmed now")
    assert isinstance(again, Held)
    assert [r.id for r in env.ops.approvals.pending_for_grant(SAM, gid)] == [
        lim.request.id, again.request.id]


def test_one_pending_request_per_grant_across_replicas(db_url: str) -> None:  # noqa: F811
    """Eight consoles (own engines) ask for the same grant's revoke at once: one request
    is stored, seven are told which one waits."""
    dbs = [open_database(db_url) for _ in range(8)]
    try:
        barrier = threading.Barrier(len(dbs))
        won: list[int] = []
        refused: list[int] = []
        lock = threading.Lock()

        def ask(db: Any, i: int) -> None:
            barrier.wait()
            try:
                rec = ApprovalStore(db).create(
                    action="grant.revoke", params={"grant_ids": ["g_race"]},
                    requester=f"user{i}", roles=["support"], reason="a reason", ticket=None,
                    ttl=timedelta(hours=1), correlation_id=f"c{i}",
                    grants=["g_race"], kind="revoke")
            except AlreadyRequested as exc:
                with lock:
                    refused.append(exc.waiting.id)
                return
            with lock:
                won.append(rec.id)

        threads = [threading.Thread(target=ask, args=(db, i)) for i, db in enumerate(dbs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(won) == 1 and refused == [won[0]] * 7
        store = ApprovalStore(dbs[0])
        assert [r.id for r in store.pending_for_grant("g_race")] == won
        assert store.transition(won[0], "pending", "cancelled")
        assert store.pending_for_grant("g_race") == []  # free for a new request
    finally:
        for db in dbs:
            db.dispose()


def test_the_grants_page_filter_and_the_before_now(env: Env) -> None:
    env.ops.readmodel.apply_grants(env.ops.ctx.client.list_grants(), env.ops.ctx.vault.list())
    g = env.guests(2)
    held = env.ops.limits.set_guest_limit(FAY, g[0], 500_000, True, "VIP customer")
    assert isinstance(held, Held)
    page = env.ops.grants.page(FAY, GrantFilter(awaiting_approval=True))
    assert [r.grant_id for r in page.rows] == [g[0]] and page.total == 1
    env.ops.readmodel.apply_limit_change(g[0], 4321, True)
    assert env.ops.approvals.before_now(FRED, held.request) == {g[0]: 4321}
    assert held.request.items[0]["before"] != 4321
    env.ops.approvals.cancel(FAY, held.request.id)
    assert env.ops.grants.page(FAY, GrantFilter(awaiting_approval=True)).total == 0


# --- outcomes and credit -------------------------------------------------------------------


def test_a_skipped_grant_is_never_shown_as_executed(env: Env) -> None:
    g = env.guests(3)
    req = env.ops.approvals.request(FAY, Change.apply_limit(g, 250_000, True), "raise")
    env.ops.ctx.client.update_transaction_limit(g[1], transaction_limit=4321,
                                                enable_limiter=True)
    done = env.ops.approvals.approve(FRED, req.id)
    assert done.outcome() == ("approved; executed for 2 of 3 grants "
                              "(1 skipped)")
    everything = env.ops.approvals.request(FAY, Change.apply_limit(g[1:2], 250_000, True),
                                           "raise the last one")
    env.ops.ctx.client.update_transaction_limit(g[1], transaction_limit=1234,
                                                enable_limiter=True)
    nothing = env.ops.approvals.approve(FRED, everything.id)
    assert nothing.outcome() == "approved; nothing executed (1 skipped)"
    ok = env.ops.approvals.request(FAY, Change.apply_limit(g[:1], 260_000, True), "again")
    assert env.ops.approvals.approve(FRED, ok.id).outcome() == "approved and executed"


def test_both_people_are_credited(env: Env) -> None:
    gid = env.guests(1)[0]
    held = env.ops.grants.revoke_grant(SAM, gid, "customer asked to close")
    assert isinstance(held, Held)
    env.ops.approvals.approve(SUE, held.request.id)
    n = held.request.id
    events = env.events(action="grant.revoke")
    assert [(e.actor_username, e.params["approved_by"], e.params["approval_request"])
            for e in events if e.outcome == "requested"] == [("sam", "sue", n)]
    final = collapse(env.ops.grants.grant_history(ADA, gid))[0]
    assert describe_event(final).endswith(f"done, approved by sue (request #{n})")
    said, _ = audit_text(final)
    assert said.startswith(f"Grant revoked by sam, approved by sue (request #{n})")
    # Bulk: every grant's events carry both.
    g = env.guests(12)
    bulk = env.ops.limits.apply_tier(FAY, g, "Plus", "promotion")
    assert isinstance(bulk, Held)
    env.ops.approvals.approve(ADA, bulk.request.id)
    per_grant = [e for e in env.events(action="guest.tier.apply") if e.outcome == "requested"]
    assert len(per_grant) == 12
    assert {(e.actor_username, e.params["approved_by"], e.params["approval_request"])
            for e in per_grant} == {("fay", "ada", bulk.request.id)}


# --- confirmations demanded by the use case --------------------------------------------------


def test_a_big_cut_or_limiter_off_needs_confirmation(sandbox: Any, tmp_path: Any) -> None:
    e = Env(sandbox, f"sqlite:///{tmp_path / 'off.db'}", ApprovalPolicy.off())
    try:
        gid = e.guests(1)[0]
        before = e.limit_of(gid)
        assert isinstance(before, int) and before > 2
        e.sandbox.clear_requests_log()
        n_events = len(e.events())
        cut = before // 2 - 1
        for kw in ({"transaction_limit": cut}, {"enable_limiter": False}):
            with pytest.raises(ConfirmationRequired) as info:
                e.ops.limits.set_guest_limit(FAY, gid, reason="downgrade", **kw)
            assert info.value.question.startswith(
                "This cuts the limit by more than half" if kw.get("transaction_limit")
                else "This switches the limiter off")
        with pytest.raises(ConfirmationRequired):
            e.ops.limits.apply_tier(FAY, [gid], "Free", "downgrade")
        assert not e.upstream("PATCH", "/developer/grants/")
        assert len(e.events()) == n_events  # nothing asked, nothing recorded
        assert e.ops.limits.confirmation_for(FAY, gid, before - 1) is None
        done = e.ops.limits.set_guest_limit(FAY, gid, cut, reason="downgrade", confirmed=True)
        assert isinstance(done, LimitChange) and e.limit_of(gid) == cut
    finally:
        e.close()
