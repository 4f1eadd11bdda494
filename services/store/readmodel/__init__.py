"""The read model: a local copy of what the console shows about grants, kept fresh by the
sync worker (services/sync/worker.py), so pages read SQL and never fan out upstream.

Tables (migration 0004_read_model): `rm_grants` (one row per grant: the API's grants list
joined with the vault, user kind and limit, integration aggregates), `rm_integrations` (one
row per integration), `rm_sync_state` (key/value state of the worker) and `rm_version`
(a counter bumped by every write, so other processes can cheaply ask "anything new?").

Writes go in batches (executemany, one transaction per batch). Every query (counts, a
page, one grant, the CSV export) is SQL with indexes: no Python loop over all rows.

The package: `tables.py` (tables and column names), `models.py` (value types), `rows.py`
(row building shared by writes and queries), `writes.py` (`ReadModelWrites`), `queries.py`
(`ReadModelQueries`, over the writes); `ReadModel` here is the whole, what callers use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from services.settings import Tier
from services.store.db import Database
from services.store.readmodel.models import (
    LAST_PAGE,
    Counts,
    Freshness,
    GrantDetailRow,
    GrantFilter,
    GrantPage,
    GrantsApplied,
    IntegrationsError,
    PageCursor,
    RmGrant,
    RmIntegration,
    UserFacts,
)
from services.store.readmodel.queries import ReadModelQueries
from services.store.readmodel.tables import (
    BATCH_SIZE,
    COUNT_CAP,
    CSV_CHUNK,
    CSV_COLUMNS,
    FAILING,
    FILTER_FIRST_MAX,
    MAX_PAGE_SIZE,
    QUEUES,
    SORTS,
    SYNCING,
    Queue,
    SyncState,
    rm_grants,
    rm_integrations,
    rm_sync_state,
    rm_version,
)


class ReadModel(ReadModelQueries):
    """Reads and writes of the read model tables over `db` (already migrated).

    `tiers`: the configured tiers (`name`, `limit`), for the
    `GrantFilter.tier` and `limit="custom"` filters."""

    def __init__(self, db: Database, tiers: Sequence[Tier] = ()) -> None:
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

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._tiers


__all__ = [
    "BATCH_SIZE", "COUNT_CAP", "CSV_CHUNK", "CSV_COLUMNS", "FAILING", "FILTER_FIRST_MAX",
    "LAST_PAGE", "MAX_PAGE_SIZE", "PageCursor",
    "QUEUES", "SORTS", "SYNCING", "Counts", "Freshness", "GrantDetailRow", "GrantFilter",
    "GrantPage", "GrantsApplied", "IntegrationsError", "Queue", "ReadModel", "RmGrant",
    "RmIntegration", "SyncState", "UserFacts", "rm_grants", "rm_integrations",
    "rm_sync_state", "rm_version",
]
