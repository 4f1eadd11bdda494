"""The Audit log page shows the command-line tools' events: the `cli:<OS user>` actor, the
`user.*` and `vault.*` actions (the free-text action filter takes their prefixes), the user
as target, and the roles before and after in the event details."""

from __future__ import annotations

import io
import json

from dashboard.users import main as users_cli

PAGE = "pages/audit_log.py"


def test_users_cli_events_on_the_audit_page(make_app, runtime, tmp_path, monkeypatch):
    monkeypatch.setenv("LOGNAME", "opscarol")
    monkeypatch.setenv("USER", "opscarol")
    users_file = tmp_path / "operator-users.yaml"  # the console's own users are not touched
    err = io.StringIO()
    for argv, stdin in ((["add", "zed", "--role", "viewer", "--password-stdin"],
                         "zed-password-1\n"),
                        (["set-roles", "zed", "--role", "admin"], "")):
        code = users_cli(["--file", str(users_file), *argv], stdin=io.StringIO(stdin),
                         stdout=io.StringIO(), stderr=err)
        assert code == 0, err.getvalue()

    at = make_app("admin", page=PAGE)
    at.text_input(key="audit_action").input("user.*").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["action"]) == ["user.set_roles", "user.set_roles", "user.add",
                                     "user.add"]  # newest first
    assert list(table["outcome"]) == ["succeeded", "requested", "succeeded", "requested"]
    assert set(table["actor"]) == {"cli:opscarol"} and set(table["roles"]) == {"cli"}
    assert set(table["target"]) == {"user zed"}

    newest = int(table["seq"].iloc[0])
    at.selectbox(key="audit_detail_seq").select(newest).run()
    details = json.loads(at.json[0].value)
    assert (details["before"], details["after"]) == ({"roles": ["viewer"]},
                                                    {"roles": ["admin"], "sessions_ended": 0})
    at.selectbox(key="audit_detail_seq").select(newest - 1).run()  # its `requested` event
    assert json.loads(at.json[0].value)["params"]["roles"] == ["admin"]

    at.text_input(key="audit_action").input("").run()
    at.text_input(key="audit_actor").input("cli:opscarol").run()
    assert len(at.dataframe[0].value) == 4
    at.text_input(key="audit_actor").input("").run()
    at.text_input(key="audit_action").input("vault.*").run()
    assert any("No event matches" in i.value for i in at.info)
