"""The console's private data (AppTest): a console started on a new data folder, with people
logged in, leaves only files and folders of its own user; loose modes found at start are
logged and shown to those who look after the console."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import streamlit as st

from dashboard.runtime import get_runtime
from tests.pages.conftest import DEMO_PASSWORDS, login, new_app
from tests.services.test_private_files import assert_private, modes


def _logged_in(user: str):
    at = new_app().run()
    login(at, user, DEMO_PASSWORDS[user])
    assert not at.exception, at.exception
    assert at.session_state["authentication_status"] is True
    return at


def _banner(at) -> list[str]:
    return [w.value for w in at.warning if "private data" in w.value]


def test_a_new_console_and_its_logins_leave_only_private_files(
        console_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "new-console" / "data"
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(data))
    old = os.umask(0o022)  # a usual shell's umask: files 0644 unless the console says
    try:
        st.cache_resource.clear()
        rt = get_runtime()
        assert rt.ok, rt.problems
        assert rt.loose_modes == ()
        at = _logged_in("admin")
        _logged_in("viewer").run()
        rt.ops.ctx.audit_log.flush_anchor()
        found = modes(data)
        assert {"console.db", "console.db-wal", "console.db-shm", "cookie.key", "vault.key",
                "sandbox-users.yaml", "audit-anchor.json"} <= set(found), found
        assert_private(data)
        assert _banner(at) == []
    finally:
        os.umask(old)


def test_loose_modes_are_logged_and_shown_to_admins_only(
        console_env: Path, caplog: pytest.LogCaptureFixture) -> None:
    console_env.chmod(0o755)
    (console_env / "console.db").chmod(0o644)
    st.cache_resource.clear()
    with caplog.at_level(logging.WARNING, logger="services.private_files"):
        rt = get_runtime()
    assert rt.ok, rt.problems
    assert len(rt.loose_modes) == 2
    assert len([r for r in caplog.records if "chmod" in r.getMessage()]) == 2
    [banner] = _banner(_logged_in("admin"))
    assert f"chmod 700 {console_env}" in banner.replace("\\", "")
    assert f"chmod 600 {console_env / 'console.db'}" in banner.replace("\\", "")
    assert _banner(_logged_in("viewer")) == []
    assert _banner(_logged_in("support")) == []
