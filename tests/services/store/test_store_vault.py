"""Token vault on SQLite and PostgreSQL, vault key loading, CSV import and the CLI."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import event, text

from services.settings import ConfigError, Settings
from services.store import (
    Database,
    NewVaultEntry,
    PutReport,
    StoreError,
    TokenVault,
    VaultEntryNotFound,
    VaultKeyError,
    load_vault_key,
    open_database,
)
from services.store.__main__ import main
from tests.services.store.test_store_audit import migrations_head

TOKEN = "cat_Zq8secretTOKENvalue4242"


def test_put_get_reveal_list_update(db: Database, vault_key: bytes) -> None:
    vault = TokenVault(db, vault_key)
    entry = vault.put("cgrant_1", TOKEN, workspace_id="ws_1", customer_ref="a@example.com",
                      user_kind="Guest")
    assert entry.masked_token == "cat_Zq...42" and entry.user_kind == "guest"
    assert entry.created_at == entry.updated_at and entry.created_at.tzinfo is not None
    assert TOKEN not in repr(entry) and TOKEN not in repr(vault)
    assert vault.reveal("cgrant_1") == TOKEN
    assert vault.get("cgrant_1") == entry and vault.get("nope") is None

    again = vault.put("cgrant_1", "cat_newtoken000099", kryptos_user_id="user_7")
    assert again.created_at == entry.created_at and again.updated_at >= entry.updated_at
    assert (again.workspace_id, again.customer_ref, again.kryptos_user_id) == (
        "ws_1", "a@example.com", "user_7")
    assert vault.reveal("cgrant_1") == "cat_newtoken000099"

    changed = vault.update("cgrant_1", customer_ref="crm-42", user_kind="linked", workspace_id="")
    assert (changed.customer_ref, changed.user_kind, changed.workspace_id) == (
        "crm-42", "linked", None)
    vault.put("cgrant_0", "cat_other00000011")
    assert [e.grant_id for e in vault.list()] == ["cgrant_0", "cgrant_1"]
    assert vault.grant_ids() == {"cgrant_0", "cgrant_1"}

    with pytest.raises(VaultEntryNotFound):
        vault.update("cgrant_missing", customer_ref="x")
    with pytest.raises(VaultEntryNotFound):
        vault.reveal("cgrant_missing")
    with pytest.raises(StoreError, match="Unknown vault field"):
        vault.update("cgrant_1", token="x")
    with pytest.raises(StoreError, match="Guest or Linked"):
        vault.put("cgrant_2", TOKEN, user_kind="admin")
    with pytest.raises(StoreError, match="grant id"):
        vault.put("bad id", TOKEN)
    with pytest.raises(StoreError, match="must start with 'cgrant_'"):
        vault.put("grant_1", TOKEN)  # a typo must never become a phantom "revoked" grant


def test_get_many_and_a_customers_new_grants(db: Database, vault_key: bytes) -> None:
    from datetime import UTC, datetime, timedelta

    vault = TokenVault(db, vault_key)
    before = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(3):
        vault.put(f"cgrant_many{i:03d}", f"cat_secret_many{i:03d}", customer_ref="ann")
    vault.put("cgrant_other000", "cat_secret_other000", customer_ref="bob")
    found = vault.get_many(["cgrant_many002", "cgrant_many000", "cgrant_not_stored",
                            "cgrant_many000"])
    assert sorted(found) == ["cgrant_many000", "cgrant_many002"]
    assert found["cgrant_many002"].customer_ref == "ann"
    assert "cat_secret" not in repr(found)
    assert vault.get_many([]) == {}
    assert [e.grant_id for e in vault.stored_for_customer("ann", before)] == [
        "cgrant_many000", "cgrant_many001", "cgrant_many002"]
    assert vault.stored_for_customer("ann", datetime.now(UTC) + timedelta(seconds=5)) == []
    assert vault.stored_for_customer("nobody", before) == []


def test_tokens_are_encrypted_at_rest(db: Database, vault_key: bytes) -> None:
    TokenVault(db, vault_key).put("cgrant_1", TOKEN)
    with db.read() as conn:
        row = conn.execute(text("SELECT * FROM vault_tokens")).mappings().one()
    assert TOKEN not in "".join(str(v) for v in row.values())
    assert Fernet(vault_key).decrypt(row["token_ciphertext"].encode()).decode() == TOKEN


def _commits(db: Database) -> list[int]:
    """A list that grows by one at each commit on `db`'s engine."""
    seen: list[int] = []
    event.listen(db.engine, "commit", lambda conn: seen.append(1))
    return seen


def test_put_many_upserts_in_one_transaction(db: Database, vault_key: bytes) -> None:
    vault = TokenVault(db, vault_key)
    vault.put("cgrant_old", "cat_oldtoken00001", customer_ref="keep-me", user_kind="guest")
    created = vault.get("cgrant_old").created_at
    entries = [NewVaultEntry(f"cgrant_{i}", f"cat_batchtoken{i:05d}", workspace_id=f"ws_{i}",
                             user_kind="Linked" if i % 2 else "guest") for i in range(1200)]
    entries.append(NewVaultEntry("cgrant_old", "cat_newtoken00002", kryptos_user_id="user_9"))
    commits = _commits(db)
    assert vault.put_many(entries) == PutReport(added=1200, updated=1)
    assert len(commits) == 1
    assert vault.reveal("cgrant_0") == "cat_batchtoken00000"
    assert vault.reveal("cgrant_1199") == "cat_batchtoken01199"
    first = vault.get("cgrant_7")
    assert (first.workspace_id, first.user_kind, first.masked_token) == (
        "ws_7", "linked", "cat_ba...07")
    old = vault.get("cgrant_old")
    assert vault.reveal("cgrant_old") == "cat_newtoken00002"
    assert (old.customer_ref, old.user_kind, old.kryptos_user_id) == ("keep-me", "guest",
                                                                       "user_9")
    assert old.created_at == created and old.updated_at >= created
    with db.read() as conn:  # each token encrypted on its own (Fernet: fresh IV per token)
        ciphertexts = conn.execute(text("SELECT token_ciphertext FROM vault_tokens")).scalars()
        assert len(set(ciphertexts)) == 1201
    assert vault.put_many([]) == PutReport(0, 0)


def test_put_many_same_grant_twice_is_two_puts(db: Database, vault_key: bytes) -> None:
    vault = TokenVault(db, vault_key)
    report = vault.put_many([NewVaultEntry("cgrant_1", "cat_firsttoken0001", customer_ref="a"),
                             NewVaultEntry("cgrant_1", "cat_secondtoken002", workspace_id="w")])
    assert report == PutReport(added=1, updated=0)
    entry = vault.get("cgrant_1")
    assert vault.reveal("cgrant_1") == "cat_secondtoken002"
    assert (entry.customer_ref, entry.workspace_id) == ("a", "w")


def test_put_many_stores_nothing_when_an_entry_is_invalid(db: Database,
                                                          vault_key: bytes) -> None:
    vault = TokenVault(db, vault_key)
    secret = "cat_secretbutbad token"
    bad = [NewVaultEntry("cgrant_1", "cat_goodtoken00001"), NewVaultEntry("cgrant_2", secret)]
    with pytest.raises(StoreError, match="Entry 2: The access token contains whitespace") as info:
        vault.put_many(bad)
    assert secret not in str(info.value) and "cat_" not in repr(bad[1])
    with pytest.raises(StoreError, match="Entry 1: .*must start with 'cgrant_'"):
        vault.put_many([NewVaultEntry("grant_1", "cat_goodtoken00001")])
    assert vault.list() == []


def test_wrong_key_fails_clearly(db: Database, vault_key: bytes) -> None:
    TokenVault(db, vault_key).put("cgrant_1", TOKEN)
    with pytest.raises(VaultKeyError, match="does not match the one the tokens were stored"):
        TokenVault(db, Fernet.generate_key())
    # A row written with another key (e.g. copied from another install) is refused too.
    foreign = Fernet(Fernet.generate_key()).encrypt(b"cat_foreign").decode()
    with db.write() as conn:
        conn.execute(text("UPDATE vault_tokens SET token_ciphertext = :c"), {"c": foreign})
    with pytest.raises(VaultKeyError, match="cannot be decrypted") as info:
        TokenVault(db, vault_key).reveal("cgrant_1")
    assert "cat_foreign" not in str(info.value)


def test_malformed_key_is_refused_without_echoing_it(db: Database) -> None:
    bad = "not-a-real-key-but-secret-looking"
    with pytest.raises(VaultKeyError, match="not a valid Fernet key") as info:
        TokenVault(db, bad)
    assert bad not in str(info.value)
    with pytest.raises(VaultKeyError) as info:
        load_vault_key(Settings(vault_key=bad))
    assert bad not in str(info.value) and isinstance(info.value, ConfigError)


def test_load_vault_key(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    assert load_vault_key(Settings(vault_key=key.decode(), data_dir=tmp_path)) == key
    assert not (tmp_path / "vault.key").exists()

    sandbox = Settings(data_dir=tmp_path / "data")
    generated = load_vault_key(sandbox)
    path = tmp_path / "data" / "vault.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_vault_key(sandbox) == generated
    Fernet(generated)

    live = Settings(client_id="id", client_secret="secret", data_dir=tmp_path / "live")
    with pytest.raises(ConfigError, match="KRYPTOS_VAULT_KEY is not set"):
        load_vault_key(live)
    assert not (tmp_path / "live").exists()


CSV_TEXT = (
    "grant_id,access_token,customer_ref\n"
    "cgrant_1,cat_importedtoken0001,alice@example.com\n"
    "cgrant_2,cat_importedtoken0002,\n"
    ",cat_leakycandidate0003,nobody\n"
    "cgrant_3,,bob\n"
    "cgrant_1,cat_duplicatetoken004,dup\n"
    "grant 4,cat_leakycandidate0005,space\n"
    "cgrant_5,cat_has space 0006,x\n"
    "cgrant_6,cat_importedtoken0007,carol,extra\n"
    "cat_swappedcolumns0008,cgrant_8,columns swapped\n"
)


def test_import_csv_reports_added_updated_rejected(db: Database, vault_key: bytes) -> None:
    vault = TokenVault(db, vault_key)
    vault.put("cgrant_2", "cat_oldtoken0000", customer_ref="keep-me")
    report = vault.import_csv(io.StringIO(CSV_TEXT))
    assert (report.added, report.updated, report.rejected_count) == (1, 1, 7)
    assert [r.line for r in report.rejected] == [4, 5, 6, 7, 8, 9, 10]
    assert report.rejected[2].reason == "grant_id repeats line 2 (first one kept)"
    text_report = repr(report)
    assert "cat_" not in text_report and "leaky" not in text_report
    assert vault.reveal("cgrant_1") == "cat_importedtoken0001"
    assert vault.get("cgrant_1").customer_ref == "alice@example.com"
    assert vault.reveal("cgrant_2") == "cat_importedtoken0002"
    assert vault.get("cgrant_2").customer_ref == "keep-me"

    with pytest.raises(StoreError, match="missing: access_token"):
        vault.import_csv(io.StringIO("grant_id,token\ng,x\n"))


def _cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(tmp_path / "data"))
    for name in ("DATABASE_URL", "KRYPTOS_VAULT_KEY", "KRYPTOS_CLIENT_ID",
                 "KRYPTOS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_cli_import_tokens_never_prints_a_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _cli_env(monkeypatch, tmp_path)
    csv_path = tmp_path / "tokens.csv"
    csv_path.write_text("\ufeff" + CSV_TEXT, encoding="utf-8")
    assert main(["import-tokens", str(csv_path)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("added 2, updated 0, rejected 7")
    assert "line 6 (grant cgrant_1): grant_id repeats line 2" in out
    assert "cat_" not in out + err and "leaky" not in out + err
    assert (tmp_path / "data" / "console.db").exists()
    assert (tmp_path / "data" / "vault.key").exists()
    assert main(["import-tokens", str(csv_path)]) == 1
    assert capsys.readouterr().out.startswith("added 0, updated 2, rejected 7")

    assert main(["import-tokens", str(tmp_path / "missing.csv")]) == 2
    assert "Cannot read" in capsys.readouterr().err


def test_cli_live_mode_without_key_refuses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _cli_env(monkeypatch, tmp_path)
    monkeypatch.setenv("KRYPTOS_CLIENT_ID", "live_id")
    monkeypatch.setenv("KRYPTOS_CLIENT_SECRET", "live_secret")
    csv_path = tmp_path / "tokens.csv"
    csv_path.write_text(CSV_TEXT)
    assert main(["import-tokens", str(csv_path)]) == 2
    assert "KRYPTOS_VAULT_KEY is not set" in capsys.readouterr().err


def test_cli_migrate_as_a_module(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "CONSOLE_SECRETS_FILE": str(tmp_path / "none.toml"),
           "CONSOLE_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "services.store", "migrate",
                             "--database-url", db_url], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Schema up to date" in result.stdout
    db = open_database(db_url)
    try:
        with db.read() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == migrations_head()
    finally:
        db.dispose()
