"""The token vault: per grant, the access token encrypted at rest with Fernet, plus what the
company knows about the customer. Tokens are decrypted only by `reveal()`, to make a call;
everything else sees the masked form (`cat_ab...89`).

Key rotation: KRYPTOS_VAULT_KEY may list several Fernet keys, comma-separated, new key first.
New tokens are encrypted with the first (primary) key; every listed key can decrypt.
`TokenVault.rotate()` re-encrypts the stored tokens still on an older key with the primary."""

from __future__ import annotations

import base64
import csv
import os
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.kryptos.models import mask_token
from services.settings import ConfigError, Settings
from services.store.db import Database
from services.store.errors import StoreError, VaultEntryNotFound, VaultKeyError
from services.store.exchanges import ExchangeLedger
from services.store.schema import vault_meta, vault_tokens

VAULT_KEY_FILENAME = "vault.key"
USER_KINDS = ("guest", "linked")
_CANARY_NAME = "key_check"
_CANARY_PLAINTEXT = b"kryptos-console vault key check v1"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$")
_GRANT_ID_RE = re.compile(r"^cgrant_[A-Za-z0-9_-]{1,128}$")
_SPACE_RE = re.compile(r"\s")  # the same characters as str.isspace()
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Why an imported grant that Kryptos does not list is refused.
NOT_LISTED = ("Kryptos does not list this grant (revoked, expired, or of another client): "
              "not imported.")
_UPDATABLE = frozenset(
    {"access_token", "workspace_id", "kryptos_user_id", "customer_ref", "user_kind"}
)
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
#: Grant ids per `IN (...)` query when `put_many` looks up which rows exist.
_LOOKUP_CHUNK = 500
_FIELD_LIMITS = {"workspace_id": 200, "kryptos_user_id": 200, "customer_ref": 320}


@dataclass(frozen=True)
class VaultEntry:
    """A stored grant, without its plaintext token."""

    grant_id: str
    masked_token: str
    workspace_id: str | None
    kryptos_user_id: str | None
    customer_ref: str | None
    user_kind: str | None
    created_at: datetime
    updated_at: datetime
    #: When the customer disconnected through the backend (the token is kept, unusable).
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class NewVaultEntry:
    """One grant for `TokenVault.put_many()`: the same fields as `put()`'s arguments."""

    grant_id: str
    access_token: str = field(repr=False)
    workspace_id: str | None = None
    kryptos_user_id: str | None = None
    customer_ref: str | None = None
    user_kind: str | None = None


@dataclass(frozen=True)
class PutReport:
    """What `TokenVault.put_many()` stored: rows added and rows replaced (`added_ids`: the
    grants added)."""

    added: int
    updated: int
    added_ids: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True)
class RejectedRow:
    line: int
    grant_id: str | None
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """`added` and `updated` are counts; `rejected` lists each refused CSV line with why;
    `stored` names each stored grant: (grant id, added, customer reference)."""

    added: int
    updated: int
    rejected: tuple[RejectedRow, ...]
    stored: tuple[tuple[str, bool, str | None], ...] = ()

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)


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
    path.parent.mkdir(parents=True, exist_ok=True)
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


def _clean(value: Any, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreError(f"Vault field '{name}' must be text.")
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise StoreError(f"Vault field '{name}' is longer than {limit} characters.")
    if _CONTROL_RE.search(value):
        raise StoreError(f"Vault field '{name}' contains a control character (e.g. NUL).")
    return value


def _grant_id(value: Any) -> str:
    # The same rule as the operations' validation: a Kryptos grant id, nothing else, so that
    # an imported typo can never show up as a "revoked" grant in the console.
    if not isinstance(value, str) or not _GRANT_ID_RE.match(value.strip()):
        raise StoreError(
            "A grant id must start with 'cgrant_' followed by 1-128 letters, digits, '_' or '-'."
        )
    return value.strip()


def _token(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StoreError("The access token is empty.")
    value = value.strip()
    if len(value) > 4096 or _SPACE_RE.search(value):
        raise StoreError("The access token contains whitespace or is too long.")
    if _CONTROL_RE.search(value):
        raise StoreError("The access token contains a control character (e.g. NUL).")
    return value


def _kind(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    kind = str(value).strip().lower()
    if kind not in USER_KINDS:
        raise StoreError("The user kind must be Guest or Linked.")
    return kind


def _fields(workspace_id: Any, kryptos_user_id: Any, customer_ref: Any,
            user_kind: Any) -> dict[str, str]:
    """The validated non-token fields of a put; None (not given) is left out (kept)."""
    cleaned = {
        "workspace_id": _clean(workspace_id, "workspace_id", _FIELD_LIMITS["workspace_id"]),
        "kryptos_user_id": _clean(kryptos_user_id, "kryptos_user_id",
                                  _FIELD_LIMITS["kryptos_user_id"]),
        "customer_ref": _clean(customer_ref, "customer_ref", _FIELD_LIMITS["customer_ref"]),
        "user_kind": _kind(user_kind),
    }
    return {k: v for k, v in cleaned.items() if v is not None}


class TokenVault:
    """Encrypted access tokens per grant in table `vault_tokens`.

    On first use the vault stores a check value encrypted with its key; opening the vault
    with another key raises `VaultKeyError` at once rather than failing per token later.

    `key` may be a comma-separated list of keys (or a sequence), primary first: tokens are
    encrypted with the primary and decrypted with whichever key fits; the check value
    passes if any listed key decrypts it."""

    @property
    def exchanges(self) -> ExchangeLedger:
        """Which grant each public token's exchange created (same database)."""
        return ExchangeLedger(self._db)

    def __init__(self, db: Database, key: bytes | str | Sequence[bytes | str]) -> None:
        self._db = db
        keys = parse_vault_keys(key)
        self._primary = Fernet(keys[0])
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._key_count = len(keys)
        self._check_key()

    @property
    def key_count(self) -> int:
        """How many keys this vault was opened with (the first one encrypts)."""
        return self._key_count

    @property
    def db(self) -> Database:
        """The database this vault is stored in."""
        return self._db

    def __repr__(self) -> str:
        return f"TokenVault({self._db!r})"

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

    @staticmethod
    def _entry(row: Any) -> VaultEntry:
        return VaultEntry(
            grant_id=row.grant_id, masked_token=row.masked_token,
            workspace_id=row.workspace_id, kryptos_user_id=row.kryptos_user_id,
            customer_ref=row.customer_ref, user_kind=row.user_kind,
            created_at=row.created_at, updated_at=row.updated_at,
            revoked_at=getattr(row, "revoked_at", None),
        )

    def _encrypt(self, token: str) -> dict[str, str]:
        return {"token_ciphertext": self._fernet.encrypt(token.encode("utf-8")).decode("ascii"),
                "masked_token": mask_token(token)}

    def _upsert(self, conn: Connection, grant_id: str, token: str | None,
                fields: dict[str, Any]) -> tuple[VaultEntry, bool]:
        """Insert or update one grant inside `conn`'s transaction; returns (entry, added)."""
        now = datetime.now(UTC)
        existing = conn.execute(
            select(vault_tokens.c.grant_id).where(vault_tokens.c.grant_id == grant_id)
        ).first()
        values = dict(fields)
        if token is not None:
            values.update(self._encrypt(token))
        if existing is None:
            if token is None:
                raise VaultEntryNotFound(grant_id)
            conn.execute(insert(vault_tokens).values(
                grant_id=grant_id, created_at=now, updated_at=now, **values))
            added = True
        else:
            conn.execute(update(vault_tokens).where(vault_tokens.c.grant_id == grant_id)
                         .values(updated_at=now, **values))
            added = False
        row = conn.execute(select(vault_tokens).where(vault_tokens.c.grant_id == grant_id)).one()
        return self._entry(row), added

    def _write(self, grant_id: str, token: str | None, fields: dict[str, Any]) -> VaultEntry:
        for attempt in (1, 2):  # a concurrent insert of the same grant: retry as an update
            try:
                with self._db.write() as conn:
                    return self._upsert(conn, grant_id, token, fields)[0]
            except IntegrityError:
                if attempt == 2:
                    raise StoreError(
                        f"Could not store grant {grant_id}: conflicting writes.") from None
        raise AssertionError("unreachable")

    def _write_many(self, rows: list[tuple[str, str, dict[str, Any]]]) -> PutReport:
        """Upsert (grant id, token, fields) rows, grant ids unique, in one transaction."""
        encrypted = [(gid, self._encrypt(token), fields) for gid, token, fields in rows]
        for attempt in (1, 2):  # a concurrent insert of one of the grants: retry once
            try:
                with self._db.write() as conn:
                    return self._upsert_many(conn, encrypted)
            except IntegrityError:
                if attempt == 2:
                    raise StoreError("Could not store the tokens: conflicting writes.") \
                        from None
        raise AssertionError("unreachable")

    def _upsert_many(self, conn: Connection,
                     rows: list[tuple[str, dict[str, str], dict[str, Any]]]) -> PutReport:
        ids = [gid for gid, _, _ in rows]
        existing: set[str] = set()
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start:start + _LOOKUP_CHUNK]
            existing.update(conn.execute(select(vault_tokens.c.grant_id)
                                         .where(vault_tokens.c.grant_id.in_(chunk))).scalars())
        now = datetime.now(UTC)
        blank = dict.fromkeys(_FIELD_LIMITS.keys() | {"user_kind"})
        new = [{**blank, **fields, **secret, "grant_id": gid, "created_at": now,
                "updated_at": now} for gid, secret, fields in rows if gid not in existing]
        if new:
            conn.execute(insert(vault_tokens), new)
        # Fields not given keep their stored value: one executemany per set of given fields.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for gid, secret, fields in rows:
            if gid in existing:
                values = {**fields, **secret, "updated_at": now}
                groups.setdefault(tuple(sorted(values)), []).append({**values, "b_gid": gid})
        statement = update(vault_tokens).where(vault_tokens.c.grant_id == bindparam("b_gid"))
        for params in groups.values():
            conn.execute(statement, params)  # SET: the columns named in params
        return PutReport(added=len(new), updated=len(rows) - len(new),
                         added_ids=frozenset(r["grant_id"] for r in new))

    def put(self, grant_id: str, access_token: str, *, workspace_id: str | None = None,
            kryptos_user_id: str | None = None, customer_ref: str | None = None,
            user_kind: str | None = None) -> VaultEntry:
        """Store (or replace) the token of a grant. Fields given as None keep a stored value."""
        gid, token = _grant_id(grant_id), _token(access_token)
        fields = _fields(workspace_id, kryptos_user_id, customer_ref, user_kind)
        return self._write(gid, token, fields)

    def put_many(self, entries: Iterable[NewVaultEntry]) -> PutReport:
        """`put()` for many grants in one transaction (all stored, or none): each token is
        encrypted on its own, the rows are written with one insert and grouped updates. An
        invalid entry raises `StoreError` (naming its position, never its token) before
        anything is written. A grant listed twice is put twice, in order."""
        merged: dict[str, tuple[str, dict[str, str]]] = {}
        for position, e in enumerate(entries, start=1):
            try:
                gid, token = _grant_id(e.grant_id), _token(e.access_token)
                fields = _fields(e.workspace_id, e.kryptos_user_id, e.customer_ref,
                                 e.user_kind)
            except StoreError as exc:
                raise StoreError(f"Entry {position}: {exc.user_message}") from None
            kept = merged.get(gid, ("", {}))[1]
            merged[gid] = (token, {**kept, **fields})
        rows = [(gid, token, fields) for gid, (token, fields) in merged.items()]
        return self._write_many(rows)

    def put_for_customer(self, grant_id: str, access_token: str, customer_ref: str, *,
                         workspace_id: str | None = None) -> VaultEntry:
        """Store a token exchanged for `customer_ref` (a live grant: clears `revoked_at`)."""
        gid, token = _grant_id(grant_id), _token(access_token)
        ref = _clean(customer_ref, "customer_ref", 320)
        if ref is None:
            raise StoreError("The customer reference is empty.")
        fields: dict[str, Any] = {"customer_ref": ref, "revoked_at": None}
        workspace = _clean(workspace_id, "workspace_id", 200)
        if workspace is not None:
            fields["workspace_id"] = workspace
        return self._write(gid, token, fields)

    def for_customer(self, customer_ref: str) -> VaultEntry | None:
        """The customer's newest stored grant that is not revoked (index on customer_ref)."""
        with self._db.read() as conn:
            row = conn.execute(
                select(vault_tokens).where(vault_tokens.c.customer_ref == customer_ref,
                                           vault_tokens.c.revoked_at.is_(None))
                .order_by(vault_tokens.c.updated_at.desc(), vault_tokens.c.grant_id)
                .limit(1)).first()
        return None if row is None else self._entry(row)

    def for_user(self, kryptos_user_id: str) -> VaultEntry | None:
        """The newest stored grant of a Kryptos user id (index on kryptos_user_id)."""
        with self._db.read() as conn:
            row = conn.execute(
                select(vault_tokens).where(vault_tokens.c.kryptos_user_id == kryptos_user_id)
                .order_by(vault_tokens.c.updated_at.desc(), vault_tokens.c.grant_id)
                .limit(1)).first()
        return None if row is None else self._entry(row)

    def mark_revoked(self, grant_id: str) -> VaultEntry:
        """Record that the grant was revoked; the ciphertext stays (audit, support)."""
        gid = _grant_id(grant_id)
        now = datetime.now(UTC)
        with self._db.write() as conn:
            done = conn.execute(update(vault_tokens).where(vault_tokens.c.grant_id == gid)
                                .values(revoked_at=now, updated_at=now))
            if done.rowcount == 0:
                raise VaultEntryNotFound(gid)
            row = conn.execute(select(vault_tokens).where(vault_tokens.c.grant_id == gid)).one()
        return self._entry(row)

    def update(self, grant_id: str, **fields: Any) -> VaultEntry:
        """Change some fields of a stored grant (`access_token`, `workspace_id`,
        `kryptos_user_id`, `customer_ref`, `user_kind`); None or "" clears a field."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise StoreError(f"Unknown vault field(s): {', '.join(sorted(unknown))}.")
        gid = _grant_id(grant_id)
        token = _token(fields.pop("access_token")) if "access_token" in fields else None
        values: dict[str, Any] = {}
        for name, value in fields.items():
            values[name] = _kind(value) if name == "user_kind" else _clean(value, name,
                                                                            _FIELD_LIMITS[name])
        with self._db.write() as conn:
            exists = conn.execute(
                select(vault_tokens.c.grant_id).where(vault_tokens.c.grant_id == gid)).first()
            if exists is None:
                raise VaultEntryNotFound(gid)
            if token is None and not values:
                row = conn.execute(select(vault_tokens).where(vault_tokens.c.grant_id == gid))
                return self._entry(row.one())
            return self._upsert(conn, gid, token, values)[0]

    def get(self, grant_id: str) -> VaultEntry | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(vault_tokens).where(vault_tokens.c.grant_id == grant_id)).first()
        return None if row is None else self._entry(row)

    def reveal(self, grant_id: str) -> str:
        """The plaintext access token, to make one call with. Never log or display it."""
        with self._db.read() as conn:
            ciphertext = conn.execute(
                select(vault_tokens.c.token_ciphertext)
                .where(vault_tokens.c.grant_id == grant_id)).scalar()
        if ciphertext is None:
            raise VaultEntryNotFound(grant_id)
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise VaultKeyError(
                f"The stored token of grant {grant_id} cannot be decrypted: the vault key does "
                "not match the one the tokens were stored with, or the row was damaged."
            ) from None

    def reveal_many(self, grant_ids: Sequence[str]) -> dict[str, str | None]:
        """Plaintext tokens of several grants in one query per 500 ids: grant id -> token,
        None for a stored token that cannot be decrypted; grants not stored are left out.
        Never log or display the tokens."""
        out: dict[str, str | None] = {}
        ids = list(dict.fromkeys(grant_ids))
        for i in range(0, len(ids), 500):
            with self._db.read() as conn:
                rows = conn.execute(
                    select(vault_tokens.c.grant_id, vault_tokens.c.token_ciphertext)
                    .where(vault_tokens.c.grant_id.in_(ids[i:i + 500]))).all()
            for gid, ciphertext in rows:
                try:
                    out[gid] = self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
                except InvalidToken:
                    out[gid] = None
        return out

    def list(self) -> list[VaultEntry]:
        with self._db.read() as conn:
            rows = conn.execute(select(vault_tokens).order_by(vault_tokens.c.grant_id)).all()
        return [self._entry(r) for r in rows]

    def grant_ids(self) -> set[str]:
        with self._db.read() as conn:
            return set(conn.execute(select(vault_tokens.c.grant_id)).scalars())

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

    def import_csv(self, file: str | os.PathLike[str] | TextIO, *,
                   listed: Collection[str] | None = None) -> ImportReport:
        """Import `grant_id, access_token, customer_ref` rows (optional columns: workspace_id,
        kryptos_user_id, user_kind). Valid rows are stored in one transaction; invalid ones are
        reported by line number with a reason that never contains the token. `listed`: the
        grants Kryptos lists; any other grant is refused (`NOT_LISTED`)."""
        if isinstance(file, str | os.PathLike):
            try:
                with open(file, encoding="utf-8-sig", newline="") as fh:
                    return self._import(fh, listed)
            except (OSError, UnicodeDecodeError) as exc:
                raise StoreError(f"Cannot read {os.fspath(file)}: {exc.__class__.__name__}") \
                    from None
        return self._import(file, listed)

    def _import(self, fh: TextIO, listed: Collection[str] | None = None) -> ImportReport:
        reader = csv.DictReader(fh)
        try:
            names = reader.fieldnames
        except (UnicodeDecodeError, csv.Error):
            raise StoreError("The file is not a readable UTF-8 CSV: save it as CSV UTF-8 and "
                             "upload it again.") from None
        header = [h.strip().lower() for h in (names or [])]
        missing = {"grant_id", "access_token"} - set(header)
        if missing:
            raise StoreError(
                "The CSV needs a header row with grant_id, access_token and customer_ref "
                f"(missing: {', '.join(sorted(missing))}).")
        reader.fieldnames = header
        rejected: list[RejectedRow] = []
        valid: list[tuple[str, str, dict[str, Any]]] = []
        seen: dict[str, int] = {}
        try:
            rows: Iterator[dict[str, Any]] = iter(reader)
            for row in rows:
                line = reader.line_num
                gid_raw = (row.get("grant_id") or "").strip()
                # Only a well-formed grant id is echoed: a swapped column must never print a
                # token (or anything else) that happens to sit in the grant_id cell.
                shown = gid_raw if _GRANT_ID_RE.match(gid_raw) else None
                if None in row:
                    rejected.append(RejectedRow(line, shown, "more cells than header columns"))
                    continue
                try:
                    gid = _grant_id(gid_raw)
                    token = _token(row.get("access_token"))
                    fields = {k: v for k, v in {
                        "customer_ref": _clean(row.get("customer_ref"), "customer_ref", 320),
                        "workspace_id": _clean(row.get("workspace_id"), "workspace_id", 200),
                        "kryptos_user_id": _clean(row.get("kryptos_user_id"),
                                                  "kryptos_user_id", 200),
                        "user_kind": _kind(row.get("user_kind")),
                    }.items() if v is not None}
                except StoreError as exc:
                    rejected.append(RejectedRow(line, shown, exc.user_message))
                    continue
                if listed is not None and gid not in listed:
                    rejected.append(RejectedRow(line, gid, NOT_LISTED))
                    continue
                if gid in seen:
                    rejected.append(RejectedRow(
                        line, gid, f"grant_id repeats line {seen[gid]} (first one kept)"))
                    continue
                seen[gid] = line
                valid.append((gid, token, fields))
        except csv.Error as exc:
            raise StoreError(f"The CSV cannot be read at line {max(reader.line_num, 1)}: "
                             f"{exc}.") from None
        except UnicodeDecodeError:
            raise StoreError(f"The file is not UTF-8 text (from line {reader.line_num + 1}): "
                             "save the CSV as UTF-8 and upload it again.") from None
        stored = self._write_many(valid) if valid else PutReport(0, 0)
        named = tuple((gid, gid in stored.added_ids, fields.get("customer_ref"))
                      for gid, _, fields in valid)
        return ImportReport(stored.added, stored.updated, tuple(rejected), named)

