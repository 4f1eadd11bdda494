"""Mutations against the sandbox: audit events of success and of each failure class."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.operations import GrantFilter, LimitChange, OperationError, UpstreamError

from .conftest import Env, actor

SUPPORT = actor("support")
FINANCE = actor("finance")
ADMIN = actor("admin")


def pair(env: Env, action: str) -> tuple[object, object]:
    events = env.events(action=action)
    assert [e.outcome for e in events][:1] == ["requested"] and len(events) == 2, events
    req, end = events
    assert req.correlation_id == end.correlation_id and req.correlation_id
    return req, end


def posts(env: Env, path_part: str, method: str = "POST") -> list[dict]:
    return [r for r in env.upstream() if r["method"] == method and path_part in r["path"]]


# --- revoke --------------------------------------------------------------------------------

def test_revoke_success(env: Env) -> None:
    gid = env.stored()[0]["grant_id"]
    msg = env.ops.grants.revoke_grant(SUPPORT, gid, "customer asked to disconnect", ticket="SUP-12")
    assert "revoked" in msg.lower()
    req, end = pair(env, "grant.revoke")
    assert end.outcome == "succeeded" and end.target_id == gid
    assert req.reason == "customer asked to disconnect" and req.ticket == "SUP-12"
    assert end.before == {"status": "active"} and end.after == {"status": "revoked"}
    assert {r.grant_id: r.status for r in env.synced_rows()}[gid] == "revoked"


def test_revoke_unknown_grant_fails_with_api_code(env: Env) -> None:
    with pytest.raises(UpstreamError) as info:
        env.ops.grants.revoke_grant(SUPPORT, "cgrant_nosuchgrant", "cleanup of test data")
    err = info.value
    assert err.code == "GRANT_NOT_FOUND" and err.status in (403, 404)
    assert "Revoking the grant failed" in err.user_message and err.request_id
    _, end = pair(env, "grant.revoke")
    assert end.outcome == "failed" and end.error_code == "GRANT_NOT_FOUND"
    assert end.request_id == err.request_id


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"status": 500, "code": "INTERNAL", "message": "boom"}, "INTERNAL"),
        ({"status": 500, "message": "boom", "phase": "after"}, None),
        ({"drop": True}, "CONNECTION_ERROR"),
        ({"status": 429, "code": "rate_limit_exceeded", "retry_after": 0, "count": 50},
         "rate_limit_exceeded"),
        ({"status": 401, "code": "INVALID_CLIENT", "message": "bad client"}, "INVALID_CLIENT"),
    ],
)
def test_revoke_failure_classes(env: Env, fault: dict, code: str) -> None:
    gid = env.stored()[0]["grant_id"]
    env.sandbox.set_fault(path="/token/revoke", method="POST", **fault)
    with pytest.raises(UpstreamError) as info:
        env.ops.grants.revoke_grant(SUPPORT, gid, "customer asked to disconnect")
    code = code or info.value.code  # None: whatever the API named it, kept as is
    assert info.value.code == code and info.value.user_message
    _, end = pair(env, "grant.revoke")
    assert end.outcome == "failed" and end.error_code == code
    assert end.error_message == info.value.user_message
    # a mutation that reached the server is never sent twice (429 excepted: refused unacted)
    sent = posts(env, "/token/revoke")
    assert len(sent) == (3 if code == "rate_limit_exceeded" else 1)
    # whether a 5xx or a dropped connection took effect is unknown, and the person is told
    uncertain = fault.get("status") == 500 or fault.get("drop")
    assert ("may have" in info.value.user_message) == bool(uncertain)


def test_revoke_that_took_effect_behind_a_500_says_so(env: Env) -> None:
    gid = env.stored()[0]["grant_id"]
    env.sandbox.set_fault(path="/token/revoke", method="POST", status=500, phase="after")
    with pytest.raises(UpstreamError) as info:
        env.ops.grants.revoke_grant(SUPPORT, gid, "customer asked to disconnect")
    assert "refresh and check" in info.value.user_message
    # ... and it had: the grant is gone from the API's list, shown as revoked
    row = next(r for r in env.synced_rows() if r.grant_id == gid)
    assert row.status == "revoked"


# --- resync --------------------------------------------------------------------------------

def test_resync_latest_success_learns_user_id(env: Env) -> None:
    row, integ = env.find_integration(lambda i: not i.is_csv)
    env.sandbox.clear_requests_log()
    out = env.ops.grants.resync_integration(SUPPORT, row["grant_id"], integ.wallet_id, "latest")
    assert out.wallet_id == integ.wallet_id and out.mode == "latest" and out.status
    req, end = pair(env, "integration.resync")
    assert req.params == {"wallet_id": integ.wallet_id, "mode": "latest"}
    assert end.outcome == "succeeded" and end.after["status"] == out.status
    assert env.vault.get(row["grant_id"]).kryptos_user_id == row["user_id"]
    assert len(posts(env, "/link-token/check-session")) == 1
    env.sandbox.clear_requests_log()
    env.ops.grants.resync_integration(SUPPORT, row["grant_id"], integ.wallet_id, "latest")
    assert posts(env, "/link-token/check-session") == []  # remembered in the vault


def test_resync_csv_from_start(env: Env) -> None:
    row, integ = env.find_integration(lambda i: i.is_csv)
    out = env.ops.grants.resync_integration(SUPPORT, row["grant_id"], integ.wallet_id, "from_start",
                                     reason="customer re-uploaded the file")
    assert out.integration_type == "csv" and out.job_id
    _, end = pair(env, "integration.resync")
    assert end.outcome == "succeeded" and end.reason == "customer re-uploaded the file"


def test_resync_csv_latest_refused_before_call(env: Env) -> None:
    row, integ = env.find_integration(lambda i: i.is_csv)
    env.sandbox.clear_requests_log()
    with pytest.raises(OperationError) as info:
        env.ops.grants.resync_integration(SUPPORT, row["grant_id"], integ.wallet_id, "latest")
    assert info.value.code == "CSV_RESYNC_LATEST_UNSUPPORTED"
    assert "From start (full re-import)" in info.value.user_message
    assert '"from_start"' not in info.value.user_message
    assert posts(env, "/resync") == []
    _, end = pair(env, "integration.resync")
    assert end.outcome == "failed" and end.error_code == "CSV_RESYNC_LATEST_UNSUPPORTED"


def test_resync_csv_latest_type_unknown_api_answers(env: Env) -> None:
    row, integ = env.find_integration(lambda i: i.is_csv)
    env.sandbox.set_fault(path="/api/v1/integrations", status=500, count=100)
    with pytest.raises(UpstreamError) as info:
        env.ops.grants.resync_integration(SUPPORT, row["grant_id"], integ.wallet_id, "latest")
    assert info.value.code == "CSV_RESYNC_LATEST_UNSUPPORTED" and info.value.status == 409
    assert len(posts(env, "/resync")) == 1


def test_resync_unknown_wallet(env: Env) -> None:
    gid = env.stored()[0]["grant_id"]
    with pytest.raises(UpstreamError) as info:
        env.ops.grants.resync_integration(SUPPORT, gid, "wallet_nope", "latest")
    assert info.value.code == "INTEGRATION_NOT_FOUND"
    assert pair(env, "integration.resync")[1].error_code == "INTEGRATION_NOT_FOUND"


def test_resync_without_token_or_user_id(env: Env) -> None:
    with pytest.raises(OperationError) as info:
        env.ops.grants.resync_integration(SUPPORT, env.no_token_grant(), "wallet_x", "latest")
    assert info.value.code == "NO_USER_ID" and "no access token" in info.value.user_message
    assert posts(env, "/resync") == []


# --- limits --------------------------------------------------------------------------------

def test_set_limit_before_and_after(env: Env) -> None:
    t = env.stored(kind="guest")[0]
    before = env.client.get_userinfo(t["access_token"]).transaction_limit
    change = env.ops.limits.set_guest_limit(FINANCE, t["grant_id"], 12345, reason="upgrade to Plus",
                                     ticket="FIN-7", confirmed=True)
    assert isinstance(change, LimitChange)
    assert change.before_limit == before and change.after_limit == 12345
    assert change.after_limiter is True
    req, end = pair(env, "guest.limit.update")
    assert req.params == {"transaction_limit": 12345, "enable_limiter": None}
    assert end.before["transaction_limit"] == before
    assert end.after == {"transaction_limit": 12345, "enable_limiter": True}
    assert env.vault.get(t["grant_id"]).user_kind == "guest"
    assert env.client.get_userinfo(t["access_token"]).transaction_limit == 12345


def test_set_limit_before_from_audit_when_user_info_unreadable(env: Env) -> None:
    gid = env.stored(kind="guest")[0]["grant_id"]
    env.ops.limits.set_guest_limit(FINANCE, gid, 2000, reason="trial extension", confirmed=True)
    env.sandbox.set_fault(path="/api/v1/userinfo", status=500, count=100)
    change = env.ops.limits.set_guest_limit(FINANCE, gid, enable_limiter=False,
                                            reason="goes unlimited", confirmed=True)
    assert change.before_limit == 2000 and change.before_limiter is True
    assert change.after_limiter is False


def test_set_limit_refused_for_known_linked(env: Env) -> None:
    t = env.stored(kind="linked")[0]
    env.sandbox.clear_requests_log()
    with pytest.raises(OperationError) as info:
        env.ops.limits.set_guest_limit(FINANCE, t["grant_id"], 5000, reason="upgrade to Plus",
                                       confirmed=True)
    assert info.value.code == "NOT_ANON_USER" and "Guest" in info.value.user_message
    assert posts(env, "/transaction-limit", "PATCH") == []
    assert env.vault.get(t["grant_id"]).user_kind == "linked"  # learned from user info
    assert pair(env, "guest.limit.update")[1].error_code == "NOT_ANON_USER"


def test_set_limit_learns_linked_from_api(env: Env) -> None:
    t = env.stored(kind="linked")[0]
    env.sandbox.set_fault(path="/api/v1/userinfo", status=500, count=100)
    with pytest.raises(UpstreamError) as info:
        env.ops.limits.set_guest_limit(FINANCE, t["grant_id"], 5000, reason="upgrade to Plus",
                                       confirmed=True)
    assert info.value.code == "NOT_ANON_USER" and info.value.status == 400
    assert len(posts(env, "/transaction-limit", "PATCH")) == 1
    assert env.vault.get(t["grant_id"]).user_kind == "linked"
    env.sandbox.clear_requests_log()
    with pytest.raises(OperationError):  # now refused before the call
        env.ops.limits.set_guest_limit(FINANCE, t["grant_id"], 5000, reason="upgrade to Plus",
                                       confirmed=True)
    assert posts(env, "/transaction-limit", "PATCH") == []


# --- tokens --------------------------------------------------------------------------------

def test_exchange_stores_token(env: Env) -> None:
    created = env.sandbox.create_public_token(kind="guest")
    row = env.ops.connect.exchange_public_token(SUPPORT, "cust-new-1", created["public_token"])
    assert row.has_token and row.customer_ref == "cust-new-1" and row.status == "active"
    assert row.user_kind == "guest" and row.kryptos_user_id == created["user_id"]
    stored = {t["grant_id"]: t for t in env.sandbox.tokens()}[row.grant_id]
    assert env.vault.reveal(row.grant_id) == stored["access_token"]
    req, end = pair(env, "token.exchange")
    assert end.outcome == "succeeded" and end.after["grant_id"] == row.grant_id
    # a second exchange of the same token (a double click) answers the same grant
    grants_before = len(env.sandbox.tokens())
    env.sandbox.clear_requests_log()
    again = env.ops.connect.exchange_public_token(SUPPORT, "cust-new-1", created["public_token"])
    assert again.grant_id == row.grant_id and again.has_token
    assert len(env.sandbox.tokens()) == grants_before  # no duplicate grant upstream
    assert posts(env, "exchange") == []  # answered from the store, not asked again
    last = env.events(action="token.exchange")[-1]
    assert last.outcome == "succeeded" and last.after["already_exchanged"] is True


def test_exchange_twice_at_once_one_grant(env: Env) -> None:
    """Two clicks at once (two threads): one exchange upstream, both answer one grant."""
    created = env.sandbox.create_public_token(kind="guest")
    env.sandbox.set_latency(300)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futs = [pool.submit(env.ops.connect.exchange_public_token, SUPPORT, "cust-dbl",
                            created["public_token"]) for _ in range(2)]
        rows = [f.result() for f in futs]
    assert rows[0].grant_id == rows[1].grant_id
    assert len([t for t in env.sandbox.tokens() if t.get("customer_ref") == "cust-dbl"]) <= 1
    assert [t["grant_id"] for t in env.sandbox.tokens()].count(rows[0].grant_id) == 1


def test_exchange_of_a_used_token_never_stored_is_an_error(env: Env) -> None:
    created = env.sandbox.create_public_token(kind="guest")
    env.client.exchange_public_token(created["public_token"])  # exchanged outside the console
    with pytest.raises(UpstreamError) as info:
        env.ops.connect.exchange_public_token(SUPPORT, "cust-x", created["public_token"])
    assert info.value.code == "TOKEN_ALREADY_USED"


def test_link_token_fresh_and_resumed(env: Env) -> None:
    issued = env.ops.connect.create_link_token(SUPPORT, "cust-9")
    assert issued.link_token.startswith("link_") and not issued.resumed
    assert issued.link_token not in repr(issued)
    gid = env.stored()[0]["grant_id"]
    resumed = env.ops.connect.create_link_token(SUPPORT, "cust-9", grant_id=gid)
    assert resumed.resumed and resumed.grant_id == gid
    assert [e.outcome for e in env.events(action="link_token.create")] == [
        "requested", "succeeded", "requested", "succeeded"]


def _new_grant(env: Env) -> tuple[str, str]:
    """A grant Kryptos lists whose token the vault does not hold yet."""
    ex = env.client.exchange_public_token(env.sandbox.create_public_token()["public_token"])
    return ex.grant_id, ex.access_token


def test_import_tokens_counts_only(env: Env) -> None:
    t = env.stored()[0]
    gid, token = _new_grant(env)
    text = ("grant_id,access_token,customer_ref\n"
            f"{t['grant_id']},{t['access_token']},c-1\n"
            f"{gid},{token},c-2\n"
            "cgrant_no_token,,x\n")
    report = env.ops.connect.import_tokens(SUPPORT, io.StringIO(text))
    assert (report.added, report.updated, len(report.rejected)) == (1, 1, 1)
    summary = [e for e in env.events(action="token.import") if e.target_type == "vault"]
    assert [e.outcome for e in summary] == ["requested", "succeeded"]
    assert summary[1].after == {"added": 1, "updated": 1, "rejected": 1}
    # each stored grant's history has its import (customer reference in params, no token)
    new = env.events(action="token.import", target_id=gid)
    assert [e.outcome for e in new] == ["requested", "succeeded"]
    assert new[0].params == {"customer_ref": "c-2"} and new[1].after == {"stored": "added"}
    old = env.events(action="token.import", target_id=t["grant_id"])
    assert old[1].after == {"stored": "replaced"}
    assert env.events(action="token.import", target_id="cgrant_no_token") == []
    assert token not in repr(env.events())


def test_import_refuses_unlisted_grants_and_control_characters(env: Env) -> None:
    gid, token = _new_grant(env)
    other, other_token = _new_grant(env)
    text = ("grant_id,access_token,customer_ref\n"
            "cgrant_not_at_kryptos,cat_abcdefghijkl,c-2\n"  # line 2: not listed
            f"{gid},{token},=HYPER\x00LINK\n"  # line 3: NUL
            f"{other},{other_token},\"two\x1blines\"\n")  # line 4: ESC
    report = env.ops.connect.import_tokens(SUPPORT, io.StringIO(text))
    assert (report.added, report.updated) == (0, 0)
    why = {r.line: r.reason for r in report.rejected}
    assert "Kryptos does not list this grant" in why[2]
    assert "control character" in why[3] and "control character" in why[4]
    assert token not in repr(report) and other_token not in repr(report)
    assert env.vault.get("cgrant_not_at_kryptos") is None and env.vault.get(gid) is None
    # nothing imported shows up as "revoked outside this console"
    rows = env.synced_rows(GrantFilter(status="revoked"))
    assert "cgrant_not_at_kryptos" not in {r.grant_id for r in rows}


def test_import_refused_when_grants_cannot_be_checked(env: Env) -> None:
    gid, token = _new_grant(env)
    env.sandbox.set_fault(path="/token/grants", status=503, count=100)
    with pytest.raises(UpstreamError) as info:
        env.ops.connect.import_tokens(
            SUPPORT, io.StringIO(f"grant_id,access_token,customer_ref\n{gid},{token},c\n"))
    assert "nothing was imported" in info.value.user_message
    assert env.vault.get(gid) is None


# --- audit ---------------------------------------------------------------------------------

def test_audit_export_and_verify(env: Env) -> None:
    env.ops.grants.revoke_grant(SUPPORT, env.stored()[0]["grant_id"], "customer asked")
    text = env.ops.audit.export_audit(FINANCE, fmt="jsonl")
    # the revoke pair, and the export's own `requested` event
    assert text.count("\n") == 3 and text.count("grant.revoke") == 2
    report = env.ops.audit.verify_audit(FINANCE)
    assert report.ok and report.checked >= 3
    assert env.events(action="audit.verify")[-1].after["ok"] is True
    assert env.ops.audit.audit_page(FINANCE).total == len(env.events())


def test_login_events(env: Env) -> None:
    env.ops.auth.record_login(SUPPORT)
    env.ops.auth.record_login_failed("mallory")
    env.ops.auth.record_logout(SUPPORT)
    assert [(e.action, e.outcome) for e in env.events()] == [
        ("auth.login", "succeeded"), ("auth.login_failed", "failed"),
        ("auth.logout", "succeeded")]


def test_failed_login_keeps_the_typed_name_out_of_actor_and_target(env: Env) -> None:
    env.ops.auth.record_login_failed("  finance\x1b[31m\u202e" + "x" * 100)
    event = env.events(action="auth.login_failed")[-1]
    assert (event.actor_username, event.actor_roles, event.target_id) == ("anonymous", (), None)
    typed = event.params["typed_username"]
    assert typed.startswith("finance\\x1b[31m\\u202e") and "\x1b" not in typed
    assert len(typed) == 64 - 2 + len("\\x1b") + len("\\u202e")
    assert event.error_code == "BAD_CREDENTIALS"


def test_no_secret_in_audit_or_errors(env: Env) -> None:
    t = env.stored(kind="guest")[0]
    env.ops.limits.set_guest_limit(FINANCE, t["grant_id"], 3000, reason="upgrade to Plus",
                                   confirmed=True)
    env.ops.connect.create_link_token(SUPPORT, "cust-1", grant_id=t["grant_id"])
    created = env.sandbox.create_public_token(kind="linked")
    env.ops.connect.exchange_public_token(SUPPORT, "cust-2", created["public_token"])
    env.sandbox.set_fault(path="/token/revoke", status=500, message="boom")
    with pytest.raises(UpstreamError) as info:
        env.ops.grants.revoke_grant(SUPPORT, t["grant_id"], "customer asked")
    dump = env.ops.audit.export_audit(ADMIN, fmt="csv") + repr(info.value) + info.value.user_message
    secrets = [x["access_token"] for x in env.sandbox.tokens()]
    secrets += [env.sandbox.client_secret, created["public_token"]]
    assert not [s for s in secrets if s in dump]
    assert env.sandbox.client_secret not in repr(env.ops)
