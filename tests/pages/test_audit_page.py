"""Audit log page: filters, paging, export, chain verification (incl. tampering), refusals."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import PROJECT_ROOT, TIMEOUT

PAGE = "pages/audit_log.py"


def _table(at):
    return at.dataframe[0].value if at.dataframe else None


def _fail_logins(runtime, name: str, n: int) -> None:
    """`n` events whose actor and target are the user `name` (logouts: a failed login's
    actor is `anonymous`)."""
    from services.operations import Actor

    for _ in range(n):
        runtime.ops.auth.record_logout(Actor(name, name, frozenset({"viewer"})))


@pytest.mark.parametrize("role", ["finance", "admin", "ops"])
def test_audit_readers_see_the_log(make_app, role):
    at = make_app(role, page=PAGE)
    assert [t.value for t in at.title] == ["Audit log"]
    table = _table(at)
    assert ("auth.login", role) in set(zip(table["action"], table["actor"], strict=True))


def test_filters_by_actor_action_outcome_and_target(make_app, runtime):
    _fail_logins(runtime, "mallory", 3)
    at = make_app("finance", page=PAGE)
    at.text_input(key="audit_actor").input("mallory").run()
    table = _table(at)
    assert len(table) == 3 and set(table["actor"]) == {"mallory"}
    at.text_input(key="audit_actor").input("").run()
    at.selectbox(key="audit_outcome").select("succeeded").run()
    assert set(_table(at)["outcome"]) == {"succeeded"}
    at.selectbox(key="audit_outcome").select("any")
    at.text_input(key="audit_action").input("auth.*").run()
    assert set(_table(at)["action"]) == {"auth.login", "auth.logout"}
    at.text_input(key="audit_action").input("")
    at.text_input(key="audit_target").input("mallory").run()
    assert set(_table(at)["target"]) == {"user mallory"}


def test_filters_read_as_people_type_them(make_app, runtime, sandbox):
    """Actor in any case, an action by a word of its name, a target by customer reference."""
    from services.operations import Actor

    _fail_logins(runtime, "mallory", 2)
    stored = [t for t in sandbox.tokens() if not t["revoked"] and t["kind"] == "guest"]
    gid = stored[0]["grant_id"]
    ref = runtime.ops.ctx.vault.get(gid).customer_ref
    assert ref
    admin = Actor("admin", "Demo admin", frozenset({"admin"}))
    runtime.ops.grants.revoke_grant(admin, gid, "customer left the service")
    at = make_app("finance", page=PAGE)
    at.text_input(key="audit_actor").input("MALLORY").run()
    assert len(_table(at)) == 2 and set(_table(at)["actor"]) == {"mallory"}
    at.text_input(key="audit_actor").input("").run()
    at.text_input(key="audit_action").input("revoke").run()
    assert not at.error and set(_table(at)["action"]) == {"grant.revoke"}
    at.text_input(key="audit_action").input("no such thing").run()
    assert any("No action has" in e.value for e in at.error)
    at.text_input(key="audit_action").input("").run()
    at.text_input(key="audit_target").input(ref).run()
    table = _table(at)
    assert f"grant {gid}" in set(table["target"])
    assert "customer left the service" in set(table["reason"])


def test_a_failed_verification_replaces_the_earlier_result(make_app):
    at = make_app("admin", page=PAGE)
    at.button(key="audit_verify").click().run()
    assert any("the chain is intact" in s.value for s in at.success)
    at.text_input(key="audit_expect_seq").input("12a")
    at.text_input(key="audit_expect_hash").input("0" * 64)
    next(b for b in at.button if b.label == "Verify against this head").click()
    at.run()
    assert at.error
    assert not any("the chain is intact" in s.value for s in at.success)


def test_date_filters(make_app):
    at = make_app("finance", page=PAGE)
    today = datetime.now(UTC).date()
    at.date_input(key="audit_since").set_value(today + timedelta(days=1)).run()
    assert _table(at) is None
    assert any("No event matches" in i.value for i in at.info)
    at.date_input(key="audit_since").set_value(today)
    at.date_input(key="audit_until").set_value(today).run()
    assert len(_table(at)) >= 1


def test_paging(make_app, runtime):
    _fail_logins(runtime, "pager", 60)
    at = make_app("admin", page=PAGE)
    at.selectbox(key="audit_page_size").select(25).run()
    total = runtime.ops.ctx.audit_log.count()
    pages = -(-total // 25)
    assert any(f"page 1 of {pages}" in c.value for c in at.caption)
    first = list(_table(at)["seq"])
    assert len(first) == 25 and first == sorted(first, reverse=True)
    at.button(key="audit_next").click().run()
    second = list(_table(at)["seq"])
    assert any(f"page 2 of {pages}" in c.value for c in at.caption)
    assert max(second) < min(first)
    at.button(key="audit_prev").click().run()
    assert list(_table(at)["seq"])[0] >= first[0]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_matches_filters_and_is_audited(make_app, runtime, audit_events, fmt):
    _fail_logins(runtime, "exported", 4)
    at = make_app("finance", page=PAGE)
    at.text_input(key="audit_actor").input("exported").run()
    at.radio(key="audit_export_fmt").set_value(fmt).run()
    at.button(key="audit_export").click().run()
    assert not at.exception
    held = at.session_state["audit_export_data"]
    assert held.fmt == fmt
    content = held.content
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(content)))
    else:
        rows = [json.loads(line) for line in content.splitlines() if line.strip()]
    assert len(rows) == 4 and {r["actor_username"] for r in rows} == {"exported"}
    assert len(at.download_button) == 1
    exports = audit_events(action="audit.export", outcome="succeeded")
    assert [e.actor_username for e in exports] == ["finance"]


def test_verify_intact_chain(make_app):
    at = make_app("admin", page=PAGE)
    at.button(key="audit_verify").click().run()
    assert any("the chain is intact" in s.value for s in at.success)


def test_verify_reports_a_tampered_row(make_app, runtime):
    _fail_logins(runtime, "victim", 3)
    at = make_app("finance", page=PAGE)
    db_path = runtime.settings.data_dir / "console.db"
    target = runtime.ops.ctx.audit_log.query(page=1, page_size=1000).events[-2]  # an early event
    # An attacker with file access drops the append-only trigger and edits a row.
    con = sqlite3.connect(db_path)
    con.execute("DROP TRIGGER audit_log_no_update")
    con.execute("UPDATE audit_log SET actor_username = 'someone-else' WHERE seq = ?",
                (target.seq,))
    con.commit()
    con.close()
    at.button(key="audit_verify").click().run()
    assert not at.exception
    assert any(f"broken at event #{target.seq}" in e.value for e in at.error)
    assert any("content does not match" in t.value for t in at.text)


def _page_alone(username: str) -> AppTest:
    """The page file run on its own by a logged-in user (as a stale link or a role change
    would): the navigation is bypassed, so only the operation's check stands."""
    at = AppTest.from_file(str(PROJECT_ROOT / PAGE), default_timeout=TIMEOUT)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    return at.run()


@pytest.mark.parametrize("role", ["viewer", "support"])
def test_other_roles_are_refused_and_the_refusal_is_audited(runtime, audit_events, role):
    at = _page_alone(role)
    assert not at.exception
    assert any("not allowed" in e.value for e in at.error)
    assert _table(at) is None and not at.button
    denied = audit_events(outcome="denied")
    assert [(e.actor_username, e.action) for e in denied] == [(role, "audit.read")]


def test_page_without_login_shows_nothing(runtime):
    at = AppTest.from_file(str(PROJECT_ROOT / PAGE), default_timeout=TIMEOUT).run()
    assert any("log in" in w.value for w in at.warning)
    assert _table(at) is None


def _utc_stamp(text: str) -> datetime:
    import re

    found = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", text)
    assert found, text
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def test_export_and_verification_say_when_and_what_they_cover(make_app, runtime):
    _fail_logins(runtime, "stamped", 3)
    at = make_app("finance", page=PAGE)
    at.text_input(key="audit_actor").input("stamped").run()
    before = datetime.now(UTC).replace(microsecond=0)
    at.button(key="audit_export").click().run()
    newest = max(e.seq for e in runtime.ops.ctx.audit_log.query(page=1, page_size=1000).events
                 if e.actor_username == "stamped")
    made = next(c.value for c in at.caption if c.value.startswith("Prepared at"))
    assert before <= _utc_stamp(made) <= datetime.now(UTC)
    assert f"3 event(s), up to #{newest}, oldest first" in made
    assert any("oldest first" in c.value and "newest first" in c.value for c in at.caption)
    at.button(key="audit_verify").click().run()
    verified = next(s.value for s in at.success if "the chain is intact" in s.value)
    assert verified.startswith("Verified at ")
    assert before <= _utc_stamp(verified) <= datetime.now(UTC)
    # every event but the verification's own outcome, recorded after it
    assert f"{runtime.ops.ctx.audit_log.count() - 1} event(s) checked" in verified


def test_export_and_verification_are_dropped_when_the_page_is_opened_again(make_app):
    at = make_app("admin", page=PAGE)
    at.button(key="audit_export").click().run()
    at.button(key="audit_verify").click().run()
    assert len(at.download_button) == 1 and at.success
    at.run()  # a rerun of the page itself keeps them
    assert len(at.download_button) == 1 and at.success
    at.switch_page("../pages/overview.py").run()
    at.switch_page("../" + PAGE).run()
    assert not at.exception
    assert len(at.download_button) == 0 and not at.success


def test_export_and_verification_are_dropped_when_an_input_changes(make_app):
    at = make_app("admin", page=PAGE)
    at.button(key="audit_export").click().run()
    at.button(key="audit_verify").click().run()
    at.radio(key="audit_export_fmt").set_value("jsonl").run()
    assert len(at.download_button) == 0 and not at.success
    at.button(key="audit_export").click().run()
    at.button(key="audit_verify").click().run()
    at.selectbox(key="audit_outcome").select("denied").run()
    assert len(at.download_button) == 0 and not at.success


def test_viewer_opening_the_address_is_refused_not_sent_elsewhere(make_app, audit_events):
    at = make_app("viewer")
    at.switch_page("../" + PAGE).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Not available"]
    assert any("not allowed" in e.value for e in at.error)
    assert _table(at) is None and not at.download_button
    assert [(e.actor_username, e.action, e.target_type, e.target_id)
            for e in audit_events(outcome="denied")] == [("viewer", "page.view", "page",
                                                          "audit_log")]


def test_pickers_offer_the_actions_and_actors_that_exist(make_app, runtime):
    """The action picker lists the catalogue; the actor picker the console's actors with an
    event (customers' own backend actors left out); picking one filters the log."""
    from services.store.actions import AuditAction

    _fail_logins(runtime, "mallory", 2)
    runtime.ops.audit.ctx.event("customer:cust-1", frozenset(), AuditAction.HOLDINGS_READ,
                          "succeeded", "corr-customer-1")
    at = make_app("finance", page=PAGE)
    actions = at.selectbox(key="audit_action_pick").options
    assert "grant.revoke" in actions and "approval.approved" in actions
    assert len(actions) == len(AuditAction)
    actors = at.selectbox(key="audit_actor_pick").options
    assert {"mallory", "finance"} <= set(actors)
    assert not [a for a in actors if a.startswith("customer:")]
    assert actors == sorted(actors)
    at.selectbox(key="audit_actor_pick").select("mallory").run()
    assert at.text_input(key="audit_actor").value == "mallory"
    assert set(_table(at)["actor"]) == {"mallory"} and len(_table(at)) == 2
    at.selectbox(key="audit_action_pick").select("auth.logout").run()
    assert set(_table(at)["action"]) == {"auth.logout"}

