"""Models: documented fields parsed, unknown extras tolerated, newer fields kept, wrong shapes
refused with MalformedResponseError. Plus the client under concurrent use."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.kryptos import (
    Grant,
    Health,
    Holdings,
    Integration,
    KryptosClient,
    LinkToken,
    MalformedResponseError,
    ResyncResult,
    TokenExchange,
    TransactionLimit,
    UserInfo,
    mask_token,
)


def test_extra_fields_tolerated() -> None:
    g = Grant.from_api({"grant_id": "cgrant_1", "workspace_id": "ws_1", "scopes": "a b",
                        "created_at": "2024-01-15T10:00:00Z",
                        "expires_at": "2039-01-15T10:00:00Z", "brand_new": {"x": 1}})
    assert g.grant_id == "cgrant_1" and g.expires_at.year == 2039
    h = Health.from_api({"status": "OK", "service": "s", "version": "1", "environment": "e",
                         "uptime": 5})
    assert h.status == "OK"


def test_newer_limit_fields_kept() -> None:
    t = TransactionLimit.from_api({
        "grant_id": "cgrant_1", "user_id": "anon_1", "transaction_limit": 10000,
        "enable_limiter": True, "previous_transaction_limit": 1000,
        "previous_enable_limiter": False,
        "resync": {"triggered": ["wallet_a", {"wallet_id": "wallet_b"}], "failed": [],
                   "skipped": 2},
        "future": "field",
    })
    assert t.previous_transaction_limit == 1000 and t.previous_enable_limiter is False
    assert t.resync is not None
    assert t.resync.triggered == ("wallet_a", "wallet_b") and t.resync.skipped == 2
    plain = TransactionLimit.from_api({"grant_id": "g", "transaction_limit": None,
                                       "enable_limiter": False, "resync": None})
    assert plain.resync is None and plain.transaction_limit is None


def test_csv_job_id_kept() -> None:
    r = ResyncResult.from_api({"mode": "from_start", "integration_type": "csv",
                               "wallet_id": "w", "job_id": "sync_1", "status": "ongoing"})
    assert r.job_id == "sync_1"


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (LinkToken, {"expires_at": "2024-01-28T10:30:00Z"}),
        (LinkToken, {"link_token": "link_1", "expires_at": "yesterday"}),
        (TokenExchange, {"access_token": 5, "grant_id": "g"}),
        (Grant, {"workspace_id": "ws"}),
        (Grant, "cgrant_1"),
        (ResyncResult, {"mode": "latest", "wallet_id": "w"}),
        (TransactionLimit, {"grant_id": "g", "transaction_limit": "lots"}),
        (TransactionLimit, {"grant_id": "g", "resync": {"triggered": "w"}}),
        (Holdings, {"summary": {}}),
        (Holdings, {"holdings": [{"asset": "BTC"}]}),
        (Holdings, {"holdings": [{"asset": {"symbol": "BTC"}, "totalQuantity": "2"}]}),
        (Integration, {"provider": "x"}),
        (Integration, {"walletId": "w", "lastSyncLog": "ok"}),
        (Integration, {"walletId": "w", "addedOn": "2024-01-01"}),
        (UserInfo, {"userInfo": {"name": "x"}}),
        (UserInfo, {"message": "ok"}),
        (Health, {"service": "x"}),
    ],
)
def test_wrong_shapes_refused(model, data) -> None:
    with pytest.raises(MalformedResponseError):
        model.from_api(data)


def test_models_are_frozen() -> None:
    g = Grant.from_api({"grant_id": "cgrant_1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.grant_id = "other"  # type: ignore[misc]


def test_syncing_synonym() -> None:
    assert Integration.from_api({"walletId": "w", "status": "SYNCING"}).is_syncing
    assert Integration.from_api({"walletId": "w", "status": "ONGOING"}).is_syncing
    assert Integration.from_api({"walletId": "w", "status": "PARTIALLY SYNCED"}).is_failing


@given(st.text(min_size=1, max_size=60))
def test_mask_token_never_reveals_much(token: str) -> None:
    masked = mask_token("cat_" + token)
    assert masked.startswith("cat_")
    hidden = sum(1 for c in masked[4:] if c != ".")
    assert hidden <= 4
    if len(token) > 8:
        assert token not in masked


def test_concurrent_calls_share_one_session(client: KryptosClient, sandbox) -> None:
    rows = [t for t in sandbox.tokens() if not t["revoked"]][:16]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda r: client.check_session(r["access_token"]).user_id, rows))
    assert results == [r["user_id"] for r in rows]
