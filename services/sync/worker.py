"""The sync worker: keeps the read model (services/store/readmodel/) fresh.

Exactly one process runs it at a time (services/sync/lock.py); the others stand by and
retry the lock every `lock_retry` seconds, so one takes over when the holder dies.

While holding the lock it loops: the full grants list every `grants_interval` seconds;
between those, integrations (and, for grants whose kind or limit is unknown, user info)
at a bounded rate (a token bucket, `rate` upstream calls a second): failing/syncing ones
again after `hot_interval` (up to half the calls), then grants a webhook marked, then the
stalest (never read first, then the least recently read; at least a fifth of the calls).
A 429 pauses for its Retry-After, halves the rate, and the rate recovers slowly.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from services.kryptos.client import KryptosClient
from services.kryptos.errors import (
    InvalidTokenError,
    KryptosError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)
from services.kryptos.models import Integration
from services.settings import Settings
from services.store.daily_counts import DailyCounts
from services.store.readmodel import IntegrationsError, ReadModel, UserFacts
from services.store.vault import TokenVault
from services.sync.bucket import TokenBucket
from services.sync.lock import SyncLock, sync_lock_for

log = logging.getLogger("services.sync")

#: Answers that say "this grant's data cannot be read" (not "try again later").
UNREADABLE_ERRORS = (InvalidTokenError, PermissionDeniedError, NotFoundError,
                     MalformedResponseError)
INTEGRATIONS_PAGE = 200
#: Grants parsed and written per transaction by a full sync.
BATCH = 2000
#: Seconds between two counts for the charts (services/store/daily_counts.py) besides the one
#: after each full sync: today's row follows the limits and kinds read meanwhile.
DAILY_COUNTS_EVERY = 600.0


class _Deferred(Enum):
    """A read put off (rate limited, or a passing error): the grant stays due."""

    DEFERRED = "deferred"


_DEFERRED: Final = _Deferred.DEFERRED


@dataclass(frozen=True)
class SyncStatus:
    """The worker's state for an admin view."""

    holder: bool
    running: bool
    last_full_sync: datetime | None
    full_sync_seconds: float | None
    grants_listed: int | None
    last_error: str | None
    last_error_at: datetime | None
    errors: int
    calls_per_second: float
    rate: float
    target_rate: float
    rate_limited: int
    rows_stale: int
    never_refreshed: int
    stale: bool
    #: False: the count stopped at `COUNT_CAP` (there are more; see `ReadModel.stale_rows`).
    rows_stale_exact: bool = True
    never_refreshed_exact: bool = True


@dataclass(frozen=True)
class RunReport:
    full_sync: bool
    integrations_refreshed: int
    userinfo_refreshed: int
    deferred: int  # skipped for now (rate limited or a passing error): still due


class SyncWorker:
    """Keeps `readmodel` fresh from `client` (a services.kryptos KryptosClient) with tokens
    from `vault` (a services.store TokenVault).

    `grants_interval`: seconds between full grants lists. `rate`: upstream calls a second.
    `hot_interval`: failing/syncing grants are read again after this many seconds; other
    grants not before `cold_interval` (default `grants_interval`). `userinfo_share`: the
    part of each tick's calls spent on unknown user kinds/limits. `stale_after`: a grant's
    integrations older than this count as stale (default: two passes at `rate`, at least
    `3 * grants_interval`). `clock`: the wall clock (epoch seconds) the worker stamps its
    syncs with and measures staleness by."""

    def __init__(self, client: KryptosClient, vault: TokenVault, readmodel: ReadModel, *,
                 grants_interval: float = 300.0, rate: float = 10.0,
                 hot_interval: float = 60.0, cold_interval: float | None = None,
                 userinfo_share: float = 0.1, userinfo_retry: float = 3600.0,
                 concurrency: int = 4, tick: float = 1.0, lock: SyncLock | None = None,
                 lock_retry: float = 5.0, error_backoff: float = 30.0,
                 stale_after: float | None = None, name: str = "sync",
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.vault = vault
        self.readmodel = readmodel
        self.daily = DailyCounts(readmodel.db)
        self._next_counts = 0.0  # monotonic time the charts' daily counts are next due
        # Kinds or limits are being read (at start all may be unknown): count again as soon
        # as that queue runs dry, so the charts' tiers do not wait for DAILY_COUNTS_EVERY.
        self._userinfo_pending = True
        self.grants_interval = float(grants_interval)
        self.hot_interval = float(hot_interval)
        self.cold_interval = float(cold_interval if cold_interval is not None
                                   else grants_interval)
        self.userinfo_share = userinfo_share
        self.userinfo_retry = userinfo_retry
        self.concurrency = max(1, concurrency)
        self.tick = tick
        self.lock = lock if lock is not None else sync_lock_for(readmodel.db)
        self.lock_retry = lock_retry
        self.error_backoff = error_backoff
        self.stale_after = stale_after
        self.name = name
        self._clock = clock
        self.bucket = TokenBucket(rate)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._holder = False
        self._next_full = 0.0
        self._last_full: datetime | None = None
        self._full_seconds: float | None = None
        self._listed: int | None = None
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._errors = 0
        self._state_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SyncWorker(name={self.name!r}, holder={self._holder})"

    # --- thread -----------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a daemon thread: stand by until the lock is ours, then keep syncing."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"sync-worker-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and give the lock up (another process may take over)."""
        self._stop.set()
        thread = self._thread  # read once: a second stop (another thread) may clear it
        if thread is not None:
            thread.join(timeout)
            self._thread = None
        self._release()

    @property
    def is_holder(self) -> bool:
        return self._holder

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _release(self) -> None:
        if self._holder:
            self._holder = False
        self.lock.release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._holder:
                if self._try_lock():
                    log.info("sync worker %s holds the lock", self.name)
                    self._record_holder()
                    self._next_full = 0.0  # a new holder starts with a full sync
                    continue
                self._stop.wait(self.lock_retry)
                continue
            if not self.lock.still_held():
                log.warning("sync worker %s lost the lock; standing by", self.name)
                self._holder = False
                self._stop.wait(self.lock_retry)  # let a standby take over first
                continue
            try:
                self._step(force=False)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("sync worker %s: step failed", self.name)
                self._error(f"{type(exc).__name__}: {exc}")
                self._stop.wait(min(self.error_backoff, self.grants_interval))

    def _record_holder(self) -> None:
        """Say in the database which process holds the lock since when (`sync_holder`,
        `sync_holder_since`, in `rm_sync_state`): so an operator can tell which replica
        syncs; best effort, the lock alone decides."""
        try:
            self.readmodel.set_sync_state({"sync_holder": self.name,
                                           "sync_holder_since": self._now().isoformat()})
        except Exception as exc:  # noqa: BLE001 - a store down: the next step reports it
            log.warning("sync worker %s: the holder could not be recorded (%s)", self.name,
                        type(exc).__name__)

    def _try_lock(self) -> bool:
        try:
            self._holder = self.lock.try_acquire()
        except Exception as exc:  # noqa: BLE001 - a database down: stand by and retry
            self._error(f"Cannot take the sync lock: {type(exc).__name__}")
            self._holder = False
        return self._holder

    # --- one step ---------------------------------------------------------------------------

    def run_once(self, *, force: bool = False) -> RunReport:
        """One step in the calling thread (takes the lock if free; returns an empty report
        when another process holds it). `force`: list grants now and read every active
        grant's integrations (and unknown user info) regardless of when they were read."""
        if not self._holder and not self._try_lock():
            return RunReport(False, 0, 0, 0)
        return self._step(force=force)

    def _step(self, *, force: bool) -> RunReport:
        full = False
        if force or time.monotonic() >= self._next_full or self._full_requested():
            try:
                self.sync_grants()
                full = True
            except KryptosError as exc:
                self._error(f"Listing grants: {exc.user_message}")
                self._next_full = time.monotonic() + min(self.error_backoff,
                                                         self.grants_interval)
        ui_n = 0
        if force:
            ids = self.readmodel.active_with_token()
            ui_ids = self.readmodel.guests_with_token()
        else:
            budget = max(1, int(self.bucket.rate * self.tick))
            ui_n = int(budget * self.userinfo_share) if self.userinfo_share > 0 else 0
            now = self._now()
            ui_ids = self.readmodel.due_for_userinfo(
                ui_n, older_than=now - timedelta(seconds=self.userinfo_retry)) if ui_n else []
            ids = self.readmodel.due_for_integrations(
                budget - len(ui_ids), older_than=now - timedelta(seconds=self.cold_interval),
                hot_older_than=now - timedelta(seconds=self.hot_interval))
        done, deferred = self._refresh(ids, ui_ids)
        if ui_ids and not force:
            self._userinfo_pending = True
        # The user info queue ran dry (every Guest's kind and limit read or asked): the end
        # of the first pass after a start, or of the new grants' reads after a full sync.
        drained = self._userinfo_pending and ui_n > 0 and not ui_ids
        if full or drained or time.monotonic() >= self._next_counts:
            self._keep_daily_counts()  # after the refresh: limits and kinds just read count
            if drained or force:  # a forced step read every Guest's user info
                self._userinfo_pending = False
        self._publish()
        if not force and not ids and not ui_ids:
            self._stop.wait(self.tick)  # nothing due: idle a tick
        return RunReport(full, done[0], done[1], deferred)

    def _keep_daily_counts(self) -> None:
        """The charts' daily counts (services/store/daily_counts.py): today's grants by
        status, kind and tier, and the audit log rolled up to its newest event."""
        self._next_counts = time.monotonic() + DAILY_COUNTS_EVERY
        try:
            rows, events = self.daily.keep(self.readmodel.tiers, self._now())
        except SQLAlchemyError as exc:
            self._error(f"Counting for the charts: {type(exc).__name__}")
            return
        log.info("sync: daily counts: %d grant rows, %d audit events rolled up", rows, events)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _full_requested(self) -> bool:
        asked = self.readmodel.sync_state().get("full_sync_requested")
        with self._state_lock:
            last = self._last_full
        if not asked:
            return False
        return last is None or datetime.fromisoformat(asked) > last

    def sync_grants(self) -> None:
        """List every grant and apply the list (joined with the vault) to the read model,
        streamed: batches are parsed and written as the answer arrives."""
        started = time.monotonic()
        self.bucket.charge(1)
        applied = self.readmodel.apply_grant_batches(self.client.iter_grants(BATCH))
        now = self._now()
        with self._state_lock:
            self._last_full = now
            self._full_seconds = time.monotonic() - started
            self._listed = applied.listed
        self._next_full = time.monotonic() + self.grants_interval
        self.readmodel.set_sync_state({"last_full_sync": now.isoformat(),
                                       "grants_listed": str(applied.listed)})
        log.info("sync: %d grants listed, %d rows written, %d revoked in %.1f s",
                 applied.listed, applied.written, applied.revoked, self._full_seconds)

    def refresh_grant(self, grant_id: str) -> None:
        """Read one grant's integrations and user info now (a person opened it), without
        waiting on the rate (the calls are still counted)."""
        tokens = self.vault.reveal_many([grant_id])
        if grant_id not in tokens:
            return
        token = tokens[grant_id]
        self.bucket.charge(2)
        items = self._read_integrations(grant_id, token)
        if items is not None:
            self.readmodel.apply_integrations(grant_id, items)
        self._apply_userinfo(grant_id, self._read_userinfo(token))

    def _refresh(self, ids: Sequence[str], ui_ids: Sequence[str]) -> tuple[tuple[int, int], int]:
        started = datetime.now(UTC)  # the read model's own clock, as its marks use
        tokens = self.vault.reveal_many(list(dict.fromkeys([*ids, *ui_ids])))
        deferred = 0
        results: list[tuple[str, list[Integration] | IntegrationsError]] = []

        def integrations(gid: str) -> tuple[str, list[Integration] | IntegrationsError | None]:
            if not self.bucket.acquire(self._stop):
                return gid, None
            return gid, self._read_integrations(gid, tokens.get(gid, ""))

        def userinfo(gid: str) -> tuple[str, UserFacts | None | _Deferred]:
            if not self.bucket.acquire(self._stop):
                return gid, None
            return gid, self._read_userinfo(tokens.get(gid))

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="sync") as pool:
            ui_futures = [pool.submit(userinfo, gid) for gid in ui_ids]
            for gid, items in pool.map(integrations, ids):
                if items is None:
                    deferred += 1
                else:
                    results.append((gid, items))
                if len(results) >= 200:
                    self.readmodel.apply_integrations_many(results, read_since=started)
                    results = []
            self.readmodel.apply_integrations_many(results, read_since=started)
            ui_done = 0
            for fut in ui_futures:
                gid, facts = fut.result()
                if facts is _DEFERRED or (facts is None and self._stop.is_set()):
                    deferred += 1
                    continue
                self._apply_userinfo(gid, facts)
                ui_done += 1
        return (len(ids) - deferred, ui_done), deferred

    def _apply_userinfo(self, gid: str, facts: UserFacts | None | _Deferred) -> None:
        if facts is not _DEFERRED:
            self.readmodel.apply_userinfo(gid, facts)

    def _read_integrations(self, gid: str, token: str | None
                           ) -> list[Integration] | IntegrationsError | None:
        """The grant's integrations, an `IntegrationsError`, or None (try again later)."""
        if not token:
            return IntegrationsError("The stored token cannot be read (vault key or row).")
        try:
            items = self.client.list_integrations(token)
        except RateLimitedError as exc:
            self.bucket.slow_down(exc.retry_after)
            self._error(f"Rate limited (429); rate now {self.bucket.rate:.2f}/s")
            return None
        except UNREADABLE_ERRORS as exc:
            return IntegrationsError(exc.user_message)
        except KryptosError as exc:
            self._error(f"Reading integrations of {gid}: {exc.user_message}")
            return None
        extra = len(items) // INTEGRATIONS_PAGE
        if extra:
            self.bucket.charge(extra)
        return items

    def _read_userinfo(self, token: str | None) -> UserFacts | None | _Deferred:
        """`UserFacts`, None (cannot be read: recorded, asked again later) or `_DEFERRED`."""
        if not token:
            return None
        try:
            info = self.client.get_userinfo(token)
        except RateLimitedError as exc:
            self.bucket.slow_down(exc.retry_after)
            return _DEFERRED
        except UNREADABLE_ERRORS:
            return None
        except KryptosError as exc:
            self._error(f"Reading user info: {exc.user_message}")
            return _DEFERRED
        return UserFacts(info.sub, info.is_guest, info.transaction_limit)

    # --- state ------------------------------------------------------------------------------

    def _error(self, message: str) -> None:
        with self._state_lock:
            self._last_error = message[:500]
            self._last_error_at = self._now()
            self._errors += 1

    def _stale_after(self, listed: int) -> float:
        if self.stale_after is not None:
            return self.stale_after
        return max(3 * self.grants_interval, 2 * listed / self.bucket.target)

    def status(self) -> SyncStatus:
        """This worker's state (holder or not) and the read model's staleness."""
        with self._state_lock:
            last, secs, listed = self._last_full, self._full_seconds, self._listed
            err, err_at, errors = self._last_error, self._last_error_at, self._errors
        fresh = self.readmodel.freshness()
        last = last or fresh.last_full_sync
        cutoff = self._now() - timedelta(seconds=self._stale_after(listed or fresh.rows))
        rows_stale, stale_exact = self.readmodel.stale_rows(cutoff)
        stale = last is None or (self._now() - last).total_seconds() > 2 * self.grants_interval
        return SyncStatus(
            holder=self._holder, running=self.running, last_full_sync=last,
            full_sync_seconds=secs, grants_listed=listed, last_error=err,
            last_error_at=err_at, errors=errors,
            calls_per_second=round(self.bucket.calls_per_second(), 2),
            rate=round(self.bucket.rate, 3), target_rate=self.bucket.target,
            rate_limited=self.bucket.rate_limited, rows_stale=rows_stale,
            never_refreshed=fresh.never_refreshed or 0, stale=stale,
            rows_stale_exact=stale_exact, never_refreshed_exact=fresh.never_refreshed_exact)

    def _publish(self) -> None:
        """Share the state through rm_sync_state, for the admin view of other replicas."""
        with self._state_lock:
            values = {"holder": self.name, "heartbeat": self._now().isoformat(),
                      "last_error": self._last_error,
                      "last_error_at": self._last_error_at.isoformat()
                      if self._last_error_at else None,
                      "errors": str(self._errors)}
        values["calls_per_second"] = f"{self.bucket.calls_per_second():.2f}"
        values["rate"] = f"{self.bucket.rate:.3f}"
        self.readmodel.set_sync_state(values)


def holder_name() -> str:
    """This process as the sync state names a holder: `<host>:<pid>`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_from_settings(settings: Settings, client: KryptosClient, vault: TokenVault,
                         readmodel: ReadModel) -> SyncWorker | None:
    """The worker configured by SYNC_* settings, or None when SYNC_ENABLED is off."""
    if not settings.sync_enabled:
        return None
    return SyncWorker(client, vault, readmodel, grants_interval=settings.sync_grants_interval,
                      rate=settings.sync_rate, lock_retry=settings.sync_lock_retry,
                      name=holder_name())
