"""The console's shell: modes, login, lockout, logout, navigation by role, badge, setup page."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.navigation import PAGES, pages_for
from dashboard.runtime import DEMO_USERS, build_runtime
from services.settings import SANDBOX_CLIENT_SECRET, load_settings
from tests.pages.conftest import DEMO_PASSWORDS, login, new_app, page_path


def _all_text(at) -> str:
    parts = []
    for kind in ("markdown", "text", "error", "warning", "info", "success", "caption", "title",
                 "subheader", "header"):
        parts += [str(e.value) for e in getattr(at, kind)]
    for table in at.table:
        parts.append(table.value.to_string())
    return "\n".join(parts)


def test_login_page_lists_demo_users_in_sandbox_mode(runtime):
    at = new_app().run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    shown = at.table[0].value
    assert list(shown["username"]) == [u for u, _, _ in DEMO_USERS]
    assert list(shown["password"]) == [p for _, p, _ in DEMO_USERS]
    assert "Sandbox mode" in _all_text(at)


def test_demo_users_file_holds_bcrypt_hashes_only(runtime):
    text = runtime.auth_file.read_text()
    for _, password, _ in DEMO_USERS:
        assert password not in text
    assert text.count("$2b$") == len(DEMO_USERS)
    assert runtime.auth_file.stat().st_mode & 0o077 == 0
    cookie_file = runtime.settings.data_dir / "cookie.key"
    assert cookie_file.stat().st_mode & 0o077 == 0


def test_login_succeeds_and_is_audited_once(runtime, audit_events):
    at = new_app().run()
    login(at, "support", DEMO_PASSWORDS["support"])
    assert at.session_state["authentication_status"] is True
    assert at.session_state["username"] == "support"
    at.run()  # a rerun is not a new login
    at.run()
    logins = audit_events(action="auth.login")
    assert [(e.actor_username, e.outcome, e.actor_roles) for e in logins] == [
        ("support", "succeeded", ("support",))
    ]


def test_wrong_password_shows_error_and_audits_failure(runtime, audit_events):
    at = new_app().run()
    login(at, "finance", "not-the-password")
    assert at.session_state["authentication_status"] is not True
    assert any("Wrong username or password" in e.value for e in at.error)
    assert [t.label for t in at.text_input] == ["Username", "Password"]  # still the form
    failed = audit_events(action="auth.login_failed")
    # The typed name is a field of its own, never the actor: a filter on actor `finance`
    # must not show what others typed.
    assert [(e.actor_username, e.outcome, e.params, e.target_id) for e in failed] == [
        ("anonymous", "failed", {"typed_username": "finance"}, None)]
    assert audit_events(action="auth.login") == []


def test_unknown_user_and_overlong_password_fail_cleanly(runtime, audit_events):
    at = new_app().run()
    login(at, "nobody", "whatever-password")
    assert any("Wrong username or password" in e.value for e in at.error)
    login(at, "admin", "x" * 100)  # over bcrypt's 72 bytes: refused, no crash
    assert not at.exception
    assert any("Wrong username or password" in e.value for e in at.error)
    assert [e.params["typed_username"] for e in audit_events(action="auth.login_failed")] == [
        "nobody", "admin"]


def test_too_many_failures_lock_the_username(runtime, audit_events):
    at = new_app().run()
    for _ in range(runtime.throttle.max_failures):
        login(at, "admin", "wrong-password")
    assert any("locked" in e.value for e in at.error)
    # Even the right password is refused while locked, and the attempt is audited.
    login(at, "admin", DEMO_PASSWORDS["admin"])
    assert at.session_state["authentication_status"] is not True
    assert any("Too many failed attempts" in e.value for e in at.error)
    assert len(audit_events(action="auth.login_failed")) == runtime.throttle.max_failures + 1
    # The lock is per username: another user still logs in (in a new browser session).
    other = new_app().run()
    login(other, "viewer", DEMO_PASSWORDS["viewer"])
    assert other.session_state["authentication_status"] is True


def test_logout_is_audited_and_returns_to_login(make_app, audit_events):
    at = make_app("viewer")
    at.sidebar.button(key="console_logout").click().run()
    assert not at.exception
    assert at.session_state["authentication_status"] is not True
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert [(e.actor_username, e.outcome) for e in audit_events(action="auth.logout")] == [
        ("viewer", "succeeded")]


_EVERYONE = {"pages/overview.py", "pages/grants.py", "pages/grant_detail.py",
             "pages/my_account.py"}
EXPECTED_PAGES = {
    "viewer": _EVERYONE,
    "support": _EVERYONE | {"pages/connect.py"},
    "finance": _EVERYONE | {"pages/guest_limits.py", "pages/audit_log.py"},
    "admin": {p.path for p in PAGES},
    "ops": _EVERYONE | {"pages/guest_limits.py", "pages/audit_log.py", "pages/connect.py"},
}


@pytest.mark.parametrize("role", sorted(EXPECTED_PAGES))
def test_pages_for_roles(role):
    roles = dict((u, r) for u, _, r in DEMO_USERS)[role]
    assert {p.path for p in pages_for(frozenset(roles))} == EXPECTED_PAGES[role]


def test_pages_for_unknown_role_is_empty():
    assert pages_for(frozenset({"root"})) == []


@pytest.mark.parametrize("role", sorted(EXPECTED_PAGES))
def test_other_roles_pages_are_refused_by_address(make_app, audit_events, role):
    """Every page can be reached by its address; those of other roles show a refusal only
    (audited `denied` by the operations), never the page nor Streamlit's "Page not found"."""
    at = make_app(role)
    root = Path(__file__).resolve().parents[2]
    refused = []
    for spec in PAGES:
        if not (root / spec.path).is_file():
            continue
        at.switch_page(page_path(spec.path)).run()
        assert not at.exception, (spec.path, at.exception)
        titles = [t.value for t in at.title]
        if spec.path in EXPECTED_PAGES[role]:
            assert "Not available" not in titles, spec.path
        else:
            # A page visit refused, naming the page: not the page's actions (none was tried).
            refused.append((role, "page.view", "page", spec.url_path))
            assert titles == ["Not available"], (spec.path, titles)
            assert any("not allowed" in e.value for e in at.error)
            # The sidebar's "Find a grant" box is on every page; the page itself is empty.
            page_inputs = [t for t in at.text_input if t.key != "grant_search_text"]
            assert not at.dataframe and not page_inputs and not at.download_button
    denied = audit_events(outcome="denied")
    assert [(e.actor_username, e.action, e.target_type, e.target_id)
            for e in denied] == refused


def test_badge_shows_mode_client_and_user_but_no_secret(make_app, runtime):
    at = make_app("ops")
    badge = at.get_by_key("console_badge") if hasattr(at, "get_by_key") else None
    text = _all_text(at)
    assert "SANDBOX" in text
    assert "sandbox\\_client" in text or "sandbox_client" in text
    assert "ops" in text and "finance, support" in text
    assert SANDBOX_CLIENT_SECRET not in text
    assert runtime.cookie_key not in text
    assert badge is not None


def test_no_secret_in_any_page_element(make_app, runtime, sandbox):
    tokens = [t["access_token"] for t in sandbox.tokens()]
    at = make_app("admin", page="pages/overview.py")
    dump = repr(at._tree)
    assert SANDBOX_CLIENT_SECRET not in dump
    assert runtime.cookie_key not in dump
    assert not [t for t in tokens if t in dump]


def _live_env(monkeypatch, tmp_path, **extra):
    for name in ("SANDBOX_URL", "CONSOLE_COOKIE_KEY", "KRYPTOS_VAULT_KEY", "CONSOLE_AUTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KRYPTOS_CLIENT_ID", "live_client")
    monkeypatch.setenv("KRYPTOS_CLIENT_SECRET", "live-secret-value")
    monkeypatch.setenv("KRYPTOS_CONNECT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("KRYPTOS_DATA_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(tmp_path / "live-data"))
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "none.toml"))
    for k, v in extra.items():
        monkeypatch.setenv(k, v)


def test_live_mode_with_nothing_configured_shows_only_the_setup_page(
        console_env, monkeypatch, tmp_path):
    _live_env(monkeypatch, tmp_path)
    at = new_app().run()
    assert not at.exception
    text = _all_text(at)
    assert "Console setup needed" in text
    assert "CONSOLE_COOKIE_KEY" in text
    assert "KRYPTOS_VAULT_KEY" in text
    assert "python -m dashboard.users add" in text
    assert len(at.text_input) == 0 and len(at.button) == 0  # no login, nothing else
    assert "live-secret-value" not in repr(at._tree)


def test_live_mode_lists_only_what_is_missing(console_env, monkeypatch, tmp_path):
    from cryptography.fernet import Fernet

    from dashboard.users import add_user

    auth_file = tmp_path / "users.yaml"
    add_user(auth_file, "alice", "alice-password", ["admin"], rounds=4)
    _live_env(monkeypatch, tmp_path, CONSOLE_AUTH_FILE=str(auth_file),
              KRYPTOS_VAULT_KEY=Fernet.generate_key().decode())
    runtime = build_runtime(load_settings())
    assert runtime.mode == "live"
    assert len(runtime.problems) == 1 and "CONSOLE_COOKIE_KEY" in runtime.problems[0]
    monkeypatch.setenv("CONSOLE_COOKIE_KEY", "k" * 40)
    runtime = build_runtime(load_settings())
    assert runtime.problems == () and runtime.ok
    assert runtime.demo_users == ()
    assert set(runtime.users()) == {"alice"}  # no demo users in live mode


def test_live_mode_login_page_shows_no_demo_users(console_env, monkeypatch, tmp_path):
    from cryptography.fernet import Fernet

    from dashboard.users import add_user

    auth_file = tmp_path / "users.yaml"
    add_user(auth_file, "alice", "alice-password", ["admin"], rounds=4)
    _live_env(monkeypatch, tmp_path, CONSOLE_AUTH_FILE=str(auth_file),
              KRYPTOS_VAULT_KEY=Fernet.generate_key().decode(), CONSOLE_COOKIE_KEY="k" * 40)
    at = new_app().run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert len(at.table) == 0
    text = _all_text(at)
    assert "Sandbox mode" not in text and "viewer-demo" not in text
    login(at, "viewer", "viewer-demo")
    assert at.session_state["authentication_status"] is not True


def test_roles_changed_in_the_users_file_apply_at_next_rerun(make_app, runtime):
    from dashboard.users import set_roles

    at = make_app("viewer")
    at.switch_page(page_path("pages/audit_log.py")).run()
    assert [t.value for t in at.title] == ["Not available"]
    set_roles(runtime.auth_file, "viewer", ["finance"])
    at.run()  # a role change ends the session (the file was edited: no CLI involved)
    assert at.session_state["authentication_status"] is not True
    assert any("roles were changed" in i.value for i in at.info)
    login(at, "viewer", DEMO_PASSWORDS["viewer"])
    at.switch_page(page_path("pages/audit_log.py")).run()
    assert not at.exception
    assert any(t.value == "Audit log" for t in at.title)


def test_sandbox_mode_without_sandbox_url_starts_its_own(console_env, monkeypatch, tmp_path):
    """What `streamlit run dashboard/app.py` does on a clean clone: start a sandbox in a thread."""
    monkeypatch.delenv("SANDBOX_URL")
    clean = tmp_path / "clean-data"  # a clean clone has no data directory yet
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(clean))
    runtime = build_runtime(load_settings())
    try:
        assert runtime.ok and runtime.is_sandbox, runtime.problems
        assert runtime.sandbox is not None and runtime._stop is not None
        from services.operations import Actor
        from tests.pages.conftest import full_sync

        full_sync(runtime)
        rows = runtime.ops.grants.page(Actor("viewer", "", frozenset({"viewer"})),
                                       page_size=1000).rows
        assert len(rows) >= 30 and any(r.has_token for r in rows)
        assert (clean / "vault.key").exists() and (clean / "sandbox-users.yaml").exists()
    finally:
        runtime._stop()
