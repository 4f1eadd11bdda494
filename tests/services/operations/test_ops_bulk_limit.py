"""Bulk custom limit (`apply_limit`), `require`, and the bulk engine shared with tiers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from services.kryptos.errors import KryptosError
from services.operations import CUSTOM_LIMIT, Operations, PermissionDenied, ValidationError
from services.operations.limit_value import NO_CAP, UNKNOWN, GuestLimit
from services.store import AuditLog, TokenVault, open_database

from .conftest import TIERS, Env, actor, load_vault, make_client

FINANCE = actor("finance")


def _limits(env: Env, rows: list[dict]) -> dict[str, int | None]:
    """Each grant's effective limit as the user info reports it now."""
    return {t["grant_id"]: env.client.get_userinfo(t["access_token"]).transaction_limit
            for t in rows}


def _readable_guests(env: Env, n: int | None = None) -> list[dict]:
    """Active Guests whose token may read the user info (some seeded scopes may not)."""
    out = []
    for t in env.stored(kind="guest"):
        try:
            env.client.get_userinfo(t["access_token"])
        except KryptosError:
            continue
        out.append(t)
    return out[:n]


def test_dry_run_reads_real_before_values(env: Env) -> None:
    guests = _readable_guests(env)
    current = _limits(env, guests)
    capped = [g for g, lim in current.items() if lim is not None and lim != 555][:3]
    uncapped = next(g for g, lim in current.items() if lim is None)
    env.ops.limits.set_guest_limit(FINANCE, capped[0], 555, enable_limiter=True,
                                   reason="already set", confirmed=True)
    linked = env.stored(kind="linked")[0]["grant_id"]
    no_token = env.no_token_grant()
    n_events = len(env.events())
    env.sandbox.clear_requests_log()
    seen: list[int] = []
    ids = [*capped, uncapped, linked, no_token]
    res = env.ops.limits.apply_limit(FINANCE, ids, 555, enable_limiter=True, dry_run=True,
                              progress=lambda d, t: seen.append(d))
    assert res.dry_run and res.tier == CUSTOM_LIMIT
    assert [i.grant_id for i in res.items] == ids and seen == list(range(1, 7))
    by = {i.grant_id: i for i in res.items}
    assert by[capped[0]].outcome == "unchanged" and by[capped[0]].before == GuestLimit.capped(555)
    for g in capped[1:]:
        assert by[g].outcome == "would_change"
        assert by[g].before.to_json() == current[g] and by[g].after == GuestLimit.capped(555)
    assert by[uncapped].before == NO_CAP and by[uncapped].after == GuestLimit.capped(555)
    assert by[linked].outcome == "skipped" and by[linked].error_code == "NOT_ANON_USER"
    assert by[no_token].before == UNKNOWN and by[no_token].outcome == "would_change"
    assert not [r for r in env.upstream() if r["method"] == "PATCH"]
    assert len(env.events()) == n_events  # a dry run writes nothing
    # switching only the limiter: off is foreseeable (uncapped), on over "off" is not
    off = env.ops.limits.apply_limit(FINANCE, [capped[1]], enable_limiter=False, dry_run=True)
    assert off.items[0].after == NO_CAP and off.items[0].before.to_json() == current[capped[1]]
    on = env.ops.limits.apply_limit(FINANCE, [uncapped], enable_limiter=True, dry_run=True)
    assert on.items[0].after == UNKNOWN and on.items[0].outcome == "would_change"


def test_apply_with_one_failing_grant(env: Env) -> None:
    rows = _readable_guests(env, 5)
    guests = [t["grant_id"] for t in rows]
    before = _limits(env, rows)
    bad = guests[2]
    env.sandbox.set_fault(path=f"/developer/grants/{bad}/transaction-limit", status=500,
                          code="INTERNAL_ERROR", message="boom", count=10)
    res = env.ops.limits.apply_limit(FINANCE, guests, 4321, enable_limiter=True,
                              reason="pilot cohort cap", ticket="FIN-7")
    by = {i.grant_id: i for i in res.items}
    assert by[bad].outcome == "failed" and by[bad].error_code == "INTERNAL_ERROR"
    ok = [g for g in guests if g != bad]
    for g in ok:
        assert by[g].outcome == "succeeded" and by[g].after == GuestLimit.capped(4321)
        assert by[g].before.to_json() == before[g]
    after = _limits(env, rows)
    assert all(after[g] == 4321 for g in ok) and after[bad] == before[bad]
    per_grant = env.events(action="guest.limit.update")
    assert len(per_grant) == 2 * len(guests)
    bulk_ids = {e.params["bulk_id"] for e in per_grant if e.outcome == "requested"}
    assert len(bulk_ids) == 1
    for g in guests:
        evs = [e for e in per_grant if e.target_id == g]
        assert [e.outcome for e in evs] == ["requested", "failed" if g == bad else "succeeded"]
        assert evs[0].correlation_id == evs[1].correlation_id and evs[0].ticket == "FIN-7"
        assert evs[0].params["transaction_limit"] == 4321
    good = next(e for e in per_grant if e.target_id == ok[0] and e.outcome == "succeeded")
    assert good.after["transaction_limit"] == 4321
    summary = env.events(action="guest.limit.update.bulk")
    assert [e.outcome for e in summary] == ["requested", "failed"]
    assert summary[0].target_id == bulk_ids.pop()
    assert summary[1].error_code == "PARTIAL_FAILURE"
    assert summary[1].after == {"succeeded": 4, "failed": 1}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(transaction_limit=None, enable_limiter=None), "transaction_limit"),
        (dict(transaction_limit=0, enable_limiter=True), "transaction_limit"),
        (dict(transaction_limit=True), "transaction_limit"),
        (dict(transaction_limit="100"), "transaction_limit"),
        (dict(transaction_limit=100, enable_limiter="yes"), "enable_limiter"),
        (dict(transaction_limit=100, reason=None), "reason"),
        (dict(transaction_limit=100, reason="no"), "reason"),
        (dict(transaction_limit=100, ticket="a\nb"), "ticket"),
        (dict(grant_ids=[]), "grant_ids"),
        (dict(grant_ids=["not-a-grant"]), "grant_ids[0]"),
    ],
)
def test_validation_sends_nothing(env: Env, kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = dict(grant_ids=[env.stored(kind="guest")[0]["grant_id"]],
                                reason="valid reason")
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        env.ops.limits.apply_limit(FINANCE, **args)
    assert info.value.field == field
    assert env.upstream() == [] and env.events() == []


@pytest.mark.parametrize("role", ["viewer", "support"])
def test_refused_without_permission(env: Env, role: str) -> None:
    gid = env.stored(kind="guest")[0]["grant_id"]
    who = actor(role)
    for dry in (True, False):
        with pytest.raises(PermissionDenied):
            env.ops.limits.apply_limit(who, [gid], 100, reason="valid reason", dry_run=dry)
    denied = env.events()
    assert [(e.outcome, e.action, e.actor_username) for e in denied] == [
        ("denied", "guest.limit.update", role)] * 2
    assert env.upstream() == []


def test_require(env: Env) -> None:
    env.ops.require(FINANCE, "manage_limits", "guest.tier.apply", "page", "guest_limits")
    assert env.events() == []
    with pytest.raises(PermissionDenied) as info:
        env.ops.require(actor("viewer"), "manage_limits", "guest.tier.apply", "page",
                        "guest_limits")
    assert "not allowed" in info.value.user_message
    [ev] = env.events()
    assert (ev.outcome, ev.action, ev.target_type, ev.target_id, ev.error_code) == (
        "denied", "guest.tier.apply", "page", "guest_limits", "PERMISSION_DENIED")
    with pytest.raises(ValueError):
        env.ops.require(FINANCE, "fly", "x")
    assert len(env.events()) == 1


@pytest.fixture
def newer_env(sandbox_newer: Any, tmp_path: Any) -> Iterator[Env]:
    db = open_database(f"sqlite:///{tmp_path / 'newer.db'}")
    audit, vault = AuditLog(db), TokenVault(db, Fernet.generate_key())
    load_vault(vault, sandbox_newer.tokens())
    client = make_client(sandbox_newer)
    ops = Operations(client, audit, vault, TIERS, max_workers=1)
    yield Env(ops, sandbox_newer, client, audit, vault)
    client.close()
    db.dispose()


def test_newer_api_answer_spares_the_pre_reads(newer_env: Env) -> None:
    env = newer_env
    rows = _readable_guests(env, 4)
    before = _limits(env, rows)
    env.sandbox.clear_requests_log()
    res = env.ops.limits.apply_tier(FINANCE, [t["grant_id"] for t in rows], "Pro",
                             reason="promo for Q3 cohort")
    assert res.counts["succeeded"] == 4
    assert {i.grant_id: i.before.to_json() for i in res.items} == before  # from the PATCH answers
    calls = env.upstream()
    assert len([r for r in calls if r["method"] == "PATCH"]) == 4
    gets = [r["path"] for r in calls if r["method"] == "GET"]
    # the grants list once per run (each grant checked), then only the first grant's user info
    assert sorted(gets) == ["/api/v1/userinfo", "/token/grants"]
    done = [e for e in env.events(action="guest.tier.apply") if e.outcome == "succeeded"]
    assert {e.target_id: e.before["transaction_limit"] for e in done} == before
