"""The settings module: environment over secrets.toml, sandbox vs live, tiers, no secret in
a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.settings import (
    DEFAULT_CONNECT_URL,
    DEFAULT_DATA_URL,
    ConfigError,
    Tier,
    load_settings,
    parse_tiers,
)

SECRETS = """
[kryptos]
CLIENT_ID = "from_file"
client_secret = "file-secret-value"
connect_url = "https://connect.example.test/"

[console]
database_url = "postgresql+psycopg://console:S3cretPw@db/console"
vault_key = "file-vault-key"
tiers = "Basic=500, Max=off"
"""


def _file(tmp_path: Path, text: str = SECRETS) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_nothing_configured_is_sandbox_mode_with_documented_defaults(tmp_path: Path) -> None:
    s = load_settings(env={}, secrets_path=tmp_path / "absent.toml")
    assert s.sandbox_mode
    assert (s.connect_url, s.data_url) == (DEFAULT_CONNECT_URL, DEFAULT_DATA_URL)
    assert s.effective_database_url == f"sqlite:///{s.data_dir / 'console.db'}"
    assert [t.name for t in s.tiers] == ["Free", "Plus", "Pro", "Unlimited"]


def test_secrets_file_keys_are_read_case_insensitively(tmp_path: Path) -> None:
    s = load_settings(env={}, secrets_path=_file(tmp_path))
    assert not s.sandbox_mode
    assert (s.client_id, s.client_secret) == ("from_file", "file-secret-value")
    assert s.connect_url == "https://connect.example.test"  # trailing slash dropped
    assert s.tiers == (Tier("Basic", 500), Tier("Max", None))


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    env = {"KRYPTOS_CLIENT_ID": "from_env", "KRYPTOS_CLIENT_SECRET": "env-secret",
           "DATABASE_URL": "sqlite:///x.db", "KRYPTOS_READ_TIMEOUT": "7.5"}
    s = load_settings(env=env, secrets_path=_file(tmp_path))
    assert (s.client_id, s.client_secret) == ("from_env", "env-secret")
    assert s.effective_database_url == "sqlite:///x.db" and s.read_timeout == 7.5


@pytest.mark.parametrize("present", ["KRYPTOS_CLIENT_ID", "KRYPTOS_CLIENT_SECRET"])
def test_half_a_credential_pair_is_refused_not_taken_for_sandbox_mode(
        tmp_path: Path, present: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={present: "value"}, secrets_path=tmp_path / "absent.toml")
    assert "set both for live mode" in info.value.user_message
    assert "value" not in info.value.user_message


def test_repr_shows_no_secret_and_no_database_password(tmp_path: Path) -> None:
    s = load_settings(env={}, secrets_path=_file(tmp_path))
    shown = repr(s)
    for secret in ("file-secret-value", "S3cretPw", "file-vault-key"):
        assert secret not in shown
    assert "from_file" in shown  # the client id is not a secret


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Free=abc", "whole number or 'off'"),
        ("Free=0", "between 1 and"),
        ("Free=10,free=20", "defined twice"),
        ("Free", "must look like"),
        ("", "At least one tier"),
    ],
)
def test_bad_tiers_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_tiers(text)


def test_bad_numbers_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KRYPTOS_READ_TIMEOUT must be a number"):
        load_settings(env={"KRYPTOS_READ_TIMEOUT": "soon"}, secrets_path=tmp_path / "x.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env={}, secrets_path=_file(tmp_path, "[kryptos\n"))


def test_backend_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    from services.settings import SANDBOX_WEBHOOK_SECRET

    path = _file(tmp_path, SECRETS + """
[backend]
jwt_secret = "file-jwt-secret"
jwt_audience = "kryptos-backend"
webhook_secret = "whsec_ZmlsZS13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5"
webhook_max_age = 120
link_token_rate_limit = 4
""")
    s = load_settings(env={"BACKEND_JWT_ISSUER": "https://login.example",
                           "BACKEND_LINK_TOKEN_RATE_LIMIT": "7"}, secrets_path=path)
    assert s.backend_jwt_secret == "file-jwt-secret"
    assert s.backend_jwt_audience == "kryptos-backend"
    assert s.backend_jwt_issuer == "https://login.example"
    assert s.webhook_secret == s.effective_webhook_secret == (
        "whsec_ZmlsZS13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5")
    assert s.webhook_max_age == 120 and s.link_token_rate_limit == 7
    assert "file-jwt-secret" not in repr(s) and "ZmlsZS13ZWJob29r" not in repr(s)

    empty = load_settings(env={}, secrets_path=tmp_path / "absent.toml")
    assert empty.webhook_max_age == 300 and empty.link_token_rate_limit == 10
    assert empty.effective_webhook_secret == SANDBOX_WEBHOOK_SECRET  # sandbox mode only
    live = load_settings(env={"KRYPTOS_CLIENT_ID": "a", "KRYPTOS_CLIENT_SECRET": "b"},
                         secrets_path=tmp_path / "absent.toml")
    assert live.effective_webhook_secret is None
    with pytest.raises(ConfigError):
        load_settings(env={"BACKEND_WEBHOOK_MAX_AGE": "soon"},
                      secrets_path=tmp_path / "absent.toml")


def test_sync_settings_defaults_environment_and_secrets(tmp_path: Path) -> None:
    s = load_settings(env={}, secrets_path=tmp_path / "absent.toml")
    assert (s.sync_grants_interval, s.sync_rate, s.sync_enabled) == (300.0, 10.0, True)
    s = load_settings(env={"SYNC_GRANTS_INTERVAL": "60", "SYNC_RATE": "2.5",
                           "SYNC_ENABLED": "off"}, secrets_path=tmp_path / "absent.toml")
    assert (s.sync_grants_interval, s.sync_rate, s.sync_enabled) == (60.0, 2.5, False)
    path = _file(tmp_path, "[console]\nsync_rate = 4\nsync_enabled = false\n")
    s = load_settings(env={}, secrets_path=path)
    assert (s.sync_rate, s.sync_enabled) == (4.0, False)
    for env in ({"SYNC_RATE": "0"}, {"SYNC_GRANTS_INTERVAL": "0.5"}, {"SYNC_ENABLED": "maybe"},
                {"SYNC_RATE": "fast"}):
        with pytest.raises(ConfigError):
            load_settings(env=env, secrets_path=tmp_path / "absent.toml")


def test_login_hardening_settings(tmp_path: Path) -> None:
    absent = tmp_path / "absent.toml"
    s = load_settings(env={}, secrets_path=absent)
    assert (s.trusted_proxies, s.login_failure_floor, s.password_rounds) == (0, 1.5, 12)
    s = load_settings(env={"CONSOLE_TRUSTED_PROXIES": "2", "CONSOLE_LOGIN_FAILURE_FLOOR": "3",
                           "CONSOLE_PASSWORD_ROUNDS": "13"}, secrets_path=absent)
    assert (s.trusted_proxies, s.login_failure_floor, s.password_rounds) == (2, 3.0, 13)
    path = _file(tmp_path, "[console]\ntrusted_proxies = 1\n")
    assert load_settings(env={}, secrets_path=path).trusted_proxies == 1
    # The header setting that trusted the client's own entry is refused, not ignored.
    with pytest.raises(ConfigError, match="CONSOLE_TRUSTED_PROXIES"):
        load_settings(env={"CONSOLE_CLIENT_ADDRESS_HEADER": "X-Forwarded-For"},
                      secrets_path=absent)
    for env in ({"CONSOLE_TRUSTED_PROXIES": "-1"}, {"CONSOLE_TRUSTED_PROXIES": "11"},
                {"CONSOLE_PASSWORD_ROUNDS": "4"}, {"CONSOLE_PASSWORD_ROUNDS": "20"},
                {"CONSOLE_LOGIN_FAILURE_FLOOR": "-1"}):
        with pytest.raises(ConfigError):
            load_settings(env=env, secrets_path=absent)
