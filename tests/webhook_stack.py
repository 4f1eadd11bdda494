"""The customer backend receiving the sandbox's real signed webhooks into a given database
(the console's), for the console-side webhook tests: `WebhookStack.start(sandbox, db_url,
vault_key, data_dir)`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from backend.app import create_app
from services.kryptos.client import KryptosClient
from services.operations import Operations
from services.settings import Settings, parse_tiers
from services.store import AuditLog, Database, TokenVault, open_database
from services.store.webhook_events import WebhookEvent, WebhookEventStore
from tests.backend.helpers import JWT_SECRET, WEBHOOK_SECRET
from tests.backend.server import RunningServer
from tests.databases import SqliteTemplate
from tests.timing import wait_for


@dataclass
class WebhookStack:
    sandbox: Any
    server: RunningServer
    db: Database
    client: KryptosClient

    @classmethod
    def start(cls, sandbox: Any, db_url: str, vault_key: str, data_dir: Path) -> WebhookStack:
        settings = Settings(
            client_id=sandbox.client_id, client_secret=sandbox.client_secret,
            connect_url=sandbox.connect_url, data_url=sandbox.data_url, data_dir=data_dir,
            database_url=db_url, vault_key=vault_key, max_retries=0, retry_budget=5.0,
            backend_jwt_secret=JWT_SECRET,
            webhook_secret=WEBHOOK_SECRET,
        )
        db = open_database(db_url)
        client = KryptosClient.from_settings(settings)
        server = RunningServer(create_app(settings, client=client, db=db))
        sandbox.set_webhooks(server.url + "/api/kryptos/webhooks", WEBHOOK_SECRET,
                             backoff=[0.05, 0.1])
        return cls(sandbox, server, db, client)

    @property
    def url(self) -> str:
        return self.server.url

    def events(self) -> list[WebhookEvent]:
        return WebhookEventStore(self.db).recent(limit=500)

    def wait_event(self, type_: str, wallet_id: str, status: str | None = None,
                   timeout: float = 15.0) -> WebhookEvent:
        """The newest processed event of this type about this wallet (polled)."""

        def found() -> WebhookEvent | None:
            return next((e for e in self.events() if e.type == type_
                         and e.wallet_id == wallet_id and e.processed_at is not None
                         and (status is None or e.data.get("status") == status)), None)

        return wait_for(found, timeout, f"{type_} {status or ''} for {wallet_id}")

    def stop(self) -> None:
        self.sandbox.set_webhooks(None)
        self.server.stop()
        self.client.close()
        self.db.dispose()


class ConsoleWithWebhooks:
    """Operations over a fresh SQLite store at head (a copy of `template`; the sandbox's
    tokens in its vault, with their Kryptos user ids) and a backend storing the sandbox's
    webhooks in the same database."""


    def __init__(self, sandbox: Any, tmp_path: Path, template: SqliteTemplate) -> None:
        # A copy of the migrated template (tests/databases.py), not a run of the migrations.
        url = template.copy_to(tmp_path / "console.db")
        key = Fernet.generate_key()
        self.db = open_database(url)
        self.vault = TokenVault(self.db, key)
        self.tokens = [t for t in sandbox.tokens() if not t["revoked"]]
        for t in self.tokens:
            self.vault.put(t["grant_id"], t["access_token"], workspace_id=t.get("workspace_id"),
                           customer_ref=t.get("customer_ref"), kryptos_user_id=t["user_id"],
                           user_kind=t["kind"])
        self.client = KryptosClient(sandbox.client_id, sandbox.client_secret,
                                    sandbox.connect_url, sandbox.data_url,
                                    connect_timeout=1.0, read_timeout=3.0, max_retries=1,
                                    retry_budget=2.0)
        self.ops = Operations(self.client, AuditLog(self.db), self.vault,
                              parse_tiers("Free=1000,Plus=10000,Unlimited=off"))
        self.hooks = WebhookStack.start(sandbox, url, key.decode(), tmp_path)
        self.sandbox = sandbox

    def guest(self, n: int = 0) -> tuple[str, Any]:
        """A Guest grant and its first non-CSV integration that is not syncing."""
        for t in [t for t in self.tokens if t["kind"] == "guest"][n:]:
            for integ in self.client.list_integrations(t["access_token"]):
                if not integ.is_csv and not integ.is_syncing and not integ.is_failing:
                    return t["grant_id"], integ
        raise AssertionError("no Guest grant with a plain integration")

    def close(self) -> None:
        self.hooks.stop()
        self.client.close()
        self.db.dispose()
