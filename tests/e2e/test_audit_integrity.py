"""An auditor verifies the chain in the browser, notes the head, and later notices that the
newest events were removed behind the console's back (triggers dropped, rows deleted).

Its own console (and database), so that breaking the log here touches no other test.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from sandbox import SandboxHandle
from tests.e2e import helpers as h
from tests.e2e.conftest import running_console
from tests.e2e.console_process import ConsoleProcess


@pytest.fixture(scope="module")
def own_console(e2e_sandbox: SandboxHandle,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    yield from running_console(e2e_sandbox, tmp_path_factory, "console-integrity")


def _verify(page: Page) -> None:
    m = h.main(page)
    m.get_by_role("button", name="Verify the chain", exact=True).click()
    h.settle(page)


def test_removed_newest_events_are_noticed(page: Page, own_console: ConsoleProcess) -> None:
    h.login(page, own_console.url, "finance")
    h.goto_page(page, "Audit log")
    m = h.main(page)

    _verify(page)
    expect(m.get_by_text("the chain is intact")).to_be_visible(timeout=h.TIMEOUT)
    expect(m.get_by_text("it holds the head kept outside the database")).to_be_visible()
    caption = m.get_by_text(re.compile(r"^Head: row \d+")).inner_text()
    head = int(re.search(r"Head: row (\d+)", caption).group(1))
    noted = m.get_by_test_id("stCode").last.inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", noted), noted

    # Someone with access to the database file removes the newest events, the noted head
    # included, after dropping the trigger that refuses deletes.
    db = sqlite3.connect(own_console.data_dir / "console.db")
    try:
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        removed = db.execute("DELETE FROM audit_log WHERE seq >= ?", (head,)).rowcount
        db.commit()
    finally:
        db.close()
    assert removed >= 1

    # A plain verification notices it from the head kept outside the database.
    _verify(page)
    expect(m.get_by_text("the chain is intact")).to_have_count(0)
    alarm = m.get_by_test_id("stAlertContentError")
    expect(alarm).to_be_visible(timeout=h.TIMEOUT)
    expect(alarm).to_contain_text(
        re.compile("events are missing from the end of the log|is not the one recorded earlier"))
    expect(m.get_by_text("Head: row")).to_have_count(0)

    # The head the auditor noted is checked too, and found missing.
    m.get_by_text("Check against a head you noted").click()
    form = m.get_by_test_id("stForm")
    form.get_by_label(re.compile("row", re.I)).first.fill(str(head))
    form.get_by_label(re.compile("hash", re.I)).first.fill(noted)
    form.get_by_role("button", name="Verify against this head").click()
    h.settle(page)
    expect(m.get_by_text("the chain is intact")).to_have_count(0)
    expect(m.get_by_test_id("stAlertContentError")).to_be_visible(timeout=h.TIMEOUT)
