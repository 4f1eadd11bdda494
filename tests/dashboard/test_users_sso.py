"""Users marked `sso: true` in the users file: no password opens them, single sign-on adds
them and keeps their roles in step with the provider's groups, other changes keep the mark."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.operations.users_file import (
    UsersError,
    add_user,
    check_password,
    load_users,
    replace_roles,
    save_sso_user,
)


def entries(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["credentials"]["usernames"]


def test_single_sign_on_adds_an_entry_without_a_password(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    before, user = save_sso_user(path, "Sam.Support", ["support"], name="Sam Support",
                                 email="sam@corp.example")
    assert before is None
    assert (user.username, user.roles, user.sso, user.password_hash) == (
        "sam.support", ("support",), True, "")
    assert entries(path)["sam.support"] == {"name": "Sam Support", "email": "sam@corp.example",
                                            "sso": True, "roles": ["support"]}
    loaded = load_users(path)["sam.support"]
    assert loaded.sso and not check_password("", loaded.password_hash)
    assert not check_password("anything at all", loaded.password_hash)


def test_the_next_sign_in_sets_the_roles_the_groups_give(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    save_sso_user(path, "sam.support", ["support"])
    mtime = path.stat().st_mtime_ns
    same_before, same = save_sso_user(path, "sam.support", ["support"])
    assert same_before == same and path.stat().st_mtime_ns == mtime  # nothing rewritten
    before, after = save_sso_user(path, "sam.support", ["support", "finance"])
    assert before.roles == ("support",) and after.roles == ("support", "finance")
    assert after.sso
    # A role change by an administrator keeps the mark.
    _old, changed = replace_roles(path, "sam.support", ["viewer"])
    assert changed.sso and entries(path)["sam.support"]["sso"] is True


def test_a_password_account_is_not_turned_into_an_sso_one(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    add_user(path, "alice", "a-long-password", ["admin"], rounds=4)
    with pytest.raises(UsersError) as refused:
        save_sso_user(path, "alice", ["viewer"])
    assert refused.value.code == "LOCAL_ACCOUNT"
    assert load_users(path)["alice"].roles == ("admin",)


def test_an_entry_is_bound_to_the_provider_account_that_first_signed_in(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    _before, user = save_sso_user(path, "alice", ["viewer"], subject="https://idp.example 00u1")
    assert user.sso_subject == "https://idp.example 00u1"
    assert entries(path)["alice"]["sso_subject"] == "https://idp.example 00u1"
    # The same account signs in again with another group: its roles follow.
    _before, again = save_sso_user(path, "alice", ["finance"],
                                   subject="https://idp.example 00u1")
    assert again.roles == ("finance",)
    # Another account whose name maps to `alice` is refused; nothing changes.
    with pytest.raises(UsersError) as refused:
        save_sso_user(path, "alice", ["admin"], subject="https://idp.example 00u9")
    assert refused.value.code == "SUBJECT_MISMATCH"
    assert load_users(path)["alice"].roles == ("finance",)


def test_an_entry_added_by_an_admin_binds_at_its_first_sign_in(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    add_user(path, "bea", None, ["support"], sso=True)
    assert load_users(path)["bea"].sso_subject is None
    _before, bound = save_sso_user(path, "bea", ["support"], subject="https://idp.example b-1")
    assert bound.sso_subject == "https://idp.example b-1"
    assert load_users(path)["bea"].sso_subject == "https://idp.example b-1"
