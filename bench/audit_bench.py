"""Audit log figures in SQLite: fill rate, append() rate, filtered first-page query times.

    /work/venv/bin/python bench/audit_bench.py [--rows 1000000] [--appends 2000] [--fresh]

The log is built (or reused) under bench/out/ (git-ignored), through the same sealing and
hashing code as append(), in batches of one transaction each; the fake clock advances one
second per event so that time-range filters have something to select.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.store import AuditFilter, AuditLog, NewAuditEvent, open_database

OUT = Path(__file__).resolve().parent / "out"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
ACTIONS = ("grant.revoke", "integration.resync", "guest.limit.update", "link_token.create",
           "token.exchange", "auth.login", "auth.logout", "auth.login_failed")
OUTCOMES = ("requested", "succeeded", "failed", "denied")


def make_event(rng: random.Random) -> NewAuditEvent:
    action = rng.choice(ACTIONS)
    return NewAuditEvent(
        actor_username=f"user{rng.randrange(50)}", actor_roles=["support"], action=action,
        outcome=rng.choices(OUTCOMES, weights=(45, 40, 10, 5))[0], target_type="grant",
        target_id=f"grant_{rng.randrange(20_000):05d}",
        params={"mode": "latest", "limit": rng.randrange(100_000)}, reason="bench",
    )


def fill(log: AuditLog, rows: int, batch: int = 20_000) -> float:
    rng = random.Random(42)
    started = time.perf_counter()
    done = 0
    while done < rows:
        n = min(batch, rows - done)
        log.append_many(make_event(rng) for _ in range(n))
        done += n
        print(f"\r  filled {done:,}/{rows:,}", end="", flush=True)
    print()
    return time.perf_counter() - started


def timed(fn: Callable[[], object], repeat: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--fresh", action="store_true", help="rebuild the database")
    parser.add_argument("--verify", action="store_true", help="also time verify_chain()")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"audit_bench_{args.rows}.db"
    if args.fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = open_database(f"sqlite:///{path}")
    clock = itertools.count()
    log = AuditLog(db, clock=lambda: T0 + timedelta(seconds=next(clock)))
    existing = log.count()
    print(f"SQLite audit log at {path}")
    if existing < args.rows:
        elapsed = fill(log, args.rows - existing)
        print(f"  fill: {args.rows - existing:,} rows in {elapsed:.1f} s "
              f"({(args.rows - existing) / elapsed:,.0f} rows/s, batched append_many)")
    else:
        print(f"  reusing {existing:,} rows")

    live = AuditLog(db)
    rng = random.Random(7)
    events = [make_event(rng) for _ in range(args.appends)]
    started = time.perf_counter()
    for event in events:
        live.append(event)
    elapsed = time.perf_counter() - started
    print(f"  append(): {args.appends:,} single appends in {elapsed:.2f} s = "
          f"{args.appends / elapsed:,.0f} events/s ({elapsed / args.appends * 1000:.2f} ms each)")

    mid = T0 + timedelta(seconds=args.rows // 2)
    queries = {
        "no filter": AuditFilter(),
        "actor": AuditFilter(actor="user7"),
        "action": AuditFilter(action="grant.revoke"),
        "action prefix auth.*": AuditFilter(action="auth.*"),
        "target id": AuditFilter(target_id="grant_01234"),
        "outcome denied": AuditFilter(outcome="denied"),
        "time range 1 h": AuditFilter(since=mid, until=mid + timedelta(hours=1)),
        "actor+action+1 day": AuditFilter(actor="user7", action="grant.revoke", since=mid,
                                          until=mid + timedelta(days=1)),
        "target+outcome": AuditFilter(target_id="grant_01234", outcome="succeeded"),
    }
    print(f"\n  {'filtered first page (50, newest first)':<40}{'median ms':>10}{'matches':>10}")
    for name, flt in queries.items():
        seconds, page = timed(lambda flt=flt: log.query(flt, page=1, page_size=50))
        print(f"  {name:<40}{seconds * 1000:>10.1f}{page.total:>10,}")
    seconds, page = timed(lambda: log.query(AuditFilter(actor="user7"), page=20, page_size=50))
    print(f"  {'actor, page 20':<40}{seconds * 1000:>10.1f}{page.total:>10,}")

    if args.verify:
        started = time.perf_counter()
        report = log.verify_chain()
        print(f"\n  verify_chain(): {report.checked:,} rows in "
              f"{time.perf_counter() - started:.1f} s, ok={report.ok}")
    db.dispose()


if __name__ == "__main__":
    main()
