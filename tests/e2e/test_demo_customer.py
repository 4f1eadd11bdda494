"""The whole diagram in a browser: a customer connects through the backend's demo app, and
the new grant shows in the console without restarting anything.

Started as `bin/console` (`python -m backend.launch`) starts them: a sandbox process and a
backend process (`backend.launch.start_sandbox_stack`, which also points the sandbox's
webhooks at the backend), then the console process, all sharing one data folder (database,
vault key). The customer opens `<backend>/demo`, signs in, clicks Connect (create-link-token,
the widget, exchange-token) and sees holdings; support finds the grant on the Grants page by
the customer reference, and its timeline shows the widget's webhook and the exchange. A second
Connect is a returning customer: `isAuthorized: true`, and no new grant."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from backend.launch import start_sandbox_stack, stop
from sandbox import SandboxClient
from tests.e2e import helpers as h
from tests.e2e.console_process import ConsoleProcess


@dataclass
class Diagram:
    sandbox: SandboxClient
    backend_url: str
    console: ConsoleProcess


@pytest.fixture(scope="module")
def diagram(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Diagram]:
    root = tmp_path_factory.mktemp("diagram")
    data = root / "data"
    # The console's environment (fresh data folder, no credentials, no secrets file) is
    # also the sandbox's and the backend's, as under `bin/console`.
    env = ConsoleProcess("unset", data).env()
    env.pop("SANDBOX_URL")
    env["SANDBOX_RESYNC_DELAY"] = "2"
    data.mkdir(parents=True)
    children, sandbox_url, backend_url = start_sandbox_stack(env)
    console = ConsoleProcess(sandbox_url, data, log_path=root / "console.log",
                             extra_env={"SANDBOX_RESYNC_DELAY": "2"}, fast_logins=True)
    try:
        console.start()
        yield Diagram(SandboxClient(sandbox_url), backend_url, console)
    finally:
        console.stop()
        stop(children)


def _page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(h.RUN_COUNTER_JS)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()
    assert not dialogs, f"a JavaScript dialog opened: {dialogs}"


@pytest.fixture
def customer_page(browser: Browser) -> Iterator[Page]:
    yield from _page(browser)


@pytest.fixture
def staff_page(browser: Browser) -> Iterator[Page]:
    yield from _page(browser)


@pytest.fixture
def admin_page(browser: Browser) -> Iterator[Page]:
    yield from _page(browser)


CALLS = ("/api/kryptos/create-link-token", "/demo/widget", "/api/kryptos/exchange-token",
         "/api/kryptos/holdings")


def _connect(page: Page, returning: bool) -> None:
    """Click Connect; the page calls the backend in the Web SDK's order and shows holdings."""
    calls: list[str] = []

    def seen(request: Any) -> None:
        path = request.url.split("://", 1)[-1].split("/", 1)[-1].split("?")[0]
        if "/" + path in CALLS:
            calls.append("/" + path)

    page.on("request", seen)
    page.locator("#connect").click()
    done = "connected (returning customer)" if returning else "connected"
    expect(page.locator("#status")).to_have_text(done, timeout=h.TIMEOUT)
    expect(page.locator("#log")).to_contain_text(
        f"isAuthorized = {'true' if returning else 'false'}")
    expect(page.locator("#summary")).to_contain_text("assets, total value", timeout=h.TIMEOUT)
    assert page.locator("#holdings tbody tr").count() > 0
    page.remove_listener("request", seen)
    assert calls == list(CALLS), calls


def _grants_for(page: Page, ref: str) -> list[dict[str, str]]:
    """Search the Grants page for the customer reference; the rows found (polled)."""
    h.goto_page(page, "Grants")
    box = h.main(page).get_by_role("textbox", name="Search", exact=True)
    box.fill(ref)
    box.press("Enter")
    h.settle(page)
    found: list[dict[str, str]] = []

    def rows() -> list[dict[str, str]]:
        found[:] = [r for r in h.grid_dicts(h.grid(h.main(page), "Customer reference"))
                    if r.get("Customer reference") == ref]
        return found

    h.eventually(page, rows, f"a grant of {ref} on the Grants page")
    return found


def test_customer_connects_and_the_console_sees_the_grant(
        diagram: Diagram, customer_page: Page, staff_page: Page, admin_page: Page) -> None:
    ref = f"e2e-demo-{secrets.token_hex(4)}"
    grants_before = len(diagram.sandbox.tokens())

    # The customer, in the company's app.
    page = customer_page
    page.goto(diagram.backend_url + "/demo")
    page.locator("#customer").fill(ref)
    page.locator("#signin").click()
    expect(page.locator("#who")).to_have_text(f"signed in as {ref}", timeout=h.TIMEOUT)
    _connect(page, returning=False)
    assert len(diagram.sandbox.tokens()) == grants_before + 1

    # Support, in the console that was already running.
    h.login(staff_page, diagram.console.url, "support")
    rows = _grants_for(staff_page, ref)
    assert len(rows) == 1 and rows[0]["Status"] == "active"
    assert rows[0]["User"] == "Guest", rows
    gid = rows[0]["Grant id"]
    h.open_grant(staff_page, diagram.console.url, gid)

    def timeline() -> list[str]:
        return [r["What happened"]
                for r in h.grid_dicts(h.grid(h.main(staff_page), "What happened"))]

    wanted = f"Connected: access token stored by customer {ref}"

    def shown() -> list[str] | None:
        texts = timeline()
        seen.append(texts)
        added = any(t.startswith("Integration added:") for t in texts)
        return texts if added and wanted in texts else None

    seen: list[list[str]] = []
    try:
        h.eventually(staff_page, shown, "the timeline shows the widget's webhook and the "
                                        "customer's exchange")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; timeline: {seen[-1] if seen else None}") from None

    # The same customer connects again: a returning customer, no new grant.
    _connect(page, returning=True)
    assert len(diagram.sandbox.tokens()) == grants_before + 1
    h.login(admin_page, diagram.console.url, "admin")  # another user: no cached list
    assert [r["Grant id"] for r in _grants_for(admin_page, ref)] == [gid]
