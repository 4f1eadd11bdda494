"""Live mode end to end: client credentials configured, the API hosts pointed at the sandbox
standing in for Kryptos. No demo users, no sandbox helpers, an empty vault until the
operator imports the tokens the company's backend stores."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from cryptography.fernet import Fernet

from dashboard.users import add_user
from services.settings import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from tests.pages.conftest import PROJECT_ROOT, login, new_app, page_path
from tests.pages.helpers import shown
from tests.pages.test_shell import _all_text


@pytest.fixture
def live_env(console_env, sandbox, monkeypatch, tmp_path):
    """The console in live mode against the sandbox's URLs, with an operator-made users file."""
    auth_file = tmp_path / "users.yaml"
    add_user(auth_file, "alice", "alice-password-1", ["support", "finance"], rounds=4)
    monkeypatch.delenv("SANDBOX_URL")
    # Live mode starts from an empty data directory, not from sandbox mode's template copy.
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(tmp_path / "live-data"))
    env = {
        "KRYPTOS_CLIENT_ID": SANDBOX_CLIENT_ID,
        "KRYPTOS_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "KRYPTOS_CONNECT_URL": sandbox.connect_url,
        "KRYPTOS_DATA_URL": sandbox.data_url,
        "CONSOLE_AUTH_FILE": str(auth_file),
        "KRYPTOS_VAULT_KEY": Fernet.generate_key().decode(),
        "CONSOLE_COOKIE_KEY": "c" * 48,
        # Live mode asks finance and admin for a TOTP code by default (tests/pages/
        # test_trust.py covers it); these tests are about the API, not the login.
        "CONSOLE_TOTP_REQUIRED_ROLES": "none",
        # The console's own sync worker fills the read model in the background.
        "SYNC_ENABLED": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_live_mode_logs_in_shows_live_badge_and_reads_the_api(live_env, sandbox, tmp_path):
    at = new_app().run()
    assert not at.exception
    assert "viewer-demo" not in _all_text(at)  # no demo users in live mode
    login(at, "alice", "alice-password-1")
    assert at.session_state["authentication_status"] is True
    badge = shown(_all_text(at))
    assert "LIVE" in badge and SANDBOX_CLIENT_ID in badge and "SANDBOX]" not in badge
    assert SANDBOX_CLIENT_SECRET not in repr(at._tree)

    # The grants come from the API through the sync worker's first full sync (in its own
    # thread: the start did not wait for it); nothing is in the vault yet.
    at.switch_page(page_path("pages/grants.py")).run()
    assert not at.exception
    active = {t["grant_id"] for t in sandbox.tokens() if not t["revoked"]}
    deadline = time.monotonic() + 20
    while True:
        listed = set(at.dataframe(key="grants_table").value["grant_id"])
        if active <= listed or time.monotonic() > deadline:
            break
        time.sleep(0.5)
        at.run()
    assert active <= listed

    # The operator imports the tokens the company's backend stores (the README's command).
    rows = [t for t in sandbox.tokens() if not t["revoked"]][:3]
    csv_file = tmp_path / "tokens.csv"
    csv_file.write_text(
        "grant_id,access_token,customer_ref\n"
        + "".join(f"{t['grant_id']},{t['access_token']},crm-{i}\n" for i, t in enumerate(rows)),
        encoding="utf-8",
    )
    done = subprocess.run(  # inherits this test's environment: same database, same key
        [sys.executable, "-m", "services.store", "import-tokens", str(csv_file)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "added 3, updated 0, rejected 0" in done.stdout
    assert not any(t["access_token"] in done.stdout + done.stderr for t in rows)

    # Now the grant's holdings can be read, through the real API paths.
    at.session_state["selected_grant_id"] = rows[0]["grant_id"]
    at.switch_page(page_path("pages/grant_detail.py")).run()
    assert not at.exception
    assert "The session is valid." in _all_text(at)
    tables = "\n".join(df.value.to_string() for df in at.dataframe)
    assert "crm-0" in tables
    holdings = [df.value for df in at.dataframe if "asset" in df.value.columns]
    assert holdings and len(holdings[0]) > 0  # the holdings were read with the stored token
    assert not [t for t in rows if t["access_token"] in repr(at._tree)]
