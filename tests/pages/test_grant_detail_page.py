"""Grant detail page: parts, per-role controls, resync, limit form, revoke, history, secrets."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import actions, reads
from dashboard.ui import ZWSP
from services.operations import Actor, OperationError
from tests.pages.helpers import shown

PAGE = "pages/grant_detail.py"


def _grant(sandbox: Any, kind: str = "guest") -> str:
    return next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"] and t["kind"] == kind)


def _open(make_app: Callable[..., AppTest], role: str, gid: str) -> AppTest:
    """The detail page of `gid`, as the grants page leaves it: the id in session state.

    (AppTest does not follow an `st.switch_page` made by the script on later runs, so the
    test switches itself; the grants page's own switch is tested in test_grants_page.)
    """
    at = make_app(role)
    at.session_state["selected_grant_id"] = gid
    at.switch_page("../" + PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Grant detail"]
    return at


def _df(at: AppTest, column: str) -> Any:
    found = [df.value for df in at.dataframe if column in df.value.columns]
    assert found, f"no table with a {column!r} column"
    return found[-1]


def _keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


def _page_text(at: AppTest) -> str:
    """Everything the page rendered, protos included (values, tables, labels)."""
    return str(at._tree)  # noqa: SLF001 (the rendered element tree, as text)


def test_viewer_sees_parts_but_no_controls(make_app: Callable[..., AppTest],
                                           sandbox: Any) -> None:
    gid = _grant(sandbox)
    at = _open(make_app, "viewer", gid)
    assert [s.value for s in at.subheader] == [
        "Session", "Holdings", "Integrations", "Transaction limit", "Timeline", "History"]
    assert not at.error
    assert not any(k.startswith("resync_") for k in _keys(at))
    assert "revoke_open" not in _keys(at)
    assert not any(k.startswith("FormSubmitter:limit_form") for k in _keys(at))
    holdings = _df(at, "cost_basis")
    assert len(holdings) >= 1 and {"pnl", "change_24h", "value"} <= set(holdings.columns)
    integrations = _df(at, "last_sync")
    assert {"status", "message"} <= set(integrations.columns)
    assert len(at.get("vega_lite_chart")) == 2
    # who did what to the grant, and why, is not for a viewer
    assert not [d for d in at.dataframe if "done" in d.value.columns]
    assert any("shown to support, finance and admin" in c.value for c in at.caption)
    # The facts say how fresh they are; the live parts say they are live.
    fresh = [c.value for c in at.caption if "from the console's copy" in c.value]
    assert fresh and " s ago" in fresh[0] and "grants list" in fresh[0]
    assert "(the grants list confirmed it" not in fresh[0]  # one time, or both in order
    assert "read from Kryptos now" in fresh[0]


@pytest.mark.parametrize(("role", "resync", "revoke", "limit"), [
    ("support", True, True, False),
    ("finance", False, False, True),
    ("admin", True, True, True),
])
def test_controls_follow_the_role(make_app: Callable[..., AppTest], sandbox: Any, role: str,
                                  resync: bool, revoke: bool, limit: bool) -> None:
    at = _open(make_app, role, _grant(sandbox))
    keys = _keys(at)
    assert any(k.startswith("resync_") for k in keys) is resync
    assert ("revoke_open" in keys) is revoke
    assert ("FormSubmitter:limit_form-Apply limit" in keys) is limit


def test_query_param_opens_the_grant(make_app: Callable[..., AppTest], sandbox: Any) -> None:
    gid = _grant(sandbox, "linked")
    at = make_app("viewer")
    at.query_params["grant"] = gid
    at.switch_page("../" + PAGE).run()
    # switch_page clears query params in a browser; AppTest keeps the ones we set
    assert not at.exception
    assert at.session_state["selected_grant_id"] == gid


def test_no_access_token_in_the_page(make_app: Callable[..., AppTest], sandbox: Any) -> None:
    tokens = [t["access_token"] for t in sandbox.tokens()]
    for kind in ("guest", "linked"):
        at = _open(make_app, "admin", _grant(sandbox, kind))
        text = _page_text(at)
        assert "cat_" in text or "..." in text  # the masked token is shown
        leaked = [t for t in tokens if t in text]
        assert leaked == []
        assert sandbox.client_secret not in text


def test_upstream_html_is_shown_as_text(make_app: Callable[..., AppTest], sandbox: Any) -> None:
    xss = sandbox.scenarios()["xss"]
    at = _open(make_app, "viewer", xss["grant_id"])
    shown = [t.value for t in at.text] + [str(v) for v in _df(at, "last_sync")["name"]]
    assert any("<img" in v for v in shown)
    assert not any("<img" in m.value for m in at.markdown)


def _wallet(at: AppTest, csv: bool = False) -> str:
    frame = _df(at, "last_sync")
    rows = frame[(frame["type"] == "csv") == csv]
    rows = rows[~rows["status"].str.upper().isin(["ONGOING", "SYNCING"])]
    return str(rows.iloc[0]["wallet_id"])


def test_resync_button_then_status_polls_until_settled(
        make_app: Callable[..., AppTest], sandbox: Any,
        audit_events: Callable[..., list]) -> None:
    gid = _grant(sandbox)
    at = _open(make_app, "support", gid)
    wid = _wallet(at)
    at.button(key=f"resync_{wid}").click().run()
    assert not at.exception and not at.error
    assert at.session_state["resync_watch"].watching(gid) == {wid: "latest"}
    assert any("Resync in progress" in c.value for c in at.caption)
    assert any(": ongoing" in t.value or ": syncing" in t.value for t in at.text)
    # one message, not "Resync queued: queued"
    assert [shown(t.value) for t in at.toast][0].startswith("Resync of ")
    sandbox.advance_clock(60)
    at.run()  # the fragment re-reads, sees it settled, stops polling
    assert not at.exception
    assert at.session_state["resync_watch"].watching(gid) == {}
    assert not any("Resync in progress" in c.value for c in at.caption)
    assert [e.outcome for e in audit_events(action="integration.resync")] == [
        "requested", "succeeded"]
    history = _df(at, "done")
    said = [w for w in history["done"] if w.startswith("Resync:")]
    assert said == [f"Resync: wallet {wid}, mode latest (new transactions), type "
                    f"{said[0].split('type ')[1].split(' —')[0]} — done"]


def test_resync_upstream_failure_shows_code(make_app: Callable[..., AppTest], sandbox: Any,
                                            audit_events: Callable[..., list]) -> None:
    gid = _grant(sandbox)
    at = _open(make_app, "support", gid)
    wid = _wallet(at)
    sandbox.set_fault(path=f"/developer/integrations/{wid}", status=500, code="INTERNAL_ERROR",
                      count=1)
    at.button(key=f"resync_{wid}").click().run()
    assert not at.exception
    assert any("Resync failed" in e.value for e in at.error), [e.value for e in at.error]
    # The sentence is plain; the code and request id are for support, in a caption.
    assert not any("INTERNAL_ERROR" in shown(e.value) for e in at.error)
    support = [shown(c.value) for c in at.caption if "For support" in c.value]
    assert any("INTERNAL_ERROR" in c and "request id" in c for c in support)
    assert at.session_state["resync_watch"].watching(gid) == {}
    assert [e.outcome for e in audit_events(action="integration.resync")] == [
        "requested", "failed"]


def test_resync_from_start_needs_a_reason(make_app: Callable[..., AppTest],
                                          sandbox: Any) -> None:
    at = _open(make_app, "support", _grant(sandbox))
    wid = _wallet(at)
    at.selectbox(key=f"resync_mode_{wid}").select("from_start")
    at.button(key=f"resync_{wid}").click().run()
    assert any("reason" in e.value for e in at.error)


def test_finance_sets_a_limit_through_the_form(make_app: Callable[..., AppTest], sandbox: Any,
                                               audit_events: Callable[..., list]) -> None:
    gid = _grant(sandbox)
    _seed_limit(sandbox, gid, 5000)  # 4,242 is not a cut of more than half: no confirmation
    at = _open(make_app, "finance", gid)
    at.text_input(key="limit_value").input("4242")
    at.selectbox(key="limit_limiter").select("on")
    at.text_input(key="limit_reason").input("customer verified")
    at.text_input(key="limit_ticket").input("FIN-1")
    at.button(key="FormSubmitter:limit_form-Apply limit").click().run()
    assert not at.exception and not at.error
    assert any(m.value == "4,242" for m in at.metric)  # caches cleared: shown at once
    assert [e.outcome for e in audit_events(action="guest.limit.update")] == [
        "requested", "succeeded"]


def test_limit_form_failure_and_linked_message(make_app: Callable[..., AppTest], sandbox: Any,
                                               audit_events: Callable[..., list]) -> None:
    gid = _grant(sandbox)
    _seed_limit(sandbox, gid, 5000)
    at = _open(make_app, "finance", gid)
    sandbox.set_fault(path=f"/developer/grants/{gid}", status=503, code="UNAVAILABLE", count=9)
    at.text_input(key="limit_value").input("4000")
    at.text_input(key="limit_reason").input("customer verified")
    at.button(key="FormSubmitter:limit_form-Apply limit").click().run()
    assert any("Changing the limit failed" in e.value for e in at.error)
    assert [e.outcome for e in audit_events(action="guest.limit.update")] == [
        "requested", "failed"]
    # A Linked user's page says limits do not apply and offers no form.
    linked = _open(make_app, "finance", _grant(sandbox, "linked"))
    assert any("Guest users only" in i.value for i in linked.info)
    assert "FormSubmitter:limit_form-Apply limit" not in _keys(linked)


def _seed_limit(sandbox: Any, gid: str, limit: int) -> None:
    """Set a Guest's limit (limiter on) behind the console's back, as a starting point."""
    from tests.services.operations.conftest import make_client

    client = make_client(sandbox)
    try:
        client.update_transaction_limit(gid, transaction_limit=limit, enable_limiter=True)
    finally:
        client.close()


def test_limit_on_linked_user_says_not_anon(sandbox: Any, runtime: Any,
                                            audit_events: Callable[..., list]) -> None:
    # What the form's handler does for a Linked user the page did not recognise (it never
    # offers the form to a known Linked user): a clear NOT_ANON_USER message, audited.
    finance = Actor("finance", "Finance", frozenset({"finance"}))
    gid = _grant(sandbox, "linked")
    with pytest.raises(OperationError) as info:
        actions.submit_limit(runtime.ops, finance, gid, limit=50, limiter="keep",
                                   tier=None, reason="try a cap")
    assert info.value.code == "NOT_ANON_USER"
    assert "Guest" in info.value.user_message
    assert [e.outcome for e in audit_events(action="guest.limit.update")] == [
        "requested", "failed"]


def test_support_revokes_through_the_dialog_logic(make_app: Callable[..., AppTest],
                                                  sandbox: Any, runtime: Any,
                                                  audit_events: Callable[..., list]) -> None:
    gid = _grant(sandbox)
    at = _open(make_app, "support", gid)
    at.button(key="revoke_open").click().run()  # opens the dialog
    assert not at.exception
    assert any(ti.key == "revoke_typed" for ti in at.text_input)
    support = Actor("support", "Support", frozenset({"support"}))
    with pytest.raises(OperationError):
        actions.confirm_revoke(runtime.ops, support, gid, "cgrant_wrong", "asked to")
    assert audit_events(action="grant.revoke") == []
    actions.confirm_revoke(runtime.ops, support, gid, gid, "customer asked", "SUP-7")
    assert [e.outcome for e in audit_events(action="grant.revoke")] == [
        "requested", "succeeded"]
    at.run()  # the page shows the change at once: no danger zone on a revoked grant
    assert "revoke_open" not in _keys(at)
    grants = make_app("support", "pages/grants.py")
    grants.text_input(key="grants_search").input(gid).run()
    assert list(_df(grants, "token_stored")["status"]) == ["revoked"]


def test_revoke_failure_shows_error_and_is_audited(make_app: Callable[..., AppTest],
                                                   sandbox: Any, runtime: Any,
                                                   audit_events: Callable[..., list]) -> None:
    gid = _grant(sandbox)
    _open(make_app, "support", gid)
    sandbox.set_fault(path="/token/revoke", status=500, code="INTERNAL_ERROR", count=1)
    support = Actor("support", "Support", frozenset({"support"}))
    with pytest.raises(OperationError) as info:
        actions.confirm_revoke(runtime.ops, support, gid, gid, "customer asked")
    assert info.value.code == "INTERNAL_ERROR" and info.value.request_id
    assert [e.outcome for e in audit_events(action="grant.revoke")] == ["requested", "failed"]
    assert reads.grant_detail(runtime.ops, support, gid).grant.status == "active"


def test_viewer_revoke_attempt_is_refused_and_audited(
        sandbox: Any, runtime: Any, audit_events: Callable[..., list]) -> None:
    gid = _grant(sandbox)
    viewer = Actor("viewer", "Viewer", frozenset({"viewer"}))
    with pytest.raises(OperationError) as info:
        actions.confirm_revoke(runtime.ops, viewer, gid, gid, "customer asked")
    assert info.value.code == "PERMISSION_DENIED"
    assert [e.outcome for e in audit_events(action="grant.revoke")] == ["denied"]


def test_holdings_failure_is_shown_alone(make_app: Callable[..., AppTest], sandbox: Any) -> None:
    sandbox.set_fault(path="/api/v1/holdings", status=500, code="INTERNAL_ERROR", count=9)
    at = _open(make_app, "viewer", _grant(sandbox))
    assert not at.exception
    assert any("Reading holdings failed" in e.value for e in at.error)
    assert len(_df(at, "last_sync")) >= 1  # integrations still shown


# --- upstream text never becomes markup or a link ----------------------------------------

EVIL = "See http://evil.example/fix or www.evil.example, mail help@evil.example"
AUTOLINK = re.compile(r"https?://|www\.|[-.\w+]+@[-\w]+\.[-\w]+", re.IGNORECASE)


def test_urls_in_an_upstream_error_are_not_links(make_app: Callable[..., AppTest],
                                                 sandbox: Any) -> None:
    sandbox.set_fault(path="/api/v1/holdings", status=400, code="BAD_REQUEST", message=EVIL,
                      count=99)
    at = _open(make_app, "support", _grant(sandbox))
    error = next(e.value for e in at.error if "Reading holdings failed" in e.value)
    assert "evil" in error
    assert AUTOLINK.findall(shown(error)) == []


def test_toasts_show_upstream_text_literally(make_app: Callable[..., AppTest],
                                            sandbox: Any) -> None:
    at = _open(make_app, "support", _grant(sandbox))
    # What the revoke dialog leaves after a revoke: our words and the API's message.
    at.session_state["grant_flash"] = "Grant revoked. **Done** [see](http://evil.example)"
    at.run()
    toast = at.toast[0].value
    assert "**" not in toast and "](" not in toast
    assert shown(toast).replace(ZWSP, "") == (
        "Grant revoked. **Done** [see](http://evil.example)")


# --- resync status while the revoke dialog opens; status reads that fail ---------------------

def test_a_settling_resync_does_not_close_the_revoke_dialog(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    gid = _grant(sandbox)
    at = _open(make_app, "support", gid)
    wid = _wallet(at)
    at.button(key=f"resync_{wid}").click().run()
    assert at.session_state["resync_watch"].watching(gid) == {wid: "latest"}
    sandbox.advance_clock(60)  # the resync settles...
    at.button(key="revoke_open").click().run()  # ...as the person opens the revoke dialog
    assert not at.exception
    assert any(ti.key == "revoke_typed" for ti in at.text_input)  # the dialog is open
    assert at.session_state["resync_watch"].watching(gid) == {}
    assert any("the rest of the page shows it once the dialog is closed" in c.value
               for c in at.caption)


def test_failed_status_reads_are_retried_then_leave_a_lasting_message(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    gid = _grant(sandbox)
    at = _open(make_app, "support", gid)
    wid = _wallet(at)
    at.button(key=f"resync_{wid}").click().run()
    sandbox.set_fault(path="/api/v1/integrations", status=400, code="BAD_REQUEST", count=999)
    at.run()  # one failed read: still watching, and says so
    assert at.session_state["resync_watch"].watching(gid) == {wid: "latest"}
    assert any("status not read (try 1 of 3)" in t.value for t in at.text)
    at.run()
    at.run()  # the third failure in a row: the page stops watching and says what to do
    assert at.session_state["resync_watch"].watching(gid) == {}
    sandbox.clear_faults()
    at.run()
    at.run()  # the message stays on later runs
    warning = [shown(w.value) for w in at.warning if "could not be read" in w.value]
    assert warning and "press Refresh" in warning[0]
    at.button(key=f"resync_lost_dismiss_{wid}").click().run()
    assert not [w for w in at.warning if "could not be read" in w.value]


# --- Guest limit form --------------------------------------------------------------------

def test_a_limit_on_a_guest_with_the_limiter_off_is_enforced_and_the_form_cleared(
        make_app: Callable[..., AppTest], sandbox: Any, runtime: Any) -> None:
    gid = _grant(sandbox)
    finance = Actor("finance", "Finance", frozenset({"finance"}))
    actions.submit_limit(runtime.ops, finance, gid, limit=None, limiter="off", tier=None,
                               reason="start uncapped", confirmed=True)
    at = _open(make_app, "finance", gid)
    assert any(m.value == "no cap" for m in at.metric)
    assert any(m.label == "Limiter" and m.value == "off" for m in at.metric)
    at.text_input(key="limit_value").input("777")  # the limiter left on "keep"
    at.text_input(key="limit_reason").input("cap this guest")
    at.button(key="FormSubmitter:limit_form-Apply limit").click().run()
    assert not at.exception and not at.error
    assert any(m.value == "777" for m in at.metric)
    assert "limiter off -> on" in shown(at.toast[0].value)
    assert at.text_input(key="limit_value").value == ""
    assert at.text_input(key="limit_reason").value == ""


# --- a revoked grant ----------------------------------------------------------------------

def test_a_revoked_grant_says_so_instead_of_showing_errors(
        make_app: Callable[..., AppTest], sandbox: Any, runtime: Any) -> None:
    gid = _grant(sandbox)
    support = Actor("support", "Support", frozenset({"support"}))
    actions.confirm_revoke(runtime.ops, support, gid, gid, "customer asked", "SUP-9")
    at = _open(make_app, "support", gid)
    assert not at.error, [e.value for e in at.error]
    banner = shown(at.warning[0].value)
    assert "This grant is revoked" in banner
    assert "by support" in banner and "customer asked" in banner and "SUP-9" in banner
    assert any("Not available: the grant is revoked" in c.value for c in at.caption)
    viewer = _open(make_app, "viewer", gid)
    assert not viewer.error
    assert "This grant is revoked" in viewer.warning[0].value


# --- which grant ----------------------------------------------------------------------------

def test_a_bad_grant_id_is_not_remembered_and_can_be_corrected(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    gid = _grant(sandbox)
    at = make_app("viewer")
    at.query_params["grant"] = "not-a-grant"
    at.switch_page("../" + PAGE).run()
    assert not at.exception
    assert at.error
    assert "selected_grant_id" not in at.session_state  # nothing to stick
    assert any(ti.key == "detail_open_id" for ti in at.text_input)
    at.text_input(key="detail_open_id").input(gid)
    at.button(key="detail_open").click().run()
    assert not at.exception and not at.error
    assert at.session_state["selected_grant_id"] == gid
    assert "Session" in [s.value for s in at.subheader]
