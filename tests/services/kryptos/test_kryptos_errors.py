"""Every documented error code mapped to the right exception, from real sandbox state where
the sandbox can produce it, and from injected faults otherwise."""

from __future__ import annotations

import pytest

from services.kryptos import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    InvalidTokenError,
    KryptosClient,
    KryptosConnectionError,
    KryptosError,
    KryptosTimeoutError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)

# --- from sandbox state -------------------------------------------------------------------


def test_public_token_already_used(client: KryptosClient, sandbox) -> None:
    public = sandbox.create_public_token(kind="guest")["public_token"]
    client.exchange_public_token(public)
    with pytest.raises(InvalidTokenError) as info:
        client.exchange_public_token(public)
    assert info.value.code == "TOKEN_ALREADY_USED"
    assert info.value.status in (400, 401)
    assert info.value.api_message
    assert info.value.request_id


def test_public_token_expired(client: KryptosClient, sandbox) -> None:
    public = sandbox.create_public_token(kind="guest")["public_token"]
    sandbox.advance_clock(31 * 60)
    with pytest.raises(InvalidTokenError) as info:
        client.exchange_public_token(public)
    assert info.value.code == "TOKEN_EXPIRED"


def test_public_token_unknown(client: KryptosClient) -> None:
    with pytest.raises(InvalidTokenError) as info:
        client.exchange_public_token("public_doesnotexist")
    assert info.value.code == "INVALID_TOKEN"


def test_wrong_client_secret_on_connect_call(make_client, logged) -> None:
    bad = make_client(client_secret="not-the-secret")
    with pytest.raises(AuthenticationError) as info:
        bad.list_grants()
    assert info.value.status == 401
    assert len(logged("GET", "/token/grants")) == 1  # a 401 is never retried


def test_wrong_client_secret_on_data_call(make_client, guest) -> None:
    bad = make_client(client_secret="not-the-secret")
    with pytest.raises(InvalidTokenError) as info:
        bad.get_holdings(guest.token)
    assert info.value.status == 401
    assert "client credentials" in info.value.api_message


def test_revoked_grant_token_on_data_calls(client: KryptosClient, guest) -> None:
    client.revoke_grant(guest.grant_id)
    for call in (client.get_holdings, client.list_integrations, client.get_userinfo):
        with pytest.raises(InvalidTokenError) as info:
            call(guest.token)
        assert info.value.status == 401


def test_revoked_grant_cannot_take_a_limit(client: KryptosClient, guest) -> None:
    client.revoke_grant(guest.grant_id)
    with pytest.raises(KryptosError) as info:
        client.update_transaction_limit(guest.grant_id, transaction_limit=10)
    assert isinstance(info.value, (NotFoundError, InvalidTokenError))
    assert info.value.code in ("GRANT_NOT_FOUND", "INVALID_GRANT")


def test_revoke_unknown_grant(client: KryptosClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.revoke_grant("cgrant_000000000000000000000000")
    assert info.value.code == "GRANT_NOT_FOUND"


def test_other_clients_grant_access_denied(client: KryptosClient, sandbox) -> None:
    other = next(t for t in sandbox.tokens(client_id="other_client") if not t["revoked"])
    with pytest.raises(PermissionDeniedError) as info:
        client.update_transaction_limit(other["grant_id"], transaction_limit=100)
    assert info.value.code == "ACCESS_DENIED"
    assert info.value.status == 403


def test_linked_user_limit_not_anon_user(client: KryptosClient, linked) -> None:
    with pytest.raises(PermissionDeniedError) as info:
        client.update_transaction_limit(linked.grant_id, transaction_limit=100)
    assert info.value.code == "NOT_ANON_USER"
    assert info.value.status == 400


def test_limit_unknown_grant(client: KryptosClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.update_transaction_limit("cgrant_000000000000000000000000", enable_limiter=False)
    assert info.value.code == "GRANT_NOT_FOUND"
    assert info.value.status == 404


def test_resync_unknown_wallet(client: KryptosClient, guest) -> None:
    with pytest.raises(NotFoundError) as info:
        client.resync_integration("wallet_doesnotexist", guest.user_id, "latest")
    assert info.value.code == "INTEGRATION_NOT_FOUND"
    assert info.value.status == 404


def test_resync_csv_latest_conflict(client: KryptosClient, guest, logged) -> None:
    csv = next(i for i in client.list_integrations(guest.token) if i.is_csv)
    with pytest.raises(ConflictError) as info:
        client.resync_integration(csv.wallet_id, guest.user_id, "latest")
    assert info.value.code == "CSV_RESYNC_LATEST_UNSUPPORTED"
    assert info.value.status == 409
    assert len(logged("POST", "/resync")) == 1  # a business answer: never retried


def test_resync_for_revoked_user_grant_not_found(client: KryptosClient, guest) -> None:
    wallet = client.list_integrations(guest.token)[0]
    client.revoke_grant(guest.grant_id)
    with pytest.raises(NotFoundError) as info:
        client.resync_integration(wallet.wallet_id, guest.user_id, "from_start")
    assert info.value.code == "GRANT_NOT_FOUND"
    assert info.value.status == 403


def test_resync_csv_source_missing(client: KryptosClient, find_integration) -> None:
    row, integ = find_integration(lambda i: i.is_csv and "missing" in (i.alias or ""))
    with pytest.raises(NotFoundError) as info:
        client.resync_integration(integ.wallet_id, row["user_id"], "from_start")
    assert info.value.code == "CSV_SOURCE_MISSING"
    assert info.value.status == 404


def test_newer_resync_sync_disabled(newer_client: KryptosClient, sandbox_newer) -> None:
    for row in sandbox_newer.tokens():
        if row["revoked"]:
            continue
        try:
            rows = newer_client.list_integrations(row["access_token"])
        except KryptosError:
            continue
        hit = [i for i in rows if (i.alias or "").startswith("Sync disabled")]
        if hit:
            break
    else:
        pytest.fail("the seeded sandbox has no sync-disabled integration")
    with pytest.raises(ConflictError) as info:
        newer_client.resync_integration(hit[0].wallet_id, row["user_id"], "latest")
    assert info.value.code == "SYNC_DISABLED"


def test_insufficient_scope_on_data_call(client: KryptosClient, sandbox) -> None:
    # A seeded Linked grant lacks integrations:read: the data API answers 403 forbidden.
    reduced = [
        t for t in sandbox.tokens() if not t["revoked"]
    ]
    for row in reduced:
        try:
            client.list_integrations(row["access_token"])
        except PermissionDeniedError as exc:
            assert exc.status == 403
            assert exc.code == "forbidden"
            return
    pytest.fail("no seeded grant without the integrations scope")


# --- from injected faults -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "INVALID_CLIENT", AuthenticationError),
        (401, "INVALID_TOKEN", InvalidTokenError),
        (400, "INVALID_GRANT", InvalidTokenError),
        (400, "TOKEN_EXPIRED", InvalidTokenError),
        (400, "TOKEN_ALREADY_USED", InvalidTokenError),
        (403, "GRANT_NOT_FOUND", NotFoundError),
        (404, "INTEGRATION_NOT_FOUND", NotFoundError),
        (404, "CSV_SOURCE_MISSING", NotFoundError),
        (404, "WORKSPACE_NOT_FOUND", NotFoundError),
        (409, "CSV_RESYNC_LATEST_UNSUPPORTED", ConflictError),
        (409, "CSV_RESYNC_UNSUPPORTED", ConflictError),
        (409, "SYNC_DISABLED", ConflictError),
        (403, "ACCESS_DENIED", PermissionDeniedError),
        (403, "INSUFFICIENT_PERMISSIONS", PermissionDeniedError),
        (400, "NOT_ANON_USER", PermissionDeniedError),
        (400, "INVALID_SCOPE", PermissionDeniedError),
        (409, "NEW_CONFLICT_CODE", ConflictError),
        (404, "NEW_MISSING_CODE", NotFoundError),
        (400, "NEW_BAD_REQUEST_CODE", InvalidRequestError),
        (403, "NEW_FORBIDDEN_CODE", PermissionDeniedError),
        (500, "INTERNAL_ERROR", ServerError),
    ],
)
def test_connect_codes(client: KryptosClient, sandbox, guest, status, code, cls) -> None:
    wallet = client.list_integrations(guest.token)[0]
    sandbox.set_fault(path="/developer/integrations", method="POST", status=status, code=code,
                      message="Injected failure", count=1)
    with pytest.raises(cls) as info:
        client.resync_integration(wallet.wallet_id, guest.user_id, "latest")
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.code == code
    assert info.value.method == "POST" and info.value.path.endswith("/resync")
    assert info.value.hint and info.value.user_message


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_parameters", InvalidRequestError),
        (401, "unauthorized", InvalidTokenError),
        (403, "forbidden", PermissionDeniedError),
        (429, "rate_limit_exceeded", RateLimitedError),
        (500, "internal_error", ServerError),
    ],
)
def test_data_codes(client: KryptosClient, sandbox, guest, status, code, cls) -> None:
    sandbox.set_fault(path="/api/v1/userinfo", method="GET", status=status, code=code, count=10)
    with pytest.raises(cls) as info:
        client.get_userinfo(guest.token)
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.code == code


def test_unknown_code_keeps_code_and_text(client: KryptosClient, sandbox) -> None:
    sandbox.set_fault(path="/token/grants", status=418, code="BRAND_NEW_CODE",
                      message="Something new happened", count=1)
    with pytest.raises(KryptosError) as info:
        client.list_grants()
    assert type(info.value) is KryptosError
    assert info.value.code == "BRAND_NEW_CODE"
    assert info.value.api_message == "Something new happened"
    assert "BRAND_NEW_CODE" in info.value.user_message


def test_unknown_code_with_known_status(client: KryptosClient, sandbox, guest) -> None:
    sandbox.set_fault(path="/developer/grants", status=400, code="LIMIT_TOO_HIGH",
                      message="Too high", count=1)
    with pytest.raises(InvalidRequestError) as info:
        client.update_transaction_limit(guest.grant_id, transaction_limit=10)
    assert info.value.code == "LIMIT_TOO_HIGH"
    assert "Too high" in str(info.value)


def test_rate_limited(client: KryptosClient, sandbox, logged) -> None:
    sandbox.set_fault(path="/token/grants", status=429, code="RATE_LIMITED", count=10)
    with pytest.raises(RateLimitedError) as info:
        client.list_grants()
    assert info.value.status == 429
    assert len(logged("GET", "/token/grants")) == client.max_retries + 1


def test_malformed_body(client: KryptosClient, sandbox) -> None:
    sandbox.set_fault(path="/token/grants", malformed=True, count=1)
    with pytest.raises(MalformedResponseError) as info:
        client.list_grants()
    assert info.value.path == "/token/grants"


def test_malformed_data_body(client: KryptosClient, sandbox, guest) -> None:
    sandbox.set_fault(path="/api/v1/holdings", malformed=True, count=1)
    with pytest.raises(MalformedResponseError):
        client.get_holdings(guest.token)


def test_dropped_connection(client: KryptosClient, sandbox) -> None:
    sandbox.set_fault(path="/token/grants", drop=True, count=10)
    with pytest.raises(KryptosConnectionError) as info:
        client.list_grants()
    assert not isinstance(info.value, KryptosTimeoutError)


def test_timeout(make_client, sandbox) -> None:
    c = make_client(read_timeout=0.2, max_retries=0)
    sandbox.set_fault(path="/token/grants", latency_ms=600, count=1)
    with pytest.raises(KryptosTimeoutError):
        c.list_grants()


def test_connection_refused() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = KryptosClient("id", "secret", f"http://127.0.0.1:{port}",
                      f"http://127.0.0.1:{port}/api", max_retries=1, backoff_base=0.01)
    with pytest.raises(KryptosConnectionError) as info:
        c.health()
    assert info.value.status is None and info.value.request_id is None
