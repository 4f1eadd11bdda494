"""Fixtures for the Kryptos client's tests: a client pointed at the sandbox (real HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.kryptos import KryptosClient, KryptosError, TokenExchange


def make(handle: Any, **overrides: Any) -> KryptosClient:
    """A client for the sandbox with short timeouts and tiny backoff."""
    kwargs: dict[str, Any] = {
        "client_id": handle.client_id,
        "client_secret": handle.client_secret,
        "connect_url": handle.connect_url,
        "data_url": handle.data_url,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "max_retries": 3,
        "retry_budget": 3.0,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    kwargs.update(overrides)
    return KryptosClient(**kwargs)


@pytest.fixture
def client(sandbox: Any) -> Iterator[KryptosClient]:
    c = make(sandbox)
    yield c
    c.close()


@pytest.fixture
def make_client(sandbox: Any) -> Iterator[Callable[..., KryptosClient]]:
    made: list[KryptosClient] = []

    def factory(**overrides: Any) -> KryptosClient:
        c = make(sandbox, **overrides)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


@dataclass(frozen=True)
class Connected:
    """A user who just finished the widget and whose public token was exchanged."""

    user_id: str
    kind: str
    exchange: TokenExchange

    @property
    def token(self) -> str:
        return self.exchange.access_token

    @property
    def grant_id(self) -> str:
        return self.exchange.grant_id


def connect_user(handle: Any, client: KryptosClient, kind: str = "guest") -> Connected:
    created = handle.create_public_token(kind=kind)
    exchange = client.exchange_public_token(created["public_token"])
    return Connected(created["user_id"], kind, exchange)


@pytest.fixture
def guest(sandbox: Any, client: KryptosClient) -> Connected:
    user = connect_user(sandbox, client, "guest")
    sandbox.clear_requests_log()
    return user


@pytest.fixture
def linked(sandbox: Any, client: KryptosClient) -> Connected:
    user = connect_user(sandbox, client, "linked")
    sandbox.clear_requests_log()
    return user


@pytest.fixture
def logged(sandbox: Any) -> Callable[[str, str], list[dict]]:
    """`logged(method, path_part)`: the sandbox's logged requests matching both."""

    def find(method: str, path_part: str) -> list[dict]:
        return [
            r for r in sandbox.requests_log()
            if r["method"] == method and path_part in r["path"]
        ]

    return find


@pytest.fixture
def connect(sandbox: Any, client: KryptosClient) -> Callable[..., Connected]:
    """`connect(kind="guest")`: a new user of that kind, exchanged by `client`."""

    def factory(kind: str = "guest") -> Connected:
        return connect_user(sandbox, client, kind)

    return factory


@pytest.fixture
def find_integration(
    sandbox: Any, client: KryptosClient
) -> Callable[[Callable[[Any], bool]], tuple[dict, Any]]:
    """`find_integration(pred)`: (stored token row, Integration) of the first seeded
    integration, over the client's non-revoked stored tokens, for which `pred` is true."""

    def find(pred: Callable[[Any], bool]) -> tuple[dict, Any]:
        for row in sandbox.tokens():
            if row["revoked"]:
                continue
            try:
                integrations = client.list_integrations(row["access_token"])
            except KryptosError:
                continue  # e.g. a grant without the integrations scope
            for integ in integrations:
                if pred(integ):
                    return row, integ
        raise AssertionError("the seeded sandbox has no such integration")

    return find


@pytest.fixture
def newer_client(sandbox_newer: Any) -> Iterator[KryptosClient]:
    """A client for the sandbox started with `newer_api=True`."""
    c = make(sandbox_newer)
    yield c
    c.close()
