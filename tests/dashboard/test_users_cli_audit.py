"""`python -m dashboard.users add | set-roles | remove` write audit events as `cli:<OS user>`
to the console's audit log, never a password or hash, and change nothing when the audit log
cannot be written (exit 2)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dashboard import users as users_mod
from dashboard.users import add_user, load_users, main
from services.store import AuditFilter, AuditLog, open_database

PASSWORD = "correct-horse-battery"
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/x"
UNREACHABLE_WITH_PASSWORD = "postgresql+psycopg://nobody:pg-Pass-w0rd-xyz@127.0.0.1:1/x"


def run(argv, stdin: str = ""):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The console's settings pointed at tmp_path (default SQLite database and anchor file
    under it), and an operator called `opsalice` at the shell."""
    data = tmp_path / "data"
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(data))
    for name in ("DATABASE_URL", "CONSOLE_AUDIT_ANCHOR_FILE", "CONSOLE_AUTH_FILE",
                 "KRYPTOS_CLIENT_ID", "KRYPTOS_CLIENT_SECRET", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "opsalice")
    monkeypatch.setenv("USER", "opsalice")
    return data


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "users.yaml"


def events(data_dir: Path, **filters) -> list:
    db = open_database(f"sqlite:///{data_dir / 'console.db'}")
    try:
        return list(AuditLog(db).iter_events(AuditFilter(**filters)))
    finally:
        db.dispose()


def exported(data_dir: Path) -> str:
    db = open_database(f"sqlite:///{data_dir / 'console.db'}")
    try:
        out = io.StringIO()
        AuditLog(db).export_jsonl(None, out)
        return out.getvalue()
    finally:
        db.dispose()


def pairs(evs: list) -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in evs]


def test_add_set_roles_remove_write_requested_then_succeeded(data_dir, path):
    assert run(["--file", str(path), "add", "alice", "--role", "support", "--name", "Alice A",
                "--email", "alice@example.com", "--password-stdin"], PASSWORD + "\n")[0] == 0
    password_hash = load_users(path)["alice"].password_hash
    assert run(["--file", str(path), "set-roles", "alice", "--role", "finance",
                "--role", "admin"])[0] == 0
    assert run(["--file", str(path), "list"])[0] == 0  # a read: not audited
    add_user(path, "root", "root-password", ["admin"], rounds=4)  # alice is not the last admin
    assert run(["--file", str(path), "remove", "alice"])[0] == 0

    evs = events(data_dir)
    assert pairs(evs) == [
        ("user.add", "requested"), ("user.add", "succeeded"),
        ("user.set_roles", "requested"), ("user.set_roles", "succeeded"),
        ("user.remove", "requested"), ("user.remove", "succeeded"),
    ]
    for e in evs:
        assert e.actor_username == "cli:opsalice" and e.actor_roles == ("cli",)
        assert (e.target_type, e.target_id) == ("user", "alice")
        assert e.error_code is None
    # Each requested/succeeded pair shares a correlation id; pairs differ.
    cids = [e.correlation_id for e in evs]
    assert cids[0] == cids[1] and cids[2] == cids[3] and cids[4] == cids[5]
    assert len(set(cids)) == 3

    add_req, add_ok, set_req, set_ok, rm_req, rm_ok = evs
    assert add_req.params["roles"] == ["support"] and add_req.params["host"]
    assert (add_ok.before, add_ok.after) == (None, {"roles": ["support"]})
    assert set_req.params["roles"] == ["finance", "admin"]
    assert set_ok.before == {"roles": ["support"]}
    assert set_ok.after == {"roles": ["finance", "admin"], "sessions_ended": 0}
    assert rm_req.params == {"host": add_req.params["host"]}
    assert (rm_ok.before, rm_ok.after) == ({"roles": ["finance", "admin"]},
                                           {"sessions_ended": 0})

    text = exported(data_dir)
    assert PASSWORD not in text and password_hash not in text
    assert "$2b$" not in text and password_hash[7:29] not in text  # nor the salt


def test_failed_changes_write_requested_then_failed(data_dir, path):
    add_user(path, "dave", "dave-password", ["viewer"], rounds=4)
    before = path.read_bytes()

    code, _, err = run(["--file", str(path), "set-roles", "erin", "--role", "admin"])
    assert code == 1 and "No user 'erin'" in err
    code, _, err = run(["--file", str(path), "remove", "erin"])
    assert code == 1 and "No user 'erin'" in err
    code, _, err = run(["--file", str(path), "add", "dave", "--role", "admin",
                        "--password-stdin"], "another-password\n")
    assert code == 1 and "already exists" in err
    assert path.read_bytes() == before

    evs = events(data_dir)
    assert pairs(evs) == [
        ("user.set_roles", "requested"), ("user.set_roles", "failed"),
        ("user.remove", "requested"), ("user.remove", "failed"),
        ("user.add", "requested"), ("user.add", "failed"),
    ]
    assert [e.error_code for e in evs[1::2]] == ["USER_NOT_FOUND", "USER_NOT_FOUND",
                                                 "USER_EXISTS"]
    assert "No user 'erin'" in evs[1].error_message
    assert [e.target_id for e in evs] == ["erin"] * 4 + ["dave"] * 2
    assert evs[0].correlation_id == evs[1].correlation_id
    assert evs[1].before is None and evs[1].after is None
    assert evs[4].params["roles"] == ["admin"]
    assert all(e.actor_username == "cli:opsalice" for e in evs)
    text = exported(data_dir)
    assert "another-password" not in text and "$2b$" not in text


def test_refused_input_is_not_audited(data_dir, path, monkeypatch):
    """As in the console, input refused before anything is attempted writes no event: a
    bad password, passwords that differ, a bad username."""
    assert run(["--file", str(path), "add", "carol", "--role", "viewer", "--password-stdin"],
               "short\n")[0] == 1
    answers = iter(["first-password", "other-password"])
    monkeypatch.setattr(users_mod.getpass, "getpass", lambda prompt: next(answers))
    assert run(["--file", str(path), "add", "carol", "--role", "viewer"])[0] == 1
    assert run(["--file", str(path), "set-roles", "Bad Name!", "--role", "viewer"])[0] == 1
    assert not path.exists()
    assert events(data_dir) == []


def test_the_actor_falls_back_to_the_uid(data_dir, path, monkeypatch):
    from services.store import cli_audit

    def no_login_name() -> str:
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr(cli_audit.getpass, "getuser", no_login_name)
    assert run(["--file", str(path), "add", "frank", "--role", "viewer", "--password-stdin"],
               "frank-password\n")[0] == 0
    assert {e.actor_username for e in events(data_dir)} == {f"cli:uid-{os.getuid()}"}


@pytest.mark.parametrize("url", [UNREACHABLE, UNREACHABLE_WITH_PASSWORD, "not a database url",
                                 "postgresql+psycopg://nobody:pg-Pass-w0rd-xyz@127.0.0.1:abc/x"])
def test_unwritable_audit_log_changes_nothing(data_dir, path, monkeypatch, url):
    add_user(path, "grace", "grace-password", ["viewer"], rounds=4)
    before = path.read_bytes()
    monkeypatch.setenv("DATABASE_URL", url)

    def no_prompt(prompt: str) -> str:
        raise AssertionError("the password must not be asked for when nothing can be done")

    monkeypatch.setattr(users_mod.getpass, "getpass", no_prompt)
    for argv in (["add", "henry", "--role", "admin"],
                 ["add", "henry", "--role", "admin", "--password-stdin"],
                 ["set-roles", "grace", "--role", "admin"],
                 ["remove", "grace"]):
        code, out, err = run(["--file", str(path), *argv], "henry-password\n")
        assert code == 2, (argv, err)
        assert out == ""
        assert err.startswith("error: The audit log cannot be opened")
        assert "nothing was changed" in err
        assert "pg-Pass-w0rd-xyz" not in err and "Traceback" not in err
        assert path.read_bytes() == before
    assert yaml.safe_load(before)["credentials"]["usernames"]["grace"]["roles"] == ["viewer"]
    assert not (data_dir / "console.db").exists()


def test_module_entry_point_refuses_without_a_traceback(data_dir, path):
    env = {**os.environ, "DATABASE_URL": UNREACHABLE_WITH_PASSWORD}
    proc = subprocess.run(
        [sys.executable, "-m", "dashboard.users", "--file", str(path), "add", "ivan",
         "--role", "admin", "--password-stdin"],
        input="ivan-password\n", capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 2
    assert "audit log cannot be opened" in proc.stderr and "Connection refused" in proc.stderr
    assert "Traceback" not in proc.stderr and "pg-Pass-w0rd-xyz" not in proc.stderr
    assert not path.exists()

    env = {**os.environ}  # the default database under CONSOLE_DATA_DIR
    proc = subprocess.run(
        [sys.executable, "-m", "dashboard.users", "--file", str(path), "add", "ivan",
         "--role", "admin", "--password-stdin"],
        input="ivan-password\n", capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert pairs(events(data_dir)) == [("user.add", "requested"), ("user.add", "succeeded")]
    # The process flushed the anchor file on its way out (the head of the chain it wrote).
    anchor = (data_dir / "audit-anchor.json").read_text()
    assert f'"seq":{events(data_dir)[-1].seq}' in anchor
