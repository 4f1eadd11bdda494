"""Fixtures: the backend built against the shared sandbox, served by a real uvicorn.

Each test gets a fresh SQLite database in its own folder (also the data folder: vault key,
audit anchor), a JWT secret and a webhook secret of its own."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from backend.app import Backend, create_app
from sandbox import SandboxHandle
from services.kryptos.client import KryptosClient
from services.settings import Settings
from services.store import Database, open_database
from tests.backend.helpers import JWT_SECRET, WEBHOOK_SECRET
from tests.backend.server import RunningServer


@dataclass
class BackendUnderTest:
    url: str
    app: Any
    settings: Settings
    db: Database
    client: KryptosClient
    sandbox: SandboxHandle
    hooks: list = field(default_factory=list)

    @property
    def backend(self) -> Backend:
        return self.app.state.backend


def make_settings(tmp: Path, sb: SandboxHandle, database_url: str | None = None,
                  **overrides: Any) -> Settings:
    base = dict(
        client_id=sb.client_id, client_secret=sb.client_secret,
        connect_url=sb.connect_url, data_url=sb.data_url, data_dir=tmp,
        database_url=database_url or f"sqlite:///{tmp / 'backend.db'}",
        vault_key=Fernet.generate_key().decode(), max_retries=0, retry_budget=5.0,
        read_timeout=10.0, backend_jwt_secret=JWT_SECRET, webhook_secret=WEBHOOK_SECRET,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def start_backend(tmp_path: Path, sandbox: SandboxHandle, migrated_sqlite: Callable[[Path], str]
                  ) -> Iterator[Callable[..., BackendUnderTest]]:
    """`start_backend(sandbox_url=None, clock=time.time, **settings_overrides)`: a running
    backend (stopped after the test); `clock` is what its webhook window and rate limits
    measure time with."""
    started: list[tuple[RunningServer, Database, KryptosClient]] = []

    def start(sandbox_url: str | None = None, clock: Callable[[], float] = time.time,
              **overrides: Any) -> BackendUnderTest:
        folder = tmp_path / f"b{len(started)}_{secrets.token_hex(3)}"
        folder.mkdir()
        if "database_url" not in overrides:
            overrides["database_url"] = migrated_sqlite(folder / "backend.db")
        settings = make_settings(folder, sandbox, **overrides)
        db = open_database(settings.effective_database_url)
        client = KryptosClient.from_settings(settings)
        hooks: list = []
        app = create_app(settings, client=client, db=db, sandbox_url=sandbox_url,
                         on_event=[hooks.append], clock=clock)
        server = RunningServer(app)
        started.append((server, db, client))
        return BackendUnderTest(server.url, app, settings, db, client, sandbox, hooks)

    yield start
    for server, db, client in started:
        server.stop()
        client.close()
        db.dispose()


@pytest.fixture
def backend(start_backend: Callable[..., BackendUnderTest]) -> BackendUnderTest:
    return start_backend()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def problems(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records
                if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()]


@pytest.fixture
def log_of(request) -> Iterator:
    """`log_of(backend)`: the records the backend's loggers (and uvicorn's) write from now
    on. Attached after the server started: uvicorn's logging set-up replaces handlers."""
    handler = _Records()
    names = ["", "uvicorn", "uvicorn.error", "backend", "fastapi", "starlette"]

    def attach(_backend) -> _Records:
        for name in names:
            logging.getLogger(name).addHandler(handler)
        return handler

    yield attach
    for name in names:
        logging.getLogger(name).removeHandler(handler)
