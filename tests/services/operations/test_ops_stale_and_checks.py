"""Changes made against what the person saw (`STALE`), bulk dry runs that check each grant,
and a grant's history in words."""

from __future__ import annotations

import io

import pytest

from dashboard.reads import limits_of
from services.operations import StaleChange
from services.operations.history import collapse, describe_event
from services.operations.limit_value import NO_CAP, UNKNOWN, GuestLimit

from .conftest import Env, actor
from .test_ops_bulk_limit import _readable_guests

FINANCE = actor("finance", name="fiona")
FINANCE_B = actor("finance", name="bob")
SUPPORT = actor("support")
ADMIN = actor("admin")


def patches(env: Env) -> list[dict]:
    return [r for r in env.upstream() if r["method"] == "PATCH"]


# --- one grant: limit and limiter ------------------------------------------------------------

def test_second_tab_is_refused_with_who_and_when(env: Env) -> None:
    t = _readable_guests(env, 1)[0]
    gid = t["grant_id"]
    env.ops.limits.set_guest_limit(FINANCE, gid, 7500, reason="start at 7,500", confirmed=True)
    # Both tabs show 7,500; tab A applies 3,000 ...
    env.ops.limits.set_guest_limit(FINANCE, gid, 3000, reason="tab A cut", expected_limit=7500,
                                   expected_limiter=True, confirmed=True)
    env.sandbox.clear_requests_log()
    # ... tab B, still showing 7,500, tries 9,000: refused, nothing sent.
    with pytest.raises(StaleChange) as info:
        env.ops.limits.set_guest_limit(FINANCE_B, gid, 9000, reason="tab B raise",
                                       expected_limit=7500, expected_limiter=True, confirmed=True)
    err = info.value
    assert err.code == "STALE" and err.changed_by == "fiona" and err.changed_at is not None
    assert err.seen == "7,500" and err.now == "3,000"
    assert "fiona changed it at" in err.user_message and "3,000" in err.user_message
    assert patches(env) == []
    assert env.client.get_userinfo(t["access_token"]).transaction_limit == 3000
    last = env.events(action="guest.limit.update")[-1]
    assert last.outcome == "failed" and last.error_code == "STALE"
    assert last.actor_username == "bob"
    # Reviewed: bob now sees 3,000 and applies again.
    change = env.ops.limits.set_guest_limit(FINANCE_B, gid, 9000, reason="tab B raise",
                                            expected_limit=3000, expected_limiter=True,
                                            confirmed=True)
    assert change.before_limit == 3000 and change.after_limit == 9000


def test_change_outside_the_console_is_named_so(env: Env) -> None:
    t = _readable_guests(env, 1)[0]
    gid = t["grant_id"]
    env.ops.limits.set_guest_limit(FINANCE, gid, 5000, reason="console sets 5,000", confirmed=True)
    env.client.update_transaction_limit(gid, transaction_limit=4000)  # someone else's tool
    with pytest.raises(StaleChange) as info:
        env.ops.limits.set_guest_limit(FINANCE, gid, 6000, reason="raise to 6,000",
                                       expected_limit=5000, expected_limiter=True, confirmed=True)
    assert info.value.changed_by is None
    assert "changed outside this console" in info.value.user_message


def test_limiter_switched_off_elsewhere_is_stale(env: Env) -> None:
    t = _readable_guests(env, 1)[0]
    gid = t["grant_id"]
    env.ops.limits.set_guest_limit(FINANCE, gid, 2500, enable_limiter=True, reason="cap 2,500",
                                   confirmed=True)
    env.ops.limits.set_guest_limit(FINANCE_B, gid, enable_limiter=False, reason="lift the cap",
                                   expected_limit=2500, expected_limiter=True, confirmed=True)
    with pytest.raises(StaleChange) as info:
        env.ops.limits.set_guest_limit(FINANCE, gid, 2000, reason="cut to 2,000",
                                       expected_limit=2500, expected_limiter=True, confirmed=True)
    assert info.value.now == "no cap (limiter off)" and info.value.changed_by == "bob"


def test_no_expectation_keeps_the_old_behaviour(env: Env) -> None:
    gid = _readable_guests(env, 1)[0]["grant_id"]
    env.ops.limits.set_guest_limit(FINANCE, gid, 1111, reason="first value", confirmed=True)
    change = env.ops.limits.set_guest_limit(FINANCE, gid, 2222, reason="no check asked",
                                            confirmed=True)
    assert change.before_limit == 1111 and change.after_limit == 2222


# --- revoke ----------------------------------------------------------------------------------

def test_revoke_of_a_grant_revoked_meanwhile_is_stale(env: Env) -> None:
    gid = env.stored(kind="guest")[0]["grant_id"]
    env.ops.grants.revoke_grant(ADMIN, gid, "customer asked", expected_status="active")
    env.sandbox.clear_requests_log()
    with pytest.raises(StaleChange) as info:
        env.ops.grants.revoke_grant(SUPPORT, gid, "customer asked again",
                                    expected_status="active")
    assert info.value.now == "revoked" and info.value.changed_by == "admin"
    assert not [r for r in env.upstream() if r["path"].startswith("/token/revoke")]
    last = env.events(action="grant.revoke")[-1]
    assert last.outcome == "failed" and last.error_code == "STALE"


# --- bulk ------------------------------------------------------------------------------------

def test_dry_run_checks_each_grant(env: Env) -> None:
    guest = _readable_guests(env, 1)[0]["grant_id"]
    revoked = env.stored(revoked=True)[0]["grant_id"]
    linked = env.stored(kind="linked")[0]["grant_id"]
    env.vault.update(linked, user_kind="linked")
    made_up = "cgrant_does_not_exist_1"
    res = env.ops.limits.apply_tier(FINANCE, [guest, revoked, linked, made_up], "Plus",
                                    dry_run=True)
    by = {i.grant_id: i for i in res.items}
    assert by[guest].outcome in ("would_change", "unchanged")
    assert (by[revoked].outcome, by[revoked].error_code) == ("skipped", "GRANT_REVOKED")
    assert (by[linked].outcome, by[linked].error_code) == ("skipped", "NOT_ANON_USER")
    assert (by[made_up].outcome, by[made_up].error_code) == ("skipped", "GRANT_NOT_FOUND")
    assert not by[made_up].before.known and "No such grant" in (by[made_up].message or "")
    assert res.counts["skipped"] == 3


def test_ten_thousand_made_up_ids_are_all_skipped(env: Env) -> None:
    ids = [f"cgrant_madeup_{i:05d}" for i in range(10_000)]
    env.sandbox.clear_requests_log()
    res = env.ops.limits.apply_tier(FINANCE, ids, "Pro", dry_run=True)
    assert res.counts["skipped"] == 10_000 and res.counts["would_change"] == 0
    assert len(env.upstream()) == 1  # the grants list, once


def test_real_run_skips_what_changed_since_the_dry_run(env: Env) -> None:
    a, b = (t["grant_id"] for t in _readable_guests(env, 2))
    env.ops.limits.set_guest_limit(FINANCE, a, 7500, reason="seed a", confirmed=True)
    env.ops.limits.set_guest_limit(FINANCE, b, 7500, reason="seed b", confirmed=True)
    dry = env.ops.limits.apply_tier(FINANCE, [a, b], "Free", dry_run=True)
    seen = {i.grant_id: i.before for i in dry.items}
    assert seen == {a: GuestLimit.capped(7500), b: GuestLimit.capped(7500)}
    env.ops.limits.set_guest_limit(FINANCE_B, b, 3000, reason="someone cut b", confirmed=True)
    # 7,500 -> 1,000 cuts by more than half: the real run asks first (confirmed here).
    res = env.ops.limits.apply_tier(FINANCE, [a, b], "Free", reason="move to Free",
                                    expected=seen, confirmed=True)
    by = {i.grant_id: i for i in res.items}
    assert by[a].outcome == "succeeded" and by[a].before == GuestLimit.capped(7500)
    assert by[a].after == GuestLimit.capped(1000)
    assert by[b].outcome == "skipped" and by[b].error_code == "STALE"
    assert "bob" in (by[b].message or "") and by[b].before == GuestLimit.capped(3000)
    fails = [e for e in env.events(action="guest.tier.apply", target_id=b)
             if e.outcome == "failed"]
    assert fails and fails[-1].error_code == "STALE"


def test_real_run_before_is_unknown_when_nobody_knows(env: Env) -> None:
    gid = env.no_token_grant()
    res = env.ops.limits.apply_tier(FINANCE, [gid], "Plus", reason="move to Plus")
    item = res.items[0]
    if item.outcome == "succeeded":  # a Guest: nothing said what it was before
        assert item.before == UNKNOWN
    else:  # a Linked user, learned from the API's answer
        assert item.error_code == "NOT_ANON_USER"


# --- history ---------------------------------------------------------------------------------

def test_history_says_what_changed(env: Env) -> None:
    gid = _readable_guests(env, 1)[0]["grant_id"]
    env.ops.limits.set_guest_limit(FINANCE, gid, 7500, reason="start value", confirmed=True)
    env.ops.limits.set_guest_limit(FINANCE, gid, 3000, reason="cut it", confirmed=True)
    row, integ = env.find_integration(lambda i: not i.is_csv)
    env.ops.grants.resync_integration(SUPPORT, row["grant_id"], integ.wallet_id, "latest")
    limit_lines = [describe_event(e) for e in collapse(env.ops.grants.grant_history(ADMIN, gid))
                   if e.action == "guest.limit.update"]
    assert limit_lines[0] == "Limit change: limit 7,500 → 3,000 — done"
    history = collapse(env.ops.grants.grant_history(ADMIN, row["grant_id"]))
    resync = [describe_event(e) for e in history if e.action == "integration.resync"][0]
    assert f"wallet {integ.wallet_id}" in resync and "mode latest (new transactions)" in resync


def test_exchange_is_in_the_new_grants_history(env: Env) -> None:
    created = env.sandbox.create_public_token(kind="guest")
    row = env.ops.connect.exchange_public_token(SUPPORT, "cust-77", created["public_token"])
    events = env.ops.grants.grant_history(ADMIN, row.grant_id)
    done = [e for e in events if e.action == "token.exchange"]
    assert [e.outcome for e in done] == ["succeeded"]
    assert done[0].after["customer_ref"] == "cust-77" and done[0].target_type == "grant"
    assert describe_event(done[0]) == "Connected: customer cust-77 — done"


def test_import_is_in_each_grants_history(env: Env) -> None:
    # a grant Kryptos lists (the import refuses others) whose token is not stored yet
    ex = env.client.exchange_public_token(env.sandbox.create_public_token()["public_token"])
    text = f"grant_id,access_token,customer_ref\n{ex.grant_id},{ex.access_token},c-9\n"
    env.ops.connect.import_tokens(SUPPORT, io.StringIO(text))
    lines = [describe_event(e) for e in env.ops.grants.grant_history(ADMIN, ex.grant_id)
             if e.outcome == "succeeded"]
    assert lines == ["Token imported: customer c-9, token added — done"]


def test_the_read_models_limits_of_many_grants_and_their_tiers(env: Env) -> None:
    env.sync()  # the read model lists the grants; the changes below update it at once
    a, b = (t["grant_id"] for t in _readable_guests(env, 2))
    env.ops.limits.set_guest_limit(FINANCE, a, 10_000, reason="Plus level", confirmed=True)
    env.ops.limits.set_guest_limit(FINANCE, b, enable_limiter=False, reason="no cap",
                                   confirmed=True)
    unknown = env.no_token_grant()
    now = limits_of(env.ops.readmodel.grants_by_id([a, b, unknown]).values())
    assert now[a] == GuestLimit.capped(10_000) and now[a].limiter is True
    assert now[b] == NO_CAP and now[b].limiter is False
    assert now.get(unknown, UNKNOWN) == UNKNOWN
    assert env.ops.limits.matching_tier(now[a]).name == "Plus"
    assert env.ops.limits.matching_tier(NO_CAP).name == "Unlimited"
    assert env.ops.limits.matching_tier(UNKNOWN) is None
