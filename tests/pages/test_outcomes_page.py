"""The Outcomes page (admin), the Kryptos check on the setup page and for admins, and the
audit journal seen from the console."""

from __future__ import annotations

import sqlite3
import tomllib
from datetime import timedelta

from cryptography.fernet import Fernet
from sqlalchemy.exc import OperationalError

from dashboard.users import add_user
from services.settings import SANDBOX_CLIENT_ID
from services.store.audit import NewAuditEvent
from tests.pages.conftest import PROJECT_ROOT, login, new_app, page_path
from tests.pages.helpers import shown
from tests.pages.test_shell import _all_text, _live_env

PAGE = "pages/outcomes.py"


def test_admin_sees_unsettled_requests_and_the_journal(runtime, make_app, audit_events):
    ops = runtime.ops
    ops.reconciler.min_age = timedelta(0)
    orphan = ops.ctx.event("alice", ["support"], "token.import", "requested",
                           target_type="vault")
    ops.ctx.journal.add(NewAuditEvent(
        actor_username="bob", actor_roles=("support",), action="grant.revoke",
        outcome="succeeded", target_type="grant", target_id="cgrant_x", correlation_id="c1"))
    at = make_app("admin", PAGE)
    assert [m.value for m in at.metric][:1] == ["1"]  # one event waits in the journal
    at.button(key="reconcile_now").click().run()
    assert not at.exception
    text = shown(_all_text(at))
    assert "Pass done" in text
    rows = at.dataframe[0].value
    assert list(rows["correlation id"]) == [orphan.correlation_id]
    assert "by hand" in rows["why not settled"][0]
    assert ops.ctx.journal.pending() == []  # replayed into the audit log
    assert [e.outcome for e in audit_events(action="grant.revoke")] == ["succeeded"]


def test_outcomes_page_is_admin_only(runtime, make_app, audit_events):
    at = make_app("finance")
    at.switch_page(page_path(PAGE)).run()
    assert not at.exception
    assert not at.dataframe and not any(b.key == "reconcile_now" for b in at.button)


def test_setup_page_shows_the_kryptos_check(console_env, monkeypatch, tmp_path):
    _live_env(monkeypatch, tmp_path)  # hosts at 127.0.0.1:9: nothing listens there
    at = new_app().run(timeout=40)
    assert not at.exception
    text = shown(_all_text(at))
    assert "Console setup needed" in text and "Kryptos check failed" in text
    assert "Data API at http://127.0.0.1:9/api" in text and "Could not reach" in text
    assert "live-secret-value" not in repr(at._tree)


def test_admin_is_told_when_the_credentials_are_refused(console_env, sandbox, monkeypatch,
                                                        tmp_path):
    auth_file = tmp_path / "users.yaml"
    add_user(auth_file, "root", "root-password-1", ["admin"], rounds=4)
    add_user(auth_file, "vic", "vic-password-1", ["viewer"], rounds=4)
    monkeypatch.delenv("SANDBOX_URL")
    for name, value in {
        "KRYPTOS_CLIENT_ID": SANDBOX_CLIENT_ID, "KRYPTOS_CLIENT_SECRET": "not-the-secret",
        "KRYPTOS_CONNECT_URL": sandbox.connect_url, "KRYPTOS_DATA_URL": sandbox.data_url,
        "CONSOLE_AUTH_FILE": str(auth_file), "CONSOLE_COOKIE_KEY": "c" * 48,
        "KRYPTOS_VAULT_KEY": Fernet.generate_key().decode(),
        "CONSOLE_DATA_DIR": str(tmp_path / "live-data"), "CONSOLE_TOTP_REQUIRED_ROLES": "none",
    }.items():
        monkeypatch.setenv(name, value)
    from dashboard.runtime import get_runtime

    check = get_runtime().live_check.wait(15)
    assert check is not None and check.credentials_ok is False
    at = new_app().run()
    login(at, "root", "root-password-1")
    text = shown(_all_text(at))
    assert "Kryptos check at start failed" in text and "KRYPTOS_CLIENT_SECRET" in text
    assert "not-the-secret" not in repr(at._tree)
    viewer = new_app().run()
    login(viewer, "vic", "vic-password-1")
    assert "Kryptos check at start failed" not in shown(_all_text(viewer))


# --- a change made while the audit store fails: "made, record pending" ---------------------

class OutcomesFail:
    """The audit log, except that outcome events fail like a database that went away."""

    def __init__(self, log) -> None:
        self.log = log

    def append(self, event):
        if event.outcome != "requested":
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        return self.log.append(event)


def test_limit_made_while_the_store_fails_says_its_record_is_pending(
        make_app, runtime, sandbox, audit_events):
    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"]
               and t["kind"] == "guest")
    at = make_app("finance")
    at.session_state["selected_grant_id"] = gid
    at.switch_page(page_path("pages/grant_detail.py")).run()
    trail = runtime.ops.ctx.trail
    trail.log, trail.retry_delays = OutcomesFail(trail.log), (0.01,)
    try:
        at.text_input(key="limit_value").input("4343")
        at.selectbox(key="limit_limiter").select("on")
        at.text_input(key="limit_reason").input("customer verified")
        at.button(key="FormSubmitter:limit_form-Apply limit").click().run()
        if any(b.key == "limit_confirm" for b in at.button):  # a big cut asks first
            at.button(key="limit_confirm").click().run()
    finally:
        trail.log = trail.log.log
    assert not at.exception and not at.error  # not reported as a failure
    assert any("Its audit record is pending" in w.value for w in at.warning)
    token = next(t["access_token"] for t in sandbox.tokens() if t["grant_id"] == gid)
    assert runtime.ops.ctx.client.get_userinfo(token).transaction_limit == 4343
    assert [e.outcome for e in audit_events(action="guest.limit.update")] == ["requested"]
    assert runtime.ops.reconciler.run_once().journal.replayed == 1
    assert [e.outcome for e in audit_events(action="guest.limit.update")] == [
        "requested", "succeeded"]


# --- grids ----------------------------------------------------------------------------------

def test_grid_cells_are_neutralised_and_the_builtin_export_is_off(make_app, runtime,
                                                                  sandbox, sync_now):
    gid = next(t["grant_id"] for t in sandbox.tokens() if not t["revoked"])
    formula = '=HYPERLINK("http://evil.example/","click")'
    runtime.ops.ctx.vault.update(gid, customer_ref=formula)
    sync_now()  # the Grants page reads the read model, which joins the vault at a sync
    at = make_app("support", "pages/grants.py")
    refs = list(at.dataframe[0].value["customer_ref"])
    assert "'" + formula in refs and formula not in refs
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["disableDataExport"] is True
    from streamlit import config as st_config

    assert "client.disableDataExport" in st_config._config_options_template
