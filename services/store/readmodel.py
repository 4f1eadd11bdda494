"""The read model: a local copy of what the console shows about grants, kept fresh by the
sync worker (services/sync/worker.py), so pages read SQL and never fan out upstream.

Tables (migration 0004_read_model): `rm_grants` (one row per grant: the API's grants list
joined with the vault, user kind and limit, integration aggregates), `rm_integrations` (one
row per integration), `rm_sync_state` (key/value state of the worker) and `rm_version`
(a counter bumped by every write, so other processes can cheaply ask "anything new?").

Writes go in batches (executemany, one transaction per batch). Every query (counts, a
page, one grant, the CSV export) is SQL with indexes: no Python loop over all rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Literal, TextIO

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.csv_safe import csv_safe
from services.store.db import Database
from services.store.errors import StoreError
from services.store.schema import UTCDateTime, vault_tokens

BATCH_SIZE = 2000
#: Rows fetched per round trip by `iter_csv`.
CSV_CHUNK = 2000
MAX_PAGE_SIZE = 1000
#: page(): at most this many matches are sorted directly rather than found by an index walk.
FILTER_FIRST_MAX = 5000
FAILING = frozenset({"FAILED", "PARTIALLY SYNCED"})
SYNCING = frozenset({"ONGOING", "SYNCING"})

_md = MetaData()
rm_grants = Table(
    "rm_grants", _md,
    Column("grant_id", String(200), primary_key=True),
    Column("status", String(10), nullable=False),
    Column("workspace_id", String(200)),
    Column("scopes", Text),
    Column("created_at", UTCDateTime),
    Column("expires_at", UTCDateTime),
    Column("status_changed_at", UTCDateTime),
    Column("kryptos_user_id", String(200)),
    Column("customer_ref", String(320)),
    Column("has_token", Boolean, nullable=False),
    Column("masked_token", String(40)),
    Column("user_kind", String(10)),
    Column("transaction_limit", BigInteger),
    Column("limiter_enabled", Boolean),
    Column("limit_source", String(10)),
    Column("limit_updated_at", UTCDateTime),
    Column("userinfo_refreshed_at", UTCDateTime),
    Column("integrations_refreshed_at", UTCDateTime),
    Column("grants_seen_at", UTCDateTime),
    Column("refreshed_at", UTCDateTime, nullable=False),
    Column("unreadable", Boolean, nullable=False),
    Column("error_message", Text),
    Column("sync_state", String(12)),
    Column("n_integrations", Integer, nullable=False),
    Column("n_failing", Integer, nullable=False),
    Column("n_syncing", Integer, nullable=False),
    Column("n_never_synced", Integer, nullable=False),
    Column("total_transactions", BigInteger),
    Column("last_sync", UTCDateTime),
    Column("fp", BigInteger),
    Column("integrations_fp", BigInteger),
    Column("search_text", Text),
)
rm_integrations = Table(
    "rm_integrations", _md,
    Column("grant_id", String(200), primary_key=True),
    Column("wallet_id", String(200), primary_key=True),
    Column("name", String(300)),
    Column("provider", String(200)),
    Column("type", String(50)),
    Column("status", String(40), nullable=False),
    Column("last_sync", UTCDateTime),
    Column("transactions", BigInteger),
    Column("message", Text),
    Column("limit_exceeded", Boolean, nullable=False),
    Column("refreshed_at", UTCDateTime, nullable=False),
    Column("webhook_id", String(200)),
)
rm_sync_state = Table(
    "rm_sync_state", _md,
    Column("name", String(50), primary_key=True),
    Column("value", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)
rm_version = Table(
    "rm_version", _md,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

SyncState = Literal["failing", "syncing", "ok", "empty", "unreadable"]
Queue = Literal["failing", "syncing", "never_synced", "not_readable", "no_token"]
QUEUES: tuple[str, ...] = ("failing", "syncing", "never_synced", "not_readable", "no_token")
SORTS = {
    "grant_id": rm_grants.c.grant_id,
    "created_at": rm_grants.c.created_at,
    "customer_ref": rm_grants.c.customer_ref,
    "kryptos_user_id": rm_grants.c.kryptos_user_id,
    "status": rm_grants.c.status,
    "user_kind": rm_grants.c.user_kind,
    "transaction_limit": rm_grants.c.transaction_limit,
    "n_integrations": rm_grants.c.n_integrations,
    "n_failing": rm_grants.c.n_failing,
    "last_sync": rm_grants.c.last_sync,
    "integrations_refreshed_at": rm_grants.c.integrations_refreshed_at,
}
CSV_COLUMNS = (
    "grant_id", "status", "customer_ref", "kryptos_user_id", "user_kind", "has_token",
    "workspace_id", "created_at", "transaction_limit", "limiter_enabled", "limit_source",
    "n_integrations", "n_failing", "n_syncing", "n_never_synced", "unreadable",
    "sync_state", "last_sync", "integrations_refreshed_at", "refreshed_at",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _csv_safe(value: Any) -> str:
    return "" if value is None else csv_safe(str(value))


# --- value types ----------------------------------------------------------------------------

@dataclass(frozen=True)
class RmIntegration:
    grant_id: str
    wallet_id: str
    name: str | None
    provider: str | None
    type: str | None
    status: str
    last_sync: datetime | None
    transactions: int | None
    message: str | None
    limit_exceeded: bool
    refreshed_at: datetime


@dataclass(frozen=True)
class RmGrant:
    """One grant as the read model knows it. `sync_state` None: integrations not read yet."""

    grant_id: str
    status: str
    workspace_id: str | None
    scopes: str | None
    created_at: datetime | None
    expires_at: datetime | None
    status_changed_at: datetime | None
    kryptos_user_id: str | None
    customer_ref: str | None
    has_token: bool
    masked_token: str | None
    user_kind: str | None
    transaction_limit: int | None
    limiter_enabled: bool | None
    limit_source: str | None
    limit_updated_at: datetime | None
    userinfo_refreshed_at: datetime | None
    integrations_refreshed_at: datetime | None
    grants_seen_at: datetime | None
    refreshed_at: datetime
    unreadable: bool
    error_message: str | None
    sync_state: str | None
    n_integrations: int
    n_failing: int
    n_syncing: int
    n_never_synced: int
    total_transactions: int | None
    last_sync: datetime | None

    @property
    def effective_limit(self) -> int | None:
        """The cap in force: None when the limiter is off or the limit is unknown."""
        return None if self.limiter_enabled is False else self.transaction_limit

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or _now()) - self.refreshed_at).total_seconds()


@dataclass(frozen=True)
class GrantDetailRow:
    grant: RmGrant
    integrations: tuple[RmIntegration, ...]


@dataclass(frozen=True)
class GrantFilter:
    """Filters of `ReadModel.page` / `iter_csv` (None: no filter).

    `search` matches grant id, customer reference or Kryptos user id, case-insensitively,
    as a substring (`search_mode="substring"`) or a prefix of one of them. `limit`: a number
    (the effective cap), "off" (limiter off), "unknown", or "custom" (known but matching no
    configured tier); `tier` names a configured tier (its limit, or "off"). `queue` is a
    work queue (active grants only)."""

    search: str | None = None
    search_mode: Literal["substring", "prefix"] = "substring"
    status: Literal["active", "revoked"] | None = None
    kind: Literal["guest", "linked", "unknown"] | None = None
    has_token: bool | None = None
    integration_status: SyncState | Literal["never"] | None = None
    queue: Queue | None = None
    limit: int | Literal["off", "unknown", "custom"] | None = None
    tier: str | None = None


@dataclass(frozen=True)
class GrantPage:
    rows: tuple[RmGrant, ...]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class Counts:
    total: int
    active: int
    revoked: int
    guest: int
    linked: int
    unknown_kind: int
    with_token: int
    without_token: int
    #: Work queues (active grants): a count per `QUEUES` name.
    queues: Mapping[str, int]
    integrations: int
    integrations_failing: int
    integrations_syncing: int
    #: Active grants with a token whose integrations were never read yet.
    never_refreshed: int


@dataclass(frozen=True)
class Freshness:
    """How fresh the read model is. `oldest`/`newest`: the rows' `refreshed_at`;
    `oldest_integrations`: the least recently read integrations of an active grant with a
    token (None when there are none or some were never read: see `never_refreshed`).
    `never_refreshed` is None when it was not counted (a page's light freshness)."""

    rows: int
    oldest: datetime | None
    newest: datetime | None
    oldest_integrations: datetime | None
    never_refreshed: int | None
    last_full_sync: datetime | None

    def age_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds since the grants list was last synced in full (None: never)."""
        if self.last_full_sync is None:
            return None
        return max(0.0, ((now or _now()) - self.last_full_sync).total_seconds())

    def as_of(self, now: datetime | None = None) -> str:
        """'as of 12 s ago' for page captions."""
        age = self.age_seconds(now)
        if age is None:
            return "not synced yet"
        if age < 90:
            return f"as of {age:.0f} s ago"
        if age < 5400:
            return f"as of {age / 60:.0f} min ago"
        return f"as of {age / 3600:.1f} h ago"

    def is_stale(self, max_age_s: float, now: datetime | None = None) -> bool:
        age = self.age_seconds(now)
        return age is None or age > max_age_s


@dataclass(frozen=True)
class GrantsApplied:
    listed: int
    written: int
    revoked: int
    reactivated: int = 0


@dataclass(frozen=True)
class UserFacts:
    """What user info says: kind and (Guests) the effective limit."""

    kryptos_user_id: str
    is_guest: bool
    transaction_limit: int | None


@dataclass(frozen=True)
class IntegrationsError:
    """Integrations could not be read (`message` is shown; it never holds a secret)."""

    message: str


# --- helpers ----------------------------------------------------------------------------------

def _fp(*values: Any) -> int:
    digest = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _integrations_fp(items: Any) -> int:
    if isinstance(items, IntegrationsError):
        return _fp("error", items.message)
    return _fp(sorted((i.wallet_id, i.display_name, i.provider, i.type, i.status,
                       i.last_synced_at, i.total_transactions, i.message,
                       bool(i.limit_exceeded)) for i in items))


def _search_text(gid: str, ref: str | None, user: str | None) -> str:
    return "\n".join(x.lower() for x in (gid, ref or "", user or ""))


def _grant_row(gid: str, g: Any, v: tuple[Any, ...] | None, now: datetime) -> dict[str, Any]:
    """An rm_grants row from a listed grant (None: not listed) and its vault fields
    (masked token, workspace, user id, customer ref, kind; None: no token stored)."""
    status = "active" if g is not None else "revoked"
    masked, v_ws, v_user, ref, kind = v if v is not None else (None,) * 5
    gfields = ((g.workspace_id, g.scopes, g.created_at, g.expires_at)
               if g is not None else (None, None, None, None))
    return {
        "grant_id": gid, "status": status, "workspace_id": gfields[0] or v_ws,
        "scopes": gfields[1], "created_at": gfields[2], "expires_at": gfields[3],
        "status_changed_at": now, "kryptos_user_id": v_user, "customer_ref": ref,
        "has_token": v is not None, "masked_token": masked, "user_kind": kind,
        "grants_seen_at": now if g is not None else None, "refreshed_at": now,
        "unreadable": False, "n_integrations": 0, "n_failing": 0, "n_syncing": 0,
        "n_never_synced": 0, "search_text": _search_text(gid, ref, v_user),
        "fp": _fp(gfields, v is not None, masked, v_ws, v_user, ref, kind),
    }


def _vault_fields(e: Any) -> tuple[Any, ...]:
    return (e.masked_token, e.workspace_id, e.kryptos_user_id, e.customer_ref, e.user_kind)


def _insert(db: Database) -> Any:
    return sqlite.insert if db.is_sqlite else postgresql.insert


def _bump(conn: Connection) -> None:
    conn.execute(update(rm_version).where(rm_version.c.id == 1)
                 .values(version=rm_version.c.version + 1))


class _Tally:
    """What a full sync wrote, batch by batch."""

    def __init__(self) -> None:
        self.written = self.revoked = self.reactivated = 0

    def diff(self, rows: list[dict[str, Any]],
             existing: Mapping[str, tuple[Any, str]]) -> list[dict[str, Any]]:
        """The rows that differ from what is stored, counted."""
        out = []
        for row in rows:
            before = existing.get(row["grant_id"])
            if before == (row["fp"], row["status"]):
                continue
            if before is not None and before[1] != row["status"]:
                if row["status"] == "active":
                    self.reactivated += 1
                else:
                    self.revoked += 1
            out.append(row)
        self.written += len(out)
        return out


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _aggregate(items: Sequence[Any]) -> dict[str, Any]:
    """Integration aggregates of a grant from `services.kryptos.models.Integration`s."""
    return _aggregate_facts([(i.status, i.last_synced_at, i.total_transactions)
                             for i in items])


def _aggregate_facts(items: Sequence[tuple[str, datetime | None, int | None]]
                     ) -> dict[str, Any]:
    """Aggregates from (status, last sync, transactions) of each integration."""
    failing = sum(1 for st, _, _ in items if st.upper() in FAILING)
    syncing = sum(1 for st, _, _ in items if st.upper() in SYNCING)
    never = sum(1 for _, last, _ in items if last is None)
    txs = [n for _, _, n in items if n is not None]
    syncs = [last for _, last, _ in items if last is not None]
    state = ("failing" if failing else "syncing" if syncing else "ok" if items else "empty")
    return {"n_integrations": len(items), "n_failing": failing, "n_syncing": syncing,
            "n_never_synced": never, "total_transactions": sum(txs) if txs else None,
            "last_sync": max(syncs) if syncs else None, "sync_state": state,
            "unreadable": False, "error_message": None}


def _grant(row: Any, last_full_sync: datetime | None = None) -> RmGrant:
    data = {name: getattr(row, name) for name in RmGrant.__dataclass_fields__}
    seen = data["grants_seen_at"]
    # Unchanged active rows are not rewritten by a full sync: the last full sync saw them.
    if data["status"] == "active" and last_full_sync and (seen is None or seen < last_full_sync):
        data["grants_seen_at"] = last_full_sync
    data["has_token"] = bool(data["has_token"])
    data["unreadable"] = bool(data["unreadable"])
    if data["limiter_enabled"] is not None:
        data["limiter_enabled"] = bool(data["limiter_enabled"])
    return RmGrant(**data)


_GRANT_COLUMNS = [rm_grants.c[name] for name in RmGrant.__dataclass_fields__]


class ReadModel:
    """Reads and writes of the read model tables over `db` (already migrated).

    `tiers`: the configured tiers (services.settings.Tier: `name`, `limit`), for the
    `GrantFilter.tier` and `limit="custom"` filters."""

    def __init__(self, db: Database, tiers: Sequence[Any] = ()) -> None:
        self._db = db
        self._tiers = tuple(tiers)
        self._counts_cache: tuple[int, Counts] | None = None
        self._rows_cache: tuple[int, int] | None = None
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReadModel({self._db!r})"

    @property
    def db(self) -> Database:
        return self._db

    # --- change counter -------------------------------------------------------------------

    def version(self) -> int:
        """Bumped by every write: a cache keyed on it is invalid once it moves."""
        with self._db.read() as conn:
            return int(conn.execute(select(rm_version.c.version)
                                    .where(rm_version.c.id == 1)).scalar_one())

    # --- writes -----------------------------------------------------------------------------

    _VAULT_COLS = (vault_tokens.c.grant_id, vault_tokens.c.masked_token,
                   vault_tokens.c.workspace_id, vault_tokens.c.kryptos_user_id,
                   vault_tokens.c.customer_ref, vault_tokens.c.user_kind)

    def apply_grants(self, grants: Iterable[Any],
                     vault_entries: Iterable[Any] | None = None, *,
                     now: datetime | None = None) -> GrantsApplied:
        """Apply a full `GET /token/grants` answer (services.kryptos.models.Grant), joined
        with the vault (`VaultEntry`s; None: read the vault table here, without decrypting
        anything). Listed grants are active; stored-but-unlisted ones and rows no longer in
        either are revoked. Only rows that differ are written. See `apply_grant_batches`."""
        it = iter(grants)
        return self.apply_grant_batches(iter(lambda: list(islice(it, BATCH_SIZE)), []),
                                        vault_entries, now=now)

    def apply_grant_batches(self, batches: Iterable[Sequence[Any]],
                            vault_entries: Iterable[Any] | None = None, *,
                            now: datetime | None = None) -> GrantsApplied:
        """`apply_grants` over the list in batches (e.g. `KryptosClient.iter_grants()`):
        each batch is read against the stored rows and the vault by primary key and its
        changed rows upserted in one transaction, so memory holds one batch plus the set of
        listed ids (about 90 bytes a grant); an unchanged list writes nothing. Then the
        vault and the active rows are walked by key for what the list did not name. Rows
        the console wrote meanwhile (a grant exchanged during the sync) are left alone."""
        now = now or _now()
        started = max(now, _now())
        vault = ({e.grant_id: _vault_fields(e) for e in vault_entries}
                 if vault_entries is not None else None)
        tally = _Tally()
        seen: set[str] = set()
        for batch in batches:
            listed = {g.grant_id: g for g in batch}
            seen.update(listed)
            self._apply_batch(listed, vault, now, tally)
        self._apply_unlisted_vault(seen, vault, now, started, tally)
        gone = 0
        for ids in self._keys(rm_grants.c.grant_id, and_(rm_grants.c.status == "active",
                                                         rm_grants.c.refreshed_at <= started)):
            unlisted = [g for g in ids if g not in seen]
            if unlisted:
                with self._db.write() as conn:
                    gone += conn.execute(update(rm_grants).where(
                        rm_grants.c.grant_id.in_(unlisted), rm_grants.c.status == "active",
                        rm_grants.c.refreshed_at <= started).values(
                        status="revoked", status_changed_at=now, refreshed_at=now,
                        fp=None)).rowcount or 0
                    _bump(conn)
        return GrantsApplied(len(seen), tally.written, tally.revoked + gone, tally.reactivated)

    def _keys(self, col: Any, cond: Any) -> Iterator[list[str]]:
        """The values of a primary key column whose rows match `cond`, in key order, a
        batch at a time: keyset paging on the key alone (`cond` is tested here, so that
        each page is a key range and never a scan of an index on `cond`'s columns)."""
        after = ""
        while True:
            with self._db.read() as conn:
                page = conn.execute(select(col, cond).where(col > after)
                                    .order_by(col).limit(BATCH_SIZE)).all()
            ids = [r[0] for r in page if r[1]]
            if ids:
                yield ids
            if len(page) < BATCH_SIZE:
                return
            after = page[-1][0]

    def _apply_batch(self, listed: Mapping[str, Any],
                     vault: Mapping[str, tuple[Any, ...]] | None, now: datetime,
                     tally: _Tally) -> None:
        """One batch of listed grants: upsert the rows that changed."""
        if not listed:
            return
        ids = sorted(listed)
        with self._db.read() as conn:
            existing = self._existing(conn, ids)
            if vault is None:
                vault = self._vault_of(conn, ids)
        rows = tally.diff([_grant_row(gid, listed[gid], vault.get(gid), now) for gid in ids],
                          existing)
        if rows:
            self._upsert_grants(rows)

    def _vault_of(self, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        return {r[0]: tuple(r[1:]) for r in conn.execute(
            select(*self._VAULT_COLS).where(vault_tokens.c.grant_id.in_(list(ids))))}

    def _apply_unlisted_vault(self, seen: set[str], vault: Mapping[str, tuple[Any, ...]] | None,
                              now: datetime, started: datetime, tally: _Tally) -> None:
        """Tokens stored for grants the list did not name: revoked rows (tokens stored
        after the sync began are left for the next one)."""
        if vault is not None:
            chunks: Iterable[Sequence[str]] = _chunks(
                sorted(g for g in vault if g not in seen), BATCH_SIZE)
        else:
            chunks = ([g for g in ids if g not in seen] for ids in self._keys(
                vault_tokens.c.grant_id, vault_tokens.c.created_at <= started))
        for ids in chunks:
            if not ids:
                continue
            with self._db.read() as conn:
                existing = self._existing(conn, ids)
                fields = vault if vault is not None else self._vault_of(conn, ids)
            rows = tally.diff([_grant_row(g, None, fields[g], now) for g in ids
                               if g in fields], existing)
            if rows:
                self._upsert_grants(rows)

    @staticmethod
    def _existing(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[Any, str]]:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            select(rm_grants.c.grant_id, rm_grants.c.fp, rm_grants.c.status)
            .where(rm_grants.c.grant_id.in_(list(ids))))}

    def apply_grant(self, grant: Any, vault_entry: Any | None, *,
                    now: datetime | None = None) -> None:
        """One grant the console just created or changed (e.g. after a token exchange: the
        `Grant` or None when not listed yet, and its `VaultEntry`), shown at once."""
        now = now or _now()
        if grant is None and vault_entry is None:
            raise StoreError("apply_grant needs the grant or its vault entry.")
        gid = grant.grant_id if grant is not None else vault_entry.grant_id
        v = _vault_fields(vault_entry) if vault_entry is not None else None
        row = _grant_row(gid, grant, v, now)
        if grant is None:  # not listed yet: a new grant is active until a sync says otherwise
            row.update(status="active", fp=None)
        self._upsert_grants([row])

    def apply_stored_tokens(self, grant_ids: Sequence[str],
                            revoked: Iterable[str] = (), *,
                            now: datetime | None = None) -> int:
        """Tokens just stored in the vault for these grants (e.g. sandbox mode loading what
        the company's backend kept), shown at once as an exchange is: a grant with a stored
        token is active until a sync says otherwise, or revoked when the source said so
        (`revoked`). Rows already showing the same vault fields and status are left alone;
        others are written without a fingerprint, so the next full sync writes them whole.
        Returns how many rows were written."""
        now = now or _now()
        gone = set(revoked)
        ids = sorted(set(grant_ids))
        c = rm_grants.c
        rows = []
        with self._db.read() as conn:
            for batch in _chunks(ids, BATCH_SIZE):
                vault = self._vault_of(conn, batch)
                shown = {r[0]: tuple(r[1:]) for r in conn.execute(
                    select(c.grant_id, c.status, c.has_token, c.masked_token, c.workspace_id,
                           c.kryptos_user_id, c.customer_ref, c.user_kind)
                    .where(c.grant_id.in_(list(batch))))}
                for gid in batch:
                    v = vault.get(gid)
                    if v is None:  # not stored after all (removed meanwhile): nothing to show
                        continue
                    status = "revoked" if gid in gone else "active"
                    if shown.get(gid) == (status, True, *v):
                        continue
                    row = _grant_row(gid, None, v, now)
                    row.update(status=status, fp=None)
                    rows.append(row)
        if rows:  # one transaction (one flush) for the lot
            with self._db.write() as conn:
                for batch in _chunks(rows, BATCH_SIZE):
                    self._upsert_rows(conn, batch)
                _bump(conn)
        return len(rows)

    def request_full_sync(self) -> None:
        """Ask the sync worker (in whichever process holds it) for a full grants sync at
        its next step, e.g. after a vault import."""
        self.set_sync_state({"full_sync_requested": _now().isoformat()})

    def _upsert_grants(self, batch: Sequence[dict[str, Any]]) -> None:
        with self._db.write() as conn:
            self._upsert_rows(conn, batch)
            _bump(conn)

    def _upsert_rows(self, conn: Connection, batch: Sequence[dict[str, Any]]) -> None:
        stmt = _insert(self._db)(rm_grants)
        ex, cur = stmt.excluded, rm_grants.c
        keep = ("workspace_id", "created_at", "expires_at", "kryptos_user_id", "user_kind",
                "grants_seen_at")
        set_: dict[str, Any] = {name: ex[name] for name in (
            "status", "scopes", "customer_ref", "has_token", "masked_token", "refreshed_at",
            "fp")}
        set_.update({name: func.coalesce(ex[name], cur[name]) for name in keep})
        set_["status_changed_at"] = case((cur.status != ex.status, ex.status_changed_at),
                                         else_=cur.status_changed_at)
        user = func.coalesce(ex.kryptos_user_id, cur.kryptos_user_id)
        set_["search_text"] = (func.lower(ex.grant_id) + "\n"
                               + func.lower(func.coalesce(ex.customer_ref, "")) + "\n"
                               + func.lower(func.coalesce(user, "")))
        conn.execute(stmt.on_conflict_do_update(index_elements=["grant_id"], set_=set_),
                     list(batch))

    def _mark(self, grant_ids: Sequence[str], now: datetime) -> None:
        for batch in _chunks(list(grant_ids), BATCH_SIZE):
            with self._db.write() as conn:
                conn.execute(
                    update(rm_grants).where(rm_grants.c.grant_id.in_(batch),
                                            rm_grants.c.status == "active")
                    .values(status="revoked", status_changed_at=now, refreshed_at=now,
                            fp=None))
                _bump(conn)

    def mark_revoked(self, grant_id: str, *, now: datetime | None = None) -> None:
        """The console revoked this grant: show it revoked at once."""
        self._mark([grant_id], now or _now())

    def apply_integrations(self, grant_id: str, result: Sequence[Any] | IntegrationsError,
                           *, now: datetime | None = None) -> None:
        """Replace one grant's integrations (a list of services.kryptos Integration), or
        record that they could not be read (the previous rows are kept, flagged)."""
        self.apply_integrations_many([(grant_id, result)], now=now)

    def apply_integrations_many(
        self, results: Sequence[tuple[str, Sequence[Any] | IntegrationsError]], *,
        now: datetime | None = None,
    ) -> None:
        """`apply_integrations` for several grants in one transaction. Grants whose
        integrations did not change only get their times moved (the version stays);
        grants not in the read model are ignored."""
        if not results:
            return
        now = now or _now()
        c = rm_grants.c
        fps = {gid: _integrations_fp(items) for gid, items in results}
        with self._db.write() as conn:
            before = dict(conn.execute(select(c.grant_id, c.integrations_fp).where(
                c.grant_id.in_(list(fps)))).all())
            same = [gid for gid, fp in fps.items() if gid in before and before[gid] == fp]
            if same:  # nothing new: only the times move, and the version stays
                conn.execute(update(rm_grants).where(c.grant_id.in_(same)).values(
                    integrations_refreshed_at=now, refreshed_at=now))
            changed = [(gid, items) for gid, items in results
                       if gid in before and gid not in same]
            if not changed:
                return
            read_ok = [(gid, items) for gid, items in changed
                       if not isinstance(items, IntegrationsError)]
            if read_ok:
                conn.execute(delete(rm_integrations).where(
                    rm_integrations.c.grant_id.in_([gid for gid, _ in read_ok])))
            rows = [{
                "grant_id": gid, "wallet_id": i.wallet_id, "name": (i.display_name or "")[:300],
                "provider": i.provider, "type": i.type, "status": i.status,
                "last_sync": i.last_synced_at, "transactions": i.total_transactions,
                "message": i.message, "limit_exceeded": bool(i.limit_exceeded),
                "refreshed_at": now,
            } for gid, items in read_ok for i in {x.wallet_id: x for x in items}.values()]
            if rows:
                conn.execute(rm_integrations.insert(), rows)
            for gid, items in changed:
                if isinstance(items, IntegrationsError):
                    values: dict[str, Any] = {"unreadable": True, "sync_state": "unreadable",
                                              "error_message": items.message[:500]}
                else:
                    values = _aggregate(items)
                conn.execute(update(rm_grants).where(c.grant_id == gid).values(
                    integrations_refreshed_at=now, refreshed_at=now,
                    integrations_fp=fps[gid], **values))
            _bump(conn)

    def apply_webhook_integration(self, grant_id: str, item: Any, *, webhook_id: str,
                                  received_at: datetime, deleted: bool = False) -> bool:
        """One integration as a webhook reported it (`integration.created|updated|failed`:
        a services.kryptos Integration; `deleted`: remove it), and the grant's aggregates
        (status, last sync, failures) recomputed. Idempotent on `webhook_id`; an event
        received before the worker last read the row is older news and ignored. False when
        nothing changed (unknown grant, a redelivery, older news)."""
        ri, c = rm_integrations.c, rm_grants.c
        with self._db.write() as conn:
            state = conn.execute(select(c.sync_state).where(c.grant_id == grant_id)).first()
            if state is None:
                return False
            cur = conn.execute(select(ri.webhook_id, ri.refreshed_at).where(
                ri.grant_id == grant_id, ri.wallet_id == item.wallet_id)).first()
            if cur is not None and (cur.webhook_id == webhook_id
                                    or cur.refreshed_at > received_at):
                return False
            conn.execute(delete(rm_integrations).where(ri.grant_id == grant_id,
                                                       ri.wallet_id == item.wallet_id))
            if not deleted:
                conn.execute(rm_integrations.insert().values(
                    grant_id=grant_id, wallet_id=item.wallet_id,
                    name=(item.display_name or "")[:300], provider=item.provider,
                    type=item.type, status=item.status, last_sync=item.last_synced_at,
                    transactions=item.total_transactions, message=item.message,
                    limit_exceeded=bool(item.limit_exceeded), refreshed_at=received_at,
                    webhook_id=webhook_id))
            facts = conn.execute(select(ri.status, ri.last_sync, ri.transactions)
                                 .where(ri.grant_id == grant_id)).all()
            values = _aggregate_facts([tuple(f) for f in facts])
            del values["unreadable"], values["error_message"]
            if state.sync_state == "unreadable":  # our token still cannot read it
                del values["sync_state"]
            # integrations_fp None: the worker's next read is written whatever it holds.
            conn.execute(update(rm_grants).where(c.grant_id == grant_id).values(
                refreshed_at=_now(), integrations_fp=None, **values))
            _bump(conn)
        return True

    def apply_userinfo(self, grant_id: str, facts: UserFacts | None, *,
                       now: datetime | None = None) -> None:
        """Record what user info said (None: it could not be read; only the time is kept,
        so the worker does not ask again at once). Guests: the limit in force (None means
        the limiter is off). Linked users have no limit."""
        now = now or _now()
        values: dict[str, Any] = {"userinfo_refreshed_at": now}
        if facts is not None:
            values.update(kryptos_user_id=facts.kryptos_user_id, refreshed_at=now,
                          user_kind="guest" if facts.is_guest else "linked")
            if facts.is_guest:
                values.update(transaction_limit=facts.transaction_limit,
                              limiter_enabled=facts.transaction_limit is not None,
                              limit_source="userinfo", limit_updated_at=now)
            else:
                values.update(transaction_limit=None, limiter_enabled=None, limit_source=None)
            values["search_text"] = (func.lower(rm_grants.c.grant_id) + "\n"
                                     + func.lower(func.coalesce(rm_grants.c.customer_ref, ""))
                                     + "\n" + literal(facts.kryptos_user_id.lower()))
        c = rm_grants.c
        facts_cols = ("kryptos_user_id", "user_kind", "transaction_limit", "limiter_enabled",
                      "limit_source")
        with self._db.write() as conn:
            row = conn.execute(select(*(c[k] for k in facts_cols))
                               .where(c.grant_id == grant_id)).first()
            if row is None:
                return
            current = dict(zip(facts_cols, row, strict=True))
            if current["limiter_enabled"] is not None:
                current["limiter_enabled"] = bool(current["limiter_enabled"])
            if facts is None or all(values[k] == current[k] for k in facts_cols):
                # nothing new: only the time moves, and the version stays
                conn.execute(update(rm_grants).where(c.grant_id == grant_id)
                             .values(userinfo_refreshed_at=now))
                return
            conn.execute(update(rm_grants).where(c.grant_id == grant_id).values(**values))
            _bump(conn)

    def apply_limit_change(self, grant_id: str, limit: int | None, limiter: bool | None, *,
                           now: datetime | None = None) -> None:
        """The console changed this Guest's limit (the API's answer: limit and limiter after
        the change; a None keeps what is stored)."""
        now = now or _now()
        values: dict[str, Any] = {"user_kind": "guest", "limit_source": "console",
                                  "limit_updated_at": now, "refreshed_at": now}
        if limit is not None:
            values["transaction_limit"] = limit
        if limiter is not None:
            values["limiter_enabled"] = limiter
        with self._db.write() as conn:
            conn.execute(update(rm_grants).where(rm_grants.c.grant_id == grant_id)
                         .values(**values))
            _bump(conn)

    def set_sync_state(self, values: Mapping[str, str | None]) -> None:
        """Upsert worker state (`rm_sync_state`); does not bump the version."""
        now = _now()
        stmt = _insert(self._db)(rm_sync_state)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at})
        with self._db.write() as conn:
            conn.execute(stmt, [{"name": k, "value": v, "updated_at": now}
                                for k, v in values.items()])

    def sync_state(self) -> dict[str, str | None]:
        with self._db.read() as conn:
            return {r.name: r.value for r in conn.execute(select(rm_sync_state))}

    # --- the worker's queues --------------------------------------------------------------

    def due_for_integrations(self, limit: int, *, older_than: datetime,
                             hot_older_than: datetime, hot_share: float = 0.5) -> list[str]:
        """Active grants with a token whose integrations are due: never read first, then
        failing/syncing ones read before `hot_older_than` (up to `hot_share` of `limit`),
        then the oldest read before `older_than`."""
        c = rm_grants.c
        base = and_(c.status == "active", c.has_token.is_(True))
        out: list[str] = []
        with self._db.read() as conn:
            out += conn.execute(select(c.grant_id).where(
                base, c.integrations_refreshed_at.is_(None))
                .order_by(c.grant_id).limit(limit)).scalars()
            hot_n = max(0, min(limit - len(out), int(round(limit * hot_share))))
            if hot_n:
                out += conn.execute(select(c.grant_id).where(
                    base, c.sync_state.in_(("failing", "syncing")),
                    c.integrations_refreshed_at < hot_older_than)
                    .order_by(c.integrations_refreshed_at).limit(hot_n)).scalars()
            rest = limit - len(out)
            if rest > 0:
                seen = set(out)
                more = conn.execute(select(c.grant_id).where(
                    base, c.integrations_refreshed_at < older_than)
                    .order_by(c.integrations_refreshed_at).limit(rest + len(seen))).scalars()
                out += [g for g in more if g not in seen][:rest]
        return out

    def due_for_userinfo(self, limit: int, *, older_than: datetime) -> list[str]:
        """Active grants with a token whose kind or limit is unknown and whose user info
        was not asked for since `older_than` (never asked first)."""
        c = rm_grants.c
        unknown = or_(c.user_kind.is_(None),
                      and_(c.user_kind == "guest", c.limit_source.is_(None)))
        due = or_(c.userinfo_refreshed_at.is_(None), c.userinfo_refreshed_at < older_than)
        with self._db.read() as conn:
            return list(conn.execute(
                select(c.grant_id).where(c.status == "active", c.has_token.is_(True),
                                         unknown, due)
                .order_by(c.userinfo_refreshed_at.is_not(None), c.userinfo_refreshed_at,
                          c.grant_id)
                .limit(limit)).scalars())

    def active_with_token(self) -> list[str]:
        with self._db.read() as conn:
            return list(conn.execute(select(rm_grants.c.grant_id).where(
                rm_grants.c.status == "active", rm_grants.c.has_token.is_(True))
                .order_by(rm_grants.c.grant_id)).scalars())

    def guests_with_token(self) -> list[str]:
        c = rm_grants.c
        with self._db.read() as conn:
            return list(conn.execute(select(c.grant_id).where(
                c.status == "active", c.has_token.is_(True),
                or_(c.user_kind.is_(None), c.user_kind == "guest"))
                .order_by(c.grant_id)).scalars())

    # --- queries -------------------------------------------------------------------------

    def counts(self) -> Counts:
        """Overview counts and work queues: one SQL scan, cached per `version()` (a
        primary-key read), so reruns and other sessions of this process share it until
        something is written (by any process)."""
        version = self.version()
        cached = self._counts_cache
        if cached is not None and cached[0] == version:
            return cached[1]
        counts = self._count()
        with self._cache_lock:
            self._counts_cache = (version, counts)
        return counts

    def row_count(self) -> int:
        """How many rows (grants) the read model holds: an index-only count (7 ms at
        300,000 rows where `counts()` scans every row, 200 ms), cached per `version()`
        like `counts()`, whose total it reuses when that is current."""
        version = self.version()
        for cached in (self._counts_cache, self._rows_cache):
            if cached is not None and cached[0] == version:
                value = cached[1]
                return value.total if isinstance(value, Counts) else int(value)
        with self._db.read() as conn:
            rows = int(conn.execute(select(func.count()).select_from(rm_grants)).scalar_one())
        with self._cache_lock:
            self._rows_cache = (version, rows)
        return rows

    def _count(self) -> Counts:
        c = rm_grants.c
        active = c.status == "active"

        def n(cond: Any) -> Any:
            return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

        def total(col: Any) -> Any:
            return func.coalesce(func.sum(case((active, col), else_=0)), 0)

        q = select(
            func.count(), n(active), n(c.user_kind == "guest"), n(c.user_kind == "linked"),
            n(c.user_kind.is_(None)), n(c.has_token.is_(True)),
            n(and_(active, c.n_failing > 0)), n(and_(active, c.n_syncing > 0)),
            n(and_(active, c.n_never_synced > 0)), n(and_(active, c.unreadable.is_(True))),
            n(and_(active, c.has_token.is_(False))), total(c.n_integrations),
            total(c.n_failing), total(c.n_syncing),
            n(and_(active, c.has_token.is_(True), c.integrations_refreshed_at.is_(None))),
        )
        with self._db.read() as conn:
            r = [int(x) for x in conn.execute(q).one()]
        queues = dict(zip(QUEUES, r[6:11], strict=True))
        return Counts(total=r[0], active=r[1], revoked=r[0] - r[1], guest=r[2], linked=r[3],
                      unknown_kind=r[4], with_token=r[5], without_token=r[0] - r[5],
                      queues=queues, integrations=r[11], integrations_failing=r[12],
                      integrations_syncing=r[13], never_refreshed=r[14])

    def _tier_limit(self, name: str) -> int | None:
        for t in self._tiers:
            if t.name.lower() == name.strip().lower():
                return t.limit
        raise StoreError(f"Unknown tier '{name}'.")

    def _limit_cond(self, limit: Any) -> Any:
        c = rm_grants.c
        if limit == "off":
            return c.limiter_enabled.is_(False)
        if limit == "unknown":
            return c.limit_source.is_(None)
        if limit == "custom":
            known = [t.limit for t in self._tiers if t.limit is not None]
            cond = and_(c.limiter_enabled.is_(True), c.transaction_limit.is_not(None))
            return and_(cond, c.transaction_limit.not_in(known)) if known else cond
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise StoreError("limit must be a whole number, 'off', 'unknown' or 'custom'.")
        return and_(c.limiter_enabled.is_(True), c.transaction_limit == limit)

    def _where(self, f: GrantFilter) -> list[Any]:
        c = rm_grants.c
        conds: list[Any] = []
        if f.search and f.search.strip():
            needle = f.search.strip().lower()
            if f.search_mode == "prefix":
                conds.append(or_(*(self._prefix(func.lower(col), needle)
                                   for col in (c.grant_id, c.customer_ref, c.kryptos_user_id))))
            else:
                conds.append(c.search_text.contains(needle, autoescape=True))
        if f.status:
            conds.append(c.status == f.status)
        if f.kind:
            conds.append(c.user_kind.is_(None) if f.kind == "unknown" else c.user_kind == f.kind)
        if f.has_token is not None:
            conds.append(c.has_token.is_(bool(f.has_token)))
        if f.integration_status == "never":
            conds.append(c.sync_state.is_(None))
        elif f.integration_status:
            conds.append(c.sync_state == f.integration_status)
        if f.queue:
            conds.append(c.status == "active")
            conds.append({
                "failing": c.n_failing > 0, "syncing": c.n_syncing > 0,
                "never_synced": c.n_never_synced > 0, "not_readable": c.unreadable.is_(True),
                "no_token": c.has_token.is_(False)}[f.queue])
        if f.limit is not None:
            conds.append(self._limit_cond(f.limit))
        if f.tier:
            tier_limit = self._tier_limit(f.tier)
            conds.append(self._limit_cond("off" if tier_limit is None else tier_limit))
        return conds

    def _prefix(self, expr: Any, needle: str) -> Any:
        """`expr` starts with `needle`, in a form the lower(...) indexes serve: a range on
        SQLite (binary order), LIKE on PostgreSQL (text_pattern_ops indexes)."""
        if not self._db.is_sqlite:
            return expr.startswith(needle, autoescape=True)
        return and_(expr >= needle, expr < needle + "\U0010ffff")

    def _ordered(self, query: Any, sort: str, descending: bool, *,
                 filter_first: bool = False) -> Any:
        """`query` ordered by `sort`, then grant id. `filter_first` (SQLite): sort the
        matching rows instead of walking the sort's index (SQLite keeps no statistics on
        the filter columns, and walking 100,000 rows in order to find a few matches is
        slower than sorting the few: `+col` keeps the sort off the index)."""
        if sort not in SORTS:
            raise StoreError(f"Cannot sort by '{sort}'; choose one of {', '.join(SORTS)}.")
        cols = [SORTS[sort]] if sort == "grant_id" else [SORTS[sort], rm_grants.c.grant_id]
        if filter_first and self._db.is_sqlite:
            cols = [literal_column(f"+rm_grants.{c.name}") for c in cols]
        return query.order_by(*(c.desc() if descending else c.asc() for c in cols))

    def page(self, filters: GrantFilter | None = None, sort: str = "created_at",
             page: int = 1, page_size: int = 100, *, descending: bool = False) -> GrantPage:
        """One page of grants, filtered, sorted and counted in SQL."""
        f = filters or GrantFilter()
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise StoreError(f"page must be >= 1 and page_size 1-{MAX_PAGE_SIZE}.")
        conds = self._where(f)
        # Deferred join: the page's ids from an index walk, then only those rows.
        with self._db.read() as conn:
            total = int(conn.execute(select(func.count()).select_from(rm_grants)
                                     .where(*conds)).scalar_one())
            ids_q = self._ordered(select(rm_grants.c.grant_id).where(*conds), sort, descending,
                                  filter_first=total <= FILTER_FIRST_MAX)
            ids = list(conn.execute(
                ids_q.limit(page_size).offset((page - 1) * page_size)).scalars())
            rows = conn.execute(select(*_GRANT_COLUMNS)
                                .where(rm_grants.c.grant_id.in_(ids))).all() if ids else []
            last = self._last_full_sync(conn)
        by_id = {r.grant_id: r for r in rows}
        return GrantPage(tuple(_grant(by_id[g], last) for g in ids if g in by_id), total,
                         page, page_size)

    def grant(self, grant_id: str) -> GrantDetailRow | None:
        """One grant's row and its integrations (two primary-key lookups)."""
        with self._db.read() as conn:
            row = conn.execute(select(*_GRANT_COLUMNS)
                               .where(rm_grants.c.grant_id == grant_id)).first()
            if row is None:
                return None
            items = conn.execute(select(rm_integrations)
                                 .where(rm_integrations.c.grant_id == grant_id)
                                 .order_by(rm_integrations.c.wallet_id)).all()
            last = self._last_full_sync(conn)
        return GrantDetailRow(_grant(row, last), tuple(
            RmIntegration(**{k: getattr(r, k) for k in RmIntegration.__dataclass_fields__})
            for r in items))

    def csv_chunks(self, filters: GrantFilter | None = None, sort: str = "grant_id", *,
                   descending: bool = False, chunk: int = CSV_CHUNK) -> Iterator[str]:
        """The filtered grants as CSV text, one piece per `chunk` rows (header first)."""
        for text, _ in self._csv_pieces(filters, sort, descending, chunk):
            yield text

    def _csv_pieces(self, filters: GrantFilter | None, sort: str, descending: bool,
                    chunk: int) -> Iterator[tuple[str, int]]:
        """CSV pieces with their row counts, read by keyset paging on the grant id (offset
        paging on another sort key), each chunk in its own short read transaction."""
        conds = self._where(filters or GrantFilter())
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        yield buf.getvalue(), 0
        cols = [rm_grants.c[name] for name in CSV_COLUMNS]
        base = self._ordered(select(*cols).where(*conds), sort, descending)
        after: str | None = None
        offset = 0
        while True:
            q = base
            if sort == "grant_id":
                if after is not None:
                    gid = rm_grants.c.grant_id
                    q = q.where(gid < after if descending else gid > after)
                q = q.limit(chunk)
            else:
                q = q.limit(chunk).offset(offset)
            with self._db.read() as conn:
                rows = conn.execute(q).all()
            buf.seek(0)
            buf.truncate()
            writer.writerows([conv(v) for conv, v in zip(_CSV_CONVERTERS, r, strict=True)]
                             for r in rows)
            if rows:
                yield buf.getvalue(), len(rows)
            if len(rows) < chunk:
                return
            offset += len(rows)
            after = rows[-1][0]

    def iter_csv(self, filters: GrantFilter | None, out: TextIO, sort: str = "grant_id", *,
                 descending: bool = False, chunk: int = CSV_CHUNK) -> int:
        """Write `csv_chunks(...)` to `out`; returns the number of grant rows written."""
        written = 0
        for text, rows in self._csv_pieces(filters, sort, descending, chunk):
            out.write(text)
            written += rows
        return written

    def _last_full_sync(self, conn: Connection) -> datetime | None:
        value = conn.execute(select(rm_sync_state.c.value).where(
            rm_sync_state.c.name == "last_full_sync")).scalar()
        return datetime.fromisoformat(value) if value else None

    def freshness(self) -> Freshness:
        c = rm_grants.c
        ready = and_(c.status == "active", c.has_token.is_(True))
        q = select(func.count(), func.min(c.refreshed_at), func.max(c.refreshed_at),
                   func.min(case((ready, c.integrations_refreshed_at))),
                   func.coalesce(func.sum(case(
                       (and_(ready, c.integrations_refreshed_at.is_(None)), 1), else_=0)), 0))
        with self._db.read() as conn:
            r = conn.execute(q).one()
            last = self._last_full_sync(conn)
        return Freshness(int(r[0]), _aware(r[1]), _aware(r[2]), _aware(r[3]), int(r[4]), last)

    def stale_rows(self, older_than: datetime) -> int:
        """Active grants with a token whose integrations were read before `older_than`
        or never."""
        c = rm_grants.c
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(rm_grants).where(
                c.status == "active", c.has_token.is_(True),
                or_(c.integrations_refreshed_at.is_(None),
                    c.integrations_refreshed_at < older_than))).scalar_one())


def _aware(value: Any) -> datetime | None:
    """Aggregates (min/max) bypass the column type on SQLite: parse its text here."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return value


def _csv_text(value: Any) -> str:
    return _csv_safe(value)


def _csv_plain(value: Any) -> Any:
    return "" if value is None else value


def _csv_time(value: Any) -> str:
    return "" if value is None else _csv_value(value)


# Free text goes through the formula guard; numbers, flags and times cannot start a formula.
_CSV_CONVERTERS = tuple(
    _csv_time if isinstance(rm_grants.c[name].type, UTCDateTime)
    else _csv_plain if isinstance(rm_grants.c[name].type, Boolean | Integer | BigInteger)
    else _csv_text for name in CSV_COLUMNS)


__all__ = [
    "CSV_COLUMNS", "QUEUES", "SORTS", "Counts", "Freshness", "GrantDetailRow", "GrantFilter",
    "GrantPage", "GrantsApplied", "IntegrationsError", "ReadModel", "RmGrant",
    "RmIntegration", "UserFacts",
]
