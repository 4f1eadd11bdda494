"""The read cache engine: a TTL cache with a single flight per key, the read model's
version clock (read-model reads are keyed on it), and what a change drops.

The cache keys, the single flight and the reasons for not using `st.cache_data` are in
docs/architecture.md ("Console cache", "Decisions and why"). No Streamlit import here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.operations import Actor, Operations

T = TypeVar("T")

TTL_SECONDS = 30.0
MAX_ENTRIES = 512
#: The read model's change counter is read at most this often per process (one cheap query):
#: a change made on another replica shows within about this long.
VERSION_POLL_SECONDS = 1.0
#: The freshness caption ("as of 12 s ago") is read again after this long.
FRESHNESS_TTL = 2.0
ALL = "*"  # the grant key of reads that span every grant (lists, overview)


@dataclass(frozen=True)
class ReadKey:
    ops_id: int
    username: str
    roles: tuple[str, ...]
    read: str
    grant: str  # a grant id, or ALL
    args: tuple[Hashable, ...]


@dataclass
class _Flight:
    """A load in progress: callers of the same key wait for it instead of loading again."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class ReadCache:
    """A small thread-safe TTL cache of read results, with invalidation by grant id and a
    single flight per key (a second caller of a key being loaded waits for that load)."""

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
        self._entries: dict[ReadKey, tuple[float, Any]] = {}
        self._flights: dict[ReadKey, _Flight] = {}
        self._generation = 0  # bumped by every invalidation
        self.hits = 0
        self.misses = 0

    def get_or_load(
        self, key: ReadKey, load: Callable[[], T], keep: Callable[[T], bool] | None = None
    ) -> T:
        """The cached value of `key`, or `load()`'s (kept unless `keep(value)` is False)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] > self._clock():
                self.hits += 1
                return found[1]  # type: ignore[no-any-return]
            flight = self._flights.get(key)
            owner = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            generation = self._generation
        if not owner:
            return self._wait(flight)
        # Load outside the lock: reads can be slow, and other keys must not wait on us.
        try:
            value = load()
        except BaseException as exc:
            self._land(key, flight, error=exc)
            raise
        self._land(key, flight, value=value)
        with self._lock:
            self.misses += 1
            if generation != self._generation:
                # Something was invalidated while we read: what we read may predate that
                # change, so hand it to this caller (and those who waited) only.
                return value
            if keep is not None and not keep(value):
                return value  # e.g. a partly failed read: tried again on the next call
            self._entries[key] = (self._clock() + self.ttl, value)
            if len(self._entries) > self.max_entries:
                self._evict(self._clock())
        return value

    def _land(self, key: ReadKey, flight: _Flight, value: Any = None,
              error: BaseException | None = None) -> None:
        flight.value, flight.error = value, error
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.done.set()

    @staticmethod
    def _wait(flight: _Flight) -> Any:
        flight.done.wait()
        if flight.error is not None:
            raise flight.error  # the same read failed for the caller who made it
        return flight.value

    def _evict(self, now: float) -> None:
        for k in [k for k, (exp, _) in self._entries.items() if exp <= now]:
            del self._entries[k]
        while len(self._entries) > self.max_entries:
            oldest = min(self._entries, key=lambda k: self._entries[k][0])
            del self._entries[oldest]

    def _drop(self, stale: Callable[[ReadKey], bool]) -> int:
        with self._lock:
            self._generation += 1
            # A load in flight for a stale key may predate the change: later callers start
            # their own instead of waiting for it.
            for k in [k for k in self._flights if stale(k)]:
                del self._flights[k]
            gone = [k for k in self._entries if stale(k)]
            for k in gone:
                del self._entries[k]
            return len(gone)

    def invalidate(self, grant_id: str) -> int:
        """Drop what a change to `grant_id` makes stale: its own reads and every list."""
        return self._drop(lambda k: k.grant in (grant_id, ALL))

    def invalidate_lists(self) -> int:
        """Drop the reads that span every grant (a grant may have been added)."""
        return self._drop(lambda k: k.grant == ALL)

    def clear(self) -> None:
        self._drop(lambda k: True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


CACHE = ReadCache()
#: Freshness of the read model (its sync time moves without a version bump): a short TTL.
FRESH = ReadCache(ttl=FRESHNESS_TTL, max_entries=64)


class VersionClock:
    """The read model's version per operations object, read at most once per `poll`
    seconds per process: read-model reads are cached under the version, so a change made
    anywhere (this process, another replica, the sync worker) shows at the next poll."""

    def __init__(self, poll: float = VERSION_POLL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.poll = poll
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[int, tuple[float, int]] = {}
        self.reads = 0

    def version(self, ops: Operations) -> int:
        with self._lock:
            seen = self._seen.get(id(ops))
            if seen is not None and self._clock() - seen[0] < self.poll:
                return seen[1]
        value = ops.grants.version()
        with self._lock:
            self.reads += 1
            self._seen[id(ops)] = (self._clock(), value)
        return value

    def forget(self) -> None:
        """Read the version again at the next call (after a change in this process)."""
        with self._lock:
            self._seen.clear()


VERSIONS = VersionClock()


def read_key(ops: object, actor: Actor, read: str, grant: str, *args: Hashable) -> ReadKey:
    """A read's key: the operations object, the actor (username and roles: one user's data
    never reaches another), the read, its grant (or `ALL`) and its arguments."""
    return ReadKey(id(ops), actor.username, tuple(sorted(actor.roles)), read, grant, args)


def invalidate_grant(grant_id: str) -> None:
    """After a change of `grant_id` (whatever its outcome): drops its detail and history for
    every user, and every grant list and overview."""
    CACHE.invalidate(grant_id)
    VERSIONS.forget()


def invalidate_lists() -> None:
    """After a change that may have added a grant we do not know the id of."""
    CACHE.invalidate_lists()
    VERSIONS.forget()


def invalidate_all() -> None:
    """Drop every cached read (after a bulk change or an import)."""
    CACHE.clear()
    FRESH.clear()
    VERSIONS.forget()


def refresh_grant(grant_id: str) -> None:
    """The grant page's Refresh button: read the grant (and the lists) again."""
    invalidate_grant(grant_id)


def refresh_all(ops: Operations | None = None, actor: Actor | None = None) -> None:
    """The Overview's Refresh button: read everything again, and ask the sync worker
    (whichever process holds it) for a full grants sync at its next step."""
    invalidate_all()
    if ops is not None and actor is not None:
        ops.grants.request_sync(actor)


def rm_read_key(ops: Operations, actor: Actor, read: str, *args: Hashable) -> ReadKey:
    """The key of a read-model read: under the version, so any change shows at the next
    poll."""
    return read_key(ops, actor, read, ALL, VERSIONS.version(ops), *args)
