"""The retry rule, proven by the sandbox's requests log: reads retry, mutations that may have
taken effect are never sent twice, Retry-After is honoured, the budget bounds the time."""

from __future__ import annotations

import logging
import socket
import time

import pytest
import requests

from services.kryptos import (
    KryptosClient,
    KryptosConnectionError,
    KryptosTimeoutError,
    RateLimitedError,
    ServerError,
)
from tests.timing import wait_for

# --- reads --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504, 429])
def test_read_retried_then_succeeds(client: KryptosClient, sandbox, logged, status) -> None:
    sandbox.set_fault(path="/token/grants", method="GET", status=status, count=2)
    assert client.list_grants()
    hits = logged("GET", "/token/grants")
    assert [h["status"] for h in hits] == [status, status, 200]


def test_read_500_not_retried(client: KryptosClient, sandbox, logged) -> None:
    sandbox.set_fault(path="/token/grants", status=500, count=1)
    with pytest.raises(ServerError):
        client.list_grants()
    assert len(logged("GET", "/token/grants")) == 1


def test_data_read_retried_after_drop(client: KryptosClient, sandbox, guest, logged) -> None:
    sandbox.set_fault(path="/api/v1/holdings", drop=True, count=1)
    assert client.get_holdings(guest.token).holdings
    assert len(logged("GET", "/v1/holdings")) == 2


def test_read_retried_after_timeout(make_client, sandbox, logged) -> None:
    c = make_client(read_timeout=0.3)
    sandbox.set_fault(path="/token/grants", latency_ms=800, count=1)
    assert c.list_grants()
    # The timed-out request is logged once the sandbox finishes it; the client sent no more.
    wait_for(lambda: len(logged("GET", "/token/grants")) >= 2, what="the slow request")
    assert len(logged("GET", "/token/grants")) == 2


def test_check_session_is_a_read(client: KryptosClient, sandbox, guest, logged) -> None:
    sandbox.set_fault(path="/link-token/check-session", status=503, count=1)
    assert client.check_session(guest.token).has_valid_session
    assert len(logged("POST", "/check-session")) == 2


def test_max_retries_bounds_attempts(make_client, sandbox, logged) -> None:
    c = make_client(max_retries=2)
    sandbox.set_fault(path="/token/grants", status=503, count=10)
    with pytest.raises(ServerError) as info:
        c.list_grants()
    assert info.value.status == 503
    assert len(logged("GET", "/token/grants")) == 3


def test_pagination_retries_one_page(make_client, sandbox, guest, logged) -> None:
    c = make_client(page_size=1)
    expected = [i.wallet_id for i in c.list_integrations(guest.token)]
    sandbox.clear_requests_log()
    sandbox.set_fault(path="/api/v1/integrations", status=502, count=1)
    assert [i.wallet_id for i in c.list_integrations(guest.token)] == expected
    assert len(logged("GET", "/v1/integrations")) == len(expected) + 1


def test_budget_bounds_total_time(make_client, sandbox, logged) -> None:
    c = make_client(max_retries=1000, retry_budget=0.5, backoff_base=0.05, backoff_max=0.1)
    sandbox.set_fault(path="/token/grants", status=503, count=100000)
    t0 = time.monotonic()
    with pytest.raises(ServerError):
        c.list_grants()
    elapsed = time.monotonic() - t0
    assert 0.3 < elapsed < 1.5
    assert 2 < len(logged("GET", "/token/grants")) < 30


def test_budget_caps_timeouts_of_retries(make_client, sandbox, logged) -> None:
    c = make_client(read_timeout=0.4, max_retries=50, retry_budget=0.6)
    sandbox.set_fault(path="/token/grants", latency_ms=2000, count=100)
    t0 = time.monotonic()
    with pytest.raises(KryptosTimeoutError):
        c.list_grants()
    assert time.monotonic() - t0 < 1.5


# --- Retry-After --------------------------------------------------------------------------


def test_retry_after_honoured_on_mutation(client: KryptosClient, sandbox, guest, logged) -> None:
    sandbox.set_fault(path="/token/revoke", status=429, retry_after=0.4, count=1)
    assert client.revoke_grant(guest.grant_id)
    first, second = logged("POST", "/token/revoke")
    assert first["status"] == 429 and second["status"] == 200
    assert second["started"] - first["ended"] >= 0.35


def test_retry_after_beyond_budget_raises_at_once(
    client: KryptosClient, sandbox, guest, logged
) -> None:
    sandbox.set_fault(path="/developer/grants", status=429, retry_after=30, count=5)
    t0 = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        client.update_transaction_limit(guest.grant_id, transaction_limit=100)
    assert time.monotonic() - t0 < 0.5
    assert info.value.retry_after == pytest.approx(30)
    assert len(logged("PATCH", "/transaction-limit")) == 1


def test_429_retried_on_resync(client: KryptosClient, sandbox, guest, logged) -> None:
    wallet = next(i for i in client.list_integrations(guest.token) if not i.is_csv)
    sandbox.set_fault(path="/developer/integrations", status=429, count=1)
    assert client.resync_integration(wallet.wallet_id, guest.user_id, "latest").status
    assert [h["status"] for h in logged("POST", "/resync")] == [429, 202]


def test_mutation_retry_that_times_out_is_reported_as_maybe_done(
        make_client, sandbox, guest, logged) -> None:
    """After a 429 the resync is sent again; if that retry then times out it may have been
    queued, so the person must hear that, not the earlier "rate limited"."""
    c = make_client(read_timeout=30, retry_budget=1.0)
    wallet = next(i for i in c.list_integrations(guest.token) if not i.is_csv)
    path = f"/developer/integrations/{wallet.wallet_id}/resync"
    sandbox.set_fault(path=path, status=429, count=1, retry_after=0)
    sandbox.set_fault(path=path, latency_ms=2500, count=1)  # the retry arrives, answers late
    with pytest.raises(KryptosTimeoutError) as info:
        c.resync_integration(wallet.wallet_id, guest.user_id, "latest")
    assert "may have taken effect" in str(info.value)
    # The slow retry finishes on the server: it was queued.
    wait_for(lambda: len(logged("POST", "/resync")) >= 2, what="the slow retry")
    assert [h["status"] for h in logged("POST", "/resync")] == [429, 202]


# --- mutations: never repeated once sent --------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_mutation_5xx_sent_once(client: KryptosClient, sandbox, guest, logged, status) -> None:
    sandbox.set_fault(path="/developer/grants", status=status, count=5)
    with pytest.raises(ServerError):
        client.update_transaction_limit(guest.grant_id, transaction_limit=100)
    assert len(logged("PATCH", "/transaction-limit")) == 1


def test_revoke_that_took_effect_not_repeated(
    client: KryptosClient, sandbox, guest, logged
) -> None:
    sandbox.set_fault(path="/token/revoke", status=503, phase="after", count=1)
    with pytest.raises(ServerError):
        client.revoke_grant(guest.grant_id)
    assert len(logged("POST", "/token/revoke")) == 1
    revoked = {t["grant_id"]: t["revoked"] for t in sandbox.tokens()}
    assert revoked[guest.grant_id] is True


def test_exchange_dropped_connection_sent_once(client: KryptosClient, sandbox, logged) -> None:
    public = sandbox.create_public_token(kind="guest")["public_token"]
    sandbox.clear_requests_log()
    sandbox.set_fault(path="/token/exchange", drop=True, phase="after", count=1)
    with pytest.raises(KryptosConnectionError) as info:
        client.exchange_public_token(public)
    assert not isinstance(info.value, KryptosTimeoutError)
    assert len(logged("POST", "/token/exchange")) == 1


def test_link_token_dropped_connection_sent_once(client: KryptosClient, sandbox, logged) -> None:
    sandbox.set_fault(path="/link-token", method="POST", drop=True, count=1)
    with pytest.raises(KryptosConnectionError):
        client.create_link_token()
    assert len(logged("POST", "/link-token")) == 1


def test_resync_timeout_not_repeated(make_client, sandbox, guest, logged) -> None:
    c = make_client(read_timeout=0.3)
    wallet = next(i for i in c.list_integrations(guest.token) if not i.is_csv)
    sandbox.clear_requests_log()
    fault = sandbox.set_fault(path="/developer/integrations", latency_ms=900, count=5)
    with pytest.raises(KryptosTimeoutError):
        c.resync_integration(wallet.wallet_id, guest.user_id, "from_start")
    # One request reached the sandbox (each one takes a use of the fault as it arrives)...
    faults = requests.get(sandbox.base_url + "/sandbox/faults", timeout=5).json()["faults"]
    assert {f["id"]: f["count"] for f in faults}[fault] == 4
    # ...and it is logged once the sandbox has finished it.
    wait_for(lambda: logged("POST", "/resync"), what="the slow request")
    assert len(logged("POST", "/resync")) == 1


def test_mutation_retried_when_connection_refused(caplog) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = KryptosClient("id", "secret", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api",
                      max_retries=2, retry_budget=2, backoff_base=0.01)
    with caplog.at_level(logging.DEBUG, logger="services.kryptos"):
        with pytest.raises(KryptosConnectionError):
            c.revoke_grant("cgrant_abc")
    attempts = [r for r in caplog.records if "/token/revoke" in r.getMessage()]
    assert len(attempts) == 3  # refused before sending: safe to retry


def test_empty_limit_patch_refused_before_sending(client: KryptosClient, guest, sandbox) -> None:
    with pytest.raises(ValueError):
        client.update_transaction_limit(guest.grant_id)
    with pytest.raises(ValueError):
        client.update_transaction_limit(guest.grant_id, transaction_limit=0)
    with pytest.raises(ValueError):
        client.update_transaction_limit(guest.grant_id, transaction_limit=True)
    with pytest.raises(ValueError):
        client.resync_integration("wallet_x", guest.user_id, "everything")
    assert sandbox.requests_log() == []
