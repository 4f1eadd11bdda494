"""Each client operation against the sandbox: the success case, every documented field."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.kryptos import (
    DEFAULT_SCOPES,
    Grant,
    Holdings,
    Integration,
    KryptosClient,
    LinkToken,
    ResyncResult,
    SessionStatus,
    TokenExchange,
    TransactionLimit,
    UserInfo,
)
from services.settings import SANDBOX_CLIENT_ID, Settings


def test_create_link_token_fresh(client: KryptosClient, sandbox, logged) -> None:
    link = client.create_link_token()
    assert isinstance(link, LinkToken)
    assert link.link_token.startswith("link_")
    assert isinstance(link.expires_at, datetime) and link.expires_at.tzinfo is not None
    assert link.has_existing_grant is False
    assert link.user_id is None and link.workspace_id is None
    assert len(logged("POST", "/link-token")) == 1


def test_create_link_token_resumes_session(client: KryptosClient, guest) -> None:
    link = client.create_link_token(access_token=guest.token)
    assert link.link_token.startswith("link_")
    assert link.has_existing_grant is True
    assert link.user_id == guest.user_id
    assert link.workspace_id == guest.exchange.workspace_id


def test_exchange_public_token(client: KryptosClient, sandbox) -> None:
    created = sandbox.create_public_token(kind="guest")
    ex = client.exchange_public_token(created["public_token"])
    assert isinstance(ex, TokenExchange)
    assert ex.access_token.startswith("cat_")
    assert ex.grant_id.startswith("cgrant_")
    assert ex.token_type == "Bearer"
    assert ex.expires_in == 473040000
    assert ex.scope == DEFAULT_SCOPES
    assert ex.workspace_id
    assert ex.masked_token.startswith("cat_") and ex.access_token not in ex.masked_token
    stored = {t["grant_id"]: t for t in sandbox.tokens()}
    assert stored[ex.grant_id]["access_token"] == ex.access_token


def test_check_session_valid(client: KryptosClient, guest) -> None:
    status = client.check_session(guest.token)
    assert isinstance(status, SessionStatus)
    assert status.has_valid_session is True
    assert status.user_id == guest.user_id
    assert status.workspace_id == guest.exchange.workspace_id
    assert status.workspace_name
    assert status.granted_scopes == DEFAULT_SCOPES
    assert status.grant_id == guest.grant_id
    assert status.reason is None


def test_check_session_after_revoke_is_not_valid(client: KryptosClient, guest) -> None:
    client.revoke_grant(guest.grant_id)
    status = client.check_session(guest.token)
    assert status.has_valid_session is False
    assert status.reason
    assert status.grant_id is None


def test_list_grants(client: KryptosClient, sandbox) -> None:
    grants = client.list_grants()
    assert len(grants) > 20
    assert all(isinstance(g, Grant) for g in grants)
    for g in grants:
        assert g.grant_id.startswith("cgrant_")
        assert g.workspace_id
        assert g.scopes
        assert isinstance(g.created_at, datetime)
        assert isinstance(g.expires_at, datetime)
        assert g.expires_at > g.created_at
    ids = {g.grant_id for g in grants}
    assert len(ids) == len(grants)
    active = {t["grant_id"] for t in sandbox.tokens() if not t["revoked"]}
    assert active <= ids


def test_revoke_grant(client: KryptosClient, guest) -> None:
    message = client.revoke_grant(guest.grant_id)
    assert message == "Grant revoked successfully"
    assert guest.grant_id not in {g.grant_id for g in client.list_grants()}


def test_resync_wallet_latest(client: KryptosClient, guest) -> None:
    wallet = next(i for i in client.list_integrations(guest.token) if not i.is_csv)
    result = client.resync_integration(wallet.wallet_id, guest.user_id, "latest")
    assert isinstance(result, ResyncResult)
    assert result.mode == "latest"
    assert result.wallet_id == wallet.wallet_id
    assert result.integration_type in ("wallet", "exchange")
    assert result.status == "queued"
    assert result.job_id is None
    after = {i.wallet_id: i for i in client.list_integrations(guest.token)}
    assert after[wallet.wallet_id].is_syncing


def test_resync_csv_from_start(client: KryptosClient, guest) -> None:
    csv = next(i for i in client.list_integrations(guest.token) if i.is_csv)
    result = client.resync_integration(csv.wallet_id, guest.user_id, "from_start")
    assert result.mode == "from_start"
    assert result.integration_type == "csv"
    assert result.wallet_id == csv.wallet_id
    assert result.job_id
    assert result.status == "ongoing"


def test_update_transaction_limit(client: KryptosClient, guest) -> None:
    result = client.update_transaction_limit(guest.grant_id, transaction_limit=10000)
    assert isinstance(result, TransactionLimit)
    assert result.grant_id == guest.grant_id
    assert result.user_id == guest.user_id
    assert result.transaction_limit == 10000
    assert result.enable_limiter is True
    assert client.get_userinfo(guest.token).transaction_limit == 10000


def test_limit_patch_sends_only_the_given_field(client: KryptosClient, guest) -> None:
    client.update_transaction_limit(guest.grant_id, transaction_limit=5000)
    result = client.update_transaction_limit(guest.grant_id, enable_limiter=False)
    # transactionLimit was not sent (not even as null): the override is kept.
    assert result.transaction_limit == 5000
    assert result.enable_limiter is False
    assert client.get_userinfo(guest.token).transaction_limit is None
    result = client.update_transaction_limit(guest.grant_id, enable_limiter=True)
    assert result.transaction_limit == 5000


def test_update_transaction_limit_newer_fields(sandbox_newer, newer_client) -> None:
    created = sandbox_newer.create_public_token(kind="guest")
    grant_id = newer_client.exchange_public_token(created["public_token"]).grant_id
    first = newer_client.update_transaction_limit(grant_id, transaction_limit=2000)
    second = newer_client.update_transaction_limit(
        grant_id, transaction_limit=90000, enable_limiter=True
    )
    assert second.previous_transaction_limit == 2000
    assert second.previous_enable_limiter == first.enable_limiter
    assert second.transaction_limit == 90000
    assert second.resync is not None
    assert all(isinstance(w, str) for w in second.resync.triggered + second.resync.failed)
    assert second.resync.skipped >= 0


def test_get_holdings(client: KryptosClient, guest, logged) -> None:
    h = client.get_holdings(guest.token)
    assert isinstance(h, Holdings)
    assert h.user_id == guest.user_id
    assert isinstance(h.timestamp, datetime)
    assert h.holdings
    wallets = {i.wallet_id for i in client.list_integrations(guest.token)}
    for row in h.holdings:
        assert row.asset.symbol and row.asset.token_id and row.asset.public_name
        assert row.asset.type in ("crypto", "nft", "fiat")
        assert row.total_quantity > 0
        assert row.market_value == pytest.approx(row.total_quantity * row.market_price, rel=1e-3)
        assert row.base_currency == "USD"
        if row.cost_basis:
            expected = row.unrealized_pnl / row.cost_basis * 100
            assert row.roi == pytest.approx(expected, rel=1e-2, abs=0.05)
        assert row.distribution
        assert sum(d.quantity for d in row.distribution) == pytest.approx(
            row.total_quantity, rel=1e-3
        )
        for d in row.distribution:
            assert d.wallet_id in wallets
            assert d.provider
            assert 0 <= d.allocation_percentage <= 100
    total = sum(r.market_value for r in h.holdings)
    assert h.summary.total_value == pytest.approx(total, rel=1e-3)
    assert h.summary.total_cost_basis >= 0
    assert isinstance(h.summary.total_24h_change, float)
    assert logged("GET", "/v1/holdings")


def test_get_holdings_include_spam(client: KryptosClient, guest) -> None:
    plain = client.get_holdings(guest.token)
    spam = client.get_holdings(guest.token, include_spam=True)
    assert len(spam.holdings) >= len(plain.holdings)


def test_list_integrations(client: KryptosClient, guest) -> None:
    rows = client.list_integrations(guest.token)
    assert all(isinstance(i, Integration) for i in rows)
    assert len({i.wallet_id for i in rows}) == len(rows)
    assert any(i.is_csv for i in rows) and any(not i.is_csv for i in rows)
    for i in rows:
        assert i.wallet_id and i.provider and i.provider_public_name
        assert i.status in ("ONGOING", "COMPLETED", "PARTIALLY SYNCED", "FAILED", "active")
        assert i.category in ("exchange", "wallet", "blockchain", "unknown")
        assert i.type in ("api", "csv")
        assert isinstance(i.added_on, datetime)
        assert i.total_transactions is not None and i.total_transactions >= 0
        assert i.logo_url
        if i.category == "exchange":
            assert i.public_address is None


def test_list_integrations_follows_every_page(
    make_client, guest, logged, sandbox
) -> None:
    full = make_client().list_integrations(guest.token)
    assert len(logged("GET", "/v1/integrations")) == 1  # pageSize=200: one page
    assert len(full) >= 3
    sandbox.clear_requests_log()
    paged = make_client(page_size=2).list_integrations(guest.token)
    assert [i.wallet_id for i in paged] == [i.wallet_id for i in full]
    assert len(logged("GET", "/v1/integrations")) == -(-len(full) // 2)


def test_get_userinfo_guest(client: KryptosClient, guest) -> None:
    info = client.get_userinfo(guest.token)
    assert isinstance(info, UserInfo)
    assert info.sub == guest.user_id
    assert info.is_guest
    assert info.transaction_limit is None or info.transaction_limit > 0
    assert "openid" in info.scopes and "users:read" in info.scopes
    assert info.language


def test_get_userinfo_linked(client: KryptosClient, linked) -> None:
    info = client.get_userinfo(linked.token)
    assert info.sub == linked.user_id
    assert not info.is_guest
    assert info.name and info.email and info.preferred_username
    assert info.email_verified is not None


def test_health(client: KryptosClient, logged) -> None:
    h = client.health()
    assert h.status == "OK"
    assert h.service and h.version and h.environment
    assert len(logged("GET", "/health")) == 1


def test_from_settings(sandbox) -> None:
    settings = Settings(
        client_id=sandbox.client_id, client_secret=sandbox.client_secret,
        connect_url=sandbox.connect_url, data_url=sandbox.data_url,
        connect_timeout=2.0, read_timeout=3.0, max_retries=1, retry_budget=4.0,
    )
    with KryptosClient.from_settings(settings) as c:
        assert (c.connect_timeout, c.read_timeout, c.max_retries, c.retry_budget) == (
            2.0, 3.0, 1, 4.0
        )
        assert c.health().status == "OK"
        assert c.list_grants()


def test_from_settings_sandbox_mode_uses_demo_client(sandbox) -> None:
    settings = Settings(connect_url=sandbox.connect_url, data_url=sandbox.data_url)
    assert settings.sandbox_mode
    with KryptosClient.from_settings(settings) as c:
        assert c.client_id == SANDBOX_CLIENT_ID
        assert c.list_grants()
