"""Resync and transaction-limit rules, and the effective limit in /v1/userinfo."""

from __future__ import annotations

import pytest

from sandbox import SandboxHandle
from tests.sandbox.helpers import (
    active_tokens,
    assert_connect_error,
    connect,
    creds,
    data,
    new_grant,
)


def integrations(sb: SandboxHandle, token: str) -> list[dict]:
    answer = data(sb, "/v1/integrations", token, {"pageSize": 200})
    assert answer.status_code == 200
    return answer.json()["data"]


def resync(sb: SandboxHandle, wallet_id: str, body: dict, **kw: dict) -> object:
    return connect(sb, "POST", f"/developer/integrations/{wallet_id}/resync", body, **kw)


def test_wallet_resync_goes_ongoing_then_completed(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    wallet = next(i for i in integrations(sandbox, grant["access_token"])
                  if i["type"] == "api" and i["category"] == "blockchain")
    answer = resync(sandbox, wallet["walletId"], {"user_id": grant["user_id"], "mode": "latest"})
    assert answer.status_code == 202
    assert answer.json() == {"success": True, "data": {
        "mode": "latest", "integration_type": "wallet", "wallet_id": wallet["walletId"],
        "status": "queued"}}
    now = {i["walletId"]: i for i in integrations(sandbox, grant["access_token"])}
    assert now[wallet["walletId"]]["status"] == "ONGOING"
    sandbox.advance_clock(1.0)
    assert integrations(sandbox, grant["access_token"])[0]["status"] == "ONGOING"
    sandbox.advance_clock(1.5)
    done = {i["walletId"]: i for i in integrations(sandbox, grant["access_token"])}
    after = done[wallet["walletId"]]
    assert after["status"] == "COMPLETED"
    assert after["lastSyncLog"] == {"Balances": "COMPLETED", "Transactions": "COMPLETED"}
    assert after["lastSyncedAt"] > (wallet["lastSyncedAt"] or 0)
    assert "message" not in after and "limitExceeded" not in after


def test_exchange_resync_both_modes(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox, kind="linked")
    exchange = next(i for i in integrations(sandbox, grant["access_token"])
                    if i["category"] == "exchange" and i["type"] == "api")
    assert exchange["publicAddress"] is None
    for mode in ("latest", "from_start"):
        answer = resync(sandbox, exchange["walletId"], {"user_id": grant["user_id"], "mode": mode})
        assert answer.status_code == 202
        assert answer.json()["data"]["integration_type"] == "exchange"
        assert answer.json()["data"]["mode"] == mode


def test_csv_resync_rules(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    csv = next(i for i in integrations(sandbox, grant["access_token"]) if i["type"] == "csv")
    body = {"user_id": grant["user_id"], "mode": "latest"}
    assert_connect_error(resync(sandbox, csv["walletId"], body), 409,
                         "CSV_RESYNC_LATEST_UNSUPPORTED")
    answer = resync(sandbox, csv["walletId"], {**body, "mode": "from_start"})
    assert answer.status_code == 202
    got = answer.json()["data"]
    assert got["integration_type"] == "csv" and got["status"] == "ongoing"
    assert got["job_id"].startswith("job_") and got["wallet_id"] == csv["walletId"]


def test_csv_without_original_file(sandbox: SandboxHandle) -> None:
    case = sandbox.scenarios()["csv_missing"]
    answer = resync(sandbox, case["wallet_id"], {"user_id": case["user_id"], "mode": "from_start"})
    assert_connect_error(answer, 404, "CSV_SOURCE_MISSING")


@pytest.mark.parametrize("body", [{"mode": "latest"}, {"user_id": "anon_x"},
                                  {"user_id": "anon_x", "mode": "everything"},
                                  {"user_id": 7, "mode": "latest"}])
def test_resync_body_validation(sandbox: SandboxHandle, body: dict) -> None:
    assert_connect_error(resync(sandbox, "wallet_x", body), 400, "INVALID_REQUEST")


def test_resync_needs_active_grant_and_known_wallet(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    wallet = integrations(sandbox, grant["access_token"])[0]["walletId"]
    assert_connect_error(resync(sandbox, "wallet_nope", {"user_id": grant["user_id"],
                                                         "mode": "from_start"}),
                         404, "INTEGRATION_NOT_FOUND")
    assert_connect_error(resync(sandbox, wallet, {"user_id": "anon_unknown", "mode": "latest"}),
                         403, "GRANT_NOT_FOUND")
    other = resync(sandbox, wallet, {"user_id": grant["user_id"], "mode": "latest"},
                   headers=creds(sandbox, "other_client", "other_secret"))
    assert_connect_error(other, 403, "GRANT_NOT_FOUND")
    connect(sandbox, "POST", "/token/revoke", {"grant_id": grant["grant_id"]})
    assert_connect_error(resync(sandbox, wallet, {"user_id": grant["user_id"], "mode": "latest"}),
                         403, "GRANT_NOT_FOUND")


def test_newer_codes_only_with_newer_api(sandbox: SandboxHandle) -> None:
    cases = sandbox.scenarios()
    sync_off = cases["sync_disabled"]
    answer = resync(sandbox, sync_off["wallet_id"], {"user_id": sync_off["user_id"],
                                                     "mode": "latest"})
    assert answer.status_code == 202


def test_newer_api_sync_disabled_and_csv_unsupported(sandbox_newer: SandboxHandle) -> None:
    cases = sandbox_newer.scenarios()
    off = cases["sync_disabled"]
    assert_connect_error(resync(sandbox_newer, off["wallet_id"],
                                {"user_id": off["user_id"], "mode": "latest"}),
                         409, "SYNC_DISABLED")
    csv = cases["csv_unsupported"]
    for mode in ("latest", "from_start"):
        assert_connect_error(resync(sandbox_newer, csv["wallet_id"],
                                    {"user_id": csv["user_id"], "mode": mode}),
                             409, "CSV_RESYNC_UNSUPPORTED")


def limit(sb: SandboxHandle, grant_id: str, body: dict, **kw: dict) -> object:
    return connect(sb, "PATCH", f"/developer/grants/{grant_id}/transaction-limit", body, **kw)


def userinfo_limit(sb: SandboxHandle, token: str) -> int | None:
    answer = data(sb, "/v1/userinfo", token)
    assert answer.status_code == 200
    return answer.json()["userInfo"]["transaction_limit"]


def test_limit_patch_and_effective_limit(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    token = grant["access_token"]
    ws_default = sandbox.scenarios()["workspace_defaults"][grant["workspace_id"]]
    assert userinfo_limit(sandbox, token) == (ws_default or 100000)
    answer = limit(sandbox, grant["grant_id"], {"transactionLimit": 10000})
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "data": {
        "grant_id": grant["grant_id"], "user_id": grant["user_id"],
        "transaction_limit": 10000, "enable_limiter": True}}
    assert userinfo_limit(sandbox, token) == 10000
    off = limit(sandbox, grant["grant_id"], {"enableLimiter": False}).json()["data"]
    assert off["enable_limiter"] is False and off["transaction_limit"] == 10000
    assert userinfo_limit(sandbox, token) is None
    limit(sandbox, grant["grant_id"], {"enableLimiter": True, "transactionLimit": 750})
    assert userinfo_limit(sandbox, token) == 750


def test_workspace_default_and_platform_default(sandbox: SandboxHandle) -> None:
    defaults = sandbox.scenarios()["workspace_defaults"]
    seen = set()
    special = sandbox.scenarios()
    skip = {special[k]["grant_id"] for k in ("override_limit", "limiter_off")}
    for tok in active_tokens(sandbox, kind="guest"):
        if tok["grant_id"] in skip:
            continue
        got = userinfo_limit(sandbox, tok["access_token"])
        if got == (defaults[tok["workspace_id"]] or 100000):
            seen.add(defaults[tok["workspace_id"]] is None)
    assert seen == {True, False}, "expected guests on workspaces with and without a default"
    assert 5000 in defaults.values()


def test_seeded_overrides(sandbox: SandboxHandle) -> None:
    cases = sandbox.scenarios()
    assert userinfo_limit(sandbox, cases["override_limit"]["access_token"]) == 250
    assert userinfo_limit(sandbox, cases["limiter_off"]["access_token"]) is None


def test_linked_users_have_no_limit(sandbox: SandboxHandle) -> None:
    linked = active_tokens(sandbox, kind="linked")[0]
    assert userinfo_limit(sandbox, linked["access_token"]) is None
    assert_connect_error(limit(sandbox, linked["grant_id"], {"transactionLimit": 10}),
                         400, "NOT_ANON_USER")


@pytest.mark.parametrize("body", [{}, {"transactionLimit": 0}, {"transactionLimit": -5},
                                  {"transactionLimit": 1.5}, {"transactionLimit": "100"},
                                  {"transactionLimit": True}, {"enableLimiter": "yes"}])
def test_limit_body_validation(sandbox: SandboxHandle, body: dict) -> None:
    guest = active_tokens(sandbox, kind="guest")[0]
    assert_connect_error(limit(sandbox, guest["grant_id"], body), 400, "INVALID_REQUEST")


def test_limit_grant_errors(sandbox: SandboxHandle) -> None:
    assert_connect_error(limit(sandbox, "cgrant_nope", {"transactionLimit": 5}), 404,
                         "GRANT_NOT_FOUND")
    theirs = sandbox.tokens(client_id="other_client")[0]
    assert_connect_error(limit(sandbox, theirs["grant_id"], {"transactionLimit": 5}), 403,
                         "ACCESS_DENIED")
    revoked = next(t for t in sandbox.tokens() if t["revoked"])
    assert_connect_error(limit(sandbox, revoked["grant_id"], {"transactionLimit": 5}), 400,
                         "INVALID_GRANT")


def test_older_api_has_no_newer_fields(sandbox: SandboxHandle) -> None:
    guest = active_tokens(sandbox, kind="guest")[0]
    got = limit(sandbox, guest["grant_id"], {"transactionLimit": 42}).json()["data"]
    assert "previous_transaction_limit" not in got and "resync" not in got


def test_newer_api_limit_answer(sandbox_newer: SandboxHandle) -> None:
    case = sandbox_newer.scenarios()["limit_exceeded"]
    token = case["access_token"]
    before_limit = userinfo_limit(sandbox_newer, token)
    capped = [i for i in integrations(sandbox_newer, token) if i.get("limitExceeded")]
    assert capped and capped[0]["status"] == "PARTIALLY SYNCED" and capped[0]["message"]
    lower = limit(sandbox_newer, case["grant_id"], {"transactionLimit": 1}).json()["data"]
    assert lower["previous_transaction_limit"] == before_limit
    assert lower["previous_enable_limiter"] is True
    assert lower["resync"] is None
    raised = limit(sandbox_newer, case["grant_id"], {"transactionLimit": 900000}).json()["data"]
    assert raised["previous_transaction_limit"] == 1
    block = raised["resync"]
    assert block["triggered"] == [i["walletId"] for i in capped]
    assert block["failed"] == []
    total = len(integrations(sandbox_newer, token))
    assert block["skipped"] == total - len(capped)
    statuses = {i["walletId"]: i["status"] for i in integrations(sandbox_newer, token)}
    assert all(statuses[w] == "ONGOING" for w in block["triggered"])
