"""Data API: holdings, integrations, userinfo, health; auth and scopes."""

from __future__ import annotations

import math

import pytest
import requests

from sandbox import SandboxHandle
from tests.sandbox.helpers import active_tokens, assert_data_error, creds, data, new_grant

PATHS = ("/v1/holdings", "/v1/integrations", "/v1/userinfo")


def test_health_needs_no_auth(sandbox: SandboxHandle) -> None:
    answer = requests.get(sandbox.data_url + "/health", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["status"] == "OK"
    assert answer.json()["service"] == "connect-apis"


@pytest.mark.parametrize("path", PATHS)
def test_data_auth_failures(sandbox: SandboxHandle, path: str) -> None:
    token = active_tokens(sandbox)[0]["access_token"]
    cases = [
        {**creds(sandbox)},  # no bearer
        {**creds(sandbox), "Authorization": "Bearer cat_unknown"},
        {**creds(sandbox), "Authorization": f"Token {token}"},
        {"Authorization": f"Bearer {token}"},  # no client credentials
        {**creds(sandbox, secret="wrong"), "Authorization": f"Bearer {token}"},
        {**creds(sandbox, "other_client", "other_secret"), "Authorization": f"Bearer {token}"},
    ]
    for headers in cases:
        assert_data_error(data(sandbox, path, token, headers=headers), 401, "unauthorized")
    revoked = next(t for t in sandbox.tokens() if t["revoked"])
    assert_data_error(data(sandbox, path, revoked["access_token"]), 401, "unauthorized")


def test_missing_scopes_are_forbidden(sandbox: SandboxHandle) -> None:
    cases = sandbox.scenarios()
    only_integrations = cases["integrations_only"]["access_token"]
    assert data(sandbox, "/v1/integrations", only_integrations).status_code == 200
    assert_data_error(data(sandbox, "/v1/holdings", only_integrations), 403, "forbidden")
    assert_data_error(data(sandbox, "/v1/userinfo", only_integrations), 403, "forbidden")
    no_integrations = cases["no_integrations_scope"]["access_token"]
    assert data(sandbox, "/v1/holdings", no_integrations).status_code == 200
    assert data(sandbox, "/v1/userinfo", no_integrations).status_code == 200
    assert_data_error(data(sandbox, "/v1/integrations", no_integrations), 403, "forbidden")


def check_holdings(body: dict) -> None:
    summary = body["summary"]
    rows = body["holdings"]
    assert rows
    for row in rows:
        assert set(row["asset"]) >= {"tokenId", "symbol", "publicName", "chainId", "type"}
        assert row["asset"]["type"] in ("crypto", "nft", "fiat")
        assert math.isclose(row["marketValue"], row["totalQuantity"] * row["marketPrice"],
                            abs_tol=0.02)
        assert math.isclose(row["unrealizedPnL"], row["marketValue"] - row["costbasis"],
                            abs_tol=0.02) or row["costbasis"] == 0
        if row["costbasis"]:
            assert math.isclose(row["roi"], row["unrealizedPnL"] / row["costbasis"] * 100,
                                abs_tol=0.01)
        else:
            assert row["roi"] == 0
        dist = row["assetDistribution"]
        assert math.isclose(sum(d["quantity"] for d in dist), row["totalQuantity"],
                            rel_tol=1e-9)
        assert math.isclose(sum(d["allocationPercentage"] for d in dist), 100, abs_tol=0.01)
        assert all(d["account"]["walletId"].startswith("wallet_") for d in dist)
    assert math.isclose(summary["totalValue"], sum(r["marketValue"] for r in rows), abs_tol=0.05)
    assert math.isclose(summary["totalCostBasis"], sum(r["costbasis"] for r in rows),
                        abs_tol=0.05)
    assert math.isclose(summary["totalUnrealizedPnL"], sum(r["unrealizedPnL"] for r in rows),
                        abs_tol=0.05)
    if summary["totalCostBasis"]:
        assert math.isclose(summary["roiPercentage"],
                            summary["totalUnrealizedPnL"] / summary["totalCostBasis"] * 100,
                            abs_tol=0.01)


def test_holdings_consistent_for_every_seeded_user(sandbox: SandboxHandle) -> None:
    types: set[str] = set()
    for tok in active_tokens(sandbox):
        answer = data(sandbox, "/v1/holdings", tok["access_token"])
        assert answer.status_code == 200
        body = answer.json()
        assert body["user_id"] == tok["user_id"]
        assert isinstance(body["timestamp"], int)
        check_holdings(body)
        types |= {r["asset"]["type"] for r in body["holdings"]}
        assert not any(r["asset"]["category"] == "spam" for r in body["holdings"])
    assert types == {"crypto", "nft", "fiat"}


def test_spam_only_with_is_spam(sandbox: SandboxHandle) -> None:
    found = False
    for tok in active_tokens(sandbox):
        plain = data(sandbox, "/v1/holdings", tok["access_token"]).json()
        spam = data(sandbox, "/v1/holdings", tok["access_token"], {"isSpam": "true"}).json()
        extra = {r["asset"]["tokenId"] for r in spam["holdings"]} - {
            r["asset"]["tokenId"] for r in plain["holdings"]}
        if extra:
            found = True
            assert all(r["asset"]["category"] == "spam" for r in spam["holdings"]
                       if r["asset"]["tokenId"] in extra)
            assert spam["summary"]["totalValue"] == plain["summary"]["totalValue"]
    assert found


def test_calculated_balances_add_csv_rows(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    plain = data(sandbox, "/v1/holdings", grant["access_token"]).json()
    calc = data(sandbox, "/v1/holdings", grant["access_token"],
                {"calculatedBalances": "true"}).json()
    check_holdings(calc)
    assert not any(r["hasCalculatedBalance"] for r in plain["holdings"])
    assert any(r["hasCalculatedBalance"] for r in calc["holdings"])
    assert calc["summary"]["totalValue"] > plain["summary"]["totalValue"]
    assert_data_error(data(sandbox, "/v1/holdings", grant["access_token"], {"isSpam": "maybe"}),
                      400, "invalid_parameters")


def test_integrations_shape(sandbox: SandboxHandle) -> None:
    statuses: set[str] = set()
    kinds: set[tuple[str, str]] = set()
    for tok in active_tokens(sandbox):
        answer = data(sandbox, "/v1/integrations", tok["access_token"])
        assert answer.status_code == 200
        body = answer.json()
        assert body["user_id"] == tok["user_id"]
        assert 1 <= body["pagination"]["totalCount"] <= 6
        for item in body["data"]:
            assert item["walletId"].startswith("wallet_")
            assert item["type"] in ("api", "csv")
            assert item["category"] in ("exchange", "wallet", "blockchain", "unknown")
            if item["category"] == "exchange":
                assert item["publicAddress"] is None
            statuses.add(item["status"])
            kinds.add((item["category"], item["type"]))
            if item["status"] == "PARTIALLY SYNCED":
                assert item["limitExceeded"] is True and item["message"]
            if item["status"] == "active":
                assert item["lastSyncedAt"] is None and "lastSyncLog" not in item
            assert item.get("limitExceeded", True) is True
    assert {"COMPLETED", "FAILED", "PARTIALLY SYNCED", "active"} <= statuses
    assert {("blockchain", "api"), ("exchange", "api"), ("exchange", "csv")} <= kinds


def test_first_guest_carries_the_xss_text(sandbox: SandboxHandle) -> None:
    first_guest = next(t for t in sandbox.tokens() if t["kind"] == "guest")
    assert sandbox.scenarios()["xss"]["grant_id"] == first_guest["grant_id"]
    first = data(sandbox, "/v1/integrations", first_guest["access_token"]).json()["data"][0]
    assert first["alias"] == '<img src=x onerror="window.__xss=1">Cold <b>wallet</b>'
    assert first["message"] == (
        "<script>window.__xss=2</script> **not bold** [link](javascript:alert(1))")


def test_integrations_pagination_and_search(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    token = grant["access_token"]
    everything = data(sandbox, "/v1/integrations", token).json()
    total = everything["pagination"]["totalCount"]
    assert total >= 4 and everything["pagination"]["pageSize"] == 25
    page1 = data(sandbox, "/v1/integrations", token, {"pageSize": 2}).json()
    assert len(page1["data"]) == 2
    assert page1["pagination"] == {"page": 1, "pageSize": 2, "totalCount": total,
                                   "hasNextPage": True, "hasPreviousPage": False}
    page2 = data(sandbox, "/v1/integrations", token, {"pageSize": 2, "page": 2}).json()
    assert page2["pagination"]["hasPreviousPage"] is True
    ids = [i["walletId"] for i in page1["data"] + page2["data"]]
    assert ids == [i["walletId"] for i in everything["data"][:4]]
    target = everything["data"][0]
    for key in (target["walletId"].upper(), target["provider"], target["walletId"][-6:]):
        found = data(sandbox, "/v1/integrations", token, {"searchedKey": key}).json()
        assert target["walletId"] in {i["walletId"] for i in found["data"]}
        assert found["pagination"]["totalCount"] == len(found["data"])
    none = data(sandbox, "/v1/integrations", token, {"searchedKey": "zzzz-no-such"}).json()
    assert none["data"] == [] and none["pagination"]["totalCount"] == 0
    assert data(sandbox, "/v1/integrations", token, {"pageSize": 200}).status_code == 200
    for bad in ({"pageSize": 201}, {"pageSize": 0}, {"page": 0}, {"page": "x"}):
        assert_data_error(data(sandbox, "/v1/integrations", token, bad), 400,
                          "invalid_parameters")


def test_userinfo_shapes(sandbox: SandboxHandle) -> None:
    linked = new_grant(sandbox, kind="linked")
    guest = new_grant(sandbox, kind="guest")
    body = data(sandbox, "/v1/userinfo", linked["access_token"]).json()
    assert body["message"] == "User information retrieved successfully"
    info = body["userInfo"]
    assert info["sub"] == linked["user_id"] and "@" in info["email"] and info["name"]
    assert info["email_verified"] is True and info["transaction_limit"] is None
    assert "users:read" in body["scopes"] and isinstance(body["scopes"], list)
    ginfo = data(sandbox, "/v1/userinfo", guest["access_token"]).json()["userInfo"]
    assert ginfo["sub"].startswith("anon_") and isinstance(ginfo["transaction_limit"], int)


def test_named_public_token_user(sandbox: SandboxHandle) -> None:
    public = sandbox.create_public_token(kind="linked", name="Ada Lovelace",
                                         email="ada@example.com")
    answer = requests.post(sandbox.connect_url + "/token/exchange",
                           json={"public_token": public["public_token"]},
                           headers=creds(sandbox), timeout=5)
    token = answer.json()["data"]["access_token"]
    info = data(sandbox, "/v1/userinfo", token).json()["userInfo"]
    assert (info["name"], info["email"]) == ("Ada Lovelace", "ada@example.com")
    assert public["kind"] == "linked" and info["sub"] == public["user_id"]
