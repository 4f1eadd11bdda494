"""Audit log figures in SQLite: fill rate, append() rate, filtered first-page query times.

    /work/venv/bin/python bench/audit_bench.py [--rows 1000000] [--appends 2000] [--fresh]
        [--anchor {off,on,compare}] [--rounds 5] [--anchor-interval S] [--verify]
        [--database-url URL] [--threads 1,4]

`--anchor on` times append() with the anchor file (bench/out/audit-anchor.json) kept up to
date; `compare` alternates rounds with and without it and prints both medians (small rounds
many times, e.g. `--appends 100 --rounds 40`, resist a noisy disk best). `--database-url`
runs on another database, e.g. a throwaway PostgreSQL one. `--threads 1,4` also times
append() from that many writer threads at once (`--rounds` times, median; each thread its
own events), then checks that the appended rows are gap-free and linked.

The log is built (or reused) under bench/out/ (git-ignored), through the same sealing and
hashing code as append(), in batches of one transaction each; the fake clock advances one
second per event so that time-range filters have something to select.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import random
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy import text

from services.store import AuditFilter, AuditLog, Database, NewAuditEvent, open_database
from services.store.audit import ANCHOR_INTERVAL_S

T = TypeVar("T")

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


def timed(fn: Callable[[], T], repeat: int = 5) -> tuple[float, T]:
    """The median seconds of `repeat` calls, and the last call's result."""
    def once() -> tuple[float, T]:
        t = time.perf_counter()
        result = fn()
        return time.perf_counter() - t, result

    runs = [once() for _ in range(repeat)]
    return statistics.median(s for s, _ in runs), runs[-1][1]


def threaded_rate(log: AuditLog, threads_n: int, total: int, seed: int) -> float:
    """events/s of `total` single append() calls spread over `threads_n` threads."""
    per_thread = max(1, total // threads_n)
    batches = [[make_event(random.Random(seed + n)) for _ in range(per_thread)]
               for n in range(threads_n)]
    start = threading.Barrier(threads_n + 1)
    errors: list[BaseException] = []

    def writer(events: list[NewAuditEvent]) -> None:
        start.wait()
        try:
            for event in events:
                log.append(event)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    start.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return per_thread * threads_n / elapsed


def check_tail(db: Database, since_seq: int) -> int:
    """Rows after `since_seq` are gap-free and each links to the previous row's hash;
    returns how many there are."""
    with db.read() as conn:
        rows = conn.execute(text("SELECT seq, prev_hash, hash FROM audit_log WHERE seq >= :s "
                                 "ORDER BY seq"), {"s": since_seq}).all()
    expected, prev_hash = since_seq, None
    for seq, prev, digest in rows:
        if seq != expected or (prev_hash is not None and prev != prev_hash):
            raise AssertionError(f"chain broken at row {seq}")
        expected, prev_hash = seq + 1, digest
    return len(rows) - (1 if since_seq else 0)


def threads_report(db: Database, log: AuditLog, threads_n: int, appends: int,
                   rounds: int) -> str:
    """Median events/s of `rounds` threaded runs, events per transaction, chain check."""
    before = log.count()
    commits: list[int] = []

    def on_commit(_conn: object) -> None:
        commits.append(1)

    sa_event.listen(db.engine, "commit", on_commit)
    try:
        rate = statistics.median(threaded_rate(log, threads_n, appends, seed=threads_n * 1000 + r)
                                 for r in range(rounds))
    finally:
        sa_event.remove(db.engine, "commit", on_commit)
    appended = check_tail(db, before)
    return (f"  append() from {threads_n} thread(s): {appends:,} events x {rounds} round(s): "
            f"median {rate:,.0f} events/s, {appended / max(1, len(commits)):.1f} events per "
            f"transaction; chain linked over the {appended:,} new rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--fresh", action="store_true", help="rebuild the database")
    parser.add_argument("--verify", action="store_true", help="also time verify_chain()")
    parser.add_argument("--anchor", choices=("off", "on", "compare"), default="off",
                        help="append() with the anchor file, without, or both (alternating)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of --anchor compare and of --threads")
    parser.add_argument("--anchor-interval", type=float, default=ANCHOR_INTERVAL_S,
                        help="seconds between anchor writes (0: after every append)")
    parser.add_argument("--threads", default="",
                        help="comma-separated writer thread counts to time, e.g. 1,4")
    parser.add_argument("--database-url", help="another database (e.g. PostgreSQL) instead "
                        "of the SQLite file under bench/out/; --fresh does not apply")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"audit_bench_{args.rows}.db"
    if args.fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = open_database(args.database_url or f"sqlite:///{path}")
    clock = itertools.count()
    log = AuditLog(db, clock=lambda: T0 + timedelta(seconds=next(clock)))
    existing = log.count()
    print(f"audit log in {db!r}")
    if existing < args.rows:
        elapsed = fill(log, args.rows - existing)
        print(f"  fill: {args.rows - existing:,} rows in {elapsed:.1f} s "
              f"({(args.rows - existing) / elapsed:,.0f} rows/s, batched append_many)")
    else:
        print(f"  reusing {existing:,} rows")

    anchor_file = OUT / "audit-anchor.json"
    anchor_file.unlink(missing_ok=True)  # the bench's appends start a fresh anchor
    logs = {"off": AuditLog(db), "on": AuditLog(db, anchor_file=anchor_file,
                                                anchor_interval=args.anchor_interval)}
    rng = random.Random(7)
    modes = ["off", "on"] if args.anchor == "compare" else [args.anchor]
    rounds = args.rounds if args.anchor == "compare" else 1
    rates: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(rounds):
        for mode in modes:
            events = [make_event(rng) for _ in range(args.appends)]
            started = time.perf_counter()
            for event in events:
                logs[mode].append(event)
            rates[mode].append(args.appends / (time.perf_counter() - started))
    for mode in modes:
        rate = statistics.median(rates[mode])
        print(f"  append(), anchor {mode}: {args.appends:,} single appends x {rounds} round(s): "
              f"median {rate:,.0f} events/s ({1000 / rate:.3f} ms each)")
    if len(modes) == 2:
        off, on = (statistics.median(rates[m]) for m in modes)
        print(f"  anchor cost (interval {args.anchor_interval} s): {(1 - on / off) * 100:.1f} "
              f"% of the append rate ({(1 / on - 1 / off) * 1e6:,.0f} µs per append)")
    logs["on"].flush_anchor()

    for threads_n in [int(x) for x in args.threads.split(",") if x.strip()]:
        print(threads_report(db, logs["off"], threads_n, args.appends, args.rounds))

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
        seconds, page = timed(functools.partial(log.query, flt, page=1, page_size=50))
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
