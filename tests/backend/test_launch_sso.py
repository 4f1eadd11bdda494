"""`bin/console` in sandbox mode starts the local identity provider and points the console's
single sign-on at it (backend/launch.py), as real processes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import requests

from backend.launch import start_sandbox_idp, stop
from dashboard.serve import auth_args
from tests.backend.helpers import launcher_env

pytestmark = pytest.mark.slow


def test_sandbox_mode_starts_a_provider_and_configures_the_console(tmp_path: Path) -> None:
    env = launcher_env(tmp_path)
    child = start_sandbox_idp(env)
    assert child is not None
    try:
        issuer = env["CONSOLE_SSO_ISSUER"]
        meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=5).json()
        assert meta["issuer"] == issuer
        assert env["CONSOLE_SSO_ROLE_MAP"].startswith("kryptos-viewers=viewer")
        args = auth_args(env)
        assert args[0] == "--secrets.files"
        auth = tomllib.loads(Path(args[1]).read_text(encoding="utf-8"))["auth"]
        assert auth["server_metadata_url"] == issuer + "/.well-known/openid-configuration"
        assert auth["client_id"] == env["CONSOLE_SSO_CLIENT_ID"]
        assert auth["redirect_uri"] == "http://localhost:{port}/oauth2callback"
    finally:
        stop([child])
    assert child.poll() is not None


def test_a_configured_provider_is_used_instead(tmp_path: Path) -> None:
    env = launcher_env(tmp_path)
    env.update(CONSOLE_SSO_ISSUER="https://idp.example", CONSOLE_SSO_CLIENT_ID="c",
               CONSOLE_SSO_CLIENT_SECRET="s", CONSOLE_SSO_ROLE_MAP="g=viewer")
    assert start_sandbox_idp(env) is None
    assert env["CONSOLE_SSO_ISSUER"] == "https://idp.example"
