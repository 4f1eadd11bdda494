"""Chart query times: each chart's SQL aggregate on a database with many grants and audit
events, on SQLite and (with --database-url) PostgreSQL, in a schema of the run's own that
is dropped at the end.

    .venv/bin/python bench/charts_bench.py [--grants 1000000] [--events 1000000]
        [--live 5000] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Fills a fresh database (bench/out/charts.db on SQLite) with `--grants` read-model rows
(status, kind, limit, integrations refreshed over the last two days, a failing integration
per 50 grants) and `--events` audit rows over 90 days (inserted directly, each limit
change with its `limit_changes` row as the audit writer adds it: the charts read counts,
not the hash chain), runs the sync worker's daily-counts step once, appends
`--live` events after the roll-up's watermark (what a chart counts live), then prints the
median of 5 runs of each chart query in ms. The target is 200 ms per chart.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from services.settings import Tier
from services.store import open_database
from services.store.audit.changes import change_row, limit_changes
from services.store.daily_counts import DailyCounts
from services.store.readmodel.tables import rm_grants, rm_integrations
from services.store.schema import audit_log

OUT = Path(__file__).resolve().parent / "out"
TIERS = (Tier("Free", 1000), Tier("Plus", 10000), Tier("Unlimited", None))
OUTCOMES = ("succeeded",) * 12 + ("failed", "denied", "requested", "skipped")
ACTIONS = ("grant.revoke", "guest.limit.update", "guest.tier.apply", "auth.login",
           "auth.logout", "grant.view")
BATCH = 20_000


def fill(db, grants: int, events: int, now: datetime) -> None:  # noqa: ANN001
    rnd = random.Random(7)
    with db.write() as conn:
        for start in range(0, grants, BATCH):
            rows, integ = [], []
            for i in range(start, min(grants, start + BATCH)):
                gid = f"cgrant_{i:08d}"
                kind = ("guest", "guest", "linked", None)[i % 4]
                lim = (1000, 10000, 2500, None)[i % 4]
                rows.append({"grant_id": gid, "status": "revoked" if i % 10 == 0 else "active",
                             "has_token": i % 20 != 0, "user_kind": kind,
                             "transaction_limit": lim, "limiter_enabled": lim is not None,
                             "refreshed_at": now, "unreadable": False, "n_integrations": 1,
                             "n_failing": 1 if i % 50 == 0 else 0, "n_syncing": 0,
                             "n_never_synced": 0,
                             "integrations_refreshed_at": (
                                 None if i % 97 == 0
                                 else now - timedelta(seconds=rnd.randint(0, 172_800)))})
                integ.append({"grant_id": gid, "wallet_id": "w1",
                              "provider": f"provider-{i % 40}",
                              "status": "FAILED" if i % 50 == 0 else "SYNCED",
                              "limit_exceeded": False, "refreshed_at": now})
            conn.execute(insert(rm_grants), rows)
            conn.execute(insert(rm_integrations), integ)
        t0 = int((now - timedelta(days=90)).timestamp() * 1000)
        step = max(1, 90 * 86_400_000 // max(1, events))
        for start in range(0, events, BATCH):
            _insert_events(conn, [_event(s + 1, t0 + s * step, rnd)
                                  for s in range(start, min(events, start + BATCH))])


def _insert_events(conn, rows: list[dict]) -> None:  # noqa: ANN001
    """The rows and, as the audit writer does, each limit change's `limit_changes` row."""
    conn.execute(insert(audit_log), rows)
    changes = [c for r in rows if (c := change_row(r)) is not None]
    if changes:
        conn.execute(insert(limit_changes), changes)


def _event(seq: int, ts: int, rnd: random.Random) -> dict:
    action = rnd.choice(ACTIONS)
    tier = rnd.choice(TIERS).name if action == "guest.tier.apply" else None
    return {"seq": seq, "event_id": f"e{seq}", "ts_ms": ts,
            "actor_username": f"user{rnd.randint(1, 30)}", "actor_roles": "admin",
            "action": action, "outcome": rnd.choice(OUTCOMES),
            "params": f'{{"tier": "{tier}"}}' if tier else None,
            "before_value": _limit(rnd, (1000, 10000, 2500), action),
            "after_value": _limit(rnd, (1000, 10000, 500), action),
            "correlation_id": "c", "prev_hash": "0" * 64, "hash": "0" * 64}


def _limit(rnd: random.Random, values: tuple[int, ...], action: str) -> str | None:
    if not action.startswith("guest."):
        return None
    return f'{{"transaction_limit": {rnd.choice(values)}, "enable_limiter": true}}'


def timed(fn) -> float:  # noqa: ANN001
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grants", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--live", type=int, default=5000)
    ap.add_argument("--database-url")
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    url = a.database_url or f"sqlite:///{OUT / 'charts.db'}"
    if url.startswith("sqlite"):
        (OUT / "charts.db").unlink(missing_ok=True)
    schema = None
    if not url.startswith("sqlite"):  # a schema of this run's own, dropped at the end
        schema = f"charts_bench_{os.getpid()}"
        _schema(url, f'CREATE SCHEMA "{schema}"')
        url = make_url(url).update_query_dict(
            {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    try:
        run(url, a)
    finally:
        if schema:
            _schema(a.database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _schema(url: str, sql: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def run(url: str, a: argparse.Namespace) -> None:
    db = open_database(url)
    db.migrate()
    now = datetime.now(UTC)
    t = time.perf_counter()
    fill(db, a.grants, a.events, now - timedelta(minutes=1))
    print(f"{db.dialect}: {a.grants:,} grants, {a.events:,} events filled in "
          f"{time.perf_counter() - t:.0f} s")
    if db.dialect == "postgresql":  # what autovacuum does to a table that settled: the
        # visibility map (index-only counts) and the planner's statistics
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    counts = DailyCounts(db)
    t = time.perf_counter()
    counts.keep(TIERS, now)
    print(f"daily counts step (sync worker): {(time.perf_counter() - t) * 1000:.0f} ms")
    rnd = random.Random(9)
    ts = int(now.timestamp() * 1000) - 60_000
    with db.write() as conn:
        _insert_events(conn, [_event(a.events + 1 + i, ts, rnd) for i in range(a.live)])
    since = (now - timedelta(days=89)).date()
    for name, fn in [
        ("grants by status, 90 days", lambda: counts.grant_status_days(since)),
        ("failing integrations by provider", counts.failing_by_provider),
        ("freshness buckets", lambda: counts.freshness(now)),
        ("approvals waiting by age", lambda: counts.approvals_waiting(now)),
        ("guests by tier", counts.guests_by_tier),
        ("limit changes per day by person, 90 days", lambda: counts.audit_days(
            since, by="actor_username", actions=("guest.limit.update", "guest.tier.apply"),
            outcomes=("succeeded",))),
        ("limit changes per day by tier, 90 days", lambda: counts.limit_days(since)),
        ("largest limit changes, 30 days", lambda: counts.largest_limit_changes(
            now - timedelta(days=30))),
        (f"audit events per day by outcome, 30 days (+{a.live:,} live)",
         lambda: counts.audit_days((now - timedelta(days=29)).date())),
    ]:
        print(f"{name:<58} {timed(fn):8.1f} ms")
    db.dispose()


if __name__ == "__main__":
    main()
