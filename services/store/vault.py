"""The token vault: per grant, the access token encrypted at rest with Fernet, plus what the
company knows about the customer. Tokens are decrypted only by `reveal()`, to make a call;
everything else sees the masked form (`cat_ab...89`).

Beside it: the keys, their check and rotation in `vault_keys.py`; the checks on stored fields
in `vault_fields.py`; reading a CSV to import in `vault_import.py`. Their public names are
importable from here as well."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from cryptography.fernet import InvalidToken
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.kryptos.models import mask_token
from services.store.db import Database
from services.store.errors import StoreError, VaultEntryNotFound, VaultKeyError
from services.store.exchanges import ExchangeOnce
from services.store.schema import vault_tokens
from services.store.vault_fields import (
    FIELD_LIMITS,
    USER_KINDS,
    clean_field,
    valid_fields,
    valid_grant_id,
    valid_kind,
    valid_token,
)
from services.store.vault_import import NOT_LISTED, ImportReport, RejectedRow, read_import
from services.store.vault_keys import (
    ROTATE_BATCH_SIZE,
    VAULT_KEY_FILENAME,
    RotationReport,
    VaultKeys,
    load_vault_key,
    parse_vault_keys,
)

_UPDATABLE = frozenset(
    {"access_token", "workspace_id", "kryptos_user_id", "customer_ref", "user_kind"}
)
#: Grant ids per `IN (...)` query when `put_many` looks up which rows exist.
_LOOKUP_CHUNK = 500


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


class TokenVault(VaultKeys):
    """Encrypted access tokens per grant in table `vault_tokens`.

    `key` may be a comma-separated list of keys (or a sequence), primary first: tokens are
    encrypted with the primary and decrypted with whichever key fits. Opening with a key that
    does not fit raises `VaultKeyError` at once; key check and rotation: `VaultKeys`."""

    @property
    def exchanges(self) -> ExchangeOnce:
        """Each public token exchanged once (same database; shared with the backend)."""
        return ExchangeOnce(self._db)

    def __init__(self, db: Database, key: bytes | str | Sequence[bytes | str]) -> None:
        self._db = db
        self._open_keys(key)

    @property
    def db(self) -> Database:
        """The database this vault is stored in."""
        return self._db

    def __repr__(self) -> str:
        return f"TokenVault({self._db!r})"

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
        blank = dict.fromkeys(FIELD_LIMITS.keys() | {"user_kind"})
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
        gid, token = valid_grant_id(grant_id), valid_token(access_token)
        fields = valid_fields(workspace_id, kryptos_user_id, customer_ref, user_kind)
        return self._write(gid, token, fields)

    def put_many(self, entries: Iterable[NewVaultEntry]) -> PutReport:
        """`put()` for many grants in one transaction (all stored, or none): each token is
        encrypted on its own, the rows are written with one insert and grouped updates. An
        invalid entry raises `StoreError` (naming its position, never its token) before
        anything is written. A grant listed twice is put twice, in order."""
        merged: dict[str, tuple[str, dict[str, str]]] = {}
        for position, e in enumerate(entries, start=1):
            try:
                gid, token = valid_grant_id(e.grant_id), valid_token(e.access_token)
                fields = valid_fields(e.workspace_id, e.kryptos_user_id, e.customer_ref,
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
        gid, token = valid_grant_id(grant_id), valid_token(access_token)
        ref = clean_field(customer_ref, "customer_ref", 320)
        if ref is None:
            raise StoreError("The customer reference is empty.")
        fields: dict[str, Any] = {"customer_ref": ref, "revoked_at": None}
        workspace = clean_field(workspace_id, "workspace_id", 200)
        if workspace is not None:
            fields["workspace_id"] = workspace
        return self._write(gid, token, fields)

    def _customer_row(self, customer_ref: str) -> Any:
        with self._db.read() as conn:
            return conn.execute(
                select(vault_tokens).where(vault_tokens.c.customer_ref == customer_ref,
                                           vault_tokens.c.revoked_at.is_(None))
                .order_by(vault_tokens.c.updated_at.desc(), vault_tokens.c.grant_id)
                .limit(1)).first()

    def for_customer(self, customer_ref: str) -> VaultEntry | None:
        """The customer's newest stored grant that is not revoked (index on customer_ref)."""
        row = self._customer_row(customer_ref)
        return None if row is None else self._entry(row)

    def reveal_for_customer(self, customer_ref: str) -> tuple[VaultEntry, str] | None:
        """`for_customer` and that grant's plaintext token (`reveal`) from one read. Never
        log or display the token."""
        row = self._customer_row(customer_ref)
        if row is None:
            return None
        return self._entry(row), self._decrypt(row.grant_id, row.token_ciphertext)

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
        gid = valid_grant_id(grant_id)
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
        gid = valid_grant_id(grant_id)
        token = valid_token(fields.pop("access_token")) if "access_token" in fields else None
        values: dict[str, Any] = {}
        for name, value in fields.items():
            values[name] = valid_kind(value) if name == "user_kind" else clean_field(value, name,
                                                                            FIELD_LIMITS[name])
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
        return self._decrypt(grant_id, ciphertext)

    def _decrypt(self, grant_id: str, ciphertext: str) -> str:
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

    def get_many(self, grant_ids: Iterable[str]) -> dict[str, VaultEntry]:
        """The stored entries of these grants (grant id -> entry; not stored: left out), one
        query per 500 ids: what a run over some grants needs, not the whole vault."""
        ids = list(dict.fromkeys(grant_ids))
        out: dict[str, VaultEntry] = {}
        for i in range(0, len(ids), _LOOKUP_CHUNK):
            with self._db.read() as conn:
                rows = conn.execute(select(vault_tokens).where(
                    vault_tokens.c.grant_id.in_(ids[i:i + _LOOKUP_CHUNK]))).all()
            out.update((r.grant_id, self._entry(r)) for r in rows)
        return out

    def stored_for_customer(self, customer_ref: str, since: datetime) -> list[VaultEntry]:
        """The customer's grants first stored at or after `since`, oldest first (index on
        customer_ref)."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(vault_tokens).where(vault_tokens.c.customer_ref == customer_ref,
                                           vault_tokens.c.created_at >= since)
                .order_by(vault_tokens.c.created_at, vault_tokens.c.grant_id)).all()
        return [self._entry(r) for r in rows]

    def list(self) -> list[VaultEntry]:
        with self._db.read() as conn:
            rows = conn.execute(select(vault_tokens).order_by(vault_tokens.c.grant_id)).all()
        return [self._entry(r) for r in rows]

    def grant_ids(self) -> set[str]:
        with self._db.read() as conn:
            return set(conn.execute(select(vault_tokens.c.grant_id)).scalars())

    def import_csv(self, file: str | os.PathLike[str] | IO[str], *,
                   listed: Collection[str] | None = None) -> ImportReport:
        """Import `grant_id, access_token, customer_ref` rows (see vault_import.py). Valid rows
        are stored in one transaction; invalid ones are reported by line number with a reason
        that never contains the token. `listed`: the grants Kryptos lists; any other grant is
        refused (`NOT_LISTED`)."""
        valid, rejected = read_import(file, listed)
        stored = self._write_many(valid) if valid else PutReport(0, 0)
        named = tuple((gid, gid in stored.added_ids, fields.get("customer_ref"))
                      for gid, _, fields in valid)
        return ImportReport(stored.added, stored.updated, rejected, named)


__all__ = ["NOT_LISTED", "ROTATE_BATCH_SIZE", "USER_KINDS", "VAULT_KEY_FILENAME", "ImportReport",
           "NewVaultEntry", "PutReport", "RejectedRow", "RotationReport", "TokenVault",
           "VaultEntry", "load_vault_key", "parse_vault_keys"]
