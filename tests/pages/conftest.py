"""AppTest fixtures for the console's pages.

`console_env` points the console at the shared test sandbox (`SANDBOX_URL`, reset per test by
the `sandbox` fixture) with a fresh data directory of its own (`CONSOLE_DATA_DIR`: database,
vault key, cookie key, demo users file), and clears Streamlit's caches so that the next
`get_runtime()` builds a runtime for this test. The data directory is a copy of a template
that the console itself built once per session (`console_template`: migrations applied, demo
users hashed, the sandbox's tokens stored, and the read model filled by one full sync), so a
test's runtime start skips the bcrypt hashing, the migrations and the first sync; each test
still gets its own copy, and its start still loads the tokens. The runtimes of page tests run
no sync worker thread (`SYNC_ENABLED=false`): a test that needs an upstream change in the
read model calls `sync_now()` (one synchronous full sync, `SyncWorker.run_once`).

`make_app(role, page=None)` returns an `AppTest` of `dashboard/app.py` already logged in as
that role's demo user, through the real login form (AppTest types the username and password
and presses "Log in"), optionally switched to a page given relative to the project root
(`"pages/grants.py"`). Roles: viewer, support, finance, admin, and `ops` (support+finance).

Helpers: `sync_now()` runs one full sync of the read model; `version_clock` moves the
pages' read-model version poll by hand (`advance(read_cache.VERSION_POLL_SECONDS)`: the next
poll, without waiting for it); `runtime()` is the test's
`Runtime` (its `ops` reads the same database as the app),
`audit_events(action=None, outcome=None)` reads the test's audit log directly.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.runtime import DEMO_USERS, Runtime, build_runtime, get_runtime
from sandbox import SandboxHandle
from tests.timing import MovableClock

PROJECT_ROOT = Path(__file__).resolve().parents[2]
APP_PATH = str(PROJECT_ROOT / "dashboard" / "app.py")
DEMO_PASSWORDS = {name: password for name, password, _ in DEMO_USERS}
TIMEOUT = 30

_CONSOLE_ENV = (
    "KRYPTOS_CLIENT_ID", "KRYPTOS_CLIENT_SECRET", "KRYPTOS_CONNECT_URL", "KRYPTOS_DATA_URL",
    "DATABASE_URL", "KRYPTOS_VAULT_KEY", "CONSOLE_COOKIE_KEY", "CONSOLE_AUTH_FILE",
    "CONSOLE_TIERS", "SANDBOX_PORT", "CONSOLE_PASSWORD_LOGIN", "CONSOLE_SSO_ISSUER",
    "CONSOLE_SSO_METADATA_URL", "CONSOLE_SSO_CLIENT_ID", "CONSOLE_SSO_CLIENT_SECRET",
    "CONSOLE_SSO_ROLE_MAP",
)


def _clear_caches() -> None:
    from dashboard import reads

    st.cache_resource.clear()
    st.cache_data.clear()
    reads.invalidate_all()  # its keys hold id(ops), which a new runtime may reuse


def _sandbox_env(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxHandle, data_dir: Path,
                 secrets_file: Path) -> None:
    for name in _CONSOLE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SANDBOX_URL", sandbox.base_url)
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(secrets_file))
    monkeypatch.setenv("SANDBOX_RESYNC_DELAY", "2")
    monkeypatch.setenv("CONSOLE_RECONCILE_INTERVAL", "0")  # one pass at start, no timer
    monkeypatch.setenv("SYNC_ENABLED", "false")  # tests sync on purpose: `sync_now`


def full_sync(rt: Runtime) -> None:
    """One full sync of the runtime's read model, in this thread (grants list, every active
    grant's integrations, unknown user info), as the console's worker makes it."""
    from services.sync import SyncWorker

    assert rt.ops is not None
    worker = SyncWorker(rt.ops.ctx.client, rt.ops.ctx.vault, rt.ops.readmodel, rate=1000,
                        name="test")
    try:
        worker.run_once(force=True)
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def console_template(sandbox_server: SandboxHandle,
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sandbox-mode data directory made once per session by the console's own start
    (`build_runtime`) against the seeded shared sandbox. Copy it; never use it directly."""
    root = tmp_path_factory.mktemp("console-template")
    data_dir = root / "console-data"
    sandbox_server.reset()
    with pytest.MonkeyPatch.context() as mp:
        _sandbox_env(mp, sandbox_server, data_dir, root / "no-secrets.toml")
        rt = build_runtime()
    assert rt.ok, rt.problems
    assert rt.sync is None, "page tests sync on purpose (SYNC_ENABLED=false)"
    full_sync(rt)  # the first sync, once: every test's copy starts with a full read model
    database = data_dir / "console.db"
    assert rt.settings is not None and rt.settings.effective_database_url.endswith(
        str(database)), "the template expects the default SQLite database in the data dir"
    # Everything committed into the database file itself, so a copy needs no WAL file.
    with sqlite3.connect(database) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()
    assert busy == 0, "the template database could not be checkpointed"
    return data_dir


@pytest.fixture
def console_env(
    sandbox: SandboxHandle, console_template: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """Sandbox-mode environment for the console; yields the test's data directory (its own
    copy of `console_template`)."""
    data_dir = tmp_path / "console-data"
    shutil.copytree(console_template, data_dir,
                    ignore=shutil.ignore_patterns("*.db-wal", "*.db-shm"))
    _sandbox_env(monkeypatch, sandbox, data_dir, tmp_path / "no-secrets.toml")
    _clear_caches()
    yield data_dir
    _clear_caches()


@pytest.fixture
def runtime(console_env: Path) -> Runtime:
    """The test's runtime (the same object the app gets from `get_runtime()`)."""
    rt = get_runtime()
    assert rt.ok, rt.problems
    return rt


def login(at: AppTest, username: str, password: str) -> AppTest:
    """Fill in the login form and submit it (runs the app)."""
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    return at.run()


def new_app() -> AppTest:
    return AppTest.from_file(APP_PATH, default_timeout=TIMEOUT)


def page_path(page: str) -> str:
    """A project-relative page path as AppTest.switch_page wants it (relative to app.py)."""
    return str(Path("..") / page)


@pytest.fixture
def make_app(runtime: Runtime) -> Callable[..., AppTest]:
    """`make_app(role, page=None)`: an AppTest logged in as the role's demo user."""

    def make(role: str, page: str | None = None) -> AppTest:
        at = new_app().run()
        assert not at.exception, at.exception
        login(at, role, DEMO_PASSWORDS[role])
        assert not at.exception, at.exception
        assert at.session_state["authentication_status"] is True, [e.value for e in at.error]
        if page is not None:
            at.switch_page(page_path(page)).run()
            assert not at.exception, at.exception
        return at

    return make


@pytest.fixture
def sync_now(runtime: Runtime) -> Callable[[], None]:
    """`sync_now()`: one full sync of the test's read model (an upstream change shows)."""
    return lambda: full_sync(runtime)


@pytest.fixture
def version_clock(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    """The clock of the pages' read-model version poll (`dashboard.reads.cache.VERSIONS`,
    which reads the version at most once a `VERSION_POLL_SECONDS`), moved only by the test."""
    from dashboard.reads import cache as read_cache

    clock = MovableClock(time.monotonic())
    monkeypatch.setattr(read_cache, "VERSIONS", read_cache.VersionClock(clock=clock))
    return clock


@pytest.fixture
def audit_events(runtime: Runtime) -> Callable[..., list]:
    """Read the test's audit log: `audit_events(action=None, outcome=None)`, oldest first."""
    from services.store import AuditFilter

    def read(action: str | None = None, outcome: str | None = None) -> list:
        page = runtime.ops.ctx.audit_log.query(
            AuditFilter(action=action, outcome=outcome), page=1, page_size=1000
        )
        return list(reversed(page.events))

    return read
