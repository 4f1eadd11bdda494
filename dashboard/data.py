"""Cached reads for the pages, and their invalidation after mutations.

Reads are kept for a short time (`TTL_SECONDS`) so that a rerun of a page (every widget
change reruns the script) does not call the Kryptos API again for nothing. Each entry is keyed
by the operations object, the acting user (username *and* roles) and the arguments, so one
user's authorised data is never handed to another, and a change of roles is a new key.

Why not `st.cache_data`: its values are pickled, and the parts of a `GrantDetail` carry
exceptions (`PermissionDenied`, `ValidationError`) whose constructors cannot be replayed by
pickle; and its `clear()` drops every entry of a function, while a mutation should only drop
what it changed (`invalidate_grant`). The values kept here are frozen dataclasses and tuples,
so handing the same object to several reruns is safe.

Errors are never cached: a failed read is tried again on the next rerun. That includes a
grant detail with a failed part (its other parts read fine, but the failed one must be tried
again, not shown as failed for `TTL_SECONDS`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from services.operations import Actor, GrantDetail, GrantRow, Operations, Overview
from services.store.audit import AuditEvent

T = TypeVar("T")

TTL_SECONDS = 30.0
MAX_ENTRIES = 512

_ALL = "*"  # the grant key of reads that span every grant (lists, overview)


@dataclass(frozen=True)
class _Key:
    ops_id: int
    username: str
    roles: tuple[str, ...]
    read: str
    grant: str  # a grant id, or _ALL
    args: tuple[Hashable, ...]


class ReadCache:
    """A small thread-safe TTL cache of read results, with invalidation by grant id."""

    def __init__(
        self,
        ttl: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[_Key, tuple[float, Any]] = {}
        self._generation = 0  # bumped by every invalidation
        self.hits = 0
        self.misses = 0

    def get_or_load(
        self, key: _Key, load: Callable[[], T], keep: Callable[[T], bool] | None = None
    ) -> T:
        """The cached value of `key`, or `load()`'s (kept unless `keep(value)` is False)."""
        now = self._clock()
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] > now:
                self.hits += 1
                return found[1]  # type: ignore[no-any-return]
            generation = self._generation
        # Load outside the lock: reads can be slow, and another session must not wait on us.
        value = load()
        with self._lock:
            self.misses += 1
            if generation != self._generation:
                # Something was invalidated while we read: what we read may predate that
                # change, so hand it to this caller only, never to the next one.
                return value
            if keep is not None and not keep(value):
                return value  # e.g. a partly failed read: tried again on the next call
            self._entries[key] = (self._clock() + self.ttl, value)
            if len(self._entries) > self.max_entries:
                self._evict(self._clock())
        return value

    def _evict(self, now: float) -> None:
        for k in [k for k, (exp, _) in self._entries.items() if exp <= now]:
            del self._entries[k]
        while len(self._entries) > self.max_entries:
            oldest = min(self._entries, key=lambda k: self._entries[k][0])
            del self._entries[oldest]

    def invalidate(self, grant_id: str) -> int:
        """Drop what a change to `grant_id` makes stale: its own reads and every list."""
        with self._lock:
            self._generation += 1
            stale = [k for k in self._entries if k.grant in (grant_id, _ALL)]
            for k in stale:
                del self._entries[k]
            return len(stale)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


CACHE = ReadCache()


def _key(ops: object, actor: Actor, read: str, grant: str, *args: Hashable) -> _Key:
    return _Key(id(ops), actor.username, tuple(sorted(actor.roles)), read, grant, args)


def list_grants(
    ops: Operations,
    actor: Actor,
    *,
    search: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    has_token: bool | None = None,
) -> tuple[GrantRow, ...]:
    """`ops.grants.list_grants` with the same filters, cached per actor and filters."""
    search = (search or "").strip() or None
    key = _key(ops, actor, "list_grants", _ALL, search, status, kind, has_token)
    return CACHE.get_or_load(
        key,
        lambda: tuple(
            ops.grants.list_grants(actor, search=search, status=status, kind=kind,
                                   has_token=has_token)
        ),
    )


def _no_failed_part(detail: GrantDetail) -> bool:
    parts = (detail.session, detail.holdings, detail.integrations, detail.userinfo)
    return all(p.error is None for p in parts)


def grant_detail(ops: Operations, actor: Actor, grant_id: str) -> GrantDetail:
    """`ops.grants.grant_detail`, cached per actor and grant; never kept when a part failed."""
    key = _key(ops, actor, "grant_detail", grant_id)
    return CACHE.get_or_load(key, lambda: ops.grants.grant_detail(actor, grant_id), _no_failed_part)


def grant_history(ops: Operations, actor: Actor, grant_id: str) -> tuple[AuditEvent, ...]:
    """`ops.grants.grant_history` (audit events, newest first), cached per actor and grant."""
    key = _key(ops, actor, "grant_history", grant_id)
    return CACHE.get_or_load(key, lambda: tuple(ops.grants.grant_history(actor, grant_id)))


def overview(ops: Operations, actor: Actor) -> Overview:
    """`ops.grants.overview`, cached per actor; dropped by any grant change."""
    key = _key(ops, actor, "overview", _ALL)
    return CACHE.get_or_load(key, lambda: ops.grants.overview(actor))


def invalidate_grant(grant_id: str) -> None:
    """Call after a mutation of `grant_id` (whatever its outcome): drops its detail and
    history for every user, and every grant list and overview."""
    CACHE.invalidate(grant_id)


def invalidate_all() -> None:
    """Drop every cached read (after a bulk change, an import, or on a refresh button)."""
    CACHE.clear()
