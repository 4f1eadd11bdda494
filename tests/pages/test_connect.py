"""Connect a customer: link token, the sandbox widget, exchange, refusals, failures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.runtime import Runtime, get_runtime
from services.settings import SANDBOX_CLIENT_ID
from tests.pages.conftest import DEMO_PASSWORDS, PROJECT_ROOT, TIMEOUT, login, new_app, page_path
from tests.pages.helpers import shown

PAGE = "pages/connect.py"


def _texts(at) -> str:
    parts = [shown(m.value) for m in at.markdown] + [e.value for e in at.error]
    parts += [s.value for s in at.success] + [c.value for c in at.caption]
    return "\n".join(parts)


def _create_link(at, ref: str, grant: str = ""):
    at.text_input(key="connect_ref").input(ref)
    at.text_input(key="connect_grant").input(grant)
    at.button(key="FormSubmitter:connect_link_form-Create link token").click()
    return at.run()


def _exchange(at):
    at.button(key="FormSubmitter:connect_exchange_form-Exchange").click()
    return at.run()


@pytest.mark.parametrize("role", ["support", "admin"])
@pytest.mark.parametrize("kind", ["guest", "linked"])
def test_whole_flow_new_customer(make_app, runtime, sandbox, audit_events, role, kind):
    at = make_app(role, page=PAGE)
    assert [t.value for t in at.title] == ["Connect a customer"]
    _create_link(at, "crm-1001")
    assert not at.exception
    issued = at.session_state["connect_issued"]
    assert issued.customer_ref == "crm-1001" and not issued.resumed
    at.radio(key="connect_kind").set_value(kind)
    at.button(key="connect_play").click().run()
    public = at.session_state["connect_public"]
    assert public["kind"] == kind
    _exchange(at)
    assert not at.exception, at.exception
    row = at.session_state["connect_result"]
    assert row.customer_ref == "crm-1001" and row.has_token
    assert any("connected" in s.value for s in at.success)
    # The new grant is in the vault and in the API's list.
    entry = runtime.ops.ctx.vault.get(row.grant_id)
    assert entry is not None and entry.customer_ref == "crm-1001"
    assert row.grant_id in {g.grant_id for g in runtime.ops.ctx.client.list_grants()}
    # No token in the page: not the link token, the public token or the access token.
    dump = repr(at._tree)
    access = runtime.ops.ctx.vault.reveal(row.grant_id)
    for secret in (issued.link_token, public["public_token"], access):
        assert secret not in dump
    actions = [(e.action, e.outcome) for e in audit_events() if e.actor_username == role]
    assert ("link_token.create", "succeeded") in actions
    assert ("token.exchange", "succeeded") in actions


def test_returning_customer_resumes_a_stored_grant(make_app, sandbox):
    gid = next(t["grant_id"] for t in sandbox.tokens(client_id=SANDBOX_CLIENT_ID)
               if not t["revoked"])
    at = make_app("support", page=PAGE)
    _create_link(at, "crm-2", gid)
    assert not at.exception
    assert at.session_state["connect_issued"].resumed
    assert "resumes an existing grant" in _texts(at)


def test_invalid_customer_ref_shows_a_validation_message(make_app, audit_events):
    at = make_app("support", page=PAGE)
    _create_link(at, "")
    assert not at.exception
    assert at.error and "connect_issued" not in at.session_state
    # An everyday typing mistake: the message says what to type, no code for support.
    assert not any("VALIDATION" in c.value or "For support" in c.value for c in at.caption)


def test_the_documented_reference_rule_is_the_one_enforced(make_app, sandbox):
    from services.operations.validation import CUSTOMER_REF_HELP

    at = make_app("support", page=PAGE)
    assert at.text_input(key="connect_ref").help == CUSTOMER_REF_HELP
    calls = len(sandbox.requests_log())
    _create_link(at, "bad ref!")
    assert not at.exception and "connect_issued" not in at.session_state
    assert any("“bad ref!” is not a customer reference" in shown(e.value) for e in at.error)
    assert len(sandbox.requests_log()) == calls  # refused before anything was sent
    for ok in ("crm-1001", "jane.doe+vip@example.com", "auth0:abc_123"):
        _create_link(at, ok)
        assert at.session_state["connect_issued"].customer_ref == ok


def test_exchange_failure_in_the_middle_is_shown_and_audited(make_app, sandbox, audit_events):
    at = make_app("support", page=PAGE)
    _create_link(at, "crm-3")
    at.button(key="connect_play").click().run()
    sandbox.set_fault(path="/token/exchange", status=500, code="INTERNAL_ERROR",
                      message="<script>alert(1)</script>", count=5)
    _exchange(at)
    assert not at.exception
    assert at.error and "connect_result" not in at.session_state
    assert "<script>" not in "".join(m.value for m in at.markdown)
    failed = [e for e in audit_events(action="token.exchange") if e.outcome == "failed"]
    assert len(failed) == 1
    # After the fault clears the same public token can still be exchanged.
    sandbox.clear_faults()
    _exchange(at)
    assert "connect_result" in at.session_state


def test_widget_button_needs_a_link_token_first(make_app):
    at = make_app("support", page=PAGE)
    assert at.button(key="connect_play").disabled
    assert "Create a link token first" in _texts(at)


def test_pasted_bad_public_token_is_refused(make_app):
    at = make_app("admin", page=PAGE)
    at.text_input(key="connect_ex_ref").input("crm-9")
    at.text_input(key="connect_public_token").input("public-sandbox-nonsense")
    _exchange(at)
    assert not at.exception
    assert at.error and "connect_result" not in at.session_state


@pytest.mark.parametrize("role", ["viewer", "finance"])
def test_other_roles_are_refused_and_audited(runtime, audit_events, role):
    at = AppTest.from_file(str(PROJECT_ROOT / PAGE), default_timeout=TIMEOUT)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = role
    at.run()
    _create_link(at, "crm-4")
    assert not at.exception
    assert any("not allowed" in e.value for e in at.error)
    denied = audit_events(outcome="denied")
    assert [(e.actor_username, e.action) for e in denied] == [(role, "link_token.create")]


def test_after_an_exchange_the_used_token_is_gone_from_the_form(make_app, audit_events):
    at = make_app("support", page=PAGE)
    _create_link(at, "crm-5")
    at.button(key="connect_play").click().run()
    assert "Public token from the widget" in _texts(at)
    _exchange(at)
    assert not at.exception and not at.error
    row = at.session_state["connect_result"]
    text = _texts(at)
    assert "Public token from the widget" not in text
    assert f"The customer is connected: grant {row.grant_id}" in text
    assert row.masked_token in text
    # Exchange pressed again by mistake: nothing is sent (there is no token any more), and
    # the connected grant stays shown.
    _exchange(at)
    assert not at.exception
    assert at.session_state["connect_result"] == row
    assert len([e for e in audit_events(action="token.exchange") if e.outcome == "requested"]) == 1


@pytest.fixture
def own_sandbox_runtime(console_env, monkeypatch, tmp_path) -> Iterator[Runtime]:
    """The console as `streamlit run` starts it on a clean clone: its own sandbox in a
    thread (no SANDBOX_URL), no data directory yet."""
    monkeypatch.delenv("SANDBOX_URL")
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(tmp_path / "clean-data"))
    rt = get_runtime()
    assert rt.ok and rt.sandbox is not None, rt.problems
    yield rt
    rt._stop()


@pytest.mark.parametrize("where", ["shared sandbox (SANDBOX_URL)", "console's own sandbox"])
def test_returning_customer_widget_run_adds_to_the_existing_grant(where, request):
    rt = (request.getfixturevalue("runtime") if where.startswith("shared")
          else request.getfixturevalue("own_sandbox_runtime"))
    gid = next(t["grant_id"] for t in rt.sandbox.tokens(client_id=SANDBOX_CLIENT_ID)
               if not t["revoked"] and t["kind"] == "guest")
    token = rt.ops.ctx.vault.reveal(gid)
    before = {i.wallet_id for i in rt.ops.ctx.client.list_integrations(token)}
    grants_before = {g.grant_id for g in rt.ops.ctx.client.list_grants()}
    at = new_app().run()
    login(at, "support", DEMO_PASSWORDS["support"])
    at.switch_page(page_path(PAGE)).run()
    _create_link(at, "crm-6", gid)
    at.button(key="connect_play").click().run()
    assert not at.exception, at.exception
    assert not at.error
    text = _texts(at)
    assert "added to their existing grant" in text and "no exchange is needed" in text
    assert gid in text
    assert "Public token from the widget" not in text
    after = {i.wallet_id for i in rt.ops.ctx.client.list_integrations(token)}
    added = after - before
    assert len(added) == 1 and added.pop() in text
    assert {g.grant_id for g in rt.ops.ctx.client.list_grants()} == grants_before  # no new grant


def test_import_section_waits_for_a_file(make_app):
    at = make_app("support", page=PAGE)
    assert "3. Import tokens your backend already stores" in [s.value for s in at.subheader]
    assert len(at.get("file_uploader")) == 1
    assert at.button(key="connect_import").disabled  # nothing to import yet


def test_a_public_token_exchanged_again_answers_the_same_grant(make_app, sandbox,
                                                               audit_events):
    """Double click, or the token pasted again from another tab: the same grant, no error,
    no second grant."""
    at = make_app("support", page=PAGE)
    _create_link(at, "crm-77")
    at.button(key="connect_play").click().run()
    public_token = at.session_state["connect_public"]["public_token"]
    _exchange(at)
    first = at.session_state["connect_result"]
    grants = len(sandbox.tokens())
    at.text_input(key="connect_ex_ref").input("crm-77")
    at.text_input(key="connect_public_token").input(public_token)
    _exchange(at)
    assert not at.exception and not at.error
    assert at.session_state["connect_result"].grant_id == first.grant_id
    assert len(sandbox.tokens()) == grants
    ends = [e for e in audit_events(action="token.exchange") if e.outcome != "requested"]
    assert [e.outcome for e in ends] == ["succeeded", "succeeded"]
    assert ends[1].after["already_exchanged"] is True
