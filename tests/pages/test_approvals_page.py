"""Approvals page and the forms that make requests instead of changes (approvals on)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import actions
from dashboard.runtime import Runtime, get_runtime
from services.operations import Actor
from tests.pages.helpers import shown

PAGE = "pages/approvals.py"
SUPPORT = Actor("support", "Support", frozenset({"support"}))


@pytest.fixture
def approvals() -> str:
    """CONSOLE_APPROVALS for the test (a test parametrizes it to "off")."""
    return "on"


@pytest.fixture
def runtime(console_env: Path, monkeypatch: pytest.MonkeyPatch, approvals: str) -> Runtime:
    """The test's runtime, with four-eyes approval on (the default of a deployment)."""
    monkeypatch.setenv("CONSOLE_APPROVALS", approvals)
    rt = get_runtime()
    assert rt.ok, rt.problems
    assert rt.ops.approvals.policy.enabled is (approvals == "on")
    return rt


def _guest(sandbox: Any, n: int = 1) -> list[str]:
    return [t["grant_id"] for t in sandbox.tokens()
            if not t["revoked"] and t["kind"] == "guest"][:n]


def _active(sandbox: Any, gid: str) -> bool:
    return any(t["grant_id"] == gid and not t["revoked"] for t in sandbox.tokens())


def _nav(at: AppTest) -> str:
    """The navigation's pages as the last run registered them (titles included)."""
    return str(at._registered_pages)  # noqa: SLF001


def _request_revoke(runtime: Runtime, gid: str) -> Any:
    held = actions.confirm_revoke(runtime.ops, SUPPORT, gid, gid, "customer asked to close",
                                  "SUP-9")
    assert isinstance(held, actions.Held)
    return held.request


def test_revoke_becomes_a_request_and_says_so(runtime: Runtime, sandbox: Any,
                                               audit_events: Callable[..., list]) -> None:
    gid = _guest(sandbox)[0]
    held = actions.confirm_revoke(runtime.ops, SUPPORT, gid, gid, "customer asked to close")
    assert isinstance(held, actions.Held)
    assert "Not changed yet" in held.summary() and f"#{held.request.id}" in held.summary()
    assert _active(sandbox, gid)
    assert audit_events(action="grant.revoke") == []
    assert [e.outcome for e in audit_events(action="approval.requested")] == ["succeeded"]


def test_revoke_dialog_and_limit_form_say_approval(make_app: Callable[..., AppTest],
                                                   sandbox: Any) -> None:
    at = make_app("admin")
    at.session_state["selected_grant_id"] = _guest(sandbox)[0]
    at.switch_page("../pages/grant_detail.py").run()
    assert any("Four-eyes approval" in c.value and "limit above 100,000" in c.value
               for c in at.caption)
    at.button(key="revoke_open").click().run()
    words = " ".join(t.value for t in at.text)
    assert "This files a revoke request: nothing changes until a second person" in words
    assert "stops the grant's tokens at once" not in words
    assert at.button(key="revoke_confirm").label == "Request the revoke"


def test_limit_form_above_threshold_makes_a_request(make_app: Callable[..., AppTest],
                                                   sandbox: Any, runtime: Runtime,
                                                   audit_events: Callable[..., list]) -> None:
    gid = _guest(sandbox)[0]
    at = make_app("finance")
    at.session_state["selected_grant_id"] = gid
    at.switch_page("../pages/grant_detail.py").run()
    at.text_input(key="limit_value").input("250000")
    at.text_input(key="limit_reason").input("VIP contract 12")
    at.button(key="FormSubmitter:limit_form-Apply limit").click().run()
    assert not at.exception and not at.error
    assert any("Not changed yet" in t.value for t in at.toast)
    assert audit_events(action="guest.limit.update") == []
    mine = runtime.ops.approvals.list_mine(Actor("finance", roles=frozenset({"finance"})))
    assert [(r.state, r.change.limit) for r in mine] == [("pending", 250_000)]


def test_bulk_apply_of_a_limiter_off_tier_makes_a_request(make_app: Callable[..., AppTest],
                                                          sandbox: Any, runtime: Runtime) -> None:
    gids = _guest(sandbox, 2)
    at = make_app("finance", "pages/guest_limits.py")
    table = next(df for df in at.dataframe if str(df.key).startswith("bulk_picker_"))
    rows = {g: i for i, g in enumerate(table.value["grant_id"])}
    at.session_state[table.key] = {"selection": {"rows": sorted(rows[g] for g in gids),
                                                 "columns": [], "cells": []}}
    at.run()
    at.selectbox(key="bulk_tier").select("Unlimited")
    at.button(key="bulk_dry").click().run()
    assert any("Four-eyes approval: more than 10 grants" in c.value for c in at.caption)
    at.text_input(key="bulk_reason").input("switch off for the audit firm")
    at.button(key="bulk_apply").click().run()
    # Asked first, as for one grant; then it becomes a request.
    assert any("switches the limiter off on 2 of 2" in shown(w.value) for w in at.warning)
    at.button(key="bulk_confirm_yes").click().run()
    assert not at.exception and not at.error
    assert any("Not changed yet" in i.value and "limiter off" in i.value for i in at.info)
    assert not [r for r in sandbox.requests_log() if r["method"] == "PATCH"]
    # Nothing ran: no progress bar left at "0 of 2", and Apply is not offered again.
    assert not at.get("progress")
    assert at.button(key="bulk_apply").disabled


def test_approvals_page_approve_executes(make_app: Callable[..., AppTest], sandbox: Any,
                                         runtime: Runtime,
                                         audit_events: Callable[..., list]) -> None:
    gid = _guest(sandbox)[0]
    req = _request_revoke(runtime, gid)
    # the requester sees it under "My requests", not as waiting
    own = make_app("support", PAGE)
    assert not own.exception
    assert [s.value for s in own.subheader] == ["Waiting for me (0)", "My requests", "History"]
    assert f"appr_approve_{req.id}" not in {b.key for b in own.button}
    assert "Approvals (1)" not in _nav(own)
    # the admin sees it waiting, with the count in the navigation
    at = make_app("admin", PAGE)
    assert "Approvals (1)" in _nav(at)
    assert at.subheader[0].value == "Waiting for me (1)"
    at.button(key=f"appr_approve_{req.id}").click().run()
    assert any("Tick" in w.value for w in at.warning)  # the confirmation comes first
    assert _active(sandbox, gid)
    at.checkbox(key=f"appr_ok_{req.id}").check().run()
    at.button(key=f"appr_approve_{req.id}").click().run()
    assert not at.exception and not at.error
    assert any(f"Request #{req.id} approved and executed. Result: 1 succeeded." in shown(s.value)
               for s in at.success)
    assert not _active(sandbox, gid)
    assert at.subheader[0].value == "Waiting for me (0)"
    assert "Approvals (1)" not in _nav(at)
    assert [e.outcome for e in audit_events(action="grant.revoke")] == [
        "requested", "succeeded"]
    history = [df.value for df in at.dataframe if "decided by" in df.value.columns][-1]
    assert list(history["state"]) == ["approved and executed"]
    assert list(history["decided by"]) == ["admin"]


def test_approvals_page_reject_and_cancel(make_app: Callable[..., AppTest], sandbox: Any,
                                          runtime: Runtime) -> None:
    g1, g2 = _guest(sandbox, 2)
    r1, r2 = _request_revoke(runtime, g1), _request_revoke(runtime, g2)
    at = make_app("admin", PAGE)
    at.checkbox(key=f"appr_ok_{r1.id}").check()
    at.text_input(key=f"appr_reason_{r1.id}").input("no ticket attached")
    at.button(key=f"appr_reject_{r1.id}").click().run()
    assert any(f"Request #{r1.id} rejected" in shown(s.value) for s in at.success)
    own = make_app("support", PAGE)
    assert own.button(key=f"appr_cancel_{r2.id}").disabled
    own.checkbox(key=f"appr_cancel_ok_{r2.id}").check().run()
    own.button(key=f"appr_cancel_{r2.id}").click().run()
    assert any(f"Request #{r2.id} cancelled" in shown(s.value) for s in own.success)
    states = {r.id: r.state for r in runtime.ops.approvals.list_mine(SUPPORT)}
    assert states == {r1.id: "rejected", r2.id: "cancelled"}
    assert _active(sandbox, g1) and _active(sandbox, g2)


def test_page_in_navigation_only_for_deciding_roles(make_app: Callable[..., AppTest]) -> None:
    finance = make_app("finance")
    assert "Approvals" in _nav(finance)
    assert [t.value for t in finance.title] == ["Overview"]  # still the start page
    viewer = make_app("viewer")
    assert "Approvals" not in _nav(viewer)
    viewer.switch_page("../" + PAGE).run()
    assert [t.value for t in viewer.title] == ["Not available"]


@pytest.mark.parametrize("approvals", ["off"])
def test_approvals_switched_off(make_app: Callable[..., AppTest], sandbox: Any,
                                runtime: Runtime, audit_events: Callable[..., list]) -> None:
    at = make_app("admin")
    assert "Approvals" not in _nav(at)
    gid = _guest(sandbox)[0]
    at.session_state["selected_grant_id"] = gid
    at.switch_page("../pages/grant_detail.py").run()
    at.button(key="revoke_open").click().run()
    assert not any("Four-eyes" in c.value for c in at.caption)
    msg = actions.confirm_revoke(runtime.ops, SUPPORT, gid, gid, "customer asked to close")
    assert isinstance(msg, str) and not _active(sandbox, gid)
    assert [e.outcome for e in audit_events(action="grant.revoke")] == [
        "requested", "succeeded"]
    assert audit_events(action="approval.requested") == []


# --- a waiting request where people look; both people credited; real outcomes ----------------

FINANCE = Actor("finance", "Finance", frozenset({"finance"}))
ADMIN = Actor("admin", "Admin", frozenset({"admin"}))


def test_grant_detail_shows_the_waiting_request(make_app: Callable[..., AppTest],
                                                sandbox: Any, runtime: Runtime) -> None:
    gid = _guest(sandbox)[0]
    req = _request_revoke(runtime, gid)
    at = make_app("admin")
    at.session_state["selected_grant_id"] = gid
    at.switch_page("../pages/grant_detail.py").run()
    assert not at.exception
    banner = [i.value for i in at.info if "Waiting for approval" in i.value]
    assert len(banner) == 1
    assert f"Request #{req.id}" in shown(banner[0]) and "by support at" in shown(banner[0])
    assert "(/approvals)" in banner[0]
    # "Revoke grant..." is not offered a second time: the waiting request is named instead.
    assert "revoke_open" not in {b.key for b in at.button}
    assert any("A revoke request is already waiting" in shown(m.value) for m in at.markdown)
    # The limit form still says what would wait for approval.
    assert any("Four-eyes approval" in c.value for c in at.caption)


def test_grants_page_filters_grants_waiting_for_approval(make_app: Callable[..., AppTest],
                                                         sandbox: Any,
                                                         runtime: Runtime) -> None:
    gid = _guest(sandbox)[0]
    _request_revoke(runtime, gid)
    at = make_app("support", "pages/grants.py")
    assert len(at.dataframe(key="grants_table").value) > 1
    at.toggle(key="grants_awaiting").set_value(True).run()
    assert not at.exception
    assert list(at.dataframe(key="grants_table").value["grant_id"]) == [gid]


def test_history_and_timeline_credit_both_people(make_app: Callable[..., AppTest],
                                                 sandbox: Any, runtime: Runtime) -> None:
    gid = _guest(sandbox)[0]
    req = _request_revoke(runtime, gid)
    runtime.ops.approvals.approve(ADMIN, req.id)
    at = make_app("admin")
    at.session_state["selected_grant_id"] = gid
    at.switch_page("../pages/grant_detail.py").run()
    assert not at.exception
    credit = f"approved by admin (request #{req.id})"
    done = [d for df in at.dataframe if "done" in df.value.columns for d in df.value["done"]]
    assert any(credit in d for d in done)
    said = [w for df in at.dataframe if "what" in df.value.columns for w in df.value["what"]]
    assert any(s.startswith(f"Grant revoked by support, {credit}") for s in said)
    assert any(credit in shown(w.value) for w in at.warning)  # the revoked banner


def test_approvals_page_shows_each_grants_real_outcome(make_app: Callable[..., AppTest],
                                                       sandbox: Any, runtime: Runtime) -> None:
    g = _guest(sandbox, 3)
    held = actions.run_bulk(runtime.ops, FINANCE, actions.BulkPlan(tuple(g), limit=250_000),
                            "large customers", dry_run=False)
    assert isinstance(held, actions.Held)
    # One grant changes elsewhere: the approver sees its before now beside the recorded one.
    runtime.ops.ctx.client.update_transaction_limit(g[1], transaction_limit=4321,
                                                    enable_limiter=True)
    runtime.ops.readmodel.apply_limit_change(g[1], 4321, True)
    at = make_app("admin", PAGE)
    items = next(df.value for df in at.dataframe if "before now" in df.value.columns)
    row = items[items["grant id"] == g[1]].iloc[0]
    assert set(items.columns) == {"grant id", "customer reference", "outcome", "before",
                                  "before now", "after", "error code", "message"}
    assert set(items["outcome"]) == {"would change"}
    assert row["before now"] == "4,321" and row["before"] != "4,321"
    at.checkbox(key=f"appr_ok_{held.request.id}").check().run()
    at.button(key=f"appr_approve_{held.request.id}").click().run()
    assert not at.exception
    history = [df.value for df in at.dataframe if "decided by" in df.value.columns][-1]
    assert list(history["state"]) == ["approved; executed for 2 of 3 grants (1 skipped)"]
    outcome = [df.value for df in at.dataframe if "outcome" in df.value.columns][-1]
    assert dict(zip(outcome["grant id"], outcome["outcome"], strict=True)) == {
        g[0]: "succeeded", g[1]: "skipped", g[2]: "succeeded"}


def _found(at: AppTest) -> list[str]:
    """The request numbers the "Find requests" table lists (the first table of requests;
    none when its caption counts none)."""
    if any(c.value.startswith("0 request(s), newest first") for c in at.caption):
        return []
    tables = [df.value for df in at.dataframe if "requested by" in df.value.columns]
    return list(tables[0]["id"]) if tables else []


def test_find_filters_and_searches_requests(make_app: Callable[..., AppTest], sandbox: Any,
                                            runtime: Runtime) -> None:
    g1, g2 = _guest(sandbox, 2)
    r1 = _request_revoke(runtime, g1)
    held = actions.confirm_revoke(runtime.ops, ADMIN, g2, g2, "customer asked to close")
    r2 = held.request
    at = make_app("admin", PAGE)
    assert _found(at) == [f"#{r2.id}", f"#{r1.id}"]  # newest first
    at.text_input(key="appr_f_requester").input("support").run()
    assert _found(at) == [f"#{r1.id}"]
    at.text_input(key="appr_f_requester").input("").run()
    at.text_input(key="appr_f_query").input(g2).run()  # a grant id: its pending requests
    assert _found(at) == [f"#{r2.id}"]
    at.text_input(key="appr_f_query").input(f"#{r1.id}").run()  # a request number
    assert _found(at) == [f"#{r1.id}"]
    at.text_input(key="appr_f_query").input("").run()
    at.selectbox(key="appr_f_kind").select("limit").run()
    assert _found(at) == [] and any("No request matches" in i.value for i in at.info)
    at.selectbox(key="appr_f_kind").select("any")
    at.selectbox(key="appr_f_state").select("rejected").run()
    assert _found(at) == []


def test_approve_several_at_once_each_checked(make_app: Callable[..., AppTest], sandbox: Any,
                                              runtime: Runtime,
                                              audit_events: Callable[..., list]) -> None:
    g1, g2 = _guest(sandbox, 2)
    r1 = _request_revoke(runtime, g1)  # support's: the admin may approve it
    r2 = actions.confirm_revoke(runtime.ops, ADMIN, g2, g2, "customer asked to close").request
    at = make_app("admin", PAGE)
    at.multiselect(key="appr_pick").select(r1.id).select(r2.id).run()
    assert at.button(key="appr_many_go").label == "Approve 2 selected"
    at.button(key="appr_many_go").click().run()
    assert any("Tick" in w.value for w in at.warning) and _active(sandbox, g1)
    at.checkbox(key="appr_many_ok").check().run()
    at.button(key="appr_many_go").click().run()
    assert not at.exception
    assert any("1 of 2 request(s) approved and executed; 1 refused." in shown(i.value)
               for i in at.info)
    rows = [df.value for df in at.dataframe if "result" in df.value.columns
            and "request" in df.value.columns][0]
    by = dict(zip(rows["request"], rows["result"], strict=True))
    assert by == {f"#{r1.id}": "approved and executed", f"#{r2.id}": "refused"}
    assert "second person" in rows[rows["request"] == f"#{r2.id}"]["why"].iloc[0]
    assert not _active(sandbox, g1) and _active(sandbox, g2)
    # each decision audited on its own: one approval, one refusal of the requester's own
    outcomes = sorted((e.target_id, e.outcome) for e in audit_events(action="approval.approved"))
    assert outcomes == sorted([(str(r1.id), "requested"), (str(r1.id), "succeeded"),
                               (str(r2.id), "denied")])


def test_reject_several_needs_a_reason_first(make_app: Callable[..., AppTest], sandbox: Any,
                                             runtime: Runtime) -> None:
    g1, g2 = _guest(sandbox, 2)
    r1, r2 = _request_revoke(runtime, g1), _request_revoke(runtime, g2)
    at = make_app("admin", PAGE)
    at.multiselect(key="appr_pick").select(r1.id).select(r2.id)
    at.radio(key="appr_many_decision").set_value("reject").run()
    at.checkbox(key="appr_many_ok").check().run()
    at.button(key="appr_many_go").click().run()
    assert at.error  # no reason: nothing decided
    assert {r.state for r in runtime.ops.approvals.find(ADMIN, state="pending")} == {"pending"}
    assert len(runtime.ops.approvals.find(ADMIN, state="pending")) == 2
    at.text_input(key="appr_many_reason").input("no ticket attached").run()
    at.button(key="appr_many_go").click().run()
    assert any("2 of 2 request(s) rejected; 0 refused." in shown(i.value) for i in at.info)
    assert runtime.ops.approvals.find(ADMIN, state="pending") == []


def test_an_audit_event_opens_its_grant_and_its_approval_request(
        make_app: Callable[..., AppTest], runtime: Runtime, sandbox: Any) -> None:
    """An approved revoke's grant event leads to the grant and to the request; the
    Approvals page opens with that request shown."""
    gid = next(t["grant_id"] for t in sandbox.tokens()
               if not t["revoked"] and t["kind"] == "guest")
    held = actions.confirm_revoke(runtime.ops, SUPPORT, gid, gid, "customer asked to close")
    assert isinstance(held, actions.Held), held
    runtime.ops.approvals.approve(ADMIN, held.request.id)
    at = make_app("finance", "pages/audit_log.py")
    at.text_input(key="audit_action").input("grant.revoke").run()
    # the executed revoke's events (requested, then succeeded), the one shown first
    assert len(at.dataframe[0].value) == 2
    assert at.button(key="audit_open_grant").label == f"Open grant {gid}"
    assert at.button(key="audit_open_request").label == (
        f"Open approval request #{held.request.id}")
    grant = make_app("finance", "pages/audit_log.py")
    grant.text_input(key="audit_action").input("grant.revoke").run()
    grant.button(key="audit_open_grant").click().run()
    assert not grant.exception and grant.query_params.get("grant") == gid
    assert grant.session_state["selected_grant_id"] == gid
    at.button(key="audit_open_request").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Approvals"]
    assert at.text_input(key="appr_f_query").value == f"#{held.request.id}"
    found = [df.value for df in at.dataframe if "requested by" in df.value.columns][0]
    assert list(found["id"]) == [f"#{held.request.id}"]
