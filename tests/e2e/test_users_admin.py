"""The Users page in a browser: an admin adds a user (the one-time password shown once logs
them in once), changes their roles (their session ends, the new pages show at the next login) and
removes them after a confirmation (they can no longer log in). The one-time password works
once: the user chooses their own before any page."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from tests.e2e import helpers as h

OWN = "quinn-own-password"


def _choose(page: Page, box: Locator, option: str) -> None:
    """Pick `option` in a select or multiselect (`box`: its input, found by its label)."""
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    h.settle(page)


def test_add_change_roles_and_remove_a_user(page: Page, new_page, console) -> None:
    h.login(page, console.url, "admin")
    h.goto_page(page, "Users")

    # Add quinn as a viewer: a one-time password, shown once.
    h.main(page).get_by_text("Add a user").click()
    form = h.main(page).get_by_test_id("stForm").filter(has_text="Add user")
    form.get_by_label("Username", exact=True).fill("quinn")
    form.get_by_label("Name", exact=True).fill("Quinn Q")
    _choose(page, form.get_by_label("Roles", exact=True), "viewer")
    h.submit(page, form.get_by_role("button", name="Add user"))
    h.settle(page)
    expect(h.main(page).get_by_text("Added quinn (viewer).")).to_be_visible(timeout=h.TIMEOUT)
    password = h.main(page).get_by_test_id("stCode").inner_text().strip()
    assert len(password) >= 16

    # quinn logs in with it once and chooses their own password before any page.
    quinn = new_page()
    quinn.goto(console.url + "/")
    h.fill_login(quinn, "quinn", password)
    form = h.main(quinn).get_by_test_id("stForm").filter(has_text="New password")
    expect(form).to_be_visible(timeout=h.TIMEOUT)
    form.get_by_label("New password", exact=True).fill(OWN)
    form.get_by_label("New password again", exact=True).fill(OWN)
    h.submit(quinn, form.get_by_role("button", name="Save and continue"))
    h.expect_page(quinn, "Overview")
    assert h.nav_titles(quinn) == h.NAV["viewer"]

    # The one-time password is gone from the admin's page at the next run.
    picker = h.main(page).get_by_label("User", exact=True)
    picker.click()
    picker.press_sequentially("quinn")
    picker.press("Enter")
    h.settle(page)
    expect(h.main(page).get_by_role("button", name="Save roles")).to_be_visible()
    page.wait_for_function("() => document.body.innerText.includes('Roles')")
    expect(h.main(page).get_by_test_id("stCode")).to_have_count(0)
    assert password not in h.all_html(page)

    # Give quinn the support role too: saved, and quinn's session ends.
    _choose(page, h.main(page).get_by_label("Roles", exact=True).last, "support")
    h.submit(page, h.main(page).get_by_role("button", name="Save roles"))
    h.settle(page)
    expect(h.main(page).get_by_text("quinn now has roles: viewer, support.")).to_be_visible(
        timeout=h.TIMEOUT)
    quinn.reload()  # the cookie names a session that has ended: the login form
    expect(quinn.get_by_test_id("stForm").get_by_role("heading", name="Log in")).to_be_visible(
        timeout=h.TIMEOUT)
    h.login(quinn, console.url, "quinn", OWN)
    assert h.nav_titles(quinn) == h.NAV["support"]

    # Remove quinn: asked first, then done; quinn can no longer log in.
    h.submit(page, h.main(page).get_by_role("button", name="Remove user"))
    h.settle(page)
    expect(h.main(page).get_by_text("Remove quinn?")).to_be_visible(timeout=h.TIMEOUT)
    h.submit(page, h.main(page).get_by_role("button", name="Yes: remove user"))
    h.settle(page)
    expect(h.main(page).get_by_text("Removed quinn.")).to_be_visible(timeout=h.TIMEOUT)
    rows = h.grid_dicts(h.grid(h.main(page), "user"))
    assert "quinn" not in [r["user"] for r in rows]

    again = new_page()
    again.goto(console.url + "/")
    h.fill_login(again, "quinn", OWN)
    expect(h.main(again).get_by_text("Wrong username or password")).to_be_visible(
        timeout=h.TIMEOUT)
