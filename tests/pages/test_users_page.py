"""The Users page (admins): the list, add with a one-time password shown once or SSO only,
role changes, resets, ending sessions, unlock and remove; the rules of
services/operations/users.py (last admin, own admin role, a second admin for the admin role)
as an admin meets them, and the `user.*` audit events they leave."""

from __future__ import annotations

import yaml

from dashboard.runtime import get_runtime
from services.operations.users_file import add_user, load_users
from tests.pages.conftest import DEMO_PASSWORDS, login, new_app, page_path
from tests.pages.helpers import shown

PAGE = "pages/users.py"
ADD = "FormSubmitter:users_add_form-Add user"


def _users_table(at) -> dict[str, dict]:
    frame = at.dataframe[0].value
    return {row["user"]: row for row in frame.to_dict("records")}


def _add(at, username: str, roles: list[str], *, sso: bool = False, name: str = ""):
    at.text_input(key="users_add_username").input(username)
    at.text_input(key="users_add_name").input(name)
    at.multiselect(key="users_add_roles").set_value(roles)
    at.radio(key="users_add_sign_in").set_value("SSO only" if sso else "password")
    at.button(key=ADD).click().run()
    assert not at.exception, at.exception
    return at


def _everything_shown(at) -> str:
    parts = [e.value for kind in ("markdown", "text", "code", "success", "warning", "error",
                                  "caption") for e in getattr(at, kind)]
    parts += [str(at.dataframe[0].value.to_dict())] if len(at.dataframe) else []
    return "\n".join(str(p) for p in parts)


def _first_login(username: str, one_time: str, own: str):
    """Log in with a one-time password: the user must choose their own before any page."""
    at = login(new_app().run(), username, one_time)
    assert at.session_state["authentication_status"] is not True
    assert [s.value for s in at.subheader] == ["Choose your password"]
    at.text_input(key="login_new_password").input(own)
    at.text_input(key="login_new_password_again").input(own)
    at.button(key="FormSubmitter:console_new_password-Save and continue").click().run()
    assert not at.exception, at.exception
    return at


def _pick(at, username: str):
    at.selectbox(key="users_pick").select(username).run()
    assert not at.exception, at.exception
    return at


def test_only_admins_have_the_page(make_app, audit_events):
    admin = make_app("admin", PAGE)
    assert [t.value for t in admin.title] == ["Users"]
    support = make_app("support")
    support.switch_page(page_path(PAGE)).run()
    assert not support.exception
    assert [t.value for t in support.title] == ["Not available"]
    denied = audit_events(action="page.view", outcome="denied")
    assert [(e.actor_username, e.target_id) for e in denied] == [("support", "users")]


def test_the_list_shows_roles_sign_in_second_factor_logins_and_sessions(make_app, runtime):
    at = make_app("admin", PAGE)
    rows = _users_table(at)
    assert set(rows) == set(DEMO_PASSWORDS)
    assert rows["ops"]["roles"] == "support, finance"
    assert rows["admin"]["sign-in"] == "password" and rows["admin"]["second factor"] == "off"
    assert rows["admin"]["open sessions"] == 1 and rows["admin"]["last login (UTC)"]
    assert rows["viewer"]["open sessions"] == 0 and rows["viewer"]["last login (UTC)"] == ""
    shown = _everything_shown(at)
    assert "$2b$" not in shown and "password_hash" not in shown


def test_add_shows_a_one_time_password_once_and_it_logs_in(make_app, runtime, audit_events):
    at = _add(make_app("admin", PAGE), "nina", ["support"], name="Nina N")
    assert any("Added nina (support)" in shown(s.value) for s in at.success)
    assert any("One-time password of nina" in shown(w.value) for w in at.warning)
    password = at.code[0].value
    assert len(password) >= 16
    assert _users_table(at)["nina"]["sign-in"] == "password"

    at.run()  # the next run: the password is gone from the page
    assert not at.code and password not in _everything_shown(at)

    nina = _first_login("nina", password, "nina-own-password")
    assert nina.session_state["authentication_status"] is True
    # The one-time password worked once: now only her own does.
    assert login(new_app().run(), "nina", password).session_state[
        "authentication_status"] is not True
    assert login(new_app().run(), "nina", "nina-own-password").session_state[
        "authentication_status"] is True
    chosen = audit_events(action="user.passwd", outcome="succeeded")
    assert [(e.actor_username, e.after) for e in chosen] == [("nina", {"chosen_by_user": True})]

    added = audit_events(action="user.add")
    assert "nina-own-password" not in str([(e.params, e.after) for e in chosen])
    assert [(e.outcome, e.actor_username, e.target_id) for e in added] == [
        ("requested", "admin", "nina"), ("succeeded", "admin", "nina")]
    assert added[1].after == {"roles": ["support"]}
    assert password not in str([(e.params, e.before, e.after) for e in added])
    raw = runtime.auth_file.read_text()
    assert password not in raw and "Nina N" in raw


def test_add_sso_only_has_no_password(make_app, runtime, audit_events):
    at = _add(make_app("admin", PAGE), "olga", ["viewer"], sso=True)
    assert not at.code and any("Added olga (viewer)" in shown(s.value) for s in at.success)
    assert _users_table(at)["olga"]["sign-in"] == "SSO"
    entry = yaml.safe_load(runtime.auth_file.read_text())["credentials"]["usernames"]["olga"]
    assert entry["sso"] is True and "password" not in entry
    assert audit_events(action="user.add", outcome="succeeded")[-1].after == {
        "roles": ["viewer"], "sso": True}
    # Nobody logs in with a password as an SSO-only user, not even with an empty one.
    olga = login(new_app().run(), "olga", "")
    assert olga.session_state["authentication_status"] is not True


def test_a_role_change_applies_and_ends_the_users_sessions(make_app, audit_events):
    support = make_app("support")
    at = _pick(make_app("admin", PAGE), "support")
    at.multiselect(key="users_roles_support").set_value(["finance"])
    at.button(key="users_save_roles").click().run()
    assert not at.exception
    assert any("support now has roles: finance" in shown(s.value) for s in at.success)
    assert _users_table(at)["support"]["roles"] == "finance"
    assert _users_table(at)["support"]["open sessions"] == 0

    support.run()
    assert support.session_state["authentication_status"] is not True
    done = audit_events(action="user.set_roles", outcome="succeeded")[-1]
    assert (done.actor_username, done.target_id) == ("admin", "support")
    assert (done.before, done.after) == ({"roles": ["support"]},
                                         {"roles": ["finance"], "sessions_ended": 1})


def test_nobody_takes_their_own_admin_role_or_removes_themselves(make_app, runtime,
                                                                 audit_events):
    at = _pick(make_app("admin", PAGE), "admin")
    at.multiselect(key="users_roles_admin").set_value(["viewer"])
    at.button(key="users_save_roles").click().run()
    assert any("your own admin role" in shown(e.value) for e in at.error)
    assert load_users(runtime.auth_file)["admin"].roles == ("admin",)

    at.button(key="users_remove").click().run()
    at.button(key="users_confirm").click().run()
    assert any("cannot remove yourself" in shown(e.value) for e in at.error)
    assert "admin" in load_users(runtime.auth_file)
    failed = audit_events(outcome="failed")
    assert [(e.action, e.error_code) for e in failed] == [
        ("user.set_roles", "OWN_ADMIN_ROLE"), ("user.remove", "OWN_USER")]


def test_the_last_admin_stays(runtime, audit_events):
    """Through the use cases the page calls: an admin whose session outlived their own
    admin role (someone else's change) still cannot take the last admin's role or remove
    them."""
    import pytest

    from services.operations import Actor
    from services.operations.users_file import UsersError

    eve = Actor("eve", roles=frozenset({"admin"}))
    with pytest.raises(UsersError, match="admin is the last admin"):
        runtime.user_ops.set_roles(eve, "admin", ["viewer"])
    with pytest.raises(UsersError, match="admin is the last admin"):
        runtime.user_ops.remove(eve, "admin", confirmed=True)
    assert load_users(runtime.auth_file)["admin"].roles == ("admin",)
    assert [e.error_code for e in audit_events(outcome="failed")] == ["LAST_ADMIN"] * 2

    add_user(runtime.auth_file, "root", "root-password-1", ["admin"], rounds=4)
    runtime.user_ops.remove(eve, "admin", confirmed=True)
    assert "admin" not in load_users(runtime.auth_file)


def test_remove_asks_first_then_removes_and_ends_sessions(make_app, runtime, audit_events):
    viewer = make_app("viewer")
    at = _pick(make_app("admin", PAGE), "viewer")
    at.button(key="users_remove").click().run()
    assert any("Remove viewer?" in shown(w.value) for w in at.warning)
    assert "viewer" in load_users(runtime.auth_file)
    assert audit_events(action="user.remove") == []  # a question is not a change

    at.button(key="users_cancel").click().run()
    assert not any("Remove viewer?" in shown(w.value) for w in at.warning)
    at.button(key="users_remove").click().run()
    at.button(key="users_confirm").click().run()
    assert not at.exception
    assert any("Removed viewer." in shown(s.value) for s in at.success)
    assert "viewer" not in _users_table(at)
    assert "viewer" not in load_users(runtime.auth_file)
    viewer.run()
    assert viewer.session_state["authentication_status"] is not True
    done = audit_events(action="user.remove", outcome="succeeded")
    assert [(e.actor_username, e.before, e.after) for e in done] == [
        ("admin", {"roles": ["viewer"]}, {"sessions_ended": 1})]


def test_reset_password_gives_a_new_one_time_password(make_app, audit_events):
    at = _pick(make_app("admin", PAGE), "finance")
    at.button(key="users_reset_password").click().run()
    assert any("Reset the password of finance?" in shown(w.value) for w in at.warning)
    at.button(key="users_confirm").click().run()
    new_password = at.code[0].value
    old = login(new_app().run(), "finance", DEMO_PASSWORDS["finance"])
    assert old.session_state["authentication_status"] is not True
    # A one-time password too: a mismatch is refused, then finance chooses their own.
    new = login(new_app().run(), "finance", new_password)
    new.text_input(key="login_new_password").input("finance-own-1")
    new.text_input(key="login_new_password_again").input("finance-own-2")
    new.button(key="FormSubmitter:console_new_password-Save and continue").click().run()
    assert any("The two passwords differ" in e.value for e in new.error)
    assert new.session_state["authentication_status"] is not True
    new = _first_login("finance", new_password, "finance-own-1")
    assert new.session_state["authentication_status"] is True
    assert [(e.actor_username, e.outcome) for e in audit_events(action="user.passwd")] == [
        ("admin", "requested"), ("admin", "succeeded"),
        ("finance", "requested"), ("finance", "succeeded")]


def test_second_factor_reset_end_sessions_and_unlock(make_app, runtime, audit_events):
    from services.store.totp import new_secret

    ops_user = make_app("support")
    runtime.auth.totp.enroll("support", new_secret())  # set up once logged in
    for _ in range(runtime.throttle.max_failures):
        login(new_app().run(), "ops", "wrong-password")
    at = _pick(make_app("admin", PAGE), "support")
    assert _users_table(at)["support"]["second factor"] == "on"
    assert _users_table(at)["ops"]["locked until (UTC)"] != ""

    at.button(key="users_reset_second_factor").click().run()
    at.button(key="users_confirm").click().run()
    assert not runtime.auth.totp.is_enrolled("support")
    assert _users_table(at)["support"]["second factor"] == "off"
    ops_user.run()
    assert ops_user.session_state["authentication_status"] is not True

    again = make_app("support")
    at.button(key="users_end_sessions").click().run()
    assert any("End every session of support?" in shown(w.value) for w in at.warning)
    at.button(key="users_confirm").click().run()
    again.run()
    assert again.session_state["authentication_status"] is not True
    assert any("An administrator ended your session" in w.value
               for w in [*again.warning, *again.info, *again.error])

    _pick(at, "ops")
    at.button(key="users_unlock").click().run()
    assert any("Unlocked ops (1 lock(s)" in shown(s.value) for s in at.success)
    assert login(new_app().run(), "ops", DEMO_PASSWORDS["ops"]).session_state[
        "authentication_status"] is True
    assert [e.action for e in audit_events(outcome="succeeded") if e.action.startswith(
        "user.")] == ["user.totp_reset", "user.end_sessions", "user.unlock"]


def test_the_admin_role_can_need_a_second_admin(console_env, monkeypatch):
    from services.store import AuditFilter

    monkeypatch.setenv("CONSOLE_ADMIN_GRANT_SECOND_ADMIN", "true")  # before the runtime
    rt = get_runtime()
    assert rt.settings.admin_grant_second_admin
    add_user(rt.auth_file, "root", "root-password-1", ["admin"], rounds=4)
    admin = login(new_app().run(), "admin", DEMO_PASSWORDS["admin"])
    admin.switch_page(page_path(PAGE)).run()
    _pick(admin, "support")
    admin.multiselect(key="users_roles_support").set_value(["support", "admin"])
    admin.button(key="users_save_roles").click().run()
    assert any("waits for a second admin" in shown(s.value) for s in admin.success)
    assert load_users(rt.auth_file)["support"].roles == ("support",)
    assert _users_table(admin)["support"]["admin asked by"] == "admin"
    assert all(b.key != "users_grant_admin" for b in admin.button)  # not by the one who asked

    root = login(new_app().run(), "root", "root-password-1")
    root.switch_page(page_path(PAGE)).run()
    _pick(root, "support")
    root.button(key="users_grant_admin").click().run()
    assert not root.exception
    assert load_users(rt.auth_file)["support"].roles == ("support", "admin")
    assert _users_table(root)["support"]["admin asked by"] == ""
    granted = rt.ops.ctx.audit_log.query(AuditFilter(action="user.set_roles",
                                                     outcome="succeeded"), page=1).events[0]
    assert granted.actor_username == "root" and granted.after["requested_by"] == "admin"


def test_moving_to_single_sign_on_is_refused_where_it_is_not_configured(make_app,
                                                                          audit_events):
    at = _pick(make_app("admin", PAGE), "finance")
    at.button(key="users_to_sso").click().run()
    assert not at.exception, at.exception
    assert any("Single sign-on is not configured" in shown(e.value) for e in at.error)
    assert not at.warning  # no question asked for a change that cannot be made
    assert not load_users(get_runtime().auth_file)["finance"].sso
