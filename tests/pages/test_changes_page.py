"""Changes a support or finance person can trust, through the pages: whole-number
limits with the reason beside the field, a confirmation for a big cut or the limiter off,
the limit as it is, two tabs, bulk dry runs that check each grant, history in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.helpers import shown
from tests.services.operations.conftest import make_client

DETAIL = "pages/grant_detail.py"
LIMITS = "pages/guest_limits.py"
SUBMIT = "FormSubmitter:limit_form-Apply limit"


def _guest(sandbox: Any, n: int = 0) -> str:
    rows = [t for t in sandbox.tokens() if not t["revoked"] and t["kind"] == "guest"]
    return rows[n]["grant_id"]


def _set(sandbox: Any, gid: str, limit: int | None = None, on: bool | None = True) -> None:
    """A Guest's limit set straight through the API (a starting point, or someone else)."""
    client = make_client(sandbox)
    try:
        client.update_transaction_limit(gid, transaction_limit=limit, enable_limiter=on)
    finally:
        client.close()


def _limit_now(sandbox: Any, gid: str) -> int | None:
    token = next(t["access_token"] for t in sandbox.tokens() if t["grant_id"] == gid)
    client = make_client(sandbox)
    try:
        return client.get_userinfo(token).transaction_limit
    finally:
        client.close()


def _open(make_app: Callable[..., AppTest], gid: str, role: str = "finance") -> AppTest:
    at = make_app(role)
    at.session_state["selected_grant_id"] = gid
    at.switch_page("../" + DETAIL).run()
    assert not at.exception, at.exception
    return at


def _submit(at: AppTest, limit: str = "", reason: str = "customer asked for it",
            limiter: str | None = None) -> AppTest:
    at.text_input(key="limit_value").input(limit)
    if limiter is not None:
        at.selectbox(key="limit_limiter").select(limiter)
    at.text_input(key="limit_reason").input(reason)
    at.button(key=SUBMIT).click()
    return at.run()


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# --- limits -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "why"), [
    ("12.5", "has a fraction"),
    ("1e3", "power of ten"),
    ("-5", "at least 1"),
    ("0", "at least 1"),
    ("99999999999999999999", "at most 1,000,000,000"),
])
def test_a_limit_that_is_not_a_whole_number_is_refused_with_the_reason(
        make_app: Callable[..., AppTest], sandbox: Any, audit_events: Callable[..., list],
        typed: str, why: str) -> None:
    gid = _guest(sandbox)
    _set(sandbox, gid, 5000)
    at = _open(make_app, gid)
    _submit(at, typed)
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and why in errors[0], errors  # said once, with the reason
    assert audit_events(action="guest.limit.update") == []  # nothing was sent
    assert _limit_now(sandbox, gid) == 5000
    assert at.text_input(key="limit_value").value == typed  # kept, to be corrected


def test_a_missing_reason_is_said_in_plain_words(make_app: Callable[..., AppTest],
                                                 sandbox: Any) -> None:
    gid = _guest(sandbox)
    _set(sandbox, gid, 5000)
    at = _open(make_app, gid)
    _submit(at, "6000", reason="")
    assert [shown(e.value) for e in at.error] == ["Please give a reason (5 to 500 characters)."]


def test_the_limit_as_it_is_limiter_effective_limit_and_tier(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    gid = _guest(sandbox)
    _set(sandbox, gid, 10_000)  # the Plus tier of the console's default tiers
    at = _open(make_app, gid, role="viewer")
    assert _metric(at, "Limiter") == "on"
    assert _metric(at, "Effective limit") == "10,000"
    assert _metric(at, "Tier") == "Plus"
    _set(sandbox, gid, 1234)
    at.button(key="detail_refresh").click().run()
    assert _metric(at, "Tier") == "none (custom limit)"


def test_a_cut_of_more_than_half_asks_first_showing_before_and_after(
        make_app: Callable[..., AppTest], sandbox: Any, audit_events: Callable[..., list]) -> None:
    gid = _guest(sandbox)
    _set(sandbox, gid, 10_000)
    at = _open(make_app, gid)
    _submit(at, "3000")
    assert not at.exception and not at.error
    ask = shown(at.warning[0].value)
    assert "10,000 -> 3,000" in ask and "more than half" in ask
    assert audit_events(action="guest.limit.update") == []  # not yet
    at.button(key="limit_cancel").click().run()
    assert _limit_now(sandbox, gid) == 10_000 and not at.warning
    _submit(at, "3000")
    at.button(key="limit_confirm").click().run()
    assert not at.exception and not at.error
    assert _limit_now(sandbox, gid) == 3000
    assert _metric(at, "Effective limit") == "3,000"
    assert at.text_input(key="limit_value").value == ""  # the form is cleared


def test_every_field_is_checked_before_the_question_and_cancel_keeps_the_form(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    gid = _guest(sandbox)
    _set(sandbox, gid, 10_000)
    at = _open(make_app, gid)
    _submit(at, "3000", reason="")  # a big cut without a reason: the reason first
    assert not at.warning and not any(b.key == "limit_confirm" for b in at.button)
    assert any("reason" in e.value for e in at.error)
    assert at.text_input(key="limit_reason").value == ""  # the field is there to fill
    _submit(at, "3000", reason="customer asked for it")
    assert "more than half" in shown(at.warning[0].value)
    assert any("Reason: customer asked for it" in t.value for t in at.text)
    at.button(key="limit_cancel").click().run()
    assert not at.warning and _limit_now(sandbox, gid) == 10_000
    # Back to the form with everything typed kept.
    assert at.text_input(key="limit_value").value == "3000"
    assert at.text_input(key="limit_reason").value == "customer asked for it"


def test_the_limit_fields_say_what_a_transaction_limit_counts(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    from services.operations.validation import LIMIT_UNIT_HELP

    assert "A number of transactions" in LIMIT_UNIT_HELP
    at = _open(make_app, _guest(sandbox))
    assert at.text_input(key="limit_value").help == LIMIT_UNIT_HELP
    bulk = make_app("finance", "pages/guest_limits.py")
    bulk.radio(key="bulk_how").set_value("Custom limit").run()
    assert bulk.text_input(key="bulk_limit").help == LIMIT_UNIT_HELP


def test_switching_the_limiter_off_asks_first(make_app: Callable[..., AppTest],
                                              sandbox: Any) -> None:
    gid = _guest(sandbox)
    _set(sandbox, gid, 2500)
    at = _open(make_app, gid)
    _submit(at, limiter="off")
    ask = shown(at.warning[0].value)
    assert "switches the limiter off" in ask and "2,500" in ask and "no cap" in ask
    at.button(key="limit_confirm").click().run()
    assert _limit_now(sandbox, gid) is None
    assert _metric(at, "Limiter") == "off"


def test_a_second_tab_does_not_overwrite_what_it_did_not_see(
        make_app: Callable[..., AppTest], sandbox: Any, audit_events: Callable[..., list]) -> None:
    gid = _guest(sandbox)
    _set(sandbox, gid, 7500)
    tab_a, tab_b = _open(make_app, gid), _open(make_app, gid)
    assert _metric(tab_a, "Effective limit") == _metric(tab_b, "Effective limit") == "7,500"
    _submit(tab_a, "3000")
    tab_a.button(key="limit_confirm").click().run()
    assert _limit_now(sandbox, gid) == 3000
    # Tab B still shows 7,500 and applies 9,000: refused, with who and when.
    _submit(tab_b, "9000")
    assert not tab_b.exception
    refusal = shown(tab_b.error[0].value)
    assert "is now 3,000, not 7,500 as shown" in refusal
    assert "finance changed it at" in refusal
    assert _limit_now(sandbox, gid) == 3000
    assert audit_events(action="guest.limit.update")[-1].error_code == "STALE"
    # B now sees the current value and may apply again.
    assert _metric(tab_b, "Effective limit") == "3,000"
    _submit(tab_b, "9000")
    assert not tab_b.error and _limit_now(sandbox, gid) == 9000


def test_a_change_outside_the_console_is_named_so(make_app: Callable[..., AppTest],
                                                  sandbox: Any) -> None:
    gid = _guest(sandbox)
    _set(sandbox, gid, 7500)
    at = _open(make_app, gid)
    _set(sandbox, gid, 6000)  # someone with the API, not this console
    _submit(at, "8000")
    assert "changed outside this console" in shown(at.error[0].value)


# --- bulk ------------------------------------------------------------------------------------

def _upload(at: AppTest, gids: list[str]) -> AppTest:
    at.file_uploader(key="bulk_upload").upload(
        "ids.csv", ("grant_id\n" + "\n".join(gids) + "\n").encode(), "text/csv")
    return at.run()


def _df(at: AppTest, column: str) -> Any:
    found = [df.value for df in at.dataframe if column in df.value.columns]
    assert found, f"no table with a {column!r} column"
    return found[-1]


def test_dry_run_checks_each_grant_and_apply_acts_on_what_would_change(
        make_app: Callable[..., AppTest], sandbox: Any, audit_events: Callable[..., list]) -> None:
    guest = _guest(sandbox)
    _set(sandbox, guest, 500)
    revoked = next(t["grant_id"] for t in sandbox.tokens() if t["revoked"])
    made_up = "cgrant_nobody_here_1"
    at = make_app("finance", LIMITS)
    _upload(at, [guest, revoked, made_up])
    at.selectbox(key="bulk_tier").select("Plus")
    at.button(key="bulk_dry").click().run()
    preview = _df(at, "outcome")
    by = dict(zip(preview["grant_id"], preview["outcome"], strict=True))
    assert by == {guest: "would change", revoked: "skipped", made_up: "skipped"}  # words
    before = dict(zip(preview["grant_id"], preview["before"], strict=True))
    assert before[made_up] == "unknown" and before[guest] == "500"
    at.text_input(key="bulk_reason").input("move to Plus")
    at.button(key="bulk_apply").click().run()
    assert not at.exception
    result = _df(at, "outcome")
    assert list(result["grant_id"]) == [guest]  # only what the dry run said would change
    assert list(result["outcome"]) == ["succeeded"]
    said = shown(at.success[0].value)
    assert said.startswith("Of the 1 grant(s) the dry run said would change: 1 changed")
    assert "The other 2 selected grant(s) were not touched" in said
    # a new selection: the earlier results go
    at.selectbox(key="bulk_tier").select("Pro").run()
    assert not [d for d in at.dataframe if "outcome" in d.value.columns]


def test_made_up_ids_are_all_skipped_and_apply_stays_off(make_app: Callable[..., AppTest],
                                                         sandbox: Any) -> None:
    at = make_app("finance", LIMITS)
    _upload(at, [f"cgrant_madeup_{i:05d}" for i in range(2000)])
    at.button(key="bulk_dry").click().run()
    assert not at.exception
    assert set(_df(at, "outcome")["outcome"]) == {"skipped"}
    assert at.button(key="bulk_apply").disabled
    assert any("nothing to apply" in c.value for c in at.caption)


def test_a_custom_limit_that_is_not_whole_is_refused_on_the_limits_page(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    at = make_app("finance", LIMITS)
    at.radio(key="bulk_how").set_value("Custom limit").run()
    at.text_input(key="bulk_limit").input("12.5").run()
    assert any("has a fraction" in shown(e.value) for e in at.error)


# --- history ------------------------------------------------------------------------------

def test_history_says_what_changed(make_app: Callable[..., AppTest], sandbox: Any) -> None:
    gid = _guest(sandbox)
    _set(sandbox, gid, 5000)
    at = _open(make_app, gid)
    _submit(at, "4000")
    history = list(_df(at, "done")["done"])
    assert history[0] == "Limit change: limit 5,000 → 4,000 — done"
    assert not any("requested" in h for h in history)  # one row per change


def test_the_limits_table_shows_current_limit_limiter_and_tier(
        make_app: Callable[..., AppTest], sandbox: Any, sync_now: Callable[[], None]) -> None:
    a, b = _guest(sandbox, 0), _guest(sandbox, 1)
    _set(sandbox, a, 10_000)
    _set(sandbox, b, 1234, on=False)
    sync_now()  # changed behind the console: the table (read model) shows them after a sync
    at = make_app("finance", LIMITS)
    table = next(d.value for d in at.dataframe if str(d.key).startswith("bulk_picker_"))
    rows = {r["grant_id"]: r for r in table.to_dict("records")}
    assert (rows[a]["current_limit"], rows[a]["limiter"], rows[a]["tier"]) == (
        "10,000", "on", "Plus")
    assert (rows[b]["current_limit"], rows[b]["limiter"], rows[b]["tier"]) == (
        "no cap", "off", "Unlimited")
    assert "None" not in table.astype(str).to_string()


def test_a_file_that_is_not_utf8_says_so_without_a_line_0(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    at = make_app("finance", LIMITS)
    at.file_uploader(key="bulk_upload").upload("ids.csv", b"grant_id\n\xff\xfe\n", "text/csv")
    at.run()
    assert any("not UTF-8 text" in shown(e.value) for e in at.error)
    assert not [d for d in at.dataframe if "line" in d.value.columns]
