"""`python -m dashboard.users`: add, list, set-roles, remove; bcrypt hashes only."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import yaml

from dashboard import users as users_mod
from dashboard.users import UsersError, add_user, load_users, main


def run(argv, stdin: str = ""):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """add/set-roles/remove write to the settings' audit log: keep it in tmp_path, never in
    the repo's own data/ folder (subprocesses inherit this environment)."""
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(tmp_path / "data"))
    for name in ("DATABASE_URL", "CONSOLE_AUDIT_ANCHOR_FILE", "CONSOLE_AUTH_FILE",
                 "KRYPTOS_CLIENT_ID", "KRYPTOS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "users.yaml"


def test_add_list_set_roles_remove(path):
    code, out, _ = run(["--file", str(path), "add", "alice", "--role", "support",
                        "--name", "Alice A", "--password-stdin"], "correct-horse\n")
    assert code == 0 and "Added alice (support)" in out
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    raw = path.read_text()
    assert "correct-horse" not in raw
    entry = yaml.safe_load(raw)["credentials"]["usernames"]["alice"]
    assert bcrypt.checkpw(b"correct-horse", entry["password"].encode())
    assert entry["roles"] == ["support"] and entry["name"] == "Alice A"

    code, out, _ = run(["--file", str(path), "list"])
    assert code == 0 and out.strip() == "alice\tAlice A\tsupport"

    code, out, _ = run(["--file", str(path), "set-roles", "alice", "--role", "finance",
                        "--role", "admin"])
    assert code == 0 and load_users(path)["alice"].roles == ("finance", "admin")

    code, _, err = run(["--file", str(path), "remove", "alice"])
    assert code == 1 and "alice is the last admin" in err
    add_user(path, "root", "root-password", ["admin"], rounds=4)
    code, out, _ = run(["--file", str(path), "remove", "alice"])
    assert code == 0 and list(load_users(path)) == ["root"]


def test_password_asked_twice_must_match(path, monkeypatch):
    answers = iter(["first-password", "other-password"])
    monkeypatch.setattr(users_mod.getpass, "getpass", lambda prompt: next(answers))
    code, _, err = run(["--file", str(path), "add", "bob", "--role", "viewer"])
    assert code == 1 and "differ" in err and not path.exists()
    answers = iter(["same-password", "same-password"])
    monkeypatch.setattr(users_mod.getpass, "getpass", lambda prompt: next(answers))
    code, _, _ = run(["--file", str(path), "add", "bob", "--role", "viewer"])
    assert code == 0 and "bob" in load_users(path)


@pytest.mark.parametrize(
    "password, message",
    [("short", "at least 8"), ("x" * 73, "72 bytes"), ("é" * 37, "72 bytes"),
     (" padded-password", "spaces")],
)
def test_bad_passwords_are_refused(path, password, message):
    code, _, err = run(["--file", str(path), "add", "carol", "--role", "viewer",
                        "--password-stdin"], password + "\n")
    assert code == 1 and message in err and not path.exists()


def test_errors_for_duplicates_unknown_users_and_bad_names(path):
    add_user(path, "dave", "dave-password", ["viewer"], rounds=4)
    assert run(["--file", str(path), "add", "dave", "--role", "viewer", "--password-stdin"],
               "another-pass\n")[0] == 1
    assert "No user 'erin'" in run(["--file", str(path), "remove", "erin"])[2]
    assert "No user 'erin'" in run(["--file", str(path), "set-roles", "erin", "--role",
                                    "admin"])[2]
    assert run(["--file", str(path), "add", "Bad Name!", "--role", "viewer",
                "--password-stdin"], "good-password\n")[0] == 1
    with pytest.raises(SystemExit):  # argparse refuses unknown roles
        run(["--file", str(path), "add", "frank", "--role", "root", "--password-stdin"])


def test_usernames_are_lower_cased(path):
    add_user(path, "Grace", "grace-password", ["admin"], rounds=4)
    assert list(load_users(path)) == ["grace"]


def test_one_form_of_a_username_in_the_file_and_the_cli(path):
    code, out, err = run(["--file", str(path), "add", "\uff2bate", "--role", "viewer",
                          "--password-stdin"], "kate-password\n")  # full-width K
    assert code == 0, err
    assert list(load_users(path)) == ["kate"]
    assert "kate:" in path.read_text() and "\uff2b" not in path.read_text()
    assert run(["--file", str(path), "add", "KATE", "--role", "admin", "--password-stdin"],
               "kate-password\n")[0] == 1  # the same user


def test_a_file_with_one_name_in_two_cases_is_refused(path):
    hashed = bcrypt.hashpw(b"sam-password", bcrypt.gensalt(rounds=4)).decode()
    path.write_text(yaml.safe_dump({"credentials": {"usernames": {
        "Sam": {"password": hashed, "roles": ["admin"]},
        "sam": {"password": hashed, "roles": ["viewer"]}}}}))
    with pytest.raises(UsersError, match="both 'Sam' and 'sam'"):
        load_users(path)
    code, _, err = run(["--file", str(path), "list"])
    assert code == 1 and "'Sam' and 'sam'" in err


def test_rehash_replaces_only_the_hash_it_was_given(path):
    from services.operations.users_file import hash_cost, rehash_password

    add_user(path, "Lena", "lena-password", ["viewer"], rounds=4)
    old = load_users(path)["lena"].password_hash
    newer = bcrypt.hashpw(b"lena-password", bcrypt.gensalt(rounds=5)).decode()
    before = path.read_text()
    # The password was changed meanwhile (the file no longer holds `old`): left alone.
    assert rehash_password(path, "LENA", "$2b$04$" + "x" * 53, newer) is False
    assert path.read_text() == before
    assert rehash_password(path, "LENA", old, newer) is True
    assert hash_cost(load_users(path)["lena"].password_hash) == 5
    assert bcrypt.checkpw(b"lena-password", load_users(path)["lena"].password_hash.encode())
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_plain_text_password_in_file_is_rejected(path):
    path.write_text(yaml.safe_dump({"credentials": {"usernames": {"h": {
        "password": "plain", "roles": ["admin"]}}}}))
    with pytest.raises(UsersError, match="no bcrypt hash"):
        load_users(path)
    code, _, err = run(["--file", str(path), "list"])
    assert code == 1 and "bcrypt" in err


def test_module_entry_point_uses_the_settings_auth_file(tmp_path):
    auth = tmp_path / "from-env.yaml"
    env = {**os.environ, "CONSOLE_AUTH_FILE": str(auth),
           "CONSOLE_SECRETS_FILE": str(tmp_path / "none.toml")}
    proc = subprocess.run(
        [sys.executable, "-m", "dashboard.users", "add", "ivan", "--role", "support",
         "--password-stdin"],
        input="ivan-password\n", capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ivan" in load_users(auth)
    proc = subprocess.run([sys.executable, "-m", "dashboard.users", "list"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("ivan\t")
