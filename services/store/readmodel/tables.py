"""The read model's tables (migration 0004_read_model) and the names of its columns
that pages sort and export by."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from services.store.schema import UTCDateTime

BATCH_SIZE = 2000
#: Rows fetched per round trip by `iter_csv`.
CSV_CHUNK = 2000
MAX_PAGE_SIZE = 1000
#: page(): at most this many matches are sorted directly rather than found by an index walk.
FILTER_FIRST_MAX = 5000
#: page() counts matches up to this many; beyond it the total is "at least" this.
COUNT_CAP = 10_000
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
    # Set by a webhook about the grant, cleared by the worker's next read of it.
    Column("changed_at", UTCDateTime),
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
QUEUES: tuple[Queue, ...] = ("failing", "syncing", "never_synced", "not_readable", "no_token")
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


