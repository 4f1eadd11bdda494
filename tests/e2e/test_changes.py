"""Where the browser matters for changes a person can trust: a grant's address opened
while logged out opens that grant after the login; a resync keeps being watched after a
reload, whoever started it; a limit typed with a fraction is refused beside the field."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from sandbox import SandboxHandle, start_sandbox
from tests.e2e import helpers as h
from tests.e2e.conftest import running_console
from tests.e2e.console_process import ConsoleProcess
from tests.services.operations.conftest import make_client

#: Sandbox seconds a resync takes in the slow sandbox: far longer than any test waits, so
#: a resync stays in progress (however slow the machine) until the test moves the sandbox
#: clock past its end (`advance_clock`), once it has seen what it checks while it runs.
SLOW_RESYNC = 3600.0


def test_a_grant_address_opened_logged_out_opens_the_grant_after_login(
        page: Page, console, plain_guests) -> None:
    gid = plain_guests[8]
    page.goto(f"{console.url}/grant_detail?grant={gid}")
    form = page.get_by_test_id("stForm").filter(has_text="Log in")
    expect(form).to_have_count(1, timeout=h.TIMEOUT)
    h.settle(page)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    h.fill_login(page, "support", h.PASSWORDS["support"])
    h.expect_page(page, "Grant detail")
    expect(h.main(page).get_by_text(gid, exact=True).first).to_be_visible(timeout=h.TIMEOUT)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    assert f"grant={gid}" in page.url


def test_a_limit_with_a_fraction_is_refused_beside_the_field(
        page: Page, console, plain_guests) -> None:
    gid = plain_guests[9]
    h.login(page, console.url, "finance")
    h.open_grant(page, console.url, gid)
    form = h.main(page).get_by_test_id("stForm").filter(has_text="Apply limit")
    form.get_by_label("New limit", exact=True).fill("12.5")
    form.get_by_label("Reason", exact=True).fill("customer asked")
    form.get_by_role("button", name="Apply limit").click()
    alert = form.get_by_test_id("stAlertContentError")
    expect(alert).to_contain_text("has a fraction", timeout=h.TIMEOUT)
    # Beside the field: in the same column as "New limit", under it.
    field = form.get_by_label("New limit", exact=True).bounding_box()
    box = alert.bounding_box()
    assert field is not None and box is not None
    assert abs(box["x"] - field["x"]) < 40 and box["y"] > field["y"]
    expect(form.get_by_label("New limit", exact=True)).to_have_value("12.5")


# --- resync watched after a reload (a sandbox whose resyncs end when the test says) --------

@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, seed=42, grants=40, resync_delay=SLOW_RESYNC)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def slow_console(slow_sandbox: SandboxHandle,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    yield from running_console(slow_sandbox, tmp_path_factory, "slow-console")


def _plain_integration(sandbox: SandboxHandle, skip: int = 0) -> tuple[str, str, str]:
    """(grant id, wallet id, user id) of a Guest's non-CSV integration that completed."""
    client = make_client(sandbox)
    found = []
    try:
        for t in sandbox.tokens():
            if t["revoked"] or t["kind"] != "guest":
                continue
            for integ in client.list_integrations(t["access_token"]):
                if not integ.is_csv and integ.status.upper() == "COMPLETED":
                    found.append((t["grant_id"], integ.wallet_id,
                                  client.check_session(t["access_token"]).user_id))
                    break
    finally:
        client.close()
    return found[skip]


def _card(page: Page, wallet: str):  # noqa: ANN202 (a Locator)
    return h.main(page).get_by_test_id("stText").filter(has_text=f"wallet {wallet}")


def test_a_resync_is_watched_after_a_reload(browser, slow_console, slow_sandbox) -> None:
    gid, wallet, _ = _plain_integration(slow_sandbox)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(h.RUN_COUNTER_JS)
    page = context.new_page()
    try:
        h.login(page, slow_console.url, "support")
        h.open_grant(page, slow_console.url, gid)
        card = _card(page, wallet)
        expect(card).to_contain_text("status completed")
        cards = [t for t in h.fresh(page).get_by_test_id("stText").all_inner_texts()
                 if "\nwallet " in t]
        pick = next(i for i, t in enumerate(cards) if f"wallet {wallet}" in t)
        h.main(page).get_by_role("button", name="Resync", exact=True).nth(pick).click()
        expect(h.main(page).get_by_text("Resync in progress")).to_be_visible(timeout=h.TIMEOUT)
        page.reload()
        h.expect_page(page, "Grant detail")
        # After the reload nothing of the session is left, yet the syncing integration is
        # watched: it shows in progress, then completed, without pressing Refresh.
        expect(h.main(page).get_by_text("Resync in progress")).to_be_visible(timeout=h.TIMEOUT)
        slow_sandbox.advance_clock(SLOW_RESYNC)  # the resync ends at Kryptos
        expect(_card(page, wallet)).to_contain_text("status completed", timeout=h.TIMEOUT)
        expect(h.main(page).get_by_text("Resync in progress")).to_have_count(0)
    finally:
        context.close()


def test_a_resync_started_elsewhere_is_watched_too(browser, slow_console, slow_sandbox) -> None:
    gid, wallet, user_id = _plain_integration(slow_sandbox, skip=1)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(h.RUN_COUNTER_JS)
    page = context.new_page()
    try:
        h.login(page, slow_console.url, "viewer")
        client = make_client(slow_sandbox)
        try:
            client.resync_integration(wallet, user_id, "latest")  # someone else's tool
        finally:
            client.close()
        h.open_grant(page, slow_console.url, gid)
        expect(_card(page, wallet)).to_have_count(0)  # a viewer has no resync controls
        expect(h.main(page).get_by_text("Resync in progress")).to_be_visible(timeout=h.TIMEOUT)
        expect(h.main(page).get_by_text(re.compile(r": (ongoing|syncing)"))).to_be_visible()
        slow_sandbox.advance_clock(SLOW_RESYNC)  # the resync ends at Kryptos
        expect(h.main(page).get_by_text("Resync in progress")).to_have_count(
            0, timeout=h.TIMEOUT)
    finally:
        context.close()
