"""One rule for confirming a risky limit change, on one grant or many."""

from __future__ import annotations

from services.operations.limit_value import (
    UNKNOWN,
    GuestLimit,
    bulk_confirmation_question,
    confirmation_question,
)


def test_a_bulk_cut_asks_as_the_same_cut_on_one_grant_does() -> None:
    big = GuestLimit.capped(100_000)
    assert confirmation_question(big, 7_500, None) is not None
    question = bulk_confirmation_question(
        {"a": big, "b": GuestLimit.capped(10_000), "c": GuestLimit.capped(8_000)}, 7_500, None)
    assert question == ("This cuts the limit by more than half on 1 of 3 grant(s) "
                        "(e.g. 100,000 -> 7,500 transactions).")


def test_a_limiter_switched_off_on_some_grants_asks_too() -> None:
    question = bulk_confirmation_question(
        {"a": GuestLimit.capped(5_000), "b": GuestLimit.no_cap()}, None, False)
    assert question is not None and "switches the limiter off on 1 of 2 grant(s)" in question


def test_nothing_risky_or_nothing_known_asks_nothing() -> None:
    assert bulk_confirmation_question({"a": GuestLimit.capped(1_000)}, 10_000, None) is None
    assert bulk_confirmation_question({"a": UNKNOWN, "b": UNKNOWN}, 10, None) is None
