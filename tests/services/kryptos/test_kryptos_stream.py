"""`KryptosClient.iter_grants`: the grants list read as a stream, in batches, against the
sandbox over HTTP: the same grants as `list_grants`, whatever the chunk boundaries, and the
same errors."""

from __future__ import annotations

import pytest

from services.kryptos import (
    AuthenticationError,
    KryptosClient,
    KryptosConnectionError,
    MalformedResponseError,
    RateLimitedError,
)
from services.kryptos import stream as stream_module


def test_iter_grants_equals_list_grants_in_batches(client: KryptosClient) -> None:
    whole = client.list_grants()
    batches = list(client.iter_grants(batch_size=7))
    assert [g for b in batches for g in b] == whole
    assert len(whole) > 7 and all(len(b) == 7 for b in batches[:-1])
    assert 1 <= len(batches[-1]) <= 7


def test_any_chunk_boundary(client: KryptosClient, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = client.list_grants()
    for size in (1, 5, 64):  # a boundary inside every token, key and value
        monkeypatch.setattr(stream_module, "_STREAM_CHUNK", size)
        assert [g for b in client.iter_grants(batch_size=1000) for g in b] == whole


def test_errors_are_those_of_list_grants(client: KryptosClient, make_client, sandbox,
                                         logged) -> None:
    with pytest.raises(AuthenticationError):
        next(make_client(client_secret="not-the-secret").iter_grants())
    sandbox.set_fault(path="/token/grants", status=429, code="RATE_LIMITED", count=10)
    with pytest.raises(RateLimitedError):
        next(client.iter_grants())
    assert len(logged("GET", "/token/grants")) == client.max_retries + 2
    sandbox.clear_faults()
    sandbox.set_fault(path="/token/grants", malformed=True, count=1)
    with pytest.raises(MalformedResponseError) as info:
        next(client.iter_grants())
    assert info.value.path == "/token/grants"
    sandbox.set_fault(path="/token/grants", drop=True, count=10)
    with pytest.raises(KryptosConnectionError):
        next(client.iter_grants())


def test_listed_ids_and_is_listed_read_the_stream(client: KryptosClient, sandbox) -> None:
    whole = client.list_grants()
    assert client.listed_grant_ids() == {g.grant_id for g in whole}
    assert client.is_listed(whole[0].grant_id) and client.is_listed(whole[-1].grant_id)
    assert not client.is_listed("cgrant_not_a_listed_one")
    revoked = next(t["grant_id"] for t in sandbox.tokens() if t["revoked"])
    assert not client.is_listed(revoked)
    sandbox.set_fault(path="/token/grants", status=401, code="UNAUTHORIZED", count=10)
    with pytest.raises(AuthenticationError):
        client.is_listed(whole[0].grant_id)
    with pytest.raises(AuthenticationError):
        client.listed_grant_ids()
