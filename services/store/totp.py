"""TOTP second factor (RFC 6238, `pyotp`) of console users, in the database.

- `totp_secrets`: per user the base32 secret, encrypted with the vault's Fernet key(s)
  (`load_vault_key`, so a vault key rotation covers it: every listed key decrypts, the
  first encrypts), and the last time step accepted (a code is accepted once).
- `totp_recovery_codes`: 10 one-time codes per enrolment, stored as sha256 (each code has
  80 random bits, so a fast hash is enough), marked used when used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, insert, select, update

from services.store.db import Database
from services.store.errors import StoreError
from services.store.schema import totp_recovery_codes, totp_secrets
from services.store.vault_keys import parse_vault_keys

ISSUER = "Kryptos Connect console"
RECOVERY_CODES = 10
VALID_WINDOW = 1  # one 30 s step either side (clock drift)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(username: str, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads (as text or from a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Codes like `abcd-efgh-ijkl-mnop` (80 random bits, base32, lower case)."""
    out = []
    for _ in range(count):
        raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
        out.append("-".join(raw[i:i + 4] for i in range(0, 16, 4)))
    return out


def _code_hash(username: str, code: str) -> str:
    norm = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(f"{username}:{norm}".encode()).hexdigest()


def code_matches(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step `code` is valid for (within the window), or None."""
    code = "".join(ch for ch in code if not ch.isspace())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if at is None else at
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        step = int(now // totp.interval) + offset
        if hmac.compare_digest(totp.at(step * totp.interval), code):
            return step
    return None


class TotpStore:
    def __init__(self, db: Database, key: bytes | str, *,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self._db = db
        keys = parse_vault_keys(key)
        self._primary = Fernet(keys[0])
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._clock = clock

    def __repr__(self) -> str:
        return f"TotpStore({self._db!r})"

    def is_enrolled(self, username: str) -> bool:
        with self._db.read() as conn:
            return conn.execute(select(totp_secrets.c.username).where(
                totp_secrets.c.username == username)).first() is not None

    def enrolled_usernames(self) -> frozenset[str]:
        """Every user with a second factor set up (one read, for the Users page's list)."""
        with self._db.read() as conn:
            return frozenset(conn.execute(select(totp_secrets.c.username)).scalars().all())

    def enroll(self, username: str, secret: str) -> list[str]:
        """Store (or replace) the user's secret; returns 10 new recovery codes (the old ones
        no longer work). Only the caller sees the codes, once."""
        pyotp.TOTP(secret).now()  # a malformed secret fails here, before anything is stored
        codes = new_recovery_codes()
        ciphertext = self._fernet.encrypt(secret.encode("ascii")).decode("ascii")
        with self._db.write() as conn:
            conn.execute(delete(totp_secrets).where(totp_secrets.c.username == username))
            conn.execute(delete(totp_recovery_codes)
                         .where(totp_recovery_codes.c.username == username))
            conn.execute(insert(totp_secrets).values(
                username=username, secret_ciphertext=ciphertext, enrolled_at=self._clock(),
                last_step=0))
            conn.execute(insert(totp_recovery_codes), [
                {"username": username, "code_hash": _code_hash(username, c), "used_at": None}
                for c in codes])
        return codes

    def remove(self, username: str) -> bool:
        with self._db.write() as conn:
            gone = conn.execute(delete(totp_secrets).where(totp_secrets.c.username == username))
            conn.execute(delete(totp_recovery_codes)
                         .where(totp_recovery_codes.c.username == username))
        return bool(gone.rowcount)

    def verify(self, username: str, code: str) -> bool:
        """A current TOTP code, not used before (its time step is then remembered)."""
        with self._db.write() as conn:
            row = conn.execute(select(totp_secrets).where(totp_secrets.c.username == username)
                               .with_for_update()).mappings().first()
            if row is None:
                return False
            try:
                secret = self._fernet.decrypt(row["secret_ciphertext"].encode("ascii"))
            except InvalidToken:
                raise StoreError("A TOTP secret cannot be decrypted with the vault key.") \
                    from None
            step = code_matches(secret.decode("ascii"), code)
            if step is None or step <= int(row["last_step"]):
                return False
            conn.execute(update(totp_secrets).where(totp_secrets.c.username == username)
                         .values(last_step=step))
        return True

    def use_recovery_code(self, username: str, code: str) -> bool:
        """A recovery code of the user not used before (then it is used up)."""
        with self._db.write() as conn:
            result = conn.execute(update(totp_recovery_codes).where(
                totp_recovery_codes.c.username == username,
                totp_recovery_codes.c.code_hash == _code_hash(username, code),
                totp_recovery_codes.c.used_at.is_(None)).values(used_at=self._clock()))
        return bool(result.rowcount)

    def rotate(self) -> tuple[int, list[str]]:
        """Re-encrypt the secrets not on the first vault key (part of `python -m
        services.store rotate-key`); returns (re-encrypted, users whose secret no listed
        key decrypts)."""
        done, unreadable = 0, []
        with self._db.write() as conn:
            rows = conn.execute(select(totp_secrets.c.username,
                                       totp_secrets.c.secret_ciphertext)).all()
            for username, ciphertext in rows:
                try:
                    rotated = self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
                except InvalidToken:
                    unreadable.append(username)
                    continue
                if self._primary_decrypts(ciphertext):
                    continue
                conn.execute(update(totp_secrets).where(totp_secrets.c.username == username)
                             .values(secret_ciphertext=rotated))
                done += 1
        return done, unreadable

    def _primary_decrypts(self, ciphertext: str) -> bool:
        try:
            self._primary.decrypt(ciphertext.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def recovery_codes_left(self, username: str) -> int:
        with self._db.read() as conn:
            return len(conn.execute(select(totp_recovery_codes.c.code_hash).where(
                totp_recovery_codes.c.username == username,
                totp_recovery_codes.c.used_at.is_(None))).all())
