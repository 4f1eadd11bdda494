"""Finding grants in a browser: the Grants page's filters are in the address (a reload, a
copied link and Back from a grant keep them; "Clear filters" drops them); "Open a grant by
id" takes a customer reference; the sidebar's search box on every page opens a grant or a
filtered list."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Page, expect

from tests.e2e import helpers as h


def _query(page: Page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _search_box(page: Page):  # noqa: ANN202 (playwright Locator)
    return h.main(page).get_by_role("textbox", name="Search", exact=True)


def _grant_ids(page: Page) -> set[str]:
    return {r["Grant id"] for r in h.grid_dicts(h.grid(h.main(page), "Grant id"))}


def _listed(e2e_sandbox) -> list[dict]:  # noqa: ANN001
    return [t for t in e2e_sandbox.tokens() if not t["revoked"]]


def test_filters_survive_a_reload_a_link_and_back_from_a_grant(
        page: Page, new_page, console, e2e_sandbox) -> None:  # noqa: ANN001
    token = _listed(e2e_sandbox)[3]
    gid, needle = token["grant_id"], token["grant_id"][len("cgrant_"):][:10]
    h.login(page, console.url, "support")
    h.goto_page(page, "Grants")
    box = _search_box(page)
    box.fill(needle)
    box.press("Enter")
    h.settle(page)
    h.eventually(page, lambda: _query(page).get("q") == needle, "the search is in the address")
    h.eventually(page, lambda: _grant_ids(page) == {gid}, "the list is searched")

    page.reload()
    h.expect_page(page, "Grants")
    h.quiet(page)
    expect(_search_box(page)).to_have_value(needle, timeout=h.TIMEOUT)
    h.eventually(page, lambda: _grant_ids(page) == {gid}, "the reload keeps the search")

    # The address is a link: another person (logged in) opens the same list.
    link = page.url
    other = new_page()
    h.login(other, console.url, "viewer")
    other.goto(link)
    h.expect_page(other, "Grants")
    h.quiet(other)
    expect(_search_box(other)).to_have_value(needle, timeout=h.TIMEOUT)
    h.eventually(other, lambda: _grant_ids(other) == {gid}, "the link opens the same list")

    # Open the grant from the list, then Back: the search is still there.
    box = h.grid(h.main(page), "Grant id").locator("canvas").first.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 15, box["y"] + 52)  # the first row's selection marker
    h.expect_page(page, "Grant detail")
    h.main(page).get_by_role("button", name="Back to grants").click()
    h.expect_page(page, "Grants")
    expect(_search_box(page)).to_have_value(needle, timeout=h.TIMEOUT)
    h.eventually(page, lambda: _query(page).get("q") == needle, "Back restores the address")

    h.main(page).get_by_role("button", name="Clear filters").click()
    h.settle(page)
    expect(_search_box(page)).to_have_value("")
    h.eventually(page, lambda: "q" not in _query(page), "the address is cleared")
    h.eventually(page, lambda: len(_grant_ids(page)) > 1, "every grant is listed again")


def test_open_a_grant_by_its_customer_reference(page: Page, console, e2e_sandbox) -> None:
    listed = _listed(e2e_sandbox)
    refs = Counter(t["customer_ref"] for t in listed if t["customer_ref"])
    token = next(t for t in listed if t["customer_ref"] and refs[t["customer_ref"]] == 1)
    h.login(page, console.url, "viewer")
    h.goto_page(page, "Grants")
    form = h.main(page).get_by_test_id("stForm").filter(has_text="Open a grant by id")
    form.get_by_label("Open a grant by id", exact=True).fill(token["customer_ref"])
    form.get_by_test_id("stBaseButton-secondaryFormSubmit").click()
    h.expect_page(page, "Grant detail")
    expect(h.main(page).get_by_text(token["grant_id"], exact=True).first).to_be_visible(
        timeout=h.TIMEOUT)
    assert _query(page).get("grant") == token["grant_id"]


def test_the_sidebar_search_opens_a_grant_or_a_filtered_list(
        page: Page, console, e2e_sandbox) -> None:
    listed = _listed(e2e_sandbox)
    spaces = Counter(t["workspace_id"] for t in listed)
    workspace = spaces.most_common(1)[0][0]
    sidebar = page.get_by_test_id("stSidebar")
    h.login(page, console.url, "support")

    # From the Overview: a workspace several grants share lists them.
    sidebar.get_by_label("Find a grant", exact=True).fill(workspace)
    sidebar.get_by_role("button", name="Find", exact=True).click()
    h.expect_page(page, "Grants")
    assert _query(page).get("workspace") == workspace
    expect(h.main(page).get_by_text(f"workspace is “{workspace}”")).to_be_visible()
    mine = {t["grant_id"] for t in e2e_sandbox.tokens() if t["workspace_id"] == workspace}
    others = {t["grant_id"] for t in e2e_sandbox.tokens()} - mine
    h.eventually(page, lambda: mine <= _grant_ids(page) and not _grant_ids(page) & others,
                 "only that workspace's grants are listed")

    # From another page: a Kryptos user id opens its grant.
    h.goto_page(page, "Connect a customer")
    users = Counter(t["user_id"] for t in listed)
    token = next(t for t in listed if users[t["user_id"]] == 1)
    sidebar.get_by_label("Find a grant", exact=True).fill(token["user_id"])
    sidebar.get_by_role("button", name="Find", exact=True).click()
    h.expect_page(page, "Grant detail")
    expect(h.main(page).get_by_text(token["grant_id"], exact=True).first).to_be_visible(
        timeout=h.TIMEOUT)
