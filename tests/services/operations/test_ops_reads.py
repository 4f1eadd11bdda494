"""Reads: the grants list joined with the vault, grant detail (concurrent, failing per part),
integration lookup, history and overview."""

from __future__ import annotations

import pytest

from services.operations import GrantDetail, GrantFilter, NotFound, PermissionDenied, UpstreamError
from services.operations.limit_value import UNKNOWN, GuestLimit

from .conftest import Env, actor

VIEWER = actor("viewer")
SUPPORT = actor("support")
ADMIN = actor("admin")


def test_the_grants_list_joins_the_vault(env: Env) -> None:
    rows = env.synced_rows()
    by_id = {r.grant_id: r for r in rows}
    api_ids = {g.grant_id for g in env.client.list_grants()}
    stored = {t["grant_id"]: t for t in env.sandbox.tokens()}
    assert api_ids <= set(by_id)
    for gid, r in by_id.items():
        assert r.has_token == (gid in stored)
        assert r.status == ("active" if gid in api_ids else "revoked")
        if gid in stored:
            assert r.customer_ref == stored[gid]["customer_ref"]
            assert r.masked_token and stored[gid]["access_token"] not in r.masked_token
    # the sandbox's revoked grants are in the vault but no longer listed: shown as revoked
    revoked = {t["grant_id"] for t in env.stored(revoked=True)}
    assert revoked and {r.grant_id for r in rows if r.status == "revoked"} == revoked
    assert env.events() == []  # reads are not audited


def test_the_grants_list_search_and_filters(env: Env) -> None:
    t = env.stored(kind="guest")[0]
    env.sync()

    def ids(**filters: object) -> list[str]:
        page = env.ops.grants.page(VIEWER, GrantFilter(**filters), "grant_id", 1, 1000)  # type: ignore[arg-type]
        return [r.grant_id for r in page.rows]

    assert ids(search=t["customer_ref"].upper()) == [t["grant_id"]]
    assert t["grant_id"] in ids(search=t["grant_id"][-8:])
    no_token = env.ops.grants.page(VIEWER, GrantFilter(has_token=False), page_size=1000).rows
    assert no_token and all(not r.has_token and r.status == "active" for r in no_token)
    revoked = env.ops.grants.page(VIEWER, GrantFilter(status="revoked"), page_size=1000).rows
    assert revoked and all(r.status == "revoked" for r in revoked)
    # the fixture stores no kind: the sync learns it from the user info
    assert t["grant_id"] in ids(kind="guest")
    assert t["grant_id"] not in ids(kind="linked") + ids(kind="unknown")


def test_grant_detail_reads_in_parallel(env: Env) -> None:
    gid = env.stored(kind="guest")[0]["grant_id"]
    env.sandbox.set_latency(150)
    env.sandbox.clear_requests_log()
    detail = env.ops.grants.grant_detail(VIEWER, gid)
    assert isinstance(detail, GrantDetail)
    assert detail.session.ok and detail.holdings.ok and detail.integrations.ok
    assert detail.userinfo.ok and detail.is_guest is True
    assert detail.limit == GuestLimit.from_userinfo(detail.userinfo.value.transaction_limit)
    log = env.upstream()
    assert len(log) == 5  # grants list, session, holdings, integrations, user info
    # all five were in flight at once: every one started before any ended
    assert max(r["started"] for r in log) < min(r["ended"] for r in log)


def test_grant_detail_part_fails_alone(env: Env) -> None:
    gid = env.stored(kind="guest")[0]["grant_id"]
    env.sandbox.set_fault(path="/api/v1/holdings", status=401, code="unauthorized",
                          message="Invalid or revoked token")
    detail = env.ops.grants.grant_detail(VIEWER, gid)
    assert detail.session.ok and detail.session.value.has_valid_session
    assert detail.integrations.ok and detail.userinfo.ok
    assert not detail.holdings.ok and isinstance(detail.holdings.error, UpstreamError)
    assert detail.holdings.error.status == 401
    assert "Reading holdings" in detail.holdings.error.user_message


def test_grant_detail_without_token(env: Env) -> None:
    gid = env.no_token_grant()
    env.sandbox.clear_requests_log()
    detail = env.ops.grants.grant_detail(VIEWER, gid)
    assert detail.grant.grant_id == gid and detail.grant.status == "active"
    assert not detail.grant.has_token and detail.grant.created_at is not None
    for part in (detail.session, detail.holdings, detail.integrations, detail.userinfo):
        assert not part.ok and part.error is None and "No access token" in part.note
    assert any("No access token is stored" in n for n in detail.notes)
    assert detail.is_guest is None and detail.limit == UNKNOWN
    assert [r["path"] for r in env.upstream()] == ["/token/grants"]


def test_grant_detail_unknown_and_revoked(env: Env) -> None:
    with pytest.raises(NotFound) as info:
        env.ops.grants.grant_detail(VIEWER, "cgrant_doesnotexist")
    assert info.value.code == "GRANT_NOT_FOUND"
    revoked = env.stored(revoked=True)[0]["grant_id"]
    detail = env.ops.grants.grant_detail(VIEWER, revoked)
    assert detail.grant.status == "revoked"
    assert detail.holdings.error is not None and detail.holdings.error.status == 401


def test_grant_detail_when_grants_list_fails(env: Env) -> None:
    gid = env.stored(kind="guest")[0]["grant_id"]
    env.sandbox.set_fault(path="/token/grants", status=500, count=10)
    detail = env.ops.grants.grant_detail(VIEWER, gid)
    assert detail.session.ok and detail.grant.status == "active"
    assert any("grants list could not be read" in n for n in detail.notes)


def test_integration_lookup(env: Env) -> None:
    row, integ = env.find_integration(lambda i: True)
    got = env.ops.grants.integration(VIEWER, row["grant_id"], integ.wallet_id)
    assert got.wallet_id == integ.wallet_id
    with pytest.raises(NotFound):
        env.ops.grants.integration(VIEWER, row["grant_id"], "wallet_missing")
    with pytest.raises(NotFound) as info:
        env.ops.grants.integration(VIEWER, env.no_token_grant(), "wallet_x")
    assert info.value.code == "NO_TOKEN"


def test_overview(env: Env) -> None:
    assert env.ops.grants.overview(VIEWER).active == 0  # the read model: nothing synced yet
    env.sync()
    ov = env.ops.grants.overview(VIEWER)
    rows = env.synced_rows()
    assert ov.active == sum(r.status == "active" for r in rows)
    assert ov.revoked == sum(r.status == "revoked" for r in rows) > 0
    assert ov.with_token + ov.without_token == len(rows)
    assert ov.integrations_failing > 0
    assert ov.guest + ov.linked + ov.unknown_kind == len(rows)
    assert ov.queues["no_token"] == sum(r.status == "active" and not r.has_token for r in rows)
    assert ov.latest_events == ()  # a viewer may not read the audit log
    env.ops.grants.revoke_grant(ADMIN, env.stored()[0]["grant_id"], reason="closing the account")
    assert [e.action for e in env.ops.grants.overview(ADMIN).latest_events][:1] == ["grant.revoke"]


def test_grant_history(env: Env) -> None:
    gid = env.stored(kind="guest")[0]["grant_id"]
    env.ops.limits.set_guest_limit(ADMIN, gid, 2000, reason="trial extension", confirmed=True)
    hist = env.ops.grants.grant_history(SUPPORT, gid)
    assert [e.outcome for e in hist] == ["succeeded", "requested"]
    assert all(e.target_id == gid for e in hist)
    # a viewer reads grants, not who changed them and why
    with pytest.raises(PermissionDenied):
        env.ops.grants.grant_history(VIEWER, gid)


def test_from_settings(sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from services.operations import Operations
    from services.settings import Settings, parse_tiers

    from .conftest import full_sync, make_client

    settings = Settings(data_dir=tmp_path, tiers=parse_tiers("Basic=500,Max=off"))
    client = make_client(sandbox)
    ops = Operations.from_settings(settings, client=client)
    assert [t.name for t in ops.tiers] == ["Basic", "Max"]
    assert (tmp_path / "console.db").exists()
    full_sync(ops, sandbox)
    rows = ops.grants.page(VIEWER, None, page_size=1000).rows
    assert rows and not any(r.has_token for r in rows)  # empty vault
    ops.auth.record_login(VIEWER)
    assert ops.audit.verify_audit(ADMIN).ok
    client.close()
