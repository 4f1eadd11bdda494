"""The console process as replicas run it (`python -m dashboard.serve`, tests/e2e/
console_process.py) builds its runtime when it starts: before any browser opens it, its
sync worker holds the lock (or stands by), and the page runs that come later get that same
runtime, not a second one."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from sandbox import SandboxHandle
from tests.e2e.console_process import ConsoleProcess, PortTaken
from tests.timing import wait_for

TOKENS_LOADED = "stored tokens loaded into the vault"


def _holder(db: Path) -> str | None:
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        try:
            row = conn.execute("SELECT value FROM rm_sync_state "
                               "WHERE name = 'sync_holder'").fetchone()
        except sqlite3.OperationalError:  # the migrations have not made the table yet
            return None
    return None if row is None else str(row[0])


def test_the_runtime_is_built_at_start_and_the_page_runs_get_that_one(
        e2e_sandbox: SandboxHandle, browser: Browser, tmp_path: Path) -> None:
    console = ConsoleProcess(e2e_sandbox.base_url, tmp_path / "data",
                             log_path=tmp_path / "console.log",
                             extra_env={"SYNC_ENABLED": "true"})
    with console:
        # No page opened: the sandbox's tokens are in the vault and the sync worker
        # recorded this process as the holder of the sync lock.
        holder = wait_for(lambda: _holder(tmp_path / "data" / "console.db"), timeout=60,
                          what="the sync holder, with no page opened")
        assert holder.endswith(f":{console.pid}")
        assert console.log_tail(100_000).count(TOKENS_LOADED) == 1

        ctx = browser.new_context()
        try:
            pages = [ctx.new_page() for _ in range(2)]
            for page in pages:
                page.goto(console.url + "/")
            for page in pages:
                expect(page.get_by_test_id("stForm").filter(has_text="Log in")).to_have_count(
                    1, timeout=60_000)
        finally:
            ctx.close()
        # The page runs used the runtime built at start: nothing was built (or loaded) again.
        log = console.log_tail(100_000)
        assert log.count(TOKENS_LOADED) == 1
        assert log.count("console runtime ready") == 1
        assert _holder(tmp_path / "data" / "console.db") == holder


def test_a_free_port_taken_before_the_console_binds_it_is_replaced_by_another(
        e2e_sandbox: SandboxHandle, tmp_path: Path) -> None:
    """Another process (another test worker, say) binds the free port the console was given
    before Streamlit does: the start tries a new free port instead of failing; a port the
    caller chose is never swapped, the start fails saying so."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        fixed = ConsoleProcess(e2e_sandbox.base_url, tmp_path / "fixed", port=busy,
                               log_path=tmp_path / "fixed.log")
        with pytest.raises(PortTaken):
            fixed.start()
        assert f"Port {busy} is not available" in fixed.log_tail()

        console = ConsoleProcess(e2e_sandbox.base_url, tmp_path / "data",
                                 log_path=tmp_path / "console.log")
        console.port = busy  # as if another process took it after `free_port()`
        with console:
            assert console.port != busy and console.url.endswith(f":{console.port}")
            assert console.log_tail().count(f"Port {busy} is not available") == 1
