"""`python -m services.store import-tokens | rotate-key` are audited (`token.import`,
`vault.rotate_key`) as `cli:<OS user>`, with counts and never a token or key, and change
nothing when the audit log cannot be written; `migrate` and `verify-audit` are not audited."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from services.store import AuditFilter, AuditLog, Database, TokenVault, open_database
from services.store.__main__ import main

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
TOKENS = {f"cgrant_{i:02d}": f"cat_cliAuditSECRET{i:04d}xyz" for i in range(5)}
CSV_TEXT = (
    "grant_id,access_token,customer_ref\n"
    "cgrant_1,cat_importedSECRET0001,alice@example.com\n"
    "cgrant_2,cat_importedSECRET0002,\n"
    ",cat_leakySECRET0003,nobody\n"
    "cat_swappedSECRET0004,cgrant_8,columns swapped\n"
)
CSV_SECRETS = ("cat_importedSECRET0001", "cat_importedSECRET0002", "cat_leakySECRET0003",
               "cat_swappedSECRET0004")
UNREACHABLE_WITH_PASSWORD = "postgresql+psycopg://nobody:pg-Pass-w0rd-xyz@127.0.0.1:1/x"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Path:
    """Live-mode settings on the test's database, an anchor file in tmp_path, operator
    `opsbob`. Returns the data folder (which holds the default anchor file)."""
    data = tmp_path / "data"
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(data))
    monkeypatch.setenv("KRYPTOS_CLIENT_ID", "live_id")
    monkeypatch.setenv("KRYPTOS_CLIENT_SECRET", "live_secret")
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("KRYPTOS_VAULT_KEY", KEY_A)
    for name in ("CONSOLE_AUDIT_ANCHOR_FILE", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "opsbob")
    monkeypatch.setenv("USER", "opsbob")
    return data


def _events(db: Database, **filters) -> list:
    return list(AuditLog(db).iter_events(AuditFilter(**filters)))


def _export(db: Database) -> str:
    out = io.StringIO()
    AuditLog(db).export_jsonl(None, out)
    return out.getvalue()


def _no_secret(text: str, *extra: str) -> None:
    for secret in (KEY_A, KEY_B, *TOKENS.values(), *CSV_SECRETS, *extra):
        assert secret not in text


def _pairs(evs: list) -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in evs]


def test_import_tokens_is_audited_with_counts(
    cli_env: Path, db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = tmp_path / "tokens.csv"
    csv_path.write_text(CSV_TEXT, encoding="utf-8")
    assert main(["import-tokens", str(csv_path)]) == 1  # rows rejected
    assert capsys.readouterr().out.startswith("added 2, updated 0, rejected 2")
    clean = tmp_path / "clean.csv"
    clean.write_text("grant_id,access_token\ncgrant_1,cat_importedSECRET0001\n")
    assert main(["import-tokens", str(clean)]) == 0

    evs = _events(db)
    assert _pairs(evs) == [("token.import", "requested"), ("token.import", "succeeded")] * 2
    for e in evs:
        assert e.actor_username == "cli:opsbob" and e.actor_roles == ("cli",)
        assert (e.target_type, e.target_id) == ("vault", None)
    req, ok, req2, ok2 = evs
    assert req.correlation_id == ok.correlation_id != req2.correlation_id
    assert req.params["file"] == "tokens.csv" and req.params["host"]
    # Rejected rows still make it `succeeded` with counts, as the Connect page's import.
    assert (ok.before, ok.after) == (None, {"added": 2, "updated": 0, "rejected": 2})
    assert req2.params["file"] == "clean.csv"
    assert ok2.after == {"added": 0, "updated": 1, "rejected": 0}
    _no_secret(_export(db))
    assert (cli_env / "audit-anchor.json").exists()  # the CLI anchors the head too


def test_import_failures(
    cli_env: Path, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A file that is not there: refused before anything is recorded (a token pasted where
    # the file name goes must not reach the append-only log).
    assert main(["import-tokens", "cat_pastedSECRET0009"]) == 2
    assert "Cannot read cat_pastedSECRET0009: not a file" in capsys.readouterr().err
    assert _events(db) == []

    csv_path = tmp_path / "tokens.csv"
    csv_path.write_text(CSV_TEXT, encoding="utf-8")
    # A CSV without the required columns: requested, then failed.
    bad = tmp_path / "bad.csv"
    bad.write_text("grant_id,token\ncgrant_1,cat_importedSECRET0001\n")
    assert main(["import-tokens", str(bad)]) == 2
    assert "missing: access_token" in capsys.readouterr().err
    # Live mode without a vault key: the attempt is recorded as failed.
    monkeypatch.delenv("KRYPTOS_VAULT_KEY")
    assert main(["import-tokens", str(csv_path)]) == 2
    assert "KRYPTOS_VAULT_KEY is not set" in capsys.readouterr().err

    evs = _events(db)
    assert _pairs(evs) == [("token.import", "requested"), ("token.import", "failed")] * 2
    assert [e.error_code for e in evs[1::2]] == ["STORE_ERROR", "CONFIG_ERROR"]
    assert "missing: access_token" in evs[1].error_message
    assert "KRYPTOS_VAULT_KEY is not set" in evs[3].error_message
    assert TokenVault(db, KEY_A).list() == []
    _no_secret(_export(db), "cat_pastedSECRET0009")


def test_rotate_key_is_audited_with_counts(
    cli_env: Path, db: Database, db_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    vault = TokenVault(db, KEY_A)
    for gid, token in TOKENS.items():
        vault.put(gid, token)
    monkeypatch.setenv("KRYPTOS_VAULT_KEY", f"{KEY_B},{KEY_A}")
    assert main(["rotate-key"]) == 0
    # Again with --database-url: the events go to that database (the vault's own).
    monkeypatch.setenv("DATABASE_URL", "sqlite:///" + str(tmp_path / "not-this-one.db"))
    assert main(["rotate-key", "--database-url", db_url]) == 0
    assert not (tmp_path / "not-this-one.db").exists()
    # A replica left on the old key alone: the attempt is recorded as failed.
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("KRYPTOS_VAULT_KEY", KEY_A)
    assert main(["rotate-key"]) == 2
    out, err = capsys.readouterr()
    assert "does not match the one the tokens were stored with" in err

    evs = _events(db)
    assert _pairs(evs) == [("vault.rotate_key", "requested"), ("vault.rotate_key", "succeeded"),
                           ("vault.rotate_key", "requested"), ("vault.rotate_key", "succeeded"),
                           ("vault.rotate_key", "requested"), ("vault.rotate_key", "failed")]
    for e in evs:
        assert e.actor_username == "cli:opsbob" and e.actor_roles == ("cli",)
        assert (e.target_type, e.target_id) == ("vault", None)
    totp = {"totp_re_encrypted": 0, "totp_unreadable": 0}
    assert evs[1].after == {"re_encrypted": 5, "already_primary": 0, "unreadable": 0,
                            "keys": 2, **totp}
    assert evs[3].after == {"re_encrypted": 0, "already_primary": 5, "unreadable": 0,
                            "keys": 2, **totp}
    assert evs[5].error_code == "STORE_ERROR"
    assert "does not match" in evs[5].error_message
    assert evs[4].correlation_id == evs[5].correlation_id
    _no_secret(_export(db) + out + err)


def test_unwritable_audit_log_changes_nothing(
    cli_env: Path, db: Database, db_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    vault = TokenVault(db, KEY_A)
    for gid, token in TOKENS.items():
        vault.put(gid, token)
    ciphertexts = _ciphertexts(db)
    csv_path = tmp_path / "tokens.csv"
    csv_path.write_text(CSV_TEXT, encoding="utf-8")
    monkeypatch.setenv("KRYPTOS_VAULT_KEY", f"{KEY_B},{KEY_A}")
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_WITH_PASSWORD)
    for argv in (["rotate-key"], ["import-tokens", str(csv_path)]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("error: The audit log cannot be opened")
        assert "nothing was changed" in err and "pg-Pass-w0rd-xyz" not in err
        _no_secret(out + err)
    assert _ciphertexts(db) == ciphertexts and _events(db) == []


def _ciphertexts(db: Database) -> dict[str, str]:
    from sqlalchemy import select

    from services.store.schema import vault_tokens

    with db.read() as conn:
        return dict(conn.execute(select(vault_tokens.c.grant_id,
                                        vault_tokens.c.token_ciphertext)).all())


def test_migrate_and_verify_audit_are_not_audited(
    cli_env: Path, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert main(["verify-audit"]) == 0
    assert "audit log intact: 0 row(s) checked" in capsys.readouterr().out
    assert _events(db) == []


def test_module_entry_point(cli_env: Path, db_url: str, tmp_path: Path) -> None:
    """As a module, with an unreachable database: exit 2, a clear message, no traceback."""
    csv_path = tmp_path / "tokens.csv"
    csv_path.write_text(CSV_TEXT, encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": UNREACHABLE_WITH_PASSWORD}
    proc = subprocess.run([sys.executable, "-m", "services.store", "import-tokens",
                           str(csv_path)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "audit log cannot be opened" in proc.stderr and "Traceback" not in proc.stderr
    assert "pg-Pass-w0rd-xyz" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "services.store", "import-tokens",
                           str(csv_path)], env={**os.environ}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    db = open_database(db_url)
    try:
        assert _pairs(_events(db)) == [("token.import", "requested"),
                                       ("token.import", "succeeded")]
    finally:
        db.dispose()
