"""The single sign-on settings (CONSOLE_SSO_*, CONSOLE_PASSWORD_LOGIN) and Streamlit's `[auth]`
table written from them (services/sso_config.py)."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from services.settings import ConfigError, load_settings
from services.sso_config import AUTH_FILE_NAME, cookie_secret, streamlit_args, write_auth_file

SSO = {"CONSOLE_SSO_ISSUER": "https://idp.example/realms/staff/",
       "CONSOLE_SSO_CLIENT_ID": "console", "CONSOLE_SSO_CLIENT_SECRET": "s3cret \"quoted\"",
       "CONSOLE_SSO_ROLE_MAP": "kryptos-support=support, kryptos-ops=support,kryptos-ops=FINANCE"}


def settings(tmp_path: Path, **env: str):
    return load_settings({"CONSOLE_DATA_DIR": str(tmp_path / "data"), **env},
                         secrets_path=tmp_path / "none.toml")


def test_without_settings_there_is_no_sso_and_passwords_work(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert not s.sso_enabled and s.password_login
    assert write_auth_file(s) is None and streamlit_args(s) == []


def test_the_sso_settings(tmp_path: Path) -> None:
    s = settings(tmp_path, **SSO, CONSOLE_SSO_CLAIM="roles", CONSOLE_PASSWORD_LOGIN="off")
    assert s.sso_enabled and not s.password_login
    assert s.effective_sso_metadata_url == (
        "https://idp.example/realms/staff/.well-known/openid-configuration")
    assert s.sso_role_map == (("kryptos-support", "support"), ("kryptos-ops", "support"),
                              ("kryptos-ops", "finance"))
    assert s.sso_claim == "roles" and s.sso_username_claim == "preferred_username"
    assert s.sso_redirect_uri == "http://localhost:{port}/oauth2callback"
    assert "s3cret" not in repr(s)
    metadata = settings(tmp_path, **{**SSO, "CONSOLE_SSO_ISSUER": "",
                                     "CONSOLE_SSO_METADATA_URL": "https://x.example/meta"})
    assert metadata.effective_sso_metadata_url == "https://x.example/meta"


@pytest.mark.parametrize(("env", "says"), [
    ({"CONSOLE_SSO_CLIENT_ID": ""}, "CONSOLE_SSO_CLIENT_ID"),
    ({"CONSOLE_SSO_ISSUER": ""}, "CONSOLE_SSO_ISSUER"),
    ({"CONSOLE_SSO_CLIENT_SECRET": ""}, "CONSOLE_SSO_CLIENT_SECRET"),
    ({"CONSOLE_SSO_ROLE_MAP": ""}, "CONSOLE_SSO_ROLE_MAP is empty"),
    ({"CONSOLE_SSO_ROLE_MAP": "staff=owner"}, "unknown role 'owner'"),
    ({"CONSOLE_SSO_ROLE_MAP": "support"}, "group=role"),
    ({"CONSOLE_SSO_ISSUER": "idp.example"}, "http(s) address"),
    ({"CONSOLE_SSO_REDIRECT_URI": "http://localhost:8501/"}, "/oauth2callback"),
])
def test_wrong_sso_settings_are_refused(tmp_path: Path, env: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        settings(tmp_path, **{**SSO, **env})


def test_password_login_off_without_sso_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nobody could log in"):
        settings(tmp_path, CONSOLE_PASSWORD_LOGIN="off")


def test_streamlits_auth_table_is_a_private_file(tmp_path: Path) -> None:
    s = settings(tmp_path, **SSO, CONSOLE_COOKIE_KEY="k" * 40,
                 CONSOLE_SSO_REDIRECT_URI="https://console.example/oauth2callback")
    args = streamlit_args(s)
    path = tmp_path / "data" / AUTH_FILE_NAME
    assert args == ["--secrets.files", str(path)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    auth = tomllib.loads(path.read_text(encoding="utf-8"))["auth"]
    assert auth == {
        "redirect_uri": "https://console.example/oauth2callback",
        "cookie_secret": cookie_secret(s),
        "client_id": "console", "client_secret": 's3cret "quoted"',
        "server_metadata_url":
            "https://idp.example/realms/staff/.well-known/openid-configuration",
        "client_kwargs": {"scope": "openid profile email"},
    }
    # Derived from the cookie key: every replica with the same settings signs alike, and the
    # key itself is not written.
    assert cookie_secret(s) == cookie_secret(settings(tmp_path, **SSO,
                                                      CONSOLE_COOKIE_KEY="k" * 40))
    assert cookie_secret(s) != cookie_secret(settings(tmp_path, **SSO,
                                                      CONSOLE_COOKIE_KEY="j" * 40))
    assert "k" * 40 not in path.read_text(encoding="utf-8")
    # Single sign-on switched off: the file goes.
    assert write_auth_file(settings(tmp_path)) is None and not path.exists()
