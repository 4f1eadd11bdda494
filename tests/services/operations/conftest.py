"""Fixtures for the operations' tests: a real client over HTTP to the sandbox, a real SQLite
store in tmp_path, and the sandbox's stored tokens loaded into the vault."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet

from services.kryptos.client import KryptosClient
from services.kryptos.errors import KryptosError
from services.operations import Actor, GrantFilter, Operations
from services.settings import parse_tiers
from services.store import AuditFilter, AuditLog, NewVaultEntry, TokenVault, open_database
from services.store.readmodel import RmGrant

TIERS = parse_tiers("Free=1000,Plus=10000,Pro=100000,Unlimited=off")


def make_client(handle: Any, **overrides: Any) -> KryptosClient:
    kwargs: dict[str, Any] = dict(
        client_id=handle.client_id, client_secret=handle.client_secret,
        connect_url=handle.connect_url, data_url=handle.data_url,
        connect_timeout=1.0, read_timeout=2.0, max_retries=2, retry_budget=2.0,
        backoff_base=0.01, backoff_max=0.05,
    )
    kwargs.update(overrides)
    return KryptosClient(**kwargs)


def actor(*roles: str, name: str | None = None) -> Actor:
    username = name or ("_".join(roles) or "nobody")
    return Actor(username, username.title(), frozenset(roles))


@dataclass
class Env:
    ops: Operations
    sandbox: Any
    client: KryptosClient
    audit: AuditLog
    vault: TokenVault

    def events(self, **filters: Any) -> list[Any]:
        """All audit events matching, oldest first."""
        page = self.audit.query(AuditFilter(**filters), page=1, page_size=1000)
        return list(reversed(page.events))

    def sync(self) -> None:
        """One full sync of the read model (grants list, every grant's integrations and
        unknown user info), as the console's sync worker makes it."""
        full_sync(self.ops, self.sandbox)

    def synced_rows(self, filters: GrantFilter | None = None) -> list[RmGrant]:
        """Every grant (filtered) as the pages list it, after a full sync of the read model:
        the API's grants joined with the vault, as they are upstream now."""
        self.sync()
        return list(self.ops.grants.page(actor("viewer"), filters, "grant_id", 1, 1000).rows)

    def upstream(self, exclude_sandbox: bool = True) -> list[dict]:
        return [r for r in self.sandbox.requests_log()
                if not (exclude_sandbox and r["path"].startswith("/sandbox"))]

    def stored(self, *, kind: str | None = None, revoked: bool = False) -> list[dict]:
        """Rows of the sandbox's token list (what the backend stored), filtered."""
        return [t for t in self.sandbox.tokens()
                if t["revoked"] == revoked and (kind is None or t["kind"] == kind)]

    def find_integration(self, pred: Callable[[Any], bool]) -> tuple[dict, Any]:
        for row in self.stored():
            try:
                integrations = self.client.list_integrations(row["access_token"])
            except KryptosError:
                continue
            for integ in integrations:
                if pred(integ):
                    return row, integ
        raise AssertionError("the seeded sandbox has no such integration")

    def no_token_grant(self) -> str:
        """A grant the API lists but whose token the backend did not store."""
        stored = {t["grant_id"] for t in self.sandbox.tokens()}
        for g in self.client.list_grants():
            if g.grant_id not in stored:
                return g.grant_id
        raise AssertionError("the seeded sandbox has no grant without a stored token")


def full_sync(ops: Operations, sandbox: Any) -> None:
    """One full sync of `ops`' read model from the sandbox, as the console's worker makes it."""
    from services.sync import SyncWorker

    worker = SyncWorker(make_client(sandbox, max_retries=0), ops.ctx.vault, ops.readmodel,
                        rate=1000, name="test")
    try:
        worker.run_once(force=True)
    finally:
        worker.stop()
        worker.client.close()


def load_vault(vault: TokenVault, rows: list[dict], *, with_kind: bool = False) -> None:
    vault.put_many(
        NewVaultEntry(t["grant_id"], t["access_token"], workspace_id=t.get("workspace_id"),
                      customer_ref=t.get("customer_ref"),
                      user_kind=t.get("kind") if with_kind else None)
        for t in rows
    )


@pytest.fixture
def env(sandbox: Any, tmp_path: Any, migrated_sqlite: Callable[[Any], str]) -> Iterator[Env]:
    db = open_database(migrated_sqlite(tmp_path / "console.db"))
    audit = AuditLog(db)
    vault = TokenVault(db, Fernet.generate_key())
    load_vault(vault, sandbox.tokens())
    client = make_client(sandbox)
    ops = Operations(client, audit, vault, TIERS, max_workers=8)
    sandbox.clear_requests_log()
    yield Env(ops, sandbox, client, audit, vault)
    client.close()
    db.dispose()
