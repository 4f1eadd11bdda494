"""The one value of a Guest's limit: made from what Kryptos answers and from stored JSON,
in words, and compared by the rules that ask for a confirmation."""

from __future__ import annotations

import pytest

from services.kryptos.client import KryptosClient
from services.operations.limit_value import (
    NO_CAP,
    UNKNOWN,
    GuestLimit,
    confirmation_question,
)


def test_from_the_user_info_and_the_limit_answer_of_the_sandbox(sandbox) -> None:
    client = KryptosClient(sandbox.client_id, sandbox.client_secret, sandbox.connect_url,
                           sandbox.data_url)
    row = next(t for t in sandbox.tokens() if t["kind"] == "guest" and not t["revoked"])
    res = client.update_transaction_limit(row["grant_id"], transaction_limit=4321,
                                          enable_limiter=True)
    assert GuestLimit.of(res.transaction_limit, res.enable_limiter) == GuestLimit.capped(4321)
    info = client.get_userinfo(row["access_token"])
    assert GuestLimit.from_userinfo(info.transaction_limit) == GuestLimit.capped(4321)
    res = client.update_transaction_limit(row["grant_id"], enable_limiter=False)
    assert GuestLimit.of(res.transaction_limit, res.enable_limiter) == NO_CAP
    assert res.transaction_limit == 4321  # stored, but not in force
    info = client.get_userinfo(row["access_token"])
    assert GuestLimit.from_userinfo(info.transaction_limit) == NO_CAP


@pytest.mark.parametrize(("stored", "value"), [
    (7500, GuestLimit.capped(7500)),
    (0, GuestLimit.capped(0)),
    (None, NO_CAP),
    ("unknown", UNKNOWN),
    ("3,000", GuestLimit.capped(3000)),  # the words a stale refusal kept
    ("no cap (limiter off)", NO_CAP),
    ({"transaction_limit": 500, "enable_limiter": True}, GuestLimit.capped(500)),
    ({"transaction_limit": 500, "enable_limiter": False}, NO_CAP),
    ({"transaction_limit": None, "enable_limiter": None}, NO_CAP),
    ({"transaction_limit": "x", "enable_limiter": True}, UNKNOWN),
    (True, UNKNOWN),
    (-5, UNKNOWN),
    ("garbage", UNKNOWN),
    ([1, 2], UNKNOWN),
])
def test_stored_rows_are_read_never_refused(stored: object, value: GuestLimit) -> None:
    assert GuestLimit.from_json(stored) == value


@pytest.mark.parametrize("value", [GuestLimit.capped(7500), NO_CAP, UNKNOWN])
def test_the_json_form_is_the_one_rows_already_have(value: GuestLimit) -> None:
    assert GuestLimit.from_json(value.to_json()) == value
    assert {GuestLimit.capped(7500): 7500, NO_CAP: None, UNKNOWN: "unknown"}[value] == \
        value.to_json()


def test_words_and_labels() -> None:
    assert GuestLimit.capped(7500).words() == "7,500" == GuestLimit.capped(7500).label()
    assert NO_CAP.words() == "no cap (limiter off)" and NO_CAP.label() == "no cap"
    assert UNKNOWN.words() == "unknown" == UNKNOWN.label()
    assert (GuestLimit.capped(1).limiter, NO_CAP.limiter, UNKNOWN.limiter) == (True, False, None)


def test_what_a_page_showed() -> None:
    assert GuestLimit.shown(500, True) == GuestLimit.shown(500, None) == GuestLimit.capped(500)
    assert GuestLimit.shown(500, False) == GuestLimit.shown(None, False) == NO_CAP
    assert GuestLimit.shown(None, None) == GuestLimit.shown(None, True) == UNKNOWN
    with pytest.raises(TypeError):
        GuestLimit.shown(500, "on")
    with pytest.raises(ValueError):
        GuestLimit.shown(12.5, True)
    with pytest.raises(ValueError):
        GuestLimit.shown(True, True)


def test_an_impossible_value_cannot_be_made() -> None:
    for bad in (lambda: GuestLimit("capped", None, True), lambda: GuestLimit("capped", 5, False),
                lambda: GuestLimit("no_cap", 5, False), lambda: GuestLimit("unknown", None, True),
                lambda: GuestLimit.capped(-1)):
        with pytest.raises(ValueError):
            bad()


def test_the_limit_after_a_change() -> None:
    cap, after = GuestLimit.capped(7500), GuestLimit.after
    assert after(cap, 100, True) == after(NO_CAP, 100, True) == GuestLimit.capped(100)
    assert after(cap, None, False) == after(UNKNOWN, 100, False) == NO_CAP
    assert after(cap, 100, None) == GuestLimit.capped(100)
    assert after(NO_CAP, 100, None) == NO_CAP  # the limiter stays off
    assert after(UNKNOWN, 100, None) == UNKNOWN
    assert after(cap, None, True) == cap
    assert after(NO_CAP, None, True) == UNKNOWN  # the stored limit is not shown


def test_the_big_cut_and_limiter_off_confirmations() -> None:
    cap = GuestLimit.capped(10_000)
    assert cap.cut_by_more_than_half(GuestLimit.capped(4_999))
    assert not cap.cut_by_more_than_half(GuestLimit.capped(5_000))
    assert not cap.cut_by_more_than_half(NO_CAP) and not UNKNOWN.cut_by_more_than_half(cap)
    assert confirmation_question(cap, 4_999, None) == (
        "This cuts the limit by more than half: 10,000 -> 4,999 transactions.")
    assert confirmation_question(cap, 5_000, None) is None
    assert confirmation_question(cap, None, False) == (
        "This switches the limiter off: the limit goes from 10,000 to no cap (the Guest can "
        "make any number of transactions).")
    assert "from unknown to no cap" in (confirmation_question(UNKNOWN, None, False) or "")
    assert confirmation_question(NO_CAP, None, False) is None  # already off
    assert confirmation_question(UNKNOWN, 10, True) is None  # nothing known to cut
