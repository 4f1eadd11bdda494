"""Connect API: link tokens, exchange, sessions, revoke, grants list and client auth."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests

from sandbox import SandboxControlError, SandboxHandle
from tests.sandbox.helpers import (
    active_tokens,
    assert_connect_error,
    connect,
    creds,
    data,
    new_grant,
)

DEFAULT_SCOPES = (
    "openid profile offline_access email portfolios:read transactions:read integrations:read "
    "tax:read accounting:read reports:read workspace:read users:read"
)
HEX = re.compile(r"^[0-9a-f]+$")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/link-token"), ("POST", "/link-token/check-session"),
     ("POST", "/token/exchange"), ("POST", "/token/revoke"), ("GET", "/token/grants"),
     ("POST", "/developer/integrations/wallet_x/resync"),
     ("PATCH", "/developer/grants/cgrant_x/transaction-limit")],
)
@pytest.mark.parametrize("headers", [{}, {"X-Client-Id": "sandbox_client",
                                          "X-Client-Secret": "wrong"},
                                     {"X-Client-Id": "nobody", "X-Client-Secret": "other_secret"}])
def test_connect_calls_need_client_credentials(sandbox: SandboxHandle, method: str, path: str,
                                               headers: dict) -> None:
    answer = connect(sandbox, method, path, {}, headers=headers)
    assert_connect_error(answer, 401, "INVALID_CLIENT")


def test_fresh_link_token(sandbox: SandboxHandle) -> None:
    answer = connect(sandbox, "POST", "/link-token", {"scopes": DEFAULT_SCOPES})
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True
    assert body["data"]["link_token"].startswith("link_")
    assert set(body["data"]) == {"link_token", "expires_at"}
    expires = datetime.fromisoformat(body["data"]["expires_at"].replace("Z", "+00:00"))
    minutes = (expires - datetime.now(UTC)).total_seconds() / 60
    assert 29 <= minutes <= 30.1


def test_link_token_with_access_token_resumes_session(sandbox: SandboxHandle) -> None:
    token = active_tokens(sandbox)[0]
    answer = connect(sandbox, "POST", "/link-token",
                     {"scopes": DEFAULT_SCOPES, "access_token": token["access_token"]})
    assert answer.status_code == 200
    got = answer.json()["data"]
    assert got["user_id"] == token["user_id"]
    assert got["workspace_id"] == token["workspace_id"]
    assert got["has_existing_grant"] is True


def test_returning_user_adds_an_integration_and_gets_no_public_token(
        sandbox: SandboxHandle) -> None:
    """The guide's "Subsequent Connections": INTEGRATION only, onSuccess gets null, and the
    integration joins the user's existing account (no new user, no new grant)."""
    token = active_tokens(sandbox)[0]
    before = data(sandbox, "/v1/integrations", token["access_token"]).json()["data"]
    grants_before = connect(sandbox, "GET", "/token/grants").json()["data"]["count"]
    link = connect(sandbox, "POST", "/link-token",
                   {"access_token": token["access_token"]}).json()["data"]["link_token"]
    done = sandbox.create_public_token(link_token=link)
    assert done["public_token"] is None and done["resumed"] is True
    assert (done["user_id"], done["grant_id"]) == (token["user_id"], token["grant_id"])
    after = data(sandbox, "/v1/integrations", token["access_token"]).json()["data"]
    assert len(after) == len(before) + 1
    assert done["wallet_id"] in {i["walletId"] for i in after}
    assert connect(sandbox, "GET", "/token/grants").json()["data"]["count"] == grants_before
    holdings = data(sandbox, "/v1/holdings", token["access_token"])
    assert holdings.status_code == 200 and holdings.json()["holdings"]


def test_link_token_with_bad_access_token_is_invalid_token(sandbox: SandboxHandle) -> None:
    answer = connect(sandbox, "POST", "/link-token", {"access_token": "cat_nope"})
    assert_connect_error(answer, 401, "INVALID_TOKEN")
    revoked = next(t for t in sandbox.tokens() if t["revoked"])
    answer = connect(sandbox, "POST", "/link-token", {"access_token": revoked["access_token"]})
    assert_connect_error(answer, 401, "INVALID_TOKEN")


def test_link_token_rejects_unknown_scope(sandbox: SandboxHandle) -> None:
    answer = connect(sandbox, "POST", "/link-token", {"scopes": "openid wallets:write"})
    assert_connect_error(answer, 400, "INVALID_SCOPE")


def test_link_token_expires_after_30_minutes(sandbox: SandboxHandle) -> None:
    link = connect(sandbox, "POST", "/link-token", {}).json()["data"]["link_token"]
    assert sandbox.create_public_token(link_token=link)["public_token"].startswith("public_")
    sandbox.advance_clock(30 * 60 + 1)
    with pytest.raises(SandboxControlError, match="TOKEN_EXPIRED"):
        sandbox.create_public_token(link_token=link)


def test_exchange_gives_long_lived_token_and_grant(sandbox: SandboxHandle) -> None:
    public = sandbox.create_public_token(kind="guest")
    assert public["public_token"].startswith("public_")
    assert public["user_id"].startswith("anon_")
    answer = connect(sandbox, "POST", "/token/exchange", {"public_token": public["public_token"]})
    assert answer.status_code == 200
    got = answer.json()["data"]
    assert got["access_token"].startswith("cat_") and HEX.match(got["access_token"][4:])
    assert got["grant_id"].startswith("cgrant_")
    assert got["token_type"] == "Bearer"
    assert got["expires_in"] == 473040000
    assert got["scope"] == DEFAULT_SCOPES
    assert got["workspace_id"].startswith("ws_")
    grants = connect(sandbox, "GET", "/token/grants").json()["data"]["grants"]
    assert got["grant_id"] in {g["grant_id"] for g in grants}
    info = data(sandbox, "/v1/userinfo", got["access_token"]).json()
    assert info["userInfo"]["sub"] == public["user_id"]
    exported = {t["grant_id"]: t for t in sandbox.tokens()}
    assert exported[got["grant_id"]]["access_token"] == got["access_token"]


def test_public_token_is_single_use(sandbox: SandboxHandle) -> None:
    public = sandbox.create_public_token(kind="linked")
    first = connect(sandbox, "POST", "/token/exchange", {"public_token": public["public_token"]})
    assert first.status_code == 200
    again = connect(sandbox, "POST", "/token/exchange", {"public_token": public["public_token"]})
    assert_connect_error(again, 400, "TOKEN_ALREADY_USED")


def test_public_token_expires_after_30_minutes(sandbox: SandboxHandle) -> None:
    fresh = sandbox.create_public_token()
    stale = sandbox.create_public_token()
    sandbox.advance_clock(29 * 60)
    ok = connect(sandbox, "POST", "/token/exchange", {"public_token": fresh["public_token"]})
    assert ok.status_code == 200
    sandbox.advance_clock(61)
    late = connect(sandbox, "POST", "/token/exchange", {"public_token": stale["public_token"]})
    assert_connect_error(late, 400, "TOKEN_EXPIRED")


def test_exchange_unknown_or_missing_token(sandbox: SandboxHandle) -> None:
    assert_connect_error(connect(sandbox, "POST", "/token/exchange",
                                 {"public_token": "public_nope"}), 400, "INVALID_TOKEN")
    assert_connect_error(connect(sandbox, "POST", "/token/exchange", {}), 400, "INVALID_REQUEST")
    other = sandbox.create_public_token(client_id="other_client")
    assert_connect_error(connect(sandbox, "POST", "/token/exchange",
                                 {"public_token": other["public_token"]}), 400, "INVALID_TOKEN")


def test_check_session_valid(sandbox: SandboxHandle) -> None:
    token = active_tokens(sandbox)[0]
    answer = connect(sandbox, "POST", "/link-token/check-session",
                     {"access_token": token["access_token"]})
    assert answer.status_code == 200
    got = answer.json()["data"]
    assert got["has_valid_session"] is True
    assert got["user_id"] == token["user_id"]
    assert got["workspace_id"] == token["workspace_id"]
    assert got["grant_id"] == token["grant_id"]
    assert isinstance(got["workspace_name"], str) and got["workspace_name"]
    assert got["granted_scopes"] == DEFAULT_SCOPES


def test_check_session_unknown_token(sandbox: SandboxHandle) -> None:
    answer = connect(sandbox, "POST", "/link-token/check-session", {"access_token": "cat_zz"})
    assert answer.status_code == 200
    assert answer.json()["data"] == {"has_valid_session": False, "reason": "invalid_token"}


def test_revoke_invalidates_everything(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    token, grant_id = grant["access_token"], grant["grant_id"]
    assert data(sandbox, "/v1/holdings", token).status_code == 200
    answer = connect(sandbox, "POST", "/token/revoke", {"grant_id": grant_id})
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "message": "Grant revoked successfully"}
    for path in ("/v1/holdings", "/v1/integrations", "/v1/userinfo"):
        denied = data(sandbox, path, token)
        assert denied.status_code == 401
        assert denied.json()["error"] == "unauthorized"
    session = connect(sandbox, "POST", "/link-token/check-session", {"access_token": token})
    assert session.json()["data"] == {"has_valid_session": False, "reason": "grant_revoked"}
    listed = connect(sandbox, "GET", "/token/grants").json()["data"]["grants"]
    assert grant_id not in {g["grant_id"] for g in listed}
    again = connect(sandbox, "POST", "/token/revoke", {"grant_id": grant_id})
    assert_connect_error(again, 400, "INVALID_GRANT")
    exported = {t["grant_id"]: t for t in sandbox.tokens()}
    assert exported[grant_id]["revoked"] is True


def test_revoke_errors(sandbox: SandboxHandle) -> None:
    assert_connect_error(connect(sandbox, "POST", "/token/revoke", {"grant_id": "cgrant_no"}),
                         404, "GRANT_NOT_FOUND")
    assert_connect_error(connect(sandbox, "POST", "/token/revoke", {}), 400, "INVALID_REQUEST")
    theirs = sandbox.tokens(client_id="other_client")[0]
    assert_connect_error(connect(sandbox, "POST", "/token/revoke",
                                 {"grant_id": theirs["grant_id"]}), 403, "ACCESS_DENIED")


def test_grants_list_shape_and_active_only(sandbox: SandboxHandle) -> None:
    answer = connect(sandbox, "GET", "/token/grants")
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True
    grants = body["data"]["grants"]
    assert body["data"]["count"] == len(grants)
    revoked = {t["grant_id"] for t in sandbox.tokens() if t["revoked"]}
    assert 3 <= len(revoked) <= 6
    assert 30 <= len(grants) <= 40
    assert not revoked & {g["grant_id"] for g in grants}
    for g in grants:
        assert set(g) == {"grant_id", "workspace_id", "scopes", "created_at", "expires_at"}
        created = datetime.fromisoformat(g["created_at"].replace("Z", "+00:00"))
        expires = datetime.fromisoformat(g["expires_at"].replace("Z", "+00:00"))
        assert (expires - created).total_seconds() == 473040000
    other = connect(sandbox, "GET", "/token/grants",
                    headers=creds(sandbox, "other_client", "other_secret")).json()["data"]
    assert other["count"] == 3
    assert not {g["grant_id"] for g in other["grants"]} & {g["grant_id"] for g in grants}


def test_unknown_route_and_bad_json(sandbox: SandboxHandle) -> None:
    assert connect(sandbox, "GET", "/token/nothing").status_code == 404
    answer = connect(sandbox, "GET", "/token/revoke")
    assert answer.status_code == 405
    bad = requests.post(sandbox.connect_url + "/token/revoke", data=b"{not json",
                        headers={**creds(sandbox), "Content-Type": "application/json"}, timeout=5)
    assert_connect_error(bad, 400, "INVALID_REQUEST")
