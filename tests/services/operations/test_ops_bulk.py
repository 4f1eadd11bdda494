"""Bulk tier changes: dry run, bounded concurrency, per-grant outcome, failures isolated."""

from __future__ import annotations

import pytest

from services.operations import ValidationError
from services.operations.limit_value import NO_CAP, GuestLimit

from .conftest import Env, actor

FINANCE = actor("finance")


def in_flight_max(log: list[dict]) -> int:
    edges = sorted([(r["started"], 1) for r in log] + [(r["ended"], -1) for r in log])
    peak = cur = 0
    for _, d in edges:
        cur += d
        peak = max(peak, cur)
    return peak


def test_dry_run_lists_changes_and_writes_nothing(env: Env) -> None:
    guests = [t["grant_id"] for t in env.stored(kind="guest")][:6]
    linked = env.stored(kind="linked")[0]["grant_id"]
    first = env.ops.limits.set_guest_limit(FINANCE, guests[0], 10000, reason="already on Plus",
                                           confirmed=True)
    assert first.after_limit == 10000
    n_events = len(env.events())
    env.sandbox.clear_requests_log()
    seen: list[tuple[int, int]] = []
    res = env.ops.limits.apply_tier(FINANCE, [*guests, linked], "Plus", dry_run=True,
                             progress=lambda d, t: seen.append((d, t)))
    assert res.dry_run and res.tier == "Plus"
    by = {i.grant_id: i for i in res.items}
    assert [i.grant_id for i in res.items] == [*guests, linked]  # input order
    assert by[guests[0]].outcome == "unchanged" and by[guests[0]].before == GuestLimit.capped(10000)
    assert all(by[g].outcome == "would_change" and by[g].after == GuestLimit.capped(10000)
               for g in guests[1:])
    assert by[linked].outcome == "skipped" and by[linked].error_code == "NOT_ANON_USER"
    assert res.counts["would_change"] == 5 and res.counts["skipped"] == 1
    assert seen[-1] == (7, 7) and [d for d, _ in seen] == list(range(1, 8))
    assert not [r for r in env.upstream() if r["method"] == "PATCH"]
    assert len(env.events()) == n_events  # a dry run writes no audit event


def test_real_run_some_fail(env: Env) -> None:
    guests = [t["grant_id"] for t in env.stored(kind="guest")][:12]
    linked = env.stored(kind="linked")[0]["grant_id"]
    bad_500, bad_404 = guests[3], guests[7]
    env.sandbox.set_fault(path=f"/developer/grants/{bad_500}/transaction-limit",
                          status=500, message="boom", count=10)
    env.sandbox.set_fault(path=f"/developer/grants/{bad_404}/transaction-limit",
                          status=404, code="GRANT_NOT_FOUND", message="No grant", count=10)
    env.sandbox.set_latency(40)
    env.sandbox.clear_requests_log()
    res = env.ops.limits.apply_tier(FINANCE, [*guests, linked], "pro", reason="promo for Q3 cohort",
                             ticket="FIN-99")
    by = {i.grant_id: i for i in res.items}
    assert by[bad_500].outcome == "failed" and by[bad_500].message
    assert by[bad_404].outcome == "failed" and by[bad_404].error_code == "GRANT_NOT_FOUND"
    assert by[linked].outcome == "skipped"
    ok = [g for g in guests if g not in (bad_500, bad_404)]
    assert all(by[g].outcome == "succeeded" and by[g].after == GuestLimit.capped(100000)
               for g in ok)
    assert res.counts["succeeded"] == 10 and res.counts["failed"] == 2 and res.tier == "Pro"
    tok = next(t for t in env.stored() if t["grant_id"] == ok[0])["access_token"]
    assert env.client.get_userinfo(tok).transaction_limit == 100000
    # audit: one pair per grant sharing a correlation id, plus a bulk summary pair
    per_grant = env.events(action="guest.tier.apply")
    assert len(per_grant) == 2 * 13
    for g in [*guests, linked]:
        evs = [e for e in per_grant if e.target_id == g]
        want = "succeeded" if g in ok else "skipped" if g == linked else "failed"
        assert [e.outcome for e in evs] == ["requested", want]
        assert evs[0].correlation_id == evs[1].correlation_id
        assert evs[0].params["tier"] == "Pro" and evs[0].ticket == "FIN-99"
    assert {e.error_code for e in per_grant if e.outcome == "failed"} >= {"GRANT_NOT_FOUND"}
    # the Linked grant the screen calls "skipped" is recorded as skipped, with the reason
    skipped = [e for e in per_grant if e.outcome == "skipped"]
    assert [(e.target_id, e.error_code) for e in skipped] == [(linked, "NOT_ANON_USER")]
    summary = env.events(action="guest.tier.apply.bulk")
    assert [e.outcome for e in summary] == ["requested", "failed"]
    assert summary[1].after == {"succeeded": 10, "failed": 2, "skipped": 1}
    # bounded concurrency: PATCHes overlapped, never more than 8 at once
    patches = [r for r in env.upstream() if r["method"] == "PATCH"]
    assert 1 < in_flight_max(patches) <= 8


def test_max_workers_one_is_sequential(env: Env) -> None:
    env.ops.ctx.max_workers = 1
    guests = [t["grant_id"] for t in env.stored(kind="guest")][:4]
    env.sandbox.set_latency(20)
    env.sandbox.clear_requests_log()
    res = env.ops.limits.apply_tier(FINANCE, guests, "Unlimited", reason="enterprise deal")
    assert res.counts["succeeded"] == 4
    assert all(i.after == NO_CAP for i in res.items)
    assert in_flight_max(env.upstream()) == 1


def test_429_fails_the_item_and_the_run_goes_on(env: Env) -> None:
    guests = [t["grant_id"] for t in env.stored(kind="guest")][:3]
    env.sandbox.set_fault(path=f"/developer/grants/{guests[0]}/transaction-limit", status=429,
                          code="rate_limit_exceeded", retry_after=0, count=100)
    res = env.ops.limits.apply_tier(FINANCE, guests, "Free", reason="downgrade after trial")
    by = {i.grant_id: i for i in res.items}
    assert by[guests[0]].outcome == "failed"
    assert by[guests[0]].error_code == "rate_limit_exceeded"
    assert by[guests[1]].outcome == by[guests[2]].outcome == "succeeded"
    patches = [r for r in env.upstream() if r["method"] == "PATCH" and guests[0] in r["path"]]
    assert len(patches) == 3  # the client's own retries (max_retries=2), then it gave up


def test_bulk_needs_reason_and_known_tier(env: Env) -> None:
    gid = env.stored(kind="guest")[0]["grant_id"]
    with pytest.raises(ValidationError) as info:
        env.ops.limits.apply_tier(FINANCE, [gid], "Plus", reason=None)
    assert info.value.field == "reason"
    with pytest.raises(ValidationError) as info:
        env.ops.limits.apply_tier(FINANCE, [gid], "Diamond", reason="valid reason", dry_run=True)
    assert info.value.field == "tier" and "Free" in info.value.user_message
    assert env.upstream() == []


def test_a_damaged_vault_row_fails_its_grant_only_and_leaves_no_lone_requested(
        env: Env) -> None:
    """One vault row that no longer decrypts (disk damage, a key mix-up): that grant fails
    with a clear code, the others go through, and every `requested` has its outcome."""
    from sqlalchemy import text

    gids = [t["grant_id"] for t in env.stored(kind="guest")][:4]
    with env.vault._db.write() as conn:  # as damage would, under the vault's own API
        conn.execute(text("UPDATE vault_tokens SET token_ciphertext = 'gAAAAAbroken' "
                          "WHERE grant_id = :g"), {"g": gids[1]})
    result = env.ops.limits.apply_tier(FINANCE, gids, "Plus", "upgrade batch 12")
    outcomes = {i.grant_id: (i.outcome, i.error_code) for i in result.items}
    assert outcomes[gids[1]] == ("failed", "STORE_ERROR")
    assert all(outcomes[g] == ("succeeded", None) for g in gids if g != gids[1])
    events = env.events(action="guest.tier.apply")
    by_cid: dict[str, list[str]] = {}
    for e in events:
        by_cid.setdefault(e.correlation_id, []).append(e.outcome)
    assert sorted(by_cid.values()) == sorted(
        [["requested", "failed"]] + [["requested", "succeeded"]] * 3)
    summary = env.events(action="guest.tier.apply.bulk")
    assert [e.outcome for e in summary] == ["requested", "failed"]
