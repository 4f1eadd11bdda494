"""Charts in the browser: clicking a day's bar on the Audit log's chart filters the table to
that day; clicking a status bar on the Overview opens the Grants page filtered to it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.sync_api import Page, expect

from tests.e2e import helpers as h


def test_clicking_a_day_on_the_audit_chart_filters_the_table(page: Page, console) -> None:
    h.login(page, console.url, "finance")
    h.goto_page(page, "Audit log")
    m = h.main(page)
    expect(m.get_by_text(re.compile(r"failed or refused\. Click a day"))).to_be_visible(
        timeout=h.TIMEOUT)
    chart = m.get_by_test_id("stVegaLiteChart").first
    drawn = chart.locator("canvas, svg").first
    drawn.wait_for()
    h.settle(page)
    box = drawn.bounding_box()
    assert box is not None
    # The x axis ends the day after today, so today's bar is the last of 30 (the y axis
    # takes about 45 px on the left). Move down that bar's middle until its tooltip shows:
    # the pointer is on the bar; click there.
    x = box["x"] + box["width"] - 6 - (box["width"] - 45) / 60
    tooltip = page.locator("#vg-tooltip-element.visible")
    for y in range(int(box["y"]) + 4, int(box["y"] + box["height"]) - 4, 5):
        page.mouse.move(x, y)
        if tooltip.count():
            break
    expect(tooltip).to_contain_text("succeeded")
    page.mouse.click(x, y)
    today = datetime.now(UTC).date()
    for field in ("From (UTC day)", "To (UTC day, inclusive)"):
        # The date inputs are year / month / day fields: each shows today's part.
        for part, value in (("year", today.year), ("month", today.month), ("day", today.day)):
            expect(m.get_by_role("spinbutton", name=f"{part}, {field}")).to_have_text(
                re.compile(rf"^0?{value}$"), timeout=h.TIMEOUT)
    expect(m.get_by_text(re.compile(r"event\(s\), newest first"))).to_be_visible()


def test_clicking_a_status_bar_on_the_overview_opens_the_grants_of_that_status(
        page: Page, console) -> None:
    h.login(page, console.url, "support")
    h.goto_page(page, "Overview")
    m = h.main(page)
    caption = m.get_by_text(re.compile(r"Click a bar to open the Grants page filtered"))
    expect(caption).to_be_visible(timeout=h.TIMEOUT)
    # The status chart is the first of the Trends section.
    chart = m.get_by_test_id("stVegaLiteChart").first
    chart.scroll_into_view_if_needed()
    drawn = chart.locator("canvas, svg").first
    drawn.wait_for()
    h.settle(page)
    box = drawn.bounding_box()
    assert box is not None
    # The x axis ends the day after today: today's bar is the last of 90. Move down its
    # middle until the tooltip names a status; click there.
    x = box["x"] + box["width"] - 6 - (box["width"] - 45) / 180
    tooltip = page.locator("#vg-tooltip-element.visible")
    status = None
    for y in range(int(box["y"]) + 4, int(box["y"] + box["height"]) - 4, 4):
        page.mouse.move(x, y)
        if tooltip.count():
            status = re.search(r"\b(active|revoked)\b", tooltip.inner_text())
            if status:
                break
    assert status is not None, "no status bar under the pointer"
    page.mouse.click(x, y)
    h.expect_page(page, "Grants")
    expect(page).to_have_url(re.compile(rf"[?&]status={status.group(1)}\b"),
                             timeout=h.TIMEOUT)
    # The Status filter shows the clicked status, and every row listed has it.
    expect(h.main(page).get_by_role("combobox", name="Status", exact=True)).to_have_value(
        status.group(1).capitalize(), timeout=h.TIMEOUT)
    rows = h.grid_dicts(h.grid(h.main(page), "Grant id"))
    assert rows and {r["Status"] for r in rows} == {status.group(1)}
