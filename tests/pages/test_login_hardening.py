"""The login against an attacker (AppTest, through the real form): the address a failure
counts against behind trusted proxies, a lock that a made-up X-Forwarded-For cannot get
round, the failure floor, the rehash to the current bcrypt cost, the `Secure` cookie over
https, one form of a username.

Streamlit takes the client's headers and address from the WebSocket handshake; AppTest has
no handshake, so `client_context` below stands in for it (the browser tests in
tests/e2e/test_trust.py send real headers)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pytest
import streamlit as st
import yaml

from dashboard import login as login_module
from dashboard.runtime import get_runtime
from services.operations.login_policy import FailureFloor
from services.operations.users_file import hash_cost, load_users
from services.store import AuditFilter
from tests.pages.conftest import DEMO_PASSWORDS, login, new_app, page_path


def _runtime(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    rt = get_runtime()
    assert rt.ok, rt.problems
    return rt


@dataclass
class _Handshake:
    """What Streamlit keeps of a browser's WebSocket handshake (`ClientContext`)."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    remote_ip: str | None = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def client_context(monkeypatch):
    """`set(headers, remote_ip)`: the handshake of the AppTest's next runs."""
    import streamlit.runtime.context as context

    shake = _Handshake()
    monkeypatch.setattr(context, "_get_client_context", lambda: shake)

    def set_(headers: list[tuple[str, str]], remote_ip: str | None = "127.0.0.1") -> None:
        shake.headers, shake.remote_ip = headers, remote_ip

    return set_


def _is_logged_in(at) -> bool:
    return at.session_state["authentication_status"] is True


# --- the address, and a lock that holds (19.2) ------------------------------------------------


NGINX = "10.0.0.5"  # the address nginx appends: the client's real one


def test_a_locked_account_stays_locked_with_a_made_up_forwarded_for(console_env, monkeypatch,
                                                                     client_context):
    rt = _runtime(monkeypatch, CONSOLE_TRUSTED_PROXIES="1")
    attacker = new_app().run()
    client_context([("X-Forwarded-For", f"198.51.100.1, {NGINX}")])
    for _ in range(rt.throttle.max_failures):
        login(attacker, "finance", "wrong-password")
    assert any("locked" in e.value for e in attacker.error)
    [lock] = rt.throttle.locks()
    assert (lock.username, lock.client_address) == ("finance", NGINX)  # never the left entry

    # The review's attack: the right password with a made-up address in front.
    for made_up in ("203.0.113.77", "203.0.113.78, 192.0.2.1"):
        client_context([("X-Forwarded-For", f"{made_up}, {NGINX}")])
        login(attacker, "finance", DEMO_PASSWORDS["finance"])
        assert not _is_logged_in(attacker)
        assert any("Too many failed attempts" in e.value for e in attacker.error)
    # Nor from another real address: the lock of 5 holds for the username.
    client_context([("X-Forwarded-For", "192.0.2.200")])
    other = new_app().run()
    login(other, "finance", DEMO_PASSWORDS["finance"])
    assert not _is_logged_in(other)


def test_the_address_counts_one_address_for_every_username(console_env, monkeypatch,
                                                          client_context):
    rt = _runtime(monkeypatch, CONSOLE_TRUSTED_PROXIES="1", CONSOLE_LOGIN_MAX_FAILURES_WIDE="3")
    at = new_app().run()
    for i, name in enumerate(("viewer", "support", "no-such-user")):
        client_context([("X-Forwarded-For", f"198.51.100.{i}, {NGINX}")])
        login(at, name, "wrong-password")
    client_context([("X-Forwarded-For", f"198.51.100.9, {NGINX}")])
    login(at, "admin", DEMO_PASSWORDS["admin"])  # a user with no failure, same real address
    assert not _is_logged_in(at)
    assert [(lk.scope, lk.key) for lk in rt.throttle.locks() if lk.scope == "address"] == [
        ("address", NGINX)]
    client_context([("X-Forwarded-For", "192.0.2.7")])  # another client
    fresh = new_app().run()
    login(fresh, "admin", DEMO_PASSWORDS["admin"])
    assert _is_logged_in(fresh)


def test_without_trusted_proxies_the_header_is_ignored(console_env, monkeypatch,
                                                       client_context):
    rt = _runtime(monkeypatch, CONSOLE_LOGIN_MAX_FAILURES_WIDE="1")
    at = new_app().run()
    client_context([("X-Forwarded-For", "198.51.100.1")], remote_ip="192.0.2.50")
    login(at, "viewer", "wrong-password")
    assert [(lk.scope, lk.key) for lk in rt.throttle.locks()] == [("address", "192.0.2.50")]
    # From localhost (no address), the failure counts for the username only.
    client_context([("X-Forwarded-For", "198.51.100.2")], remote_ip="127.0.0.1")
    login(at, "support", "wrong-password")
    assert [(lk.scope, lk.key) for lk in rt.throttle.locks()] == [("address", "192.0.2.50")]


# --- time of a failure, rehash (19.3) ---------------------------------------------------------


class _FakeTime:
    """A clock that moves only when slept on, plus a little per read (the work)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        self.now += 0.01
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("username, password", [
    ("no-such-user", "wrong-password-x"),  # unknown
    ("viewer", "wrong-password-x"),  # a wrong password
    ("viewer", ""),  # nothing typed
])
def test_every_failed_login_ends_at_the_floor(console_env, monkeypatch, username, password):
    rt = _runtime(monkeypatch)
    fake = _FakeTime()
    floor = FailureFloor(2.5, clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    assert login_module.attempt_login(rt, username, password, floor=floor) is not None
    assert len(fake.slept) == 1 and fake.now - start == pytest.approx(2.5, abs=0.011)


def test_a_locked_username_ends_at_the_floor_too_and_a_success_does_not_wait(
        console_env, monkeypatch):
    rt = _runtime(monkeypatch)
    for _ in range(rt.throttle.max_failures):
        login_module.attempt_login(rt, "support", "wrong-password-x")
    fake = _FakeTime()
    assert "Too many" in login_module.attempt_login(
        rt, "support", DEMO_PASSWORDS["support"],
        floor=FailureFloor(2.5, clock=fake.clock, sleep=fake.sleep))
    assert len(fake.slept) == 1
    ok = _FakeTime()
    at = new_app().run()
    monkeypatch.setattr(login_module, "failure_floor",
                        lambda _rt: FailureFloor(2.5, clock=ok.clock, sleep=ok.sleep))
    login(at, "viewer", DEMO_PASSWORDS["viewer"])
    assert _is_logged_in(at) and ok.slept == []


def test_the_floor_comes_from_the_settings(console_env, monkeypatch):
    monkeypatch.delenv("CONSOLE_LOGIN_FAILURE_FLOOR")
    rt = _runtime(monkeypatch)
    assert login_module.failure_floor(rt).seconds == 1.5  # the default
    rt = _runtime(monkeypatch, CONSOLE_LOGIN_FAILURE_FLOOR="2.25")
    assert login_module.failure_floor(rt).seconds == 2.25


def test_a_login_rehashes_a_cheaper_hash_keeping_the_file_and_other_sessions(
        console_env, monkeypatch):
    rt = _runtime(monkeypatch, CONSOLE_PASSWORD_ROUNDS="11")
    path = rt.auth_file
    assert hash_cost(load_users(path)["support"].password_hash) == 10
    other_browser = new_app().run()
    login(other_browser, "support", DEMO_PASSWORDS["support"])  # rehashes
    assert _is_logged_in(other_browser)
    data = yaml.safe_load(path.read_text())
    data["cookie"] = {"name": "kept", "expiry_days": 1}  # streamlit-authenticator's keys
    data["credentials"]["usernames"]["viewer"]["first_name"] = "Vera"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    os.chmod(path, 0o640)
    first = load_users(path)["viewer"].password_hash
    assert hash_cost(first) == 10

    wrong = new_app().run()
    login(wrong, "viewer", "wrong-password")  # a failure changes nothing
    assert load_users(path)["viewer"].password_hash == first
    viewer_a = new_app().run()
    login(viewer_a, "viewer", DEMO_PASSWORDS["viewer"])
    assert _is_logged_in(viewer_a)
    after = yaml.safe_load(path.read_text())
    new_hash = after["credentials"]["usernames"]["viewer"]["password"]
    assert hash_cost(new_hash) == 11 and new_hash != first
    assert after["cookie"] == {"name": "kept", "expiry_days": 1}
    assert after["credentials"]["usernames"]["viewer"]["first_name"] == "Vera"
    assert list(after["credentials"]["usernames"]) == list(data["credentials"]["usernames"])
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert not list(path.parent.glob(".users-*"))  # no temporary file left

    # The same password still logs in (once more, without a rehash); the session opened
    # before the rehash and the other user's stay open.
    viewer_b = new_app().run()
    login(viewer_b, "viewer", DEMO_PASSWORDS["viewer"])
    assert _is_logged_in(viewer_b)
    assert yaml.safe_load(path.read_text())["credentials"]["usernames"]["viewer"][
        "password"] == new_hash
    for at in (viewer_a, other_browser):
        at.run()
        assert _is_logged_in(at)
        assert not at.info or all("password was changed" not in i.value for i in at.info)
    assert len(rt.auth.sessions.open_sessions("viewer")) == 2


# --- the Secure cookie (19.7) -----------------------------------------------------------------


def _cookie_options(at) -> dict | None:
    """The attributes the login run's cookie script gives the cookie (what the browser is
    told)."""
    def walk(node):
        proto = getattr(node, "proto", None)
        body = getattr(proto, "body", "") if proto is not None else ""
        if isinstance(body, str) and "document.cookie" in body:
            written = json.loads(body.split("document.cookie = ", 1)[1].rsplit(";", 1)[0])
            attrs = [a.strip() for a in written.split(";")]
            return {"value": attrs[0].split("=", 1)[1], "secure": "Secure" in attrs,
                    "attrs": attrs}
        children = getattr(node, "children", None)
        for child in (children.values() if isinstance(children, dict) else ()):
            found = walk(child)
            if found is not None:
                return found
        return None

    return walk(at._tree)  # noqa: SLF001 - AppTest has no accessor for st.html


def _login_with(url: str | None, monkeypatch, client_context, proto: str | None = None,
                proxies: str = "0") -> dict:
    _runtime(monkeypatch, CONSOLE_TRUSTED_PROXIES=proxies)
    client_context([("X-Forwarded-Proto", proto)] if proto else [])
    at = new_app()
    if url:
        at.context = {"url": url}
    at.run()
    login(at, "viewer", DEMO_PASSWORDS["viewer"])
    assert _is_logged_in(at)
    options = _cookie_options(at)
    assert options is not None
    return options


def test_the_cookie_is_secure_when_the_page_is_https(console_env, monkeypatch, client_context):
    assert _login_with("https://console.internal.example/", monkeypatch,
                       client_context)["secure"] is True
    assert _login_with("http://127.0.0.1:8501/", monkeypatch, client_context)["secure"] is False


def test_the_cookie_is_secure_behind_a_trusted_tls_proxy_only(console_env, monkeypatch,
                                                             client_context):
    assert _login_with("http://127.0.0.1:8501/", monkeypatch, client_context, proto="https",
                       proxies="1")["secure"] is True
    # Without trusted proxies the header is anyone's: not used.
    assert _login_with("http://127.0.0.1:8501/", monkeypatch, client_context,
                       proto="https")["secure"] is False
    assert _login_with(None, monkeypatch, client_context, proto="http",
                       proxies="1")["secure"] is False


# --- one form of a username (18.2) ------------------------------------------------------------


FULL_WIDTH_SUPPORT = "\uff33\uff35\uff30\uff30\uff2f\uff32\uff34"


@pytest.mark.parametrize("typed", ["SUPPORT", " Support ", FULL_WIDTH_SUPPORT])
def test_any_case_or_width_logs_in_as_the_one_user(console_env, monkeypatch, typed):
    rt = _runtime(monkeypatch)
    at = new_app().run()
    login(at, typed, DEMO_PASSWORDS["support"])
    assert _is_logged_in(at) and at.session_state["username"] == "support"
    events = rt.ops.ctx.audit_log.query(AuditFilter(action="auth.login")).events
    assert [e.actor_username for e in events] == ["support"]
    at.switch_page(page_path("pages/my_account.py")).run()
    assert not at.exception


def test_the_cookie_script_writes_a_strict_cookie_for_the_whole_site(
        console_env, monkeypatch, client_context):
    options = _login_with("http://127.0.0.1:8501/", monkeypatch, client_context)
    assert options["value"].count(".") == 2  # the signed session token
    assert "Path=/" in options["attrs"] and "SameSite=Strict" in options["attrs"]
    assert any(a.startswith("Expires=") and a.endswith(" GMT") for a in options["attrs"])


def test_the_cookie_script_refuses_text_a_cookie_cannot_hold() -> None:
    from datetime import UTC, datetime

    from dashboard.session_cookie import cookie_script

    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert "kc=a.b-c_d" in cookie_script("kc", "a.b-c_d", when, secure=False)
    for name, value in (("kc", 'x"; alert(1); "'), ("kc", "a</script>"), ("k c", "v"),
                        ("kc", "a;Domain=evil")):
        with pytest.raises(ValueError):
            cookie_script(name, value, when, secure=False)
