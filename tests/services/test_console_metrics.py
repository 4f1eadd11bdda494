"""The console's metrics port (CONSOLE_METRICS_PORT): scraped over HTTP, its figures move
when a sign-in fails, a session opens, an approval waits, a sync completes and the
reconciler passes."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import requests
from prometheus_client.parser import text_string_to_metric_families

from services.counters import reconciler_pass
from services.metrics import start_console_metrics
from services.store import open_database
from services.store.approvals import ApprovalStore
from services.store.readmodel import ReadModel
from services.store.sessions import LoginFailures, SessionStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200
    out = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_console_metrics_move_when_things_happen(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'console.db'}")
    readmodel = ReadModel(db, ())
    port = free_port()
    assert start_console_metrics(port, db, readmodel)
    assert not start_console_metrics(port, db, readmodel)  # once per process and port
    before = scrape(port)
    assert before["kryptos_console_readmodel_grants"] == 0
    assert before["kryptos_console_open_sessions"] == 0
    assert before["kryptos_console_approvals_waiting"] == 0
    assert "kryptos_console_sync_lag_seconds" not in before  # no full sync yet

    LoginFailures(db).failure("alice", "10.0.0.1")
    SessionStore(db).create("bob", ("admin",), "$2b$12$hash")
    ApprovalStore(db).create(action="grant.revoke", params={"grant_id": "g1"},
                             requester="carol", roles=("operator",), reason="test",
                             ticket=None, ttl=timedelta(hours=1), correlation_id="c1",
                             now=datetime.now(UTC) - timedelta(minutes=5))
    readmodel.set_sync_state({"last_full_sync": (datetime.now(UTC)
                                                 - timedelta(seconds=90)).isoformat()})
    reconciler_pass(False, 3)
    after = scrape(port)

    assert after["kryptos_console_login_failures_total"] - before.get(
        "kryptos_console_login_failures_total", 0) == 1
    assert after["kryptos_console_open_sessions"] == 1
    assert after["kryptos_console_approvals_waiting"] == 1
    assert 290 <= after["kryptos_console_approvals_waiting_oldest_age_seconds"] < 400
    assert 89 <= after["kryptos_console_sync_lag_seconds"] < 200
    assert after["kryptos_console_reconciler_passes_total{result=ok}"] - before.get(
        "kryptos_console_reconciler_passes_total{result=ok}", 0) == 1
    assert after["kryptos_console_unsettled_outcomes"] == 3
    db.dispose()
