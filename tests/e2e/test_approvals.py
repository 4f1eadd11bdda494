"""Four-eyes approval in the browser: support asks for a revoke (a request, not a change),
an admin approves it on the Approvals page, and the grant is revoked; a bulk change that
becomes a request leaves no progress bar and no Apply behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from sandbox import SandboxHandle
from tests.e2e import helpers as h
from tests.e2e.console_process import PROJECT_ROOT, ConsoleProcess


@pytest.fixture(scope="module")
def approvals_console(e2e_sandbox: SandboxHandle,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    """A console of its own with approvals on (the session's console has them off)."""
    root = tmp_path_factory.mktemp("approvals")
    proc = ConsoleProcess(e2e_sandbox.base_url, root / "data", log_path=root / "console.log",
                          extra_env={"CONSOLE_APPROVALS": "on"}, fast_logins=True)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def two_pages(browser: Browser) -> Iterator[tuple[Page, Page]]:
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900})
                for _ in range(2)]
    for ctx in contexts:
        ctx.add_init_script(h.RUN_COUNTER_JS)
    yield contexts[0].new_page(), contexts[1].new_page()
    for ctx in contexts:
        ctx.close()


def _revoked(sandbox: SandboxHandle, gid: str) -> bool:
    return next(t for t in sandbox.tokens() if t["grant_id"] == gid)["revoked"]


def test_request_then_approve_then_done(two_pages: tuple[Page, Page],
                                        approvals_console: ConsoleProcess,
                                        e2e_sandbox: SandboxHandle,
                                        plain_guests: list[str]) -> None:
    asker, approver = two_pages
    gid = plain_guests[-1]
    url = approvals_console.url

    # support asks: the dialog says it needs approval, and the grant stays active
    h.login(asker, url, "support")
    assert "Approvals" in h.nav_titles(asker)
    h.open_grant(asker, url, gid)
    h.main(asker).get_by_role("button", name="Revoke grant...").click()
    dialog = asker.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=h.TIMEOUT)
    expect(dialog).to_contain_text("This files a revoke request")
    dialog.get_by_label("Reason", exact=True).fill("customer asked by e-mail")
    dialog.get_by_label("Grant id, typed again", exact=True).fill(gid)
    dialog.get_by_role("button", name="Request the revoke", exact=True).click()
    expect(dialog).to_have_count(0, timeout=h.TIMEOUT)
    expect(asker.get_by_test_id("stToast").filter(has_text="Not changed yet")).to_be_visible(
        timeout=h.TIMEOUT)
    assert not _revoked(e2e_sandbox, gid)
    # the grant says a request waits (with where to decide it) and offers no second revoke
    page = h.main(asker)
    expect(page.get_by_test_id("stAlertContentInfo").filter(
        has_text="Waiting for approval")).to_contain_text("by support", timeout=h.TIMEOUT)
    expect(page).to_contain_text("A revoke request is already waiting")
    expect(page.get_by_role("link", name="Approvals page").first).to_be_visible()
    expect(page.get_by_role("button", name="Revoke grant...")).to_have_count(0)

    # an admin sees it waiting (count in the navigation) and approves it
    h.login(approver, url, "admin")
    assert "Approvals (1)" in h.nav_titles(approver)
    h.goto_page(approver, "Approvals (1)", "Approvals")
    m = h.main(approver)
    expect(m.get_by_role("heading", name="Waiting for me (1)")).to_be_visible()
    expect(m).to_contain_text(gid)
    m.get_by_text("I have checked this change").click()
    h.settle(approver)
    m.get_by_role("button", name="Approve and execute").click()
    expect(m.get_by_test_id("stAlertContentSuccess")).to_contain_text(
        "approved and executed", timeout=h.TIMEOUT)
    expect(m.get_by_test_id("stAlertContentSuccess")).to_contain_text("1 succeeded")
    assert _revoked(e2e_sandbox, gid)
    expect(m.get_by_role("heading", name="Waiting for me (0)")).to_be_visible()
    h.eventually(approver, lambda: "Approvals" in h.nav_titles(approver),
                 "the navigation shows Approvals without a count")
    h.assert_no_secrets(approver, e2e_sandbox)

    # the grant's history credits both people
    h.open_grant(approver, url, gid)
    expect(h.main(approver).get_by_test_id("stAlertContentWarning")).to_contain_text(
        "by support, approved by admin (request #", timeout=h.TIMEOUT)

    # the requester sees the outcome under "My requests"
    h.goto_page(asker, "Approvals")
    h.eventually(asker, lambda: any(
        r.get("state") == "approved and executed"
        for r in h.grid_dicts(h.grid(h.main(asker), "state"))),
        "the requester's list shows the request executed")


def test_the_approvals_address_opened_logged_out_logs_in_to_approvals(
        page: Page, approvals_console: ConsoleProcess) -> None:
    """A link to /approvals (say, in an e-mail to an approver) opened without a session:
    the login form under that address, not "Page not found" over it; after the login, the
    Approvals page with the link's query."""
    url = approvals_console.url
    page.goto(url + "/approvals?view=mine")
    expect(page.get_by_test_id("stForm").get_by_role("heading", name="Log in")).to_be_visible(
        timeout=h.TIMEOUT)
    h.settle(page)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    assert page.url == url + "/approvals?view=mine"
    h.fill_login(page, "admin", h.PASSWORDS["admin"])
    h.expect_page(page, "Approvals")
    expect(page.get_by_text("Page not found")).to_have_count(0)
    assert page.url == url + "/approvals?view=mine"


def test_a_bulk_change_that_becomes_a_request_leaves_no_progress_and_no_apply(
        two_pages: tuple[Page, Page], approvals_console: ConsoleProcess,
        e2e_sandbox: SandboxHandle, plain_guests: list[str], tmp_path) -> None:
    page, _ = two_pages
    picked = plain_guests[10:12]
    h.login(page, approvals_console.url, "finance")
    h.goto_page(page, "Guest limits")
    m = h.main(page)
    upload = tmp_path / "ids.csv"
    upload.write_text("grant_id\n" + "\n".join(picked) + "\n", encoding="utf-8")
    m.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(upload))
    expect(m.get_by_text("2 grant id(s) read from the file.")).to_be_visible(timeout=h.TIMEOUT)
    h.settle(page)
    m.get_by_text("Custom limit", exact=True).click()
    h.settle(page)
    # Above the four-eyes threshold (100,000): the change waits for a second person.
    m.get_by_role("textbox", name="Transaction limit (the limiter is switched on)").fill("250000")
    m.get_by_label("Reason (required to apply)", exact=True).fill("large customers")
    h.settle(page)
    m.get_by_role("button", name="Dry run", exact=True).click()
    expect(m.get_by_text("Dry run: nothing was changed.")).to_be_visible(timeout=h.TIMEOUT)
    apply = m.get_by_role("button", name="Apply", exact=True)
    expect(apply).to_be_enabled()
    apply.click()
    expect(m.get_by_text("Not changed yet", exact=False)).to_be_visible(timeout=h.TIMEOUT)
    h.quiet(page)
    expect(m.get_by_test_id("stProgress")).to_have_count(0)
    expect(m.get_by_role("button", name="Apply", exact=True)).to_be_disabled()
    assert not [r for r in e2e_sandbox.requests_log() if r["method"] == "PATCH"
                and any(g in r["path"] for g in picked)]


def _file_revokes(console: ConsoleProcess, asks: list[tuple[str, str, str]]) -> list[int]:
    """Revoke requests filed by the console's own code against its own database, one per
    (username, role, grant id); returns their numbers."""
    script = (
        "import sys\n"
        "from dashboard import actions\n"
        "from dashboard.runtime import get_runtime\n"
        "from services.operations import Actor\n"
        "rt = get_runtime()\n"
        "for arg in sys.argv[1:]:\n"
        "    user, role, gid = arg.split(',')\n"
        "    held = actions.confirm_revoke(rt.ops, Actor(user, user, frozenset({role})), gid,"
        " gid, 'customer asked by e-mail')\n"
        "    print(held.request.id)\n")
    result = subprocess.run([sys.executable, "-c", script, *(",".join(a) for a in asks)],
                            cwd=PROJECT_ROOT, env=console.env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return [int(n) for n in result.stdout.split()]


def test_approve_two_at_once_one_refused_as_the_admins_own(
        page: Page, approvals_console: ConsoleProcess, e2e_sandbox: SandboxHandle,
        plain_guests: list[str]) -> None:
    # g2 is revoked by nobody (its request is refused); another test's limit request on it
    # does not stand in the way of a revoke request.
    g1, g2 = plain_guests[7], plain_guests[10]
    r1, r2 = _file_revokes(approvals_console, [("support", "support", g1),
                                               ("admin", "admin", g2)])
    h.login(page, approvals_console.url, "admin")
    # (the navigation counts what waits for the admin, not the admin's own request)
    h.goto_page(page, next(t for t in h.nav_titles(page) if t.startswith("Approvals")),
                "Approvals")
    m = h.main(page)
    box = m.get_by_label("Select pending requests")
    for rid in (r1, r2):
        box.click()
        page.get_by_role("option", name=f"#{rid} ", exact=False).first.click()
        page.keyboard.press("Escape")
        h.settle(page)
    m.get_by_text("I have checked these changes").click()
    h.settle(page)
    m.get_by_role("button", name="Approve 2 selected").click()
    expect(m.get_by_test_id("stAlertContentInfo").filter(has_text="request(s)")).to_contain_text(
        "1 of 2 request(s) approved and executed; 1 refused.", timeout=h.TIMEOUT)
    rows = {r["request"]: r for r in h.grid_dicts(h.grid(m, "request"))}
    assert rows[f"#{r1}"]["result"] == "approved and executed"
    assert rows[f"#{r2}"]["result"] == "refused"
    assert "second person" in rows[f"#{r2}"]["why"]
    assert _revoked(e2e_sandbox, g1) and not _revoked(e2e_sandbox, g2)
