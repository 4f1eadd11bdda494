"""Vault key rotation on SQLite and PostgreSQL: KRYPTOS_VAULT_KEY as "NEW,OLD", rotate(),
the `rotate-key` command, and refusals that never show a key or a token."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import insert, text

from services.settings import ConfigError, Settings
from services.store import (
    Database,
    TokenVault,
    VaultKeyError,
    load_vault_key,
    parse_vault_keys,
)
from services.store.__main__ import main
from services.store.schema import vault_tokens

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
TOKENS = {f"cgrant_{i:02d}": f"cat_rotationSECRET{i:04d}xyz" for i in range(11)}



def _without_alembic_lines(err: str) -> str:
    """stderr without the log lines Alembic writes when another test's migration run left
    its logger configured (alembic.ini's logging): the CLI's own messages only."""
    return "".join(line for line in err.splitlines(keepends=True)
                   if " alembic." not in line)

def _no_secret(text_out: str, *extra: str) -> None:
    for secret in (KEY_A, KEY_B, *TOKENS.values(), *extra):
        assert secret not in text_out


def _fill(db: Database, key: str) -> TokenVault:
    vault = TokenVault(db, key)
    for grant_id, token in TOKENS.items():
        vault.put(grant_id, token, customer_ref=f"{grant_id}@example.com")
    return vault


def _reads_all(vault: TokenVault) -> dict[str, str]:
    return {gid: vault.reveal(gid) for gid in TOKENS}


def test_rotation_from_a_to_b(db: Database) -> None:
    _fill(db, KEY_A)
    before = {e.grant_id: e for e in TokenVault(db, KEY_A).list()}

    # Step 1: every replica gets "NEW,OLD" (spaces around the keys are fine). It reads the old
    # tokens, and a token stored now is already on the new key.
    both = TokenVault(db, f" {KEY_B} ,\n{KEY_A} ")
    assert both.key_count == 2
    assert _reads_all(both) == TOKENS
    both.put("cgrant_new", "cat_storedDURINGrotation01")

    # Step 2: rotate, in several batches.
    report = both.rotate(batch_size=4)
    assert (report.re_encrypted, report.already_primary, report.unreadable) == (11, 1, ())
    assert report.checked == 12
    _no_secret(repr(report))
    # Nothing the console shows has changed: same masked token, same timestamps.
    after = {e.grant_id: e for e in both.list()}
    assert all(after[gid] == before[gid] for gid in TOKENS)

    # Step 3: the new key alone reads everything; the old key alone is refused at once.
    only_b = TokenVault(db, KEY_B)
    assert _reads_all(only_b) == TOKENS
    assert only_b.reveal("cgrant_new") == "cat_storedDURINGrotation01"
    with pytest.raises(VaultKeyError, match="does not match the one the tokens were stored"):
        TokenVault(db, KEY_A)

    # Running it again changes nothing: the operator's check before dropping the old key.
    again = TokenVault(db, f"{KEY_B},{KEY_A}").rotate()
    assert (again.re_encrypted, again.already_primary) == (0, 12)

    # A token stored after the rotation is readable with the new key alone.
    both.put("cgrant_later", "cat_storedAFTERrotation02")
    assert TokenVault(db, KEY_B).reveal("cgrant_later") == "cat_storedAFTERrotation02"


def test_rows_at_rest_use_the_first_key(db: Database) -> None:
    _fill(db, KEY_A)
    TokenVault(db, f"{KEY_B},{KEY_A}").rotate()
    with db.read() as conn:
        rows = conn.execute(text("SELECT token_ciphertext FROM vault_tokens")).scalars().all()
    assert len(rows) == len(TOKENS)
    assert {Fernet(KEY_B).decrypt(c.encode()).decode() for c in rows} == set(TOKENS.values())
    _no_secret(" ".join(rows))


def test_crash_midway_leaves_every_row_readable(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(db, KEY_A)
    vault = TokenVault(db, f"{KEY_B},{KEY_A}")
    real = vault._rotated
    calls = {"n": 0}

    def crash_in_second_batch(ciphertext: str) -> str | None:
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("simulated crash")
        return real(ciphertext)

    monkeypatch.setattr(vault, "_rotated", crash_in_second_batch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        vault.rotate(batch_size=4)
    monkeypatch.undo()

    # First batch (4 rows) re-encrypted, the rest untouched: both keys read all of it.
    assert _reads_all(TokenVault(db, f"{KEY_B},{KEY_A}")) == TOKENS
    # Dropping the old key now would lose rows: refused when the vault opens.
    with pytest.raises(VaultKeyError, match="does not match"):
        TokenVault(db, KEY_B)

    report = TokenVault(db, f"{KEY_B},{KEY_A}").rotate(batch_size=4)
    assert (report.re_encrypted, report.already_primary) == (7, 4)
    assert _reads_all(TokenVault(db, KEY_B)) == TOKENS


def test_token_replaced_during_rotation_is_not_lost(db: Database) -> None:
    _fill(db, KEY_A)
    vault = TokenVault(db, f"{KEY_B},{KEY_A}")
    real = vault._rotated
    writer: list[threading.Thread] = []
    errors: list[BaseException] = []

    def put_new_token() -> None:
        try:
            vault.put("cgrant_01", "cat_replacedWHILErotating")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def rotated_with_concurrent_put(ciphertext: str) -> str | None:
        if not writer:  # while the first batch (cgrant_00 ...) is being rotated
            writer.append(threading.Thread(target=put_new_token))
            writer[0].start()
            time.sleep(0.3)  # give the writer time to try (it must wait for the batch)
        return real(ciphertext)

    vault._rotated = rotated_with_concurrent_put  # type: ignore[method-assign]
    vault.rotate(batch_size=5)
    writer[0].join(timeout=60)
    assert not writer[0].is_alive() and errors == []
    fresh = TokenVault(db, KEY_B)
    assert fresh.reveal("cgrant_01") == "cat_replacedWHILErotating"
    assert fresh.reveal("cgrant_02") == TOKENS["cgrant_02"]


def test_unreadable_rows_are_reported_not_fatal(db: Database) -> None:
    _fill(db, KEY_A)
    foreign = Fernet(Fernet.generate_key()).encrypt(b"cat_foreignTOKEN77").decode()
    with db.write() as conn:
        conn.execute(text("UPDATE vault_tokens SET token_ciphertext = :c WHERE grant_id = :g"),
                     {"c": foreign, "g": "cgrant_03"})
    report = TokenVault(db, f"{KEY_B},{KEY_A}").rotate()
    assert (report.re_encrypted, report.already_primary) == (10, 0)
    assert report.unreadable == ("cgrant_03",)
    _no_secret(repr(report), "cat_foreignTOKEN77", foreign)
    only_b = TokenVault(db, KEY_B)
    assert only_b.reveal("cgrant_04") == TOKENS["cgrant_04"]
    with pytest.raises(VaultKeyError, match="cannot be decrypted"):
        only_b.reveal("cgrant_03")


@pytest.mark.parametrize(("value", "message"), [
    (f"{KEY_B},not-a-key-SECRETISH-0123456789,{KEY_A}",
     "Key 2 of 3 in the vault key list .* is not a valid Fernet key"),
    (f"{KEY_B},{KEY_A[:-3]}", "Key 2 of 2 in the vault key list .* is not a valid Fernet key"),
    (f",{KEY_A}", "Key 1 of 2 in the vault key list .* is empty"),
    (f"{KEY_B},,{KEY_A}", "Key 2 of 3 in the vault key list .* is empty"),
    (f"{KEY_B},{KEY_A},", "Key 3 of 3 in the vault key list .* is empty"),
    (f"{KEY_A},{KEY_B},{KEY_A}", "Key 3 of 3 in the vault key list .* repeats key 1"),
], ids=["malformed", "truncated", "first-empty", "middle-empty", "trailing-comma", "repeated"])
def test_bad_key_in_the_list_names_its_position(value: str, message: str) -> None:
    with pytest.raises(VaultKeyError, match=message) as info:
        load_vault_key(Settings(vault_key=value))
    assert isinstance(info.value, ConfigError)
    _no_secret(str(info.value), "not-a-key-SECRETISH-0123456789", KEY_A[:-3])
    with pytest.raises(VaultKeyError, match=message):
        parse_vault_keys(value)


def test_bad_key_refused_before_the_vault_is_touched(db: Database) -> None:
    with pytest.raises(VaultKeyError, match="Key 2 of 2") as info:
        TokenVault(db, f"{KEY_B},garbageSECRET")
    _no_secret(str(info.value), "garbageSECRET")
    with db.read() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM vault_meta")).scalar() == 0


def test_key_list_loading() -> None:
    assert load_vault_key(Settings(vault_key=f" {KEY_B} , {KEY_A}\n")) == (
        f"{KEY_B},{KEY_A}".encode())
    assert parse_vault_keys([KEY_B.encode(), KEY_A]) == (KEY_B.encode(), KEY_A.encode())
    with pytest.raises(VaultKeyError, match="No vault key"):
        parse_vault_keys([])
    # Base64 ignores what follows the padding: the same key spelt twice is still a repeat.
    with pytest.raises(VaultKeyError, match="Key 2 of 2 .* repeats key 1"):
        parse_vault_keys(f"{KEY_A},{KEY_A}x")


def test_none_of_the_keys_matches(db: Database) -> None:
    _fill(db, KEY_A)
    other = Fernet.generate_key().decode()
    with pytest.raises(VaultKeyError, match="does not match the one the tokens were stored") \
            as info:
        TokenVault(db, f"{KEY_B},{other}")
    _no_secret(str(info.value), other)
    assert _reads_all(TokenVault(db, f"{other},{KEY_A}")) == TOKENS  # any position will do


# --- the rotate-key command --------------------------------------------------------------

def _cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str, keys: str) -> None:
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KRYPTOS_CLIENT_ID", "live_id")
    monkeypatch.setenv("KRYPTOS_CLIENT_SECRET", "live_secret")
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("KRYPTOS_VAULT_KEY", keys)


def test_cli_rotate_key(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _fill(db, KEY_A)
    _cli_env(monkeypatch, tmp_path, db_url, f"{KEY_B}, {KEY_A}")
    assert main(["rotate-key"]) == 0
    out, err = capsys.readouterr()
    err = _without_alembic_lines(err)
    assert out.startswith("re-encrypted 11 token(s) with the first key of KRYPTOS_VAULT_KEY; "
                          "0 already used it")
    assert "only after every replica runs with the new list" in out
    assert err == ""
    _no_secret(out + err)

    # The operator's check before dropping the old key, here with --database-url.
    monkeypatch.setenv("DATABASE_URL", "sqlite:///" + str(tmp_path / "not-this-one.db"))
    assert main(["rotate-key", "--database-url", db_url]) == 0
    assert capsys.readouterr().out.startswith("re-encrypted 0 token(s)")
    assert not (tmp_path / "not-this-one.db").exists()

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("KRYPTOS_VAULT_KEY", KEY_B)
    assert main(["rotate-key"]) == 0
    out = capsys.readouterr().out
    assert "re-encrypted 0 token(s)" in out and "holds one key" in out
    assert _reads_all(TokenVault(db, KEY_B)) == TOKENS

    monkeypatch.setenv("KRYPTOS_VAULT_KEY", KEY_A)  # a replica left on the old key alone
    assert main(["rotate-key"]) == 2
    out, err = capsys.readouterr()
    err = _without_alembic_lines(err)
    assert out == "" and "does not match the one the tokens were stored with" in err
    _no_secret(out + err)


def test_cli_rotate_key_refusals(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _fill(db, KEY_A)
    _cli_env(monkeypatch, tmp_path, db_url, f"{KEY_B},{KEY_A[:-3]}")
    assert main(["rotate-key"]) == 2
    out, err = capsys.readouterr()
    err = _without_alembic_lines(err)
    assert out == "" and err.startswith("error: Key 2 of 2 in the vault key list")
    _no_secret(out + err, KEY_A[:-3])
    assert _reads_all(TokenVault(db, KEY_A)) == TOKENS  # nothing was rewritten

    foreign = Fernet(Fernet.generate_key()).encrypt(b"cat_foreignTOKEN88").decode()
    with db.write() as conn:
        conn.execute(insert(vault_tokens).values(
            grant_id="cgrant_zz", token_ciphertext=foreign, masked_token="cat_fo...88",
            created_at=TokenVault(db, KEY_A).get("cgrant_00").created_at,
            updated_at=TokenVault(db, KEY_A).get("cgrant_00").updated_at))
    monkeypatch.setenv("KRYPTOS_VAULT_KEY", f"{KEY_B},{KEY_A}")
    assert main(["rotate-key"]) == 1
    out, err = capsys.readouterr()
    err = _without_alembic_lines(err)
    assert out.startswith("re-encrypted 11 token(s)")
    assert "1 token(s) could not be decrypted with any listed key" in out
    assert "  grant cgrant_zz" in out
    _no_secret(out + err, "cat_foreignTOKEN88", foreign)
