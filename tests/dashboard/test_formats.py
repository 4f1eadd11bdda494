"""How absent values, upstream text and counts read on screen."""

from __future__ import annotations

import pandas as pd

from dashboard.csv_io import screen_frame, screen_text
from dashboard.formats import ABSENT, fmt_minute, fmt_text, grant_list_caption


def test_an_absent_value_is_an_em_dash_never_none_or_a_guarded_dash() -> None:
    frame = screen_frame(pd.DataFrame({"reason": [None, "expired", ""],
                                       "n": [1, 2, 3]}))
    assert list(frame["reason"]) == [ABSENT, "expired", ""]
    assert list(frame["n"]) == [1, 2, 3]
    assert fmt_text(None) == fmt_text("") == ABSENT == "\u2014"
    assert fmt_minute(None) == ABSENT
    assert screen_text(ABSENT) == ABSENT


def test_upstream_text_that_starts_a_formula_keeps_its_guard_on_screen() -> None:
    assert screen_text("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert screen_text("@SUM(A1)") == "'@SUM(A1)"
    assert screen_text("'quoted") == "'quoted"  # no doubled quote: only files need that
    assert screen_frame(pd.DataFrame({"ref": ["+1", "ok"]}))["ref"].tolist() == ["'+1", "ok"]


def test_the_grants_caption_in_words() -> None:
    assert grant_list_caption(0, 1, 0) == "No grant matches these filters."
    assert grant_list_caption(1, 1, 1).startswith("1 grant; shown.")
    assert grant_list_caption(40, 26, 15).startswith("40 grants; showing 26\u201340.")
    assert grant_list_caption(40, 1, 40).startswith("40 grants; all shown.")


def test_money_has_two_decimals_and_more_only_for_tiny_amounts() -> None:
    from dashboard.formats import fmt_money

    assert [fmt_money(v) for v in (1234.5678, 0.5, 0, 0.000042137)] == [
        "1,234.57", "0.50", "0.00", "0.00004214"]


def test_a_limit_change_toast_names_only_what_moved() -> None:
    from dashboard.actions.limits import LimitFormResult
    from services.operations.models import LimitChange

    moved = LimitFormResult(change=LimitChange("cgrant_a", 10_000, True, 7_500, True))
    assert moved.summary() == "Limit 10,000 -> 7,500."  # no "limiter on -> on"
    both = LimitFormResult(change=LimitChange("cgrant_a", 1_000, False, 1_000, True))
    assert both.summary() == "Limit kept at 1,000, limiter off -> on."
