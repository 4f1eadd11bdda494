"""Charts in the browser: clicking a day's bar on the Audit log's chart filters the table to
that day."""

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
    # The x axis ends the day after today, so today's bar is the last of 30; today holds
    # every event of this fresh console, so its bar is the tallest and fills the plot's
    # height. Click the middle of that bar (the y axis takes about 45 px on the left).
    bar = (box["width"] - 45) / 30
    page.mouse.click(box["x"] + box["width"] - 6 - bar / 2, box["y"] + 140)
    today = datetime.now(UTC).date()
    expect(m.get_by_label("From (UTC day)")).to_have_value(today.strftime("%Y/%m/%d"),
                                                           timeout=h.TIMEOUT)
    expect(m.get_by_label("To (UTC day, inclusive)")).to_have_value(today.strftime("%Y/%m/%d"))
    expect(m.get_by_text(re.compile(r"event\(s\), newest first"))).to_be_visible()
