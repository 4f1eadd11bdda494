"""Shared fixtures: the Kryptos sandbox (see sandbox/README.md).

Four-eyes approval is on by default in a deployment; tests run with it off
(`CONSOLE_APPROVALS=off`) unless they turn it on (tests/*/test_approvals*.py). Likewise
failed logins answer at once (`CONSOLE_LOGIN_FAILURE_FLOOR=0`) and the current bcrypt cost
is the demo users' (`CONSOLE_PASSWORD_ROUNDS=10`: no rehash at every test login) unless a
test sets them (tests/pages/test_login_hardening.py).

Databases: `migrated_sqlite(path)` gives a new SQLite database already at the newest
migration (copied from `sqlite_template`, migrated once per session); the store's `db`
fixture does the same for SQLite and PostgreSQL (tests/databases.py).

Parallel runs (pytest-xdist, `bin/test`'s default): every session fixture exists once per
worker process. A test module that uses a module- or class-scoped fixture (a console
process, an identity provider, a migrated database) has its tests grouped on one worker
(`xdist_group`, honoured by `--dist loadgroup`), so that fixture starts once, not once per
worker that happens to get one of its tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import SandboxHandle, start_sandbox
from tests.databases import SqliteTemplate


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group a module's tests on one worker when they share a fixture wider than a test
    and narrower than the session (see the module's docstring)."""
    for item in items:
        module = getattr(item, "module", None)
        info = getattr(item, "_fixtureinfo", None)
        if module is None or info is None:
            continue
        shared = any(d.scope in ("module", "class", "package")
                     for defs in info.name2fixturedefs.values() for d in defs)
        if shared:
            item.add_marker(pytest.mark.xdist_group(module.__name__))


@pytest.fixture(autouse=True)
def _approvals_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_APPROVALS", "off")


@pytest.fixture(autouse=True)
def _fast_logins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_LOGIN_FAILURE_FLOOR", "0")
    monkeypatch.setenv("CONSOLE_PASSWORD_ROUNDS", "10")


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxHandle]:
    """One sandbox for the whole session (seed 42, 40 grants, resync in 2 sandbox seconds)."""
    handle = start_sandbox(port=0, seed=42, grants=40, resync_delay=2.0)
    yield handle
    handle.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle) -> SandboxHandle:
    """The shared sandbox, reset to its seed (state, faults, latency, log, clock)."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def sandbox_newer() -> Iterator[SandboxHandle]:
    """A sandbox of its own that answers like the newer API guide (`newer_api=True`)."""
    handle = start_sandbox(port=0, seed=42, grants=40, resync_delay=2.0, newer_api=True)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    """A SQLite database at the newest migration, made once per session (tests/databases.py)."""
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture
def migrated_sqlite(sqlite_template: SqliteTemplate) -> Callable[[Path], str]:
    """`migrated_sqlite(path)`: the URL of a new SQLite database at `path`, already at the
    newest migration (a private copy of `sqlite_template`). The way to get a console
    database in a test: opening it skips the migrations' half second."""
    return sqlite_template.copy_to
