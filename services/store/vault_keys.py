"""The vault's keys: reading them (KRYPTOS_VAULT_KEY, or `data/vault.key` in sandbox mode),
checking them when the vault opens, and rotating the stored tokens to a new key.

KRYPTOS_VAULT_KEY may list several Fernet keys, comma-separated, new key first. New tokens are
encrypted with the first (primary) key; every listed key can decrypt. `TokenVault.rotate()`
re-encrypts the stored tokens still on an older key with the primary."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from services.private_files import private_dir
from services.settings import ConfigError, Settings
from services.store.db import Database
from services.store.errors import StoreError, VaultKeyError
from services.store.schema import vault_meta, vault_tokens

VAULT_KEY_FILENAME = "vault.key"
_CANARY_NAME = "key_check"
_CANARY_PLAINTEXT = b"kryptos-console vault key check v1"
_KEY_MISMATCH = (
    "The vault key does not match the one the tokens were stored with. Set KRYPTOS_VAULT_KEY "
    "to the original key (or restore data/vault.key). During a key rotation it lists both, "
    "comma-separated, new key first: NEW,OLD."
)
_KEY_HOWTO = (
    "Generate one with: python -c \"from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())\""
)
#: Rows re-encrypted per transaction by `TokenVault.rotate()`.
ROTATE_BATCH_SIZE = 500


@dataclass(frozen=True)
class RotationReport:
    """What `TokenVault.rotate()` did. `unreadable` lists the grants whose stored token no
    configured key decrypts (damaged or foreign rows, left as they were)."""

    re_encrypted: int
    already_primary: int
    unreadable: tuple[str, ...] = ()

    @property
    def checked(self) -> int:
        return self.re_encrypted + self.already_primary + len(self.unreadable)


def parse_vault_keys(value: bytes | str | Sequence[bytes | str]) -> tuple[bytes, ...]:
    """The vault keys, primary (newest) first, from KRYPTOS_VAULT_KEY's text: Fernet keys
    separated by commas, whitespace around each ignored (or from a sequence of keys).

    An empty, malformed or repeated key raises `VaultKeyError` naming its position in the
    list (counting from 1); no message ever contains key material."""
    if isinstance(value, bytes | str):
        text = value.decode("ascii", errors="replace") if isinstance(value, bytes) else value
        parts: list[Any] = text.split(",")
    else:
        parts = list(value)
    count = len(parts)
    if not count:
        raise VaultKeyError(f"No vault key was given. {_KEY_HOWTO}")

    def where(position: int) -> str:
        if count == 1:
            return "The vault key"
        return (f"Key {position} of {count} in the vault key list (KRYPTOS_VAULT_KEY: Fernet "
                "keys separated by commas, new key first)")

    keys: list[bytes] = []
    decoded: list[bytes] = []  # compared decoded: base64 lets two spellings mean one key
    for position, part in enumerate(parts, start=1):
        if isinstance(part, bytes):
            part = part.decode("ascii", errors="replace")
        if not isinstance(part, str):
            raise VaultKeyError(f"{where(position)} is not text.")
        part = part.strip()
        if not part:
            # Refused rather than skipped: "$NEW,$OLD" with NEW unset must not quietly make
            # the old key the primary one.
            raise VaultKeyError(f"{where(position)} is empty. {_KEY_HOWTO}")
        try:
            Fernet(part)
        except (ValueError, TypeError):
            raise VaultKeyError(
                f"{where(position)} is not a valid Fernet key (32 bytes, url-safe base64, "
                f"44 characters). {_KEY_HOWTO}"
            ) from None
        raw = base64.urlsafe_b64decode(part)
        if raw in decoded:
            raise VaultKeyError(
                f"{where(position)} repeats key {decoded.index(raw) + 1}: list each key once.")
        decoded.append(raw)
        keys.append(part.encode("ascii"))
    return tuple(keys)


def load_vault_key(settings: Settings) -> bytes:
    """The vault key from KRYPTOS_VAULT_KEY; in sandbox mode without one, `data/vault.key`
    (generated on first use with mode 0600). Live mode without a key raises `ConfigError`.

    KRYPTOS_VAULT_KEY may list several keys (see `parse_vault_keys`): the result is then
    the validated list, comma-joined, which `TokenVault` accepts as it is."""
    if settings.vault_key:
        return b",".join(parse_vault_keys(settings.vault_key))
    if not settings.sandbox_mode:
        raise ConfigError(
            "KRYPTOS_VAULT_KEY is not set. The console refuses to run against the live Kryptos "
            "API without a vault key: generate one with `python -c \"from cryptography.fernet "
            "import Fernet; print(Fernet.generate_key().decode())\"`, keep it in your secret "
            "store and set KRYPTOS_VAULT_KEY (or console.vault_key in .streamlit/secrets.toml)."
        )
    path = Path(settings.data_dir) / VAULT_KEY_FILENAME
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if not key:
            raise VaultKeyError(f"The vault key file {path} is empty.") from None
        return b",".join(parse_vault_keys(key))
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    os.chmod(path, 0o600)
    return key


class VaultKeys:
    """The key half of `TokenVault`: opens the keys against the stored check value, and
    rotates the stored tokens to the primary key.

    On first use the vault stores a check value encrypted with its key; opening the vault
    with another key raises `VaultKeyError` at once rather than failing per token later.
    The check value passes if any listed key decrypts it."""

    _db: Database

    def _open_keys(self, key: bytes | str | Sequence[bytes | str]) -> None:
        keys = parse_vault_keys(key)
        self._primary = Fernet(keys[0])
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._key_count = len(keys)
        self._check_key()

    @property
    def key_count(self) -> int:
        """How many keys this vault was opened with (the first one encrypts)."""
        return self._key_count

    def _check_key(self) -> None:
        with self._db.read() as conn:
            stored = conn.execute(
                select(vault_meta.c.value).where(vault_meta.c.name == _CANARY_NAME)
            ).scalar()
        if stored is None:
            try:
                with self._db.write() as conn:
                    conn.execute(insert(vault_meta).values(
                        name=_CANARY_NAME,
                        value=self._fernet.encrypt(_CANARY_PLAINTEXT).decode("ascii")))
                return
            except IntegrityError:  # another process stored it first: check against theirs
                with self._db.read() as conn:
                    stored = conn.execute(
                        select(vault_meta.c.value).where(vault_meta.c.name == _CANARY_NAME)
                    ).scalar()
        try:
            ok = self._fernet.decrypt(str(stored).encode("ascii")) == _CANARY_PLAINTEXT
        except InvalidToken:
            ok = False
        if not ok:
            raise VaultKeyError(_KEY_MISMATCH)

    def _rotated(self, ciphertext: str) -> str | None:
        """`ciphertext` re-encrypted with the primary key, or None if it already uses it.
        Raises `InvalidToken` when no configured key decrypts it."""
        data = ciphertext.encode("ascii", errors="replace")
        try:
            self._primary.decrypt(data)
            return None
        except InvalidToken:
            return self._fernet.rotate(data).decode("ascii")

    def rotate(self, *, batch_size: int = ROTATE_BATCH_SIZE) -> RotationReport:
        """Re-encrypt every stored token that is not on the primary key with it.

        Works in batches of `batch_size` rows (in grant id order), one transaction each, with
        the batch's rows locked (SQLite: BEGIN IMMEDIATE; PostgreSQL: SELECT ... FOR UPDATE),
        so a concurrent `put()` is never overwritten by an older token. A crash midway leaves
        every row either as it was or re-encrypted, both readable while both keys are listed.
        The key check value is re-encrypted last: until a rotation has finished, a vault
        opened with the new key alone is refused at once. `updated_at` is not changed (the
        token is the same). Safe to run again; a second run reports 0 re-encrypted."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        re_encrypted = already_primary = 0
        unreadable: list[str] = []
        after: str | None = None
        while True:
            query = (select(vault_tokens.c.grant_id, vault_tokens.c.token_ciphertext)
                     .order_by(vault_tokens.c.grant_id).limit(batch_size).with_for_update())
            if after is not None:
                query = query.where(vault_tokens.c.grant_id > after)
            with self._db.write() as conn:
                rows = conn.execute(query).all()
                for row in rows:
                    try:
                        new = self._rotated(row.token_ciphertext)
                    except InvalidToken:
                        unreadable.append(row.grant_id)
                        continue
                    if new is None:
                        already_primary += 1
                        continue
                    conn.execute(update(vault_tokens)
                                 .where(vault_tokens.c.grant_id == row.grant_id)
                                 .values(token_ciphertext=new))
                    re_encrypted += 1
            if len(rows) < batch_size:
                break
            after = rows[-1].grant_id
        with self._db.write() as conn:
            stored = conn.execute(
                select(vault_meta.c.value).where(vault_meta.c.name == _CANARY_NAME)
                .with_for_update()).scalar()
            if stored is None:  # a vault opened by this object always has one
                raise StoreError("The vault's key check value (vault_meta 'key_check') is "
                                 "missing: the tokens were re-encrypted, the check was not.")
            try:
                new = self._rotated(str(stored))
            except InvalidToken:
                raise VaultKeyError(_KEY_MISMATCH) from None
            if new is not None:
                conn.execute(update(vault_meta).where(vault_meta.c.name == _CANARY_NAME)
                             .values(value=new))
        return RotationReport(re_encrypted, already_primary, tuple(unreadable))
