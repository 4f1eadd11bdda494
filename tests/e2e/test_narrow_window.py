"""Half a laptop's screen (800 px wide): a grant's key figures, the Overview's key figures and
its work-queue buttons show whole, none cut off with an ellipsis."""

from __future__ import annotations

from playwright.sync_api import Browser, Locator, expect

from tests.e2e import helpers as h

CUT_JS = ("e => [e, ...e.querySelectorAll('*')].some(x => x.scrollWidth > x.clientWidth + 1)")


def _cut(items: Locator) -> list[str]:
    """The texts of these elements that do not fit their box."""
    return [items.nth(i).inner_text() for i in range(items.count())
            if items.nth(i).evaluate(CUT_JS)]


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
    finally:
        context.close()
