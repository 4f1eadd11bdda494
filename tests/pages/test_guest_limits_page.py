"""Guest limits page: who may open it, dry run, apply with a failure, CSV upload."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from services.kryptos.client import KryptosClient
from services.kryptos.errors import KryptosError
from tests.pages.helpers import shown

PAGE = "pages/guest_limits.py"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _guests(sandbox: Any, n: int) -> list[str]:
    rows = sandbox.tokens()
    return [t["grant_id"] for t in rows if not t["revoked"] and t["kind"] == "guest"][:n]


def _current_limit(sandbox: Any, gid: str) -> str:
    """The grant's effective limit as the page shows it, read straight from the sandbox."""
    token = next(t["access_token"] for t in sandbox.tokens() if t["grant_id"] == gid)
    client = KryptosClient(sandbox.client_id, sandbox.client_secret, sandbox.connect_url,
                           sandbox.data_url)
    try:
        limit = client.get_userinfo(token).transaction_limit
    except KryptosError:
        return "unknown"
    finally:
        client.close()
    return "no cap" if limit is None else f"{limit:,}"


def _df(at: AppTest, column: str) -> Any:
    """The (last) dataframe on the page that has this column."""
    found = [df.value for df in at.dataframe if column in df.value.columns]
    assert found, f"no table with a {column!r} column"
    return found[-1]


def _picker(at: AppTest) -> Any:
    """The picker table as drawn (its key changes when its rows do)."""
    found = [df for df in at.dataframe if str(df.key).startswith("bulk_picker_")]
    assert len(found) == 1
    return found[0]


def _selected_rows(at: AppTest, table: Any) -> list[int]:
    """The rows selected in the picker as the browser shows them: the selection it reported
    last, else the rows the table was drawn selected with."""
    if table.key in at.session_state:
        return list(at.session_state[table.key]["selection"]["rows"])
    default = table.proto.selection_default
    return list(json.loads(default)["selection"]["rows"]) if default else []


def _pick(at: AppTest, gids: list[str], pick: bool = True) -> AppTest:
    """Tick (or untick) rows of the picker by grant id, as the browser reports a click: the
    table's whole selection (by row position in the table as drawn), the earlier clicks on
    that table included (the browser sends them all every time)."""
    table = _picker(at)
    rows = {gid: i for i, gid in enumerate(table.value["grant_id"])}
    now = set(_selected_rows(at, table))
    now = now | {rows[g] for g in gids} if pick else now - {rows[g] for g in gids}
    at.session_state[table.key] = {"selection": {"rows": sorted(now), "columns": [],
                                                 "cells": []}}
    return at.run()


def _ticked(at: AppTest) -> list[str]:
    """The grant ids of the rows selected in the picker."""
    table = _picker(at)
    ids = list(table.value["grant_id"])
    return [ids[r] for r in _selected_rows(at, table)]


@pytest.mark.parametrize("role", ["support", "viewer"])
def test_not_in_navigation_and_refused_by_address(make_app: Callable[..., AppTest],
                                                 audit_events: Callable[..., list],
                                                 role: str) -> None:
    at = make_app(role)
    at.switch_page("../" + PAGE).run()  # its address, typed: registered hidden, refused
    assert not at.exception
    assert any("not allowed" in e.value for e in at.error)
    assert "Guest limits" not in [t.value for t in at.title]
    assert not list(at.dataframe) and all(b.key != "bulk_dry" for b in at.button)
    # A page visit refused, naming the page (not `guest.tier.apply`: nothing was applied).
    assert [(e.actor_username, e.action, e.target_type, e.target_id)
            for e in audit_events(outcome="denied")] == [(role, "page.view", "page",
                                                          "guest_limits")]


@pytest.mark.parametrize("role", ["support", "viewer"])
def test_reached_directly_is_refused_and_audited(runtime: Any,
                                                 audit_events: Callable[..., list],
                                                 role: str) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / PAGE), default_timeout=30)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = role
    at.run()
    assert not at.exception
    assert any("not allowed" in e.value for e in at.error)
    assert all(b.key not in ("bulk_dry", "bulk_apply") for b in at.button)
    assert not list(at.dataframe)
    denied = audit_events(outcome="denied")
    assert [(e.actor_username, e.action, e.target_id) for e in denied] == [
        (role, "guest.tier.apply", "guest_limits")]


def test_finance_sees_tiers_and_guest_grants(make_app: Callable[..., AppTest],
                                            sandbox: Any) -> None:
    at = make_app("finance", PAGE)
    assert not at.error
    tiers = _df(at, "tier")
    assert list(tiers["tier"])
    picker = _picker(at).value
    assert set(picker["user"]) <= {"Guest", "unknown"}
    assert set(_guests(sandbox, 100)) <= set(picker["grant_id"])


def test_dry_run_then_apply_with_one_failure(make_app: Callable[..., AppTest], sandbox: Any,
                                            audit_events: Callable[..., list]) -> None:
    gids = _guests(sandbox, 3)
    at = _pick(make_app("finance", PAGE), gids)
    assert at.metric[0].value == "3"
    at.selectbox(key="bulk_tier").select("Free")
    at.button(key="bulk_dry").click().run()
    assert not at.exception and not at.error
    preview = _df(at, "outcome")
    assert sorted(preview["grant_id"]) == sorted(gids)  # in the table's order
    assert set(preview["after"]) == {"1,000"}
    assert not [r for r in sandbox.requests_log() if r["method"] == "PATCH"]
    sandbox.set_fault(path=f"/developer/grants/{gids[1]}", status=500, code="INTERNAL_ERROR",
                      count=1)
    at.text_input(key="bulk_reason").input("move to the free tier")
    at.button(key="bulk_apply").click().run()
    assert not at.exception
    # Down to 1,000 cuts some by more than half: asked first, as for one grant.
    ask = [shown(w.value) for w in at.warning if "more than half" in w.value]
    assert ask and "on 3 of 3 grant(s)" in ask[0] and "-> 1,000 transactions" in ask[0]
    assert not [r for r in sandbox.requests_log() if r["method"] == "PATCH"]
    at.button(key="bulk_confirm_yes").click().run()
    result = _df(at, "outcome")
    outcome = dict(zip(result["grant_id"], result["outcome"], strict=True))
    assert outcome == {gids[0]: "succeeded", gids[1]: "failed", gids[2]: "succeeded"}
    row = result[result["grant_id"] == gids[1]].iloc[0]
    assert row["error_code"] == "INTERNAL_ERROR"
    assert any("1 grant(s) failed" in e.value for e in at.error)
    assert at.get("download_button")
    per_grant = audit_events(action="guest.tier.apply")
    assert sorted(e.outcome for e in per_grant) == ["failed", "requested", "requested",
                                                    "requested", "succeeded", "succeeded"]


def test_apply_needs_a_dry_run_first(make_app: Callable[..., AppTest], sandbox: Any) -> None:
    at = _pick(make_app("admin", PAGE), _guests(sandbox, 1))
    assert at.button(key="bulk_apply").disabled
    at.button(key="bulk_dry").click().run()
    assert not at.button(key="bulk_apply").disabled
    at.selectbox(key="bulk_tier").select("Unlimited").run()  # a new plan needs a new preview
    assert at.button(key="bulk_apply").disabled


def test_csv_upload_reports_rejected_lines_and_custom_limit(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    gids = _guests(sandbox, 2)
    body = ("grant_id\n" + "\n".join(gids) + "\nDROP TABLE grants\n").encode()
    at = make_app("finance", PAGE)
    at.file_uploader(key="bulk_upload").upload("ids.csv", body, "text/csv")
    at.run()
    assert not at.exception
    assert at.metric[0].value == "2"
    rejected = _df(at, "reason")
    assert list(rejected["text"]) == ["DROP TABLE grants"]
    at.radio(key="bulk_how").set_value("Custom limit").run()
    at.text_input(key="bulk_limit").input("4,321")
    at.button(key="bulk_dry").click().run()
    preview = _df(at, "outcome")
    assert set(preview["after"]) == {"4,321"}
    assert list(preview["before"]) == [_current_limit(sandbox, g) for g in gids]  # real values
    at.text_input(key="bulk_reason").input("custom cap for pilot")
    at.button(key="bulk_apply").click().run()
    befores = [_current_limit(sandbox, g) for g in gids]
    big_cut = any(b not in ("no cap", "unknown") and int(b.replace(",", "")) > 2 * 4321
                  for b in befores)
    asked = any(b.key == "bulk_confirm_yes" for b in at.button)
    assert asked == big_cut, befores  # the same rule as for one grant
    if asked:
        at.button(key="bulk_confirm_yes").click().run()
    assert list(_df(at, "outcome")["outcome"]) == ["succeeded", "succeeded"]
    assert not [e.value for e in at.error]


def test_ticks_survive_filtering_and_are_kept_by_grant_id(make_app: Callable[..., AppTest],
                                                          sandbox: Any) -> None:
    first, second, third = _guests(sandbox, 3)
    at = _pick(make_app("finance", PAGE), [first, second])
    assert at.metric[0].value == "2"
    # Filter down to the third grant and tick it: the first two stay picked.
    at.text_input(key="bulk_search").input(third).run()
    assert list(_picker(at).value["grant_id"]) == [third]
    assert any("2 grant(s) ticked" in c.value and "hidden by the filter" in c.value
               for c in at.caption)
    _pick(at, [third])
    assert at.metric[0].value == "3"
    at.text_input(key="bulk_search").input("").run()
    assert sorted(_ticked(at)) == sorted([first, second, third])
    assert at.metric[0].value == "3"
    # Unticking one, then clearing the selection.
    _pick(at, [second], pick=False)
    assert sorted(_ticked(at)) == sorted([first, third])
    at.button(key="bulk_clear").click().run()
    assert _ticked(at) == [] and at.metric[0].value == "0"


def test_a_tick_stays_on_its_grant_when_the_list_changes(make_app: Callable[..., AppTest],
                                                         runtime: Any, sandbox: Any) -> None:
    from dashboard import reads
    from services.operations import Actor

    at = make_app("finance", PAGE)
    listed = list(_picker(at).value["grant_id"])
    target = listed[5]
    _pick(at, [target])
    # Meanwhile someone revokes a grant listed above it: every row below moves up one.
    admin = Actor("admin", "Demo admin", frozenset({"admin"}))
    runtime.ops.grants.revoke_grant(admin, listed[0], "customer left")
    reads.invalidate_all()
    at.run()
    assert listed[0] not in list(_picker(at).value["grant_id"])
    assert _ticked(at) == [target]
    at.button(key="bulk_dry").click().run()
    assert list(_df(at, "outcome")["grant_id"]) == [target]


def test_a_new_session_of_the_same_user_continues_the_selection_and_dry_run(
        make_app: Callable[..., AppTest], sandbox: Any) -> None:
    gids = _guests(sandbox, 2)
    at = _pick(make_app("finance", PAGE), gids)
    at.radio(key="bulk_how").set_value("Custom limit").run()
    at.text_input(key="bulk_limit").input("7500").run()
    at.button(key="bulk_dry").click().run()
    assert not at.exception and not at.error
    dry = _df(at, "outcome")
    # A reload or another tab: a new session, the same user.
    again = make_app("finance", PAGE)
    assert again.metric[0].value == "2"
    assert sorted(_ticked(again)) == sorted(gids)
    assert again.radio(key="bulk_how").value == "Custom limit"
    assert again.text_input(key="bulk_limit").value == "7500"
    assert _df(again, "outcome").equals(dry)
    assert not again.button(key="bulk_apply").disabled
    # Another user has their own (none).
    admin = make_app("admin", PAGE)
    assert admin.metric[0].value == "0" and _ticked(admin) == []
    # A change of plan hides the dry run; Clear selection empties the draft for every session.
    again.text_input(key="bulk_limit").input("8000").run()
    assert not [df for df in again.dataframe if "outcome" in df.value.columns]
    again.button(key="bulk_clear").click().run()
    assert again.metric[0].value == "0"
    assert make_app("finance", PAGE).metric[0].value == "0"


def test_select_all_that_match_takes_the_filters_grants(make_app: Callable[..., AppTest],
                                                        sandbox: Any) -> None:
    at = make_app("finance", PAGE)
    listed = list(_picker(at).value["grant_id"])
    at.button(key="bulk_match").click().run()
    assert at.metric[0].value == str(len(listed))
    assert any(f"All {len(listed)} grant(s) the picker lists." in i.value for i in at.info)
    one = listed[2]
    at.text_input(key="bulk_search").input(one).run()
    assert list(_picker(at).value["grant_id"]) == [one]
    at.button(key="bulk_match").click().run()  # the filter's match replaces the earlier one
    assert at.metric[0].value == "1"
    assert any(f"All 1 grant(s) matching “{one}”." in i.value for i in at.info)
    at.button(key="bulk_match_drop").click().run()
    assert at.metric[0].value == "0"
    assert not [i for i in at.info if "grant(s) matching" in i.value]


def test_an_unreadable_kept_selection_is_said_once_and_replaced(
        make_app: Callable[..., AppTest], runtime: Any) -> None:
    runtime.ops.bulk_drafts.store.save("finance", "{not json")
    at = make_app("finance", PAGE)
    assert any("could not be read" in w.value for w in at.warning)
    assert at.metric[0].value == "0"
    assert not [w for w in make_app("finance", PAGE).warning if "could not be read" in w.value]
