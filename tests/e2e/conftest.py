"""Browser tests: the console as `streamlit run` serves it, driven in headless Chromium.

Skipped (the whole package) when Debian's `chromium` is not on PATH; CI (.ci/run) installs
it with apt-get. Never `playwright install`.

Fixtures:
- `e2e_sandbox` (session): a sandbox in this process (resync in 2 s), so tests can set faults
  and read the access tokens it handed out; faults are cleared before each test.
- `console` (session): one console process for the session, against that sandbox, with a
  fresh data directory (database, vault, cookie key, demo users). Tests that change a grant
  each use their own grant, so they do not depend on one another or on their order; the
  users' kept Guest limits selections are emptied before each test.
- `browser` (session) and `page` (per test: a fresh browser context, i.e. no cookies, at
  1280x900). Any JavaScript dialog (alert/confirm) fails the test: the console never opens
  one, so one would mean injected script ran.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from sandbox import SandboxHandle, start_sandbox
from tests.e2e import helpers as h
from tests.e2e.console_process import ConsoleProcess, chromium_path, launch_chromium

RESYNC_DELAY = 2.0
NO_CHROMIUM = (
    "browser tests skipped: Debian's chromium is not installed (apt-get install chromium; "
    "CI's .ci/run does it). Never `playwright install`."
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this package's tests `e2e`, and skip them all (with the reason shown in the
    summary) where no Chromium is installed. (A module-level skip in a conftest is an error
    in pytest, not a skip.)"""
    here = Path(__file__).parent
    missing = chromium_path() is None
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            if missing:
                item.add_marker(pytest.mark.skip(reason=NO_CHROMIUM))


@pytest.fixture(scope="session")
def e2e_sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, seed=42, grants=40, resync_delay=RESYNC_DELAY)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _no_faults(e2e_sandbox: SandboxHandle) -> Iterator[None]:
    e2e_sandbox.clear_faults()
    e2e_sandbox.set_latency(0)
    yield
    e2e_sandbox.clear_faults()


def running_console(sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory,
                    name: str = "console") -> Iterator[ConsoleProcess]:
    """A console process with a fresh data directory, stopped when the fixture ends."""
    root = tmp_path_factory.mktemp(name)
    proc = ConsoleProcess(sandbox.base_url, root / "data", log_path=root / "console.log",
                          fast_logins=True)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def _no_bulk_drafts(request: pytest.FixtureRequest) -> None:
    """Each test starts with no kept Guest limits selection: the users are shared by the
    session's console, and a user's selection and dry run outlive their browser."""
    if "console" not in request.fixturenames:
        return
    console: ConsoleProcess = request.getfixturevalue("console")
    with sqlite3.connect(console.data_dir / "console.db") as conn:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                              "name = 'bulk_drafts'").fetchone()
        if exists:  # else the console has not migrated its database yet: no drafts
            conn.execute("DELETE FROM bulk_drafts")


@pytest.fixture(scope="session")
def console(e2e_sandbox: SandboxHandle,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    yield from running_console(e2e_sandbox, tmp_path_factory)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, console: ConsoleProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    context.add_init_script(h.RUN_COUNTER_JS)
    pg = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:  # noqa: ANN001 (playwright Dialog)
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    yield pg
    context.close()
    assert not dialogs, f"a JavaScript dialog opened (injected script ran?): {dialogs}"


@pytest.fixture
def new_page(browser: Browser, console: ConsoleProcess) -> Iterator:
    """Open more pages, each in a fresh context (another user at the same time)."""
    contexts = []

    def make() -> Page:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
        ctx.add_init_script(h.RUN_COUNTER_JS)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="session")
def plain_guests(e2e_sandbox: SandboxHandle) -> list[str]:
    """Active Guest grants with a stored token and nothing special seeded on them, in a
    fixed order: each test that changes a grant takes its own index."""
    sc = e2e_sandbox.scenarios()
    special = {v["grant_id"] for v in sc.values() if isinstance(v, dict) and "grant_id" in v}
    special |= set(sc.get("revoked", [])) | set(sc.get("not_exported", []))
    return [t["grant_id"] for t in e2e_sandbox.tokens()
            if t["kind"] == "guest" and not t["revoked"] and t["grant_id"] not in special]
