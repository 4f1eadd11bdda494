"""The console's Prometheus metrics, served on a port of its own when CONSOLE_METRICS_PORT is
set (`start_console_metrics`, once per process).

Counted as things happen (per process; Prometheus sums replicas, or takes `max` of a gauge):
- `kryptos_console_login_failures_total`: failed sign-ins (services/store/sessions.py);
- `kryptos_console_reconciler_passes_total{result}`: passes `ok` / `error`, and
  `kryptos_console_unsettled_outcomes`: what the newest pass of this process could not
  settle (changes requested whose outcome is unknown; the reconciler reads the audit log's
  window once a pass, so a scrape never does).

Read from the database at scrape time, each by a primary-key read or an indexed query (so
any replica answers the same, and a scrape costs the same at a million grants):
- `kryptos_console_readmodel_grants`: rows of the read model (`ReadModel.row_count`, an
  index-only count cached until the read model changes);
- `kryptos_console_sync_lag_seconds`: since the last full grants sync (rm_sync_state);
- `kryptos_console_integration_refresh_age_seconds`: the oldest integration refresh of an
  active grant with a token (ix_rm_grants_due: its first entry);
- `kryptos_console_approvals_waiting` and `..._oldest_age_seconds` (ix_approval_requests_state);
- `kryptos_console_open_sessions`: console sign-ins not ended (one row per staff sign-in)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import REGISTRY, CollectorRegistry, Metric, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from services.counters import LOGIN_FAILURES, RECONCILER_PASSES, UNSETTLED, reconciler_pass
from services.store import Database
from services.store.approvals import approval_requests
from services.store.readmodel import ReadModel, rm_grants, rm_sync_state
from services.store.schema import console_sessions

log = logging.getLogger("console.metrics")

def _age(now: datetime, then: datetime | str | None) -> float | None:
    if then is None:
        return None
    if isinstance(then, str):
        then = datetime.fromisoformat(then)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


class ConsoleCollector(Collector):
    """The database-backed gauges, read at scrape time."""

    def __init__(self, db: Database, readmodel: ReadModel) -> None:
        self.db = db
        self.readmodel = readmodel

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        g = rm_grants.c
        a = approval_requests.c
        with self.db.read() as conn:
            last_sync = conn.execute(select(rm_sync_state.c.value).where(
                rm_sync_state.c.name == "last_full_sync")).scalar()
            oldest_refresh = conn.execute(
                select(g.integrations_refreshed_at)
                .where(g.status == "active", g.has_token.is_(True),
                       g.integrations_refreshed_at.is_not(None))
                .order_by(g.integrations_refreshed_at).limit(1)).scalar()
            waiting, oldest_waiting = conn.execute(
                select(func.count(), func.min(a.created_at)).where(a.state == "pending")).one()
            sessions = conn.execute(select(func.count()).select_from(console_sessions).where(
                console_sessions.c.ended_at.is_(None))).scalar_one()
        yield GaugeMetricFamily("kryptos_console_readmodel_grants",
                                "Grants in the console's read model.",
                                value=self.readmodel.row_count())
        for name, doc, value in (
            ("kryptos_console_sync_lag_seconds", "Seconds since the last full grants sync "
             "(absent before the first).", _age(now, last_sync)),
            ("kryptos_console_integration_refresh_age_seconds", "Age of the oldest "
             "integration refresh of an active grant with a token.",
             _age(now, oldest_refresh)),
            ("kryptos_console_approvals_waiting_oldest_age_seconds", "Age of the oldest "
             "approval request waiting.", _age(now, oldest_waiting)),
        ):
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily("kryptos_console_approvals_waiting",
                                "Approval requests waiting for a decision.", value=int(waiting))
        yield GaugeMetricFamily("kryptos_console_open_sessions",
                                "Console sign-ins not ended.", value=int(sessions))


class _Everything(Collector):
    def __init__(self, own: Collector) -> None:
        self.own = own

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self.own.collect()


_started: dict[int, object] = {}
_lock = threading.Lock()


def start_console_metrics(port: int, db: Database, readmodel: ReadModel,
                          host: str = "127.0.0.1") -> bool:
    """Serve the metrics on `host:port` (once per process and port); False when `port` is 0
    or already served here."""
    if port <= 0:
        return False
    with _lock:
        if port in _started:
            return False
        # A registry of its own: the process's counters and this database's gauges (the
        # default registry stays free of database reads for other servers of the process).
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Everything(ConsoleCollector(db, readmodel)))
        _started[port] = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True


__all__ = ["LOGIN_FAILURES", "RECONCILER_PASSES", "UNSETTLED", "ConsoleCollector",
           "reconciler_pass", "start_console_metrics"]
