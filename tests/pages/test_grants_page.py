"""Grants page: list, search, filters, open a grant, CSV export, per role."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.pages.helpers import shown

ROLES = ("viewer", "support", "finance", "admin")


def all_grant_ids(runtime: Any, sandbox: Any) -> set[str]:
    """Every grant the console knows of: listed by the API or stored (revoked ones too)."""
    from services.settings import SANDBOX_CLIENT_ID

    listed = {g.grant_id for g in runtime.ops.ctx.client.list_grants()}
    return listed | {t["grant_id"] for t in sandbox.tokens(client_id=SANDBOX_CLIENT_ID)}


def _table(at: AppTest) -> Any:
    return at.dataframe(key="grants_table").value


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_the_sandbox_grants(make_app: Callable[..., AppTest], sandbox: Any,
                                            role: str) -> None:
    at = make_app(role, "pages/grants.py")
    frame = _table(at)
    listed = {t["grant_id"] for t in sandbox.tokens() if not t["revoked"]}
    assert listed <= set(frame["grant_id"])
    assert not at.error
    # tokens are masked, never plain
    plain = {t["access_token"] for t in sandbox.tokens()}
    assert not plain & set(frame["token"])


def test_search_filters_rows(make_app: Callable[..., AppTest], sandbox: Any) -> None:
    at = make_app("viewer", "pages/grants.py")
    total = len(_table(at))
    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    at.text_input(key="grants_search").input(gid).run()
    frame = _table(at)
    assert list(frame["grant_id"]) == [gid]
    assert total > 1


def test_filters_by_kind_status_and_token(make_app: Callable[..., AppTest]) -> None:
    at = make_app("support", "pages/grants.py")
    at.selectbox(key="grants_status").select("Revoked").run()
    assert set(_table(at)["status"]) <= {"revoked"}
    at.selectbox(key="grants_status").select("Active").run()
    at.selectbox(key="grants_token").select("Not stored").run()
    frame = _table(at)
    assert len(frame) >= 1 and not frame["token_stored"].any()
    at.selectbox(key="grants_token").select("All").run()
    at.selectbox(key="grants_kind").select("Linked").run()
    assert set(_table(at)["user"]) <= {"Linked"}


def test_csv_download_has_the_filtered_rows(make_app: Callable[..., AppTest], sandbox: Any,
                                            runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export is built on demand (a callable the button runs when clicked), from SQL,
    with every grant matching the filters (not only the page shown)."""
    sent: list[Any] = []
    original = st.download_button

    def spy(label: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(kwargs.get("data", args[0] if args else None))
        return original(label, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", spy)
    at = make_app("viewer", "pages/grants.py")
    assert not at.exception, at.exception
    assert sent and callable(sent[-1]), "the CSV is not built on every rerun"
    everything = list(csv.DictReader(io.StringIO(sent[-1]())))
    assert {r["grant_id"] for r in everything} == all_grant_ids(runtime, sandbox)
    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    sent.clear()
    at.text_input(key="grants_search").input(gid).run()
    rows = list(csv.DictReader(io.StringIO(sent[-1]())))
    assert [r["grant_id"] for r in rows] == [gid]
    assert rows[0]["has_token"] in ("True", "1", "true")


def test_open_by_id_goes_to_the_detail(make_app: Callable[..., AppTest], sandbox: Any) -> None:
    at = make_app("viewer", "pages/grants.py")
    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    at.text_input(key="open_grant_id").input(gid)
    at.button(key="FormSubmitter:open_grant-Open").click()
    at.run()
    assert not at.exception
    assert at.session_state["selected_grant_id"] == gid
    assert at.query_params.get("grant") in (gid, [gid])
    assert any(t.value == "Grant detail" for t in at.title)


def test_open_by_text_that_is_no_id_searches_the_list(make_app: Callable[..., AppTest],
                                                      sandbox: Any) -> None:
    at = make_app("viewer", "pages/grants.py")
    at.text_input(key="open_grant_id").input("   ")
    at.button(key="FormSubmitter:open_grant-Open").click()
    at.run()
    assert any("grant id" in shown(e.value) for e in at.error)  # nothing typed: said so
    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    part = gid[len("cgrant_"):][:8]
    at.text_input(key="open_grant_id").input(part)
    at.button(key="FormSubmitter:open_grant-Open").click()
    at.run()
    assert not at.exception
    assert at.text_input(key="grants_search").value == part
    assert gid in set(_table(at)["grant_id"])


def test_choosing_a_row_opens_its_detail(make_app: Callable[..., AppTest]) -> None:
    at = make_app("viewer", "pages/grants.py")
    first = str(_table(at).iloc[0]["grant_id"])
    at.session_state["grants_table"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception
    assert at.session_state["selected_grant_id"] == first
    assert any(t.value == "Grant detail" for t in at.title)


# --- the read model ------------------------------------------------------------------------


def test_the_grid_shows_one_page_paged_and_sorted_on_the_server(
        make_app: Callable[..., AppTest], runtime: Any) -> None:
    at = make_app("viewer", "pages/grants.py")
    total = runtime.ops.readmodel.counts().total
    assert 25 < total <= 50  # the seeded sandbox: two pages of 25
    at.selectbox(key="grants_sort").select("Grant id").run()
    assert len(_table(at)) == total  # 100 a page by default
    every = sorted(_table(at)["grant_id"])
    assert list(_table(at)["grant_id"]) == every
    at.selectbox(key="grants_page_size").select(25).run()
    first = list(_table(at)["grant_id"])
    assert first == every[:25]
    at.number_input(key="grants_page").set_value(2).run()
    assert list(_table(at)["grant_id"]) == every[25:]
    assert any(c.value.startswith(f"{total} grants; showing 26\u2013{total}.")
               for c in at.caption)
    # No match: said in words, not "0 grant(s); showing 0--1."
    at.text_input(key="grants_search").input("no-such-customer-anywhere").run()
    assert "No grant matches these filters." in [c.value for c in at.caption]
    at.text_input(key="grants_search").input("").run()
    at.toggle(key="grants_desc").set_value(True).run()  # back to page 1, sorted the other way
    assert list(_table(at)["grant_id"]) == sorted(every, reverse=True)[:25]
    # a filter change goes back to the first page
    at.number_input(key="grants_page").set_value(2).run()
    at.selectbox(key="grants_status").select("Active").run()
    assert at.number_input(key="grants_page").value == 1


def test_filters_by_work_queue_integrations_and_limit(make_app: Callable[..., AppTest],
                                                      runtime: Any) -> None:
    at = make_app("finance", "pages/grants.py")
    at.selectbox(key="grants_queue").select("Failing").run()
    frame = _table(at)
    assert len(frame) == runtime.ops.readmodel.counts().queues["failing"] > 0
    assert (frame["failing"] > 0).all()
    assert at.query_params.get("queue") in ("failing", ["failing"])
    at.selectbox(key="grants_queue").select("All").run()
    at.selectbox(key="grants_integrations").select("Not read yet").run()
    assert set(_table(at)["sync"]) <= {"not read yet"}
    at.selectbox(key="grants_integrations").select("All").run()
    # a limit set through the console is found by the limit filter at once
    from services.operations import Actor, GrantFilter

    gid = runtime.ops.readmodel.page(GrantFilter(kind="guest", status="active", has_token=True),
                                     "grant_id", 1, 1).rows[0].grant_id
    runtime.ops.limits.set_guest_limit(Actor("finance", "", frozenset({"finance"})), gid,
                                       10000, reason="upgrade", confirmed=True)
    at.selectbox(key="grants_limit").select("Tier Plus").run()
    assert gid in set(_table(at)["grant_id"])
    assert set(_table(at)["limit"]) == {"10,000"}


def test_a_change_through_the_console_shows_at_once(make_app: Callable[..., AppTest],
                                                    runtime: Any, sandbox: Any) -> None:
    from dashboard import actions
    from services.operations import Actor

    at = make_app("support", "pages/grants.py")
    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    at.text_input(key="grants_search").input(gid).run()
    assert list(_table(at)["status"]) == ["active"]
    actions.confirm_revoke(runtime.ops, Actor("support", "", frozenset({"support"})), gid, gid,
                           "customer asked")
    sandbox.clear_requests_log()
    at.run()  # no sync, no wait
    assert list(_table(at)["status"]) == ["revoked"]
    assert [r for r in sandbox.requests_log() if not r["path"].startswith("/sandbox")] == []


def test_an_upstream_change_shows_after_a_sync(make_app: Callable[..., AppTest], runtime: Any,
                                               sandbox: Any, sync_now: Callable[[], None],
                                               version_clock: Any) -> None:
    from dashboard.reads import cache as read_cache

    at = make_app("viewer", "pages/grants.py")
    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    at.text_input(key="grants_search").input(gid).run()
    runtime.ops.ctx.client.revoke_grant(gid)  # in Kryptos, not through the console
    at.run()
    assert list(_table(at)["status"]) == ["active"]  # the read model does not know yet
    sync_now()
    at.run()
    assert list(_table(at)["status"]) == ["active"]  # the version is read once a poll
    version_clock.advance(read_cache.VERSION_POLL_SECONDS)  # at most one version poll later
    at.run()
    assert list(_table(at)["status"]) == ["revoked"]


def test_opening_a_grant_refreshes_its_row(make_app: Callable[..., AppTest], runtime: Any,
                                           sandbox: Any) -> None:
    from datetime import UTC, datetime

    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    before = runtime.ops.readmodel.grant(gid).grant
    at = make_app("viewer", "pages/grants.py")
    at.text_input(key="open_grant_id").input(gid)
    at.button(key="FormSubmitter:open_grant-Open").click()
    at.run()
    assert any(t.value == "Grant detail" for t in at.title)
    after = runtime.ops.readmodel.grant(gid).grant
    assert after.userinfo_refreshed_at is not None
    assert after.userinfo_refreshed_at > (before.userinfo_refreshed_at
                                          or datetime.min.replace(tzinfo=UTC))
    assert after.integrations_refreshed_at >= before.integrations_refreshed_at


# --- the filters in the address, the lookup -------------------------------------------------


def _param(at: AppTest, name: str) -> Any:
    value = at.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def test_filters_are_written_to_the_address_and_cleared(make_app: Callable[..., AppTest],
                                                        sandbox: Any) -> None:
    at = make_app("support", "pages/grants.py")
    assert at.button(key="grants_clear").disabled  # nothing to clear yet
    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    at.text_input(key="grants_search").input(gid[:12]).run()
    at.selectbox(key="grants_status").select("Active").run()
    assert (_param(at, "q"), _param(at, "status")) == (gid[:12], "active")
    assert not at.button(key="grants_clear").disabled
    at.button(key="grants_clear").click().run()
    assert not at.exception
    assert at.text_input(key="grants_search").value == ""
    assert at.selectbox(key="grants_status").value == "All"
    assert _param(at, "q") is None and _param(at, "status") is None


def test_the_lookup_lists_a_shared_workspace(make_app: Callable[..., AppTest],
                                             runtime: Any) -> None:
    from collections import Counter

    rows = runtime.ops.readmodel.page(None, "grant_id", 1, 1000).rows
    ws, n = Counter(r.workspace_id for r in rows if r.workspace_id).most_common(1)[0]
    at = make_app("viewer", "pages/grants.py")
    at.text_input(key="open_grant_id").input(ws)
    at.button(key="FormSubmitter:open_grant-Open").click()
    at.run()
    assert not at.exception
    assert _param(at, "workspace") == ws
    frame = _table(at)
    assert len(frame) == n and set(frame["workspace"]) == {ws}
    assert any(ws in c.value for c in at.caption)


def test_a_customer_reference_opens_its_grant(make_app: Callable[..., AppTest],
                                              runtime: Any) -> None:
    from collections import Counter

    rows = runtime.ops.readmodel.page(None, "grant_id", 1, 1000).rows
    refs = Counter(r.customer_ref for r in rows if r.customer_ref)
    one = next(r for r in rows if r.customer_ref and refs[r.customer_ref] == 1)
    at = make_app("viewer", "pages/grants.py")
    at.text_input(key="open_grant_id").input(one.customer_ref)
    at.button(key="FormSubmitter:open_grant-Open").click()
    at.run()
    assert not at.exception
    assert at.session_state["selected_grant_id"] == one.grant_id
    assert any(t.value == "Grant detail" for t in at.title)
