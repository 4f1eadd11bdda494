"""Half a laptop's screen (800 px wide): a grant's key figures and its header buttons, the
Overview's key figures and its work-queue buttons, the Grants page's filters and the Users
page's buttons show whole, none cut off with an ellipsis."""

from __future__ import annotations

from playwright.sync_api import Browser, Locator, expect

from tests.e2e import helpers as h

CUT_JS = ("e => [e, ...e.querySelectorAll('*')].some(x => x.scrollWidth > x.clientWidth + 1)")


def _cut(items: Locator) -> list[str]:
    """The texts of these elements that do not fit their box."""
    return [items.nth(i).inner_text() or items.nth(i).get_attribute("value") or ""
            for i in range(items.count()) if items.nth(i).evaluate(CUT_JS)]


def test_key_figures_and_queue_counts_show_whole_at_800_px(
        browser: Browser, console, plain_guests) -> None:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 800, "height": 900})
    context.add_init_script(h.RUN_COUNTER_JS)
    page = context.new_page()
    try:
        h.login(page, console.url, "support")
        buttons = h.main(page).locator(
            '[class*="st-key-queue_"] [data-testid="stBaseButton-secondary"]')
        expect(buttons.first).to_be_visible(timeout=h.TIMEOUT)
        labels = sorted(set(buttons.all_inner_texts()))
        assert len(labels) == 5, labels
        assert all(":" in t and t.rsplit(":", 1)[1].strip().replace(",", "").isdigit()
                   for t in labels), labels
        assert _cut(buttons.locator("p")) == []
        figures = h.main(page).get_by_test_id("stMetric")
        assert figures.count() >= 7
        assert _cut(h.main(page).get_by_test_id("stMetricValue")) == [], "a count is cut off"
        assert _cut(h.main(page).get_by_test_id("stMetricLabel")) == [], "a label is cut off"

        h.open_grant(page, console.url, plain_guests[5])
        total = h.main(page).get_by_test_id("stMetric").filter(has_text="Total value")
        expect(total.first).to_be_visible(timeout=h.TIMEOUT)
        h.quiet(page)
        values = h.main(page).get_by_test_id("stMetricValue")
        assert values.count() >= 4
        assert _cut(values) == [], "a key figure is cut off"
        assert _cut(h.main(page).get_by_test_id("stMetricLabel")) == []
        header = h.main(page).get_by_role("button").filter(
            has_text="Refresh").or_(h.main(page).get_by_role("button").filter(
                has_text="Back to grants"))
        assert header.count() == 2
        assert _cut(header.locator("p")) == [], "a header button is cut off"

        h.goto_page(page, "Grants")
        boxes = h.main(page).get_by_test_id("stSelectbox")
        expect(boxes.first).to_be_visible(timeout=h.TIMEOUT)
        assert boxes.count() >= 7
        values = boxes.locator('input[role="combobox"]')
        assert values.count() >= 7
        assert _cut(values) == [], "a filter's value is cut off"
        toggles = h.main(page).get_by_test_id("stCheckbox")
        assert toggles.count() >= 2
        assert _cut(toggles.get_by_test_id("stMarkdownContainer")) == [], \
            "a toggle's label is cut off"
        clear = h.main(page).get_by_role("button", name="Clear filters")
        assert _cut(clear.locator("p")) == []
    finally:
        context.close()


def test_the_users_page_buttons_show_whole_at_800_px(browser: Browser, console) -> None:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 800, "height": 900})
    context.add_init_script(h.RUN_COUNTER_JS)
    page = context.new_page()
    try:
        h.login(page, console.url, "admin")
        h.goto_page(page, "Users")
        buttons = h.main(page).get_by_role("button").filter(
            has_text="Reset password").or_(h.main(page).get_by_role("button").filter(
                has_text="Remove user"))
        expect(buttons.first).to_be_visible(timeout=h.TIMEOUT)
        row = h.main(page).locator('[class*="st-key-users_"] button')
        assert row.count() >= 7
        assert _cut(row.locator("p")) == [], "a Users page button is cut off"
    finally:
        context.close()
