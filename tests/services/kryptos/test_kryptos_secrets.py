"""The client secret and access tokens never show in an error, a repr or a log line."""

from __future__ import annotations

import logging

import pytest

from services.kryptos import (
    AuthenticationError,
    InvalidTokenError,
    KryptosClient,
    KryptosError,
    ServerError,
)


def _clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def test_client_repr_hides_secret(client: KryptosClient, sandbox) -> None:
    text = repr(client) + str(client)
    _clean(text, sandbox.client_secret)
    assert sandbox.client_id in text and sandbox.connect_url in text and sandbox.data_url in text


def test_models_hide_tokens(client: KryptosClient, sandbox) -> None:
    public = sandbox.create_public_token(kind="guest")["public_token"]
    ex = client.exchange_public_token(public)
    link = client.create_link_token(access_token=ex.access_token)
    for model in (ex, link, client.check_session(ex.access_token)):
        _clean(repr(model) + str(model), ex.access_token, link.link_token,
               sandbox.client_secret)


def test_api_error_text_is_scrubbed(client: KryptosClient, sandbox, guest) -> None:
    leak = f"bad secret {sandbox.client_secret} for token {guest.token}"
    sandbox.set_fault(path="/api/v1/holdings", status=500, message=leak, count=10)
    with pytest.raises(ServerError) as info:
        client.get_holdings(guest.token)
    err = info.value
    for text in (str(err), repr(err), err.api_message, err.user_message, str(err.args)):
        _clean(text, sandbox.client_secret, guest.token)
    assert "bad secret" in err.api_message


def test_public_token_scrubbed_from_exchange_error(client: KryptosClient, sandbox) -> None:
    public = sandbox.create_public_token(kind="guest")["public_token"]
    sandbox.set_fault(path="/token/exchange", status=400, code="INVALID_TOKEN",
                      message=f"token {public} is not valid", count=1)
    with pytest.raises(InvalidTokenError) as info:
        client.exchange_public_token(public)
    _clean(str(info.value) + repr(info.value), public)


def test_wrong_credentials_error_hides_secret(make_client, guest) -> None:
    wrong = "wrong-secret-value-123"
    bad = make_client(client_secret=wrong)
    with pytest.raises(AuthenticationError) as a:
        bad.list_grants()
    with pytest.raises(InvalidTokenError) as b:
        bad.get_userinfo(guest.token)
    for err in (a.value, b.value):
        _clean(str(err) + repr(err) + err.user_message, wrong, guest.token)


def test_log_lines_hold_no_secret(client: KryptosClient, sandbox, guest, caplog) -> None:
    sandbox.set_fault(path="/api/v1/userinfo", status=503, count=1)
    with caplog.at_level(logging.DEBUG, logger="services.kryptos"):
        client.get_userinfo(guest.token)
        client.get_holdings(guest.token)
        client.list_integrations(guest.token)
        client.check_session(guest.token)
        client.create_link_token(access_token=guest.token)
        with pytest.raises(KryptosError):
            make_bad = KryptosClient(client.client_id, "other-wrong-secret",
                                     client.connect_url, client.data_url)
            make_bad.list_grants()
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    _clean(text, sandbox.client_secret, guest.token, "other-wrong-secret")
    lines = [r.getMessage() for r in caplog.records]
    assert any("GET /v1/userinfo -> 503" in m for m in lines)
    assert any("GET /v1/userinfo -> 200" in m and "request id" in m for m in lines)
