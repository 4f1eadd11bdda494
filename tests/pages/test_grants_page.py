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


def test_open_by_bad_id_shows_a_validation_message(make_app: Callable[..., AppTest]) -> None:
    at = make_app("viewer", "pages/grants.py")
    at.text_input(key="open_grant_id").input("nope")
    at.button(key="FormSubmitter:open_grant-Open").click()
    at.run()
    assert any("cgrant_" in shown(e.value) for e in at.error)


def test_choosing_a_row_opens_its_detail(make_app: Callable[..., AppTest]) -> None:
    at = make_app("viewer", "pages/grants.py")
    first = str(_table(at).iloc[0]["grant_id"])
    at.session_state["grants_table"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception
    assert at.session_state["selected_grant_id"] == first
    assert any(t.value == "Grant detail" for t in at.title)
