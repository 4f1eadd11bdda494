"""Approval settings: environment over secrets.toml, defaults, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.operations.approval_policy import ApprovalPolicy
from services.settings import ConfigError, load_settings


def test_defaults_are_on_10_grants_100000_24_hours(tmp_path: Path) -> None:
    s = load_settings(env={}, secrets_path=tmp_path / "absent.toml")
    assert (s.approvals_enabled, s.approval_bulk_over, s.approval_limit_over,
            s.approval_ttl_hours) == (True, 10, 100_000, 24.0)
    assert ApprovalPolicy.from_settings(s) == ApprovalPolicy()


def test_environment_over_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text("[console]\napprovals = false\napproval_bulk_over = 50\n"
                    "approval_limit_over = 5000\napproval_ttl_hours = 2\n", encoding="utf-8")
    s = load_settings(env={}, secrets_path=path)
    assert (s.approvals_enabled, s.approval_bulk_over, s.approval_limit_over,
            s.approval_ttl_hours) == (False, 50, 5000, 2.0)
    s = load_settings(env={"CONSOLE_APPROVALS": "on", "CONSOLE_APPROVAL_BULK_OVER": "3"},
                      secrets_path=path)
    assert s.approvals_enabled and s.approval_bulk_over == 3


@pytest.mark.parametrize(("name", "value"), [
    ("CONSOLE_APPROVALS", "maybe"),
    ("CONSOLE_APPROVAL_BULK_OVER", "ten"),
    ("CONSOLE_APPROVAL_LIMIT_OVER", "-1"),
])
def test_bad_values_are_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={name: value}, secrets_path=tmp_path / "absent.toml")
    assert name in err.value.user_message
