"""The console's counters of things as they happen (Prometheus, per process), kept apart
from `services.metrics` (which reads the store) so the store and the operations can count
without importing it."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LOGIN_FAILURES = Counter("kryptos_console_login_failures", "Failed console sign-ins.")
RECONCILER_PASSES = Counter("kryptos_console_reconciler_passes",
                            "Reconciler passes of this process.", ["result"])
UNSETTLED = Gauge("kryptos_console_unsettled_outcomes",
                  "Changes requested whose outcome the newest reconciler pass could not settle.")


def reconciler_pass(error: bool, unsettled: int) -> None:
    RECONCILER_PASSES.labels(result="error" if error else "ok").inc()
    if not error:
        UNSETTLED.set(unsettled)
