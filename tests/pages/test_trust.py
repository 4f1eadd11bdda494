"""Sessions that end when they should, logins that hold, a second factor (AppTest).

The browser-only parts (cookies saved and replayed, forged cookies) are in
tests/e2e/test_trust.py."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime, timedelta

import jwt
import pyotp
import pytest
import streamlit as st

from dashboard import login as login_module
from dashboard import session_cookie
from dashboard.runtime import get_runtime
from dashboard.users import main as users_main
from services.store.sessions import ConsoleSession
from tests.pages.conftest import DEMO_PASSWORDS, login, new_app, page_path
from tests.pages.test_live_mode import live_env  # noqa: F401 (a fixture)


def _runtime(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    rt = get_runtime()
    assert rt.ok, rt.problems
    return rt


def _logged_in(user: str):
    at = new_app().run()
    login(at, user, DEMO_PASSWORDS[user])
    assert not at.exception, at.exception
    assert at.session_state["authentication_status"] is True, [e.value for e in at.error]
    return at


def _logged_out(at) -> bool:
    return (at.session_state["authentication_status"] is not True
            and [t.label for t in at.text_input] == ["Username", "Password"])


def _events(rt, action=None, outcome=None):
    from services.store import AuditFilter

    page = rt.ops.ctx.audit_log.query(AuditFilter(action=action, outcome=outcome), page=1,
                              page_size=1000)
    return list(reversed(page.events))


def _users_cli(*argv: str, stdin: str = "") -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = users_main(list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue() + err.getvalue()


# --- the cookie --------------------------------------------------------------------------------


def _session(sid: str = "s" * 43) -> ConsoleSession:
    now = datetime.now(UTC)
    return ConsoleSession(sid, "bob", ("admin",), "x", now, now, None, None, None)


def test_cookie_names_the_session_and_anything_else_is_logged_out():
    key = "k" * 64
    token = session_cookie.encode_cookie(key, _session(), 3600)
    assert session_cookie.decode_cookie(key, token) == "s" * 43
    assert jwt.decode(token, key, algorithms=["HS256"]).keys() == {"sid", "exp"}
    forged = [
        jwt.encode({"sid": "s" * 43, "exp": 4_000_000_000}, None, algorithm="none"),
        jwt.encode({"sid": "s" * 43, "exp": 4_000_000_000}, "other-key" * 5, algorithm="HS256"),
        jwt.encode({"sid": "s" * 43, "exp": 4_000_000_000}, key, algorithm="HS512"),
        jwt.encode({"username": "admin", "exp_date": 4_000_000_000}, key, algorithm="HS256"),
        jwt.encode({"sid": "s" * 43}, key, algorithm="HS256"),  # no expiry
        jwt.encode({"sid": 12, "exp": 4_000_000_000}, key, algorithm="HS256"),
        session_cookie.encode_cookie(key, _session(), -10),  # expired
        # after a key change
        session_cookie.encode_cookie("an-older-cookie-key" * 3, _session(), 3600),
        "garbage", "", "a.b.c", "e30.e30.", "x" * 10_000, None,
    ]
    assert [session_cookie.decode_cookie(key, t) for t in forged] == [None] * len(forged)


# --- sessions end when they should ---------------------------------------------------------


def test_a_login_is_audited_once_and_reruns_write_nothing(console_env, monkeypatch):
    rt = _runtime(monkeypatch)
    at = _logged_in("viewer")
    for _ in range(5):
        at.run()
    assert len(_events(rt, action="auth.login")) == 1
    sessions = rt.auth.sessions.open_sessions("viewer")
    assert len(sessions) == 1 and sessions[0].roles == ("viewer",)


class Clock:
    """The sessions' time source, moved by hand (no sleeping): starts at the real time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _clocked(rt) -> Clock:
    clock = Clock()
    rt.auth.sessions.clock = clock
    return clock


def test_idle_timeout_ends_the_session(console_env, monkeypatch):
    rt = _runtime(monkeypatch, CONSOLE_IDLE_TIMEOUT="60")
    clock = _clocked(rt)
    at = _logged_in("viewer")
    clock.advance(59)
    at.run()
    assert at.session_state["authentication_status"] is True
    clock.advance(61)
    at.run()
    assert _logged_out(at)
    assert any("without activity" in i.value for i in at.info)
    ended = _events(rt, action="auth.session_ended")
    assert [(e.actor_username, e.params) for e in ended] == [("viewer", {"reason": "idle"})]
    assert rt.auth.sessions.open_sessions("viewer") == []


def test_someone_clicking_every_14_s_is_not_idle_whatever_the_timeout(console_env, monkeypatch):
    """The last use is written at least every half of the idle timeout: with a fixed 30 s
    throttle and a 40 s timeout, clicks every 14 s ended the session at the fourth click
    (the recorded use was 42 s old). 40 s is below the settings' floor; the throttle must
    follow the timeout however it was set."""
    rt = _runtime(monkeypatch)
    rt.settings = dataclasses.replace(rt.settings, idle_timeout=40)
    clock = _clocked(rt)
    at = _logged_in("viewer")
    for _ in range(20):  # 4 min 40 s of activity
        clock.advance(14)
        at.run()
        assert at.session_state["authentication_status"] is True, clock.now
    assert _events(rt, action="auth.session_ended") == []
    clock.advance(41)
    at.run()
    assert _logged_out(at)


def test_idle_timeouts_under_a_minute_are_refused(tmp_path):
    from services.settings import ConfigError, load_settings

    base = {"CONSOLE_SECRETS_FILE": str(tmp_path / "none.toml")}
    for value in ("59", "40", "1", "0"):
        with pytest.raises(ConfigError) as err:
            load_settings({**base, "CONSOLE_IDLE_TIMEOUT": value})
        assert "CONSOLE_IDLE_TIMEOUT" in err.value.user_message
        assert "at least 60 s" in err.value.user_message
    assert load_settings({**base, "CONSOLE_IDLE_TIMEOUT": "60"}).idle_timeout == 60
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[console]\nidle_timeout = 30\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_settings({"CONSOLE_SECRETS_FILE": str(secrets)})


def test_lifetime_ends_the_session_even_when_active(console_env, monkeypatch):
    rt = _runtime(monkeypatch, CONSOLE_SESSION_LIFETIME="90")
    clock = _clocked(rt)
    at = _logged_in("support")
    for _ in range(3):  # active every 30 s: the last use is written each time
        clock.advance(30)
        at.run()
        assert at.session_state["authentication_status"] is True
    clock.advance(1)
    at.run()
    assert _logged_out(at)
    assert any("maximum length" in i.value for i in at.info)
    assert _events(rt, action="auth.session_ended")[-1].params == {"reason": "lifetime"}


def test_logout_ends_every_session_of_the_user(console_env, monkeypatch):
    rt = _runtime(monkeypatch)
    first, second, other = _logged_in("admin"), _logged_in("admin"), _logged_in("viewer")
    first.sidebar.button(key="console_logout").click().run()
    assert _logged_out(first)
    second.run()
    assert _logged_out(second)
    assert any("logged out" in i.value for i in second.info)
    other.run()
    assert other.session_state["authentication_status"] is True
    assert rt.auth.sessions.open_sessions("admin") == []


@pytest.mark.parametrize("argv, stdin, reason", [
    (("passwd", "finance", "--password-stdin"), "a-new-password-1\n", "password was changed"),
    (("set-roles", "finance", "--role", "viewer"), "", "roles were changed"),
    (("remove", "finance"), "", "session ended"),
])
def test_cli_changes_end_the_users_sessions(console_env, monkeypatch, argv, stdin, reason):
    rt = _runtime(monkeypatch)
    at, other = _logged_in("finance"), _logged_in("viewer")
    code, out = _users_cli("--file", str(rt.auth_file), *argv, stdin=stdin)
    assert code == 0, out
    assert rt.auth.sessions.open_sessions("finance") == []  # ended in the database at once
    at.run()
    assert _logged_out(at)
    assert any(reason in i.value for i in at.info)
    other.run()
    assert other.session_state["authentication_status"] is True


# --- logins hold ------------------------------------------------------------------------------


def test_lock_survives_the_real_users_open_session_and_admin_unlocks_on_my_account(
        console_env, monkeypatch):
    rt = _runtime(monkeypatch)
    victim = _logged_in("finance")  # the real user, logged in elsewhere
    attacker = new_app().run()
    for _ in range(rt.throttle.max_failures):
        login(attacker, "finance", "wrong-password")
    assert any("locked" in e.value for e in attacker.error)
    for _ in range(3):  # the real user keeps working: the lock stays
        victim.run()
        assert victim.session_state["authentication_status"] is True
    fresh = new_app().run()
    login(fresh, "finance", DEMO_PASSWORDS["finance"])
    assert fresh.session_state["authentication_status"] is not True
    assert any("Too many failed attempts" in e.value for e in fresh.error)
    locked = _events(rt, action="auth.login_failed")
    assert {e.error_code for e in locked} == {"BAD_CREDENTIALS", "LOCKED"}
    assert {e.actor_username for e in locked} == {"anonymous"}

    # A non-admin sees no unlock control; an admin does, and it is audited.
    victim.switch_page(page_path("pages/my_account.py")).run()
    assert not victim.exception
    assert all(b.key != "account_unlock" for b in victim.button)
    admin = _logged_in("admin")
    admin.switch_page(page_path("pages/my_account.py")).run()
    assert not admin.exception
    assert list(admin.dataframe[0].value["user"]) == ["finance"]
    admin.selectbox(key="account_unlock_pick").select(("user", "finance"))
    admin.button(key="account_unlock").click().run()
    assert not admin.exception
    assert [(e.actor_username, e.target_id, e.params) for e in
            _events(rt, action="auth.unlock")] == [("admin", "finance", {"locks_lifted": 1})]
    login(fresh, "finance", DEMO_PASSWORDS["finance"])
    assert fresh.session_state["authentication_status"] is True


def test_an_overlong_or_odd_username_is_just_a_failure(console_env, monkeypatch):
    rt = _runtime(monkeypatch)
    at = new_app().run()
    login(at, "x" * 300 + "\u202e", "whatever-password")
    assert not at.exception
    assert any("Wrong username or password" in e.value for e in at.error)
    typed = _events(rt, action="auth.login_failed")[-1].params["typed_username"]
    assert typed == "x" * 64


def test_a_database_failure_at_login_is_a_message_not_a_traceback(console_env, monkeypatch):
    from services.store.errors import StoreError

    rt = _runtime(monkeypatch)

    def down(*_args, **_kw):
        raise StoreError("database is locked")

    monkeypatch.setattr(rt.auth.throttle, "locked_for", down)
    at = new_app().run()
    login(at, "viewer", DEMO_PASSWORDS["viewer"])
    assert not at.exception
    assert at.session_state["authentication_status"] is not True
    assert any("database is unavailable" in e.value for e in at.error)


def test_unlock_from_the_command_line(console_env, monkeypatch):
    rt = _runtime(monkeypatch)
    at = new_app().run()
    for _ in range(rt.throttle.max_failures):
        login(at, "support", "wrong-password")
    assert rt.throttle.locked_for("support", None) > 0
    code, out = _users_cli("--file", str(rt.auth_file), "unlock", "support")
    assert code == 0 and "1 lock(s)" in out, out
    login(at, "support", DEMO_PASSWORDS["support"])
    assert at.session_state["authentication_status"] is True
    event = _events(rt, action="auth.unlock")[-1]
    assert event.actor_username.startswith("cli:") and event.target_id == "support"


# --- second factor ----------------------------------------------------------------------------


def _code(secret: str) -> str:
    return pyotp.TOTP(secret).now()


def test_required_role_enrols_at_login_then_logs_in_with_codes(console_env, monkeypatch):
    rt = _runtime(monkeypatch, CONSOLE_TOTP_REQUIRED_ROLES="admin")
    at = new_app().run()
    login(at, "admin", DEMO_PASSWORDS["admin"])
    assert at.session_state["authentication_status"] is not True  # no page before enrolment
    assert any(s.value == "Set up a second factor" for s in at.subheader)
    secret = at.session_state[login_module.PENDING_KEY]["secret"]
    assert any(secret in c.value for c in at.code)
    wrong = "123456" if _code(secret) != "123456" else "654321"
    at.text_input(key=login_module.CODE_KEY).input(wrong)
    at.button[0].click().run()
    assert any("does not match" in e.value for e in at.error)
    at.text_input(key=login_module.CODE_KEY).input(_code(secret))
    at.button[0].click().run()
    codes = at.session_state[login_module.PENDING_KEY]["codes"]
    assert len(codes) == 10 and at.session_state["authentication_status"] is not True
    at.button(key="console_codes_done").click().run()
    assert at.session_state["authentication_status"] is True
    assert [t.value for t in at.title] == ["Overview"]
    assert [e.params for e in _events(rt, action="auth.totp_enrolled")] == [
        {"recovery_codes": 10, "via": "console"}]
    assert secret not in repr([e.params for e in _events(rt)])

    # Next login: password, then a code; a wrong code is audited and counts as a failure.
    again = new_app().run()
    login(again, "admin", DEMO_PASSWORDS["admin"])
    assert any(s.value == "Second factor" for s in again.subheader)
    again.text_input(key=login_module.CODE_KEY).input("000000")
    again.button[0].click().run()
    assert any("Wrong code" in e.value for e in again.error)
    assert _events(rt, action="auth.totp_failed")[-1].actor_username == "admin"
    # A recovery code works once.
    again.text_input(key=login_module.CODE_KEY).input(codes[0])
    again.button[0].click().run()
    assert again.session_state["authentication_status"] is True
    assert _events(rt, action="auth.recovery_code_used")[-1].params == {"codes_left": 9}
    third = new_app().run()
    login(third, "admin", DEMO_PASSWORDS["admin"])
    third.text_input(key=login_module.CODE_KEY).input(codes[0])
    third.button[0].click().run()
    assert third.session_state["authentication_status"] is not True
    assert len(_events(rt, action="auth.login")) == 2


@pytest.mark.usefixtures("live_env")
def test_live_mode_makes_finance_enrol_before_any_page(monkeypatch):
    monkeypatch.delenv("CONSOLE_TOTP_REQUIRED_ROLES")  # the default: admin and finance
    st.cache_resource.clear()
    at = new_app().run()
    login(at, "alice", "alice-password-1")  # support + finance
    assert not at.exception
    assert at.session_state["authentication_status"] is not True
    assert any(s.value == "Set up a second factor" for s in at.subheader)
    assert not at.sidebar.button  # no navigation, no page
    at.button(key="console_code_cancel").click().run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]


def test_totp_enrol_from_the_command_line_then_log_in(console_env, monkeypatch):
    rt = _runtime(monkeypatch)
    code, out = _users_cli("--file", str(rt.auth_file), "totp-enroll", "support")
    assert code == 0, out
    uri = next(line for line in out.splitlines() if line.startswith("otpauth://"))
    secret = pyotp.parse_uri(uri).secret
    assert "█" in out or "QR" in out
    at = new_app().run()
    login(at, "support", DEMO_PASSWORDS["support"])
    assert at.session_state["authentication_status"] is not True
    at.text_input(key=login_module.CODE_KEY).input(_code(secret))
    at.button[0].click().run()
    assert at.session_state["authentication_status"] is True


def test_my_account_sets_up_a_second_factor(console_env, monkeypatch):
    rt = _runtime(monkeypatch)
    at = _logged_in("viewer")
    at.switch_page(page_path("pages/my_account.py")).run()
    assert not at.exception
    at.button(key="account_totp_start").click().run()
    secret = at.session_state["account_totp_secret"]
    at.text_input(key="account_new_code").input(_code(secret))
    at.button[0].click().run()
    assert not at.exception
    assert rt.auth.totp.is_enrolled("viewer")
    assert any(len(c.value.splitlines()) == 10 for c in at.code)
    assert _events(rt, action="auth.totp_enrolled")[-1].target_id == "viewer"
    at.run()  # the next run: the state and the session's facts
    said = [m.value for m in at.markdown] + [t.value for t in at.text]
    assert "Set up. Recovery codes left: 10." in said
    assert any(m.startswith("**Logged in at \\(UTC\\):**") for m in said), said


def test_settings_parse_the_new_options(tmp_path):
    from services.settings import ConfigError, load_settings

    base = {"CONSOLE_SECRETS_FILE": str(tmp_path / "none.toml")}
    s = load_settings(base)
    assert (s.idle_timeout, s.session_lifetime) == (1200, 28800)
    assert s.totp_roles == frozenset()  # sandbox mode
    live = load_settings({**base, "KRYPTOS_CLIENT_ID": "c", "KRYPTOS_CLIENT_SECRET": "s"})
    assert live.totp_roles == {"admin", "finance"}
    none = load_settings({**base, "KRYPTOS_CLIENT_ID": "c", "KRYPTOS_CLIENT_SECRET": "s",
                          "CONSOLE_TOTP_REQUIRED_ROLES": "none"})
    assert none.totp_roles == frozenset()
    with pytest.raises(ConfigError):
        load_settings({**base, "CONSOLE_TOTP_REQUIRED_ROLES": "root"})
    with pytest.raises(ConfigError):
        load_settings({**base, "CONSOLE_IDLE_TIMEOUT": "0"})
    assert load_settings({**base, "CONSOLE_LOGIN_MAX_FAILURES": "3"}).login_max_failures == 3

