"""streamlit-authenticator's config format, both ways, checked with the library itself
(0.4.2): a config it wrote loads as the console's users file (its bookkeeping ignored, its
other fields and sections kept when the console rewrites the file); the console's users file
loads in its `Authenticate` and its login form accepts the console's users; and
`users import-stauth` merges a team's config, hashes kept and roles checked, with a report."""

from __future__ import annotations

import textwrap
from pathlib import Path

import bcrypt
import pytest
import streamlit_authenticator as stauth
import yaml
from streamlit.testing.v1 import AppTest
from streamlit_authenticator.models.authentication_model import AuthenticationModel

from services.operations.users_file import add_user, check_password, load_users, set_roles
from tests.dashboard.test_users_cli_audit import data_dir, events, run  # noqa: F401 - fixture

COOKIE = {"name": "team_cookie", "key": "a-team-cookie-key-of-32-bytes-xyz", "expiry_days": 30}


def stauth_config(path: Path, users: dict[str, dict]) -> Path:
    """A config as streamlit-authenticator's README has it, passwords hashed by its `Hasher`;
    then one login through its own model, which writes its bookkeeping into the file."""
    credentials = {"usernames": {name: dict(entry) for name, entry in users.items()}}
    stauth.Hasher.hash_passwords(credentials)
    path.write_text(yaml.safe_dump({"cookie": COOKIE, "credentials": credentials,
                                    "pre-authorized": {"emails": ["new@example.com"]}}))
    model = AuthenticationModel(path=str(path))
    first = next(iter(users))
    assert model.login(first, users[first]["password"]) is True  # it rewrites the file
    return path


TEAM = {
    "jsmith": {"email": "jsmith@example.com", "first_name": "John", "last_name": "Smith",
               "password": "john-pass-123", "roles": ["admin"], "password_hint": "blue"},
    "rbriggs": {"email": "rbriggs@example.com", "name": "Rebecca Briggs",
                "password": "rebecca-pass-1", "roles": ["support", "finance"]},
}


def test_a_config_written_by_streamlit_authenticator_loads_as_the_users_file(tmp_path):
    path = stauth_config(tmp_path / "config.yaml", TEAM)
    raw = yaml.safe_load(path.read_text())
    assert raw["credentials"]["usernames"]["jsmith"]["logged_in"] is True  # its bookkeeping

    users = load_users(path)
    assert set(users) == {"jsmith", "rbriggs"}
    assert users["jsmith"].name == "John Smith" and users["rbriggs"].name == "Rebecca Briggs"
    assert users["jsmith"].email == "jsmith@example.com"
    assert users["jsmith"].roles == ("admin",)
    assert users["rbriggs"].roles == ("support", "finance")
    assert check_password("john-pass-123", users["jsmith"].password_hash)

    # A change by the console keeps what it does not manage: the cookie section, the
    # pre-authorized list, first/last names, the bookkeeping.
    set_roles(path, "rbriggs", ["viewer"])
    after = yaml.safe_load(path.read_text())
    assert after["cookie"] == COOKIE and after["pre-authorized"] == raw["pre-authorized"]
    john = after["credentials"]["usernames"]["jsmith"]
    assert (john["first_name"], john["last_name"], john["password_hint"]) == (
        "John", "Smith", "blue")
    assert after["credentials"]["usernames"]["rbriggs"]["roles"] == ["viewer"]
    # ... and streamlit-authenticator still logs its users in from the rewritten file.
    assert AuthenticationModel(path=str(path)).login("rbriggs", "rebecca-pass-1") is True


LOGIN_APP = textwrap.dedent('''
    import streamlit as st
    import streamlit_authenticator as stauth
    import yaml

    # As its README loads a config: the file's credentials, the cookie from elsewhere (the
    # console keeps its cookie key in the settings, not in the users file).
    with open({path!r}, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    authenticator = stauth.Authenticate(config["credentials"], "team_cookie",
                                        "a-team-cookie-key-of-32-bytes-xyz", 0,
                                        auto_hash=False)
    authenticator.login()
    if st.session_state.get("authentication_status"):
        st.write("welcome", st.session_state["name"], ",".join(st.session_state["roles"]))
''')


def _stauth_login(path: Path, username: str, password: str) -> AppTest:
    at = AppTest.from_string(LOGIN_APP.format(path=str(path)), default_timeout=30).run()
    assert not at.exception, at.exception
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_the_console_users_file_loads_in_streamlit_authenticator(tmp_path):
    path = tmp_path / "users.yaml"
    add_user(path, "alice", "alice-password-1", ["support", "finance"], name="Alice A",
             email="alice@example.com", rounds=4)
    add_user(path, "sam", None, ["viewer"], sso=True)  # SSO only: no password

    ok = _stauth_login(path, "alice", "alice-password-1")
    assert ok.session_state["authentication_status"] is True
    assert [m.value for m in ok.markdown] == ["welcome Alice A support,finance"]
    assert _stauth_login(path, "alice", "wrong-password").session_state[
        "authentication_status"] is False
    # An SSO-only user has its OAuth2 guests' shape (no `password`), which its login form
    # does not handle: 0.4.2 raises KeyError when such a name is typed (as for its own
    # guests). The file still loads, and the console's own form refuses them plainly.
    entries = yaml.safe_load(path.read_text())["credentials"]["usernames"]
    assert "password" not in entries["sam"] and entries["sam"]["sso"] is True


def test_import_stauth_merges_a_team_config_with_a_report(data_dir, tmp_path):  # noqa: F811
    team = dict(TEAM)
    team["kim"] = {"email": "kim@example.com", "first_name": "Kim", "last_name": "K",
                   "password": "kim-pass-12345", "roles": ["editor"]}
    team["lee"] = {"email": "lee@example.com", "name": "Lee", "password": "lee-pass-12345"}
    config = stauth_config(tmp_path / "config.yaml", team)
    raw = yaml.safe_load(config.read_text())
    # One of its OAuth2 guests (no password) and a plain-text password left unhashed.
    raw["credentials"]["usernames"]["guest@example.com"] = {
        "email": "guest@example.com", "first_name": "G", "last_name": "Uest",
        "logged_in": True, "roles": ["viewer"]}
    raw["credentials"]["usernames"]["pat"] = {"name": "Pat", "password": "plain-text-pw",
                                              "roles": ["viewer"]}
    config.write_text(yaml.safe_dump(raw))
    users_file = tmp_path / "users.yaml"
    add_user(users_file, "rbriggs", "console-own-pw1", ["viewer"], rounds=4)

    code, out, err = run(["--file", str(users_file), "import-stauth", str(config)])
    assert code == 0, err
    assert "Taken (1)" in out and "jsmith\tadmin" in out
    assert "Not taken (5)" in out
    lines = dict(line.strip().split("\t", 1) for line in out.splitlines()
                 if "\t" in line and not line.startswith("  jsmith"))
    assert "already a console user" in lines["rbriggs"]
    assert "unknown role(s) editor" in lines["kim"]
    assert "no role" in lines["lee"]
    assert "no password" in lines["guest@example.com"]
    assert "plain-text password" in lines["pat"]

    users = load_users(users_file)
    assert set(users) == {"jsmith", "rbriggs"}
    assert users["jsmith"].password_hash == raw["credentials"]["usernames"]["jsmith"][
        "password"]  # the hash as it was
    assert bcrypt.checkpw(b"john-pass-123", users["jsmith"].password_hash.encode())
    assert check_password("console-own-pw1", users["rbriggs"].password_hash)  # left alone

    evs = events(data_dir, action="user.import")
    assert [e.outcome for e in evs] == ["requested", "succeeded"]
    assert evs[1].after["taken"] == [{"username": "jsmith", "roles": ["admin"]}]
    assert {n["username"] for n in evs[1].after["not_taken"]} == {
        "rbriggs", "kim", "lee", "guest@example.com", "pat"}
    assert "$2b$" not in str([(e.params, e.after) for e in evs])


def test_import_stauth_refuses_what_is_not_a_config(data_dir, tmp_path):  # noqa: F811
    bad = tmp_path / "config.yaml"
    bad.write_text("cookie: {name: x}\n")
    code, _, err = run(["--file", str(tmp_path / "users.yaml"), "import-stauth", str(bad)])
    assert code == 1 and "no 'credentials.usernames' mapping" in err


@pytest.mark.parametrize("roles", [["admin"], ["viewer"]])
def test_roles_in_any_case_are_the_consoles(tmp_path, data_dir, roles):  # noqa: F811
    config = stauth_config(tmp_path / "config.yaml", {
        "max": {"email": "m@example.com", "name": "Max", "password": "max-pass-123",
                "roles": [r.upper() for r in roles]}})
    code, out, _ = run(["--file", str(tmp_path / "users.yaml"), "import-stauth", str(config)])
    assert code == 0 and load_users(tmp_path / "users.yaml")["max"].roles == tuple(roles)
