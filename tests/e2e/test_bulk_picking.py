"""Bulk picking in the Guest limits page, in a real browser: the selection (ticks, a file's
grants, the change) and its dry run outlive a reload and open in a new tab of the same user,
and the restored dry run is still checked at apply; a Shift-click ticks a range; "select all
that match" takes every grant of a filter without ticking; at 800 px the picker shows the
grant id, Current limit and Tier without scrolling sideways."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e import helpers as h
from tests.services.operations.conftest import make_client


def _selected(m: Locator) -> Locator:
    return m.get_by_test_id("stMetric").filter(has_text="Grants selected")


def _count(n: int) -> re.Pattern[str]:
    return re.compile(rf"^Grants selected\s*{n:,}\s*$")


def _picker(m: Locator) -> Locator:
    return h.grid(m, "Current limit")


def _filter(page: Page, m: Locator, text: str) -> None:
    box = m.get_by_label("Filter the table", exact=True)
    box.fill(text)
    box.press("Enter")
    h.quiet(page)


def test_selection_and_dry_run_outlive_a_reload_and_open_in_a_new_tab(
        page: Page, console, e2e_sandbox, plain_guests, tmp_path) -> None:
    gid = plain_guests[7]
    h.login(page, console.url, "finance")
    h.goto_page(page, "Guest limits")
    m = h.main(page)
    expect(_picker(m)).to_be_visible(timeout=h.TIMEOUT)
    # Tick the grant (the table filtered down to it), and upload a file naming it too.
    _filter(page, m, gid)
    h.eventually(page, lambda: [r["Grant id"] for r in h.grid_dicts(_picker(m))] == [gid],
                 "the picker lists only the grant filtered for")
    _picker(m).evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.click(*h.row_marker(_picker(m), 0))
    h.quiet(page)
    expect(_selected(m)).to_have_text(_count(1), timeout=h.TIMEOUT)
    _filter(page, m, "")
    upload = tmp_path / "ids.csv"
    upload.write_text(f"grant_id\n{gid}\n", encoding="utf-8")
    m.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(upload))
    expect(m.get_by_text("1 grant id(s) read from the file.")).to_be_visible(timeout=h.TIMEOUT)
    expect(m.get_by_text("1 ticked + 1 from the file, 1 in both.")).to_be_visible()
    # A custom limit, then its dry run.
    m.get_by_text("Custom limit", exact=True).click()
    limit_box = m.get_by_label("Transaction limit (the limiter is switched on)", exact=True)
    limit_box.fill("7500")
    limit_box.press("Enter")
    h.quiet(page)
    m.get_by_role("button", name="Dry run", exact=True).click()
    expect(m.get_by_text("Dry run: nothing was changed.")).to_be_visible(timeout=h.TIMEOUT)
    before = h.grid_dicts(h.grid(m, "Outcome"))
    assert [(r["Grant id"], r["After"]) for r in before] == [(gid, "7,500")]

    def same_work(p: Page) -> None:
        mm = h.main(p)
        expect(mm.get_by_text("Dry run: nothing was changed.")).to_be_visible(
            timeout=h.TIMEOUT)
        expect(_selected(mm)).to_have_text(_count(1))
        expect(mm.get_by_text("1 ticked + 1 from the file, 1 in both.")).to_be_visible()
        expect(mm.get_by_text("1 grant id(s) from the file “ids.csv”, kept from before.")
               ).to_be_visible()
        expect(mm.get_by_role("radio", name="Custom limit")).to_be_checked()
        expect(mm.get_by_label("Transaction limit (the limiter is switched on)", exact=True)
               ).to_have_value("7500")
        h.eventually(p, lambda: h.grid_dicts(h.grid(mm, "Outcome")) == before,
                     "the dry run is the one made before")
        picker = _picker(mm)
        h.eventually(p, lambda: [h.grid_dicts(picker)[i]["Grant id"]
                                 for i in h.selected_rows(picker)] == [gid],
                     "the picker shows the grant ticked")
        expect(mm.get_by_role("button", name="Apply", exact=True)).to_be_enabled()

    page.reload()
    h.quiet(page)
    same_work(page)
    tab = page.context.new_page()  # the same user's new tab (same cookie)
    tab.goto(page.url)
    h.quiet(tab)
    same_work(tab)

    # The grant changes elsewhere after the dry run: the restored dry run's Apply refuses it.
    client = make_client(e2e_sandbox)
    try:
        client.update_transaction_limit(gid, transaction_limit=4321, enable_limiter=True)
    finally:
        client.close()
    e2e_sandbox.clear_requests_log()
    t = h.main(tab)
    t.get_by_label("Reason (required to apply)", exact=True).fill("move to 7,500")
    t.get_by_role("button", name="Apply", exact=True).click()
    yes = t.get_by_role("button", name="Yes, apply this change")
    expect(t.get_by_role("heading", name="Results").or_(yes)).to_be_visible(timeout=h.TIMEOUT)
    if yes.is_visible():  # the dry run's before was over twice 7,500
        yes.click()
    expect(t.get_by_role("heading", name="Results")).to_be_visible(timeout=h.TIMEOUT)
    h.eventually(tab, lambda: [(r["Grant id"], r["Outcome"], r["Error code"])
                               for r in h.grid_dicts(h.grid(t, "Outcome"))]
                 == [(gid, "skipped", "STALE")], "the grant changed since is skipped as stale")
    assert not [r for r in e2e_sandbox.requests_log() if r["method"] == "PATCH"]

    # Clear selection empties it, for every tab (the page's button, not the grid toolbar's
    # of the same name, which unticks the grid's rows only).
    t.locator(".st-key-bulk_clear").get_by_role("button", name="Clear selection").click()
    h.quiet(tab)
    expect(_selected(t)).to_have_text(_count(0), timeout=h.TIMEOUT)
    page.reload()
    h.quiet(page)
    expect(_selected(m)).to_have_text(_count(0), timeout=h.TIMEOUT)
    expect(m.get_by_text("Dry run: nothing was changed.")).to_have_count(0)
    tab.close()


def test_shift_click_ticks_a_range_and_select_all_takes_a_whole_filter(
        page: Page, console) -> None:
    h.login(page, console.url, "finance")
    h.goto_page(page, "Guest limits")
    m = h.main(page)
    picker = _picker(m)
    expect(picker).to_be_visible(timeout=h.TIMEOUT)
    h.quiet(page)
    picker.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.click(*h.row_marker(picker, 1))
    h.quiet(page)
    page.keyboard.down("Shift")
    page.mouse.click(*h.row_marker(picker, 5))
    page.keyboard.up("Shift")
    h.quiet(page)
    expect(_selected(m)).to_have_text(_count(5), timeout=h.TIMEOUT)
    h.eventually(page, lambda: h.selected_rows(_picker(m)) == [1, 2, 3, 4, 5],
                 "rows 2 to 6 ticked by one click and one Shift-click")

    # Every grant a filter matches, without ticking: "cust-" is in every reference.
    _filter(page, m, "cust-")
    button = m.get_by_role("button", name=re.compile(r"^Select all [\d,]+ that match$"))
    expect(button).to_be_visible(timeout=h.TIMEOUT)
    n = int(re.search(r"[\d,]+", button.inner_text()).group().replace(",", ""))
    assert n > 5
    button.click()
    h.quiet(page)
    expect(m.get_by_text(f"All {n:,} grant(s) matching “cust-”.")).to_be_visible(
        timeout=h.TIMEOUT)
    expect(_selected(m)).to_have_text(_count(n))  # the 5 ticked are among them
    expect(m.get_by_text(re.compile(rf"^5 ticked \+ {n:,} matching the filter, 5 in both\.$"))
           ).to_be_visible()
    page.reload()
    h.quiet(page)
    expect(_selected(h.main(page))).to_have_text(_count(n), timeout=h.TIMEOUT)
    m = h.main(page)
    m.get_by_role("button", name="Drop these").click()
    h.quiet(page)
    expect(_selected(m)).to_have_text(_count(5), timeout=h.TIMEOUT)


def test_picker_shows_grant_id_limit_and_tier_without_scrolling_at_800_px(
        browser: Browser, console) -> None:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 800, "height": 900})
    context.add_init_script(h.RUN_COUNTER_JS)
    page = context.new_page()
    try:
        h.login(page, console.url, "finance")
        h.goto_page(page, "Guest limits")
        picker = _picker(h.main(page))
        expect(picker).to_be_visible(timeout=h.TIMEOUT)
        h.quiet(page)
        # The grid's accessible table holds only the columns drawn in its view (a column
        # scrolled out of it is left out): Tier is whole when the column after it starts
        # inside the view too.
        head = h.grid_rows(picker)[0]
        assert head[:4] == ["Grant id", "Current limit", "Tier", "Limiter"], head
        assert len(head) < 8, f"every column fits, so this proves nothing: {head}"
        assert picker.evaluate("e => e.getBoundingClientRect().right") <= 800
    finally:
        context.close()
