"""The read model's sync worker as admins see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.operations.context import OpsContext
from services.operations.permissions import Actor, Permission
from services.store.actions import AuditAction

#: Without a full sync for this many grants intervals, the read model counts as stale.
STALE_INTERVALS = 2


@dataclass(frozen=True)
class SyncView:
    """The worker's state: this process's worker when it has one, else what the holder
    (another replica) last published in `rm_sync_state`."""

    runs_here: bool  # this process has a worker (holder or standby)
    holder_here: bool  # and it holds the lock
    holder: str | None  # the holder's name, as published
    heartbeat: datetime | None
    last_full_sync: datetime | None
    grants_listed: int | None
    rows: int
    rows_stale: int
    never_refreshed: int
    errors: int
    last_error: str | None
    calls_per_second: float | None
    rate: float | None
    stale: bool
    #: False: that count stopped at the read model's `COUNT_CAP` ("more than").
    rows_stale_exact: bool = True
    never_refreshed_exact: bool = True


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class SyncOps:
    """`ops.sync.status(actor)`."""

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"SyncOps({self.ctx!r})"

    def status(self, actor: Actor, grants_interval: float = 300.0) -> SyncView:
        """The sync worker's state (`Permission.VIEW_SYNC_STATUS`)."""
        self.ctx.check(actor, Permission.VIEW_SYNC_STATUS, AuditAction.SYNC_STATUS_VIEW)
        rm = self.ctx.readmodel
        shared = rm.sync_state()
        worker = self.ctx.sync_worker
        if worker is not None:
            s = worker.status()  # its own freshness and stale rows: not read again here
            return SyncView(
                runs_here=True, holder_here=s.holder, holder=shared.get("holder"),
                heartbeat=_time(shared.get("heartbeat")), last_full_sync=s.last_full_sync,
                grants_listed=s.grants_listed, rows=rm.row_count(), rows_stale=s.rows_stale,
                never_refreshed=s.never_refreshed, errors=s.errors, last_error=s.last_error,
                calls_per_second=s.calls_per_second, rate=s.rate, stale=s.stale,
                rows_stale_exact=s.rows_stale_exact,
                never_refreshed_exact=s.never_refreshed_exact)
        fresh = rm.freshness()
        last = fresh.last_full_sync
        cutoff = datetime.now(UTC) - timedelta(seconds=3 * grants_interval)
        listed = _num(shared.get("grants_listed"))
        rows_stale, stale_exact = rm.stale_rows(cutoff)
        return SyncView(
            runs_here=False, holder_here=False, holder=shared.get("holder"),
            heartbeat=_time(shared.get("heartbeat")), last_full_sync=last,
            grants_listed=int(listed) if listed is not None else None, rows=fresh.rows,
            rows_stale=rows_stale, never_refreshed=fresh.never_refreshed or 0,
            errors=int(_num(shared.get("errors")) or 0), last_error=shared.get("last_error"),
            calls_per_second=_num(shared.get("calls_per_second")),
            rate=_num(shared.get("rate")),
            stale=fresh.is_stale(STALE_INTERVALS * grants_interval),
            rows_stale_exact=stale_exact, never_refreshed_exact=fresh.never_refreshed_exact)


__all__ = ["SyncOps", "SyncView"]
