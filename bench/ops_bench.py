"""Operations figures against an in-process sandbox over real HTTP on 127.0.0.1.

    /work/venv/bin/python bench/ops_bench.py [--grants 1000] [--quick] [--repeat 5]

1. grant_detail with 100 ms of sandbox latency: wall time of one grant_detail (its five reads
   run concurrently) against the sum of the same five calls made one after the other.
2. A bulk tier change over `--grants` Guest grants with 50 ms latency: max_workers=8 against
   max_workers=1. With --quick the sequential run covers 100 grants and its figure for the
   full count is extrapolated (and labelled so).

The store is a fresh SQLite file under bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

from sandbox import start_sandbox
from services.kryptos.client import KryptosClient
from services.operations import Actor, Operations
from services.settings import parse_tiers
from services.store import AuditLog, TokenVault, open_database

OUT = Path(__file__).resolve().parent / "out"
ADMIN = Actor("bench", "Bench", frozenset({"admin"}))


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grants", type=int, default=1000, help="grants in the bulk run")
    ap.add_argument("--quick", action="store_true", help="sequential run on 100, extrapolated")
    ap.add_argument("--repeat", type=int, default=5, help="grant_detail repetitions")
    args = ap.parse_args()

    # ~60% of the sandbox's seeded grants are Guests with a stored token.
    handle = start_sandbox(port=0, seed=7, grants=int(args.grants * 1.9) + 50, resync_delay=5)
    OUT.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=OUT, prefix="ops_bench_"))
    db = open_database(f"sqlite:///{tmp / 'console.db'}")
    vault = TokenVault(db, Fernet.generate_key())
    rows = handle.tokens()
    for t in rows:
        vault.put(t["grant_id"], t["access_token"], workspace_id=t["workspace_id"],
                  customer_ref=t["customer_ref"], user_kind=t["kind"])
    client = KryptosClient(handle.client_id, handle.client_secret, handle.connect_url,
                           handle.data_url, read_timeout=30, max_retries=3, retry_budget=20)
    tiers = parse_tiers("Free=1000,Plus=10000,Pro=100000,Unlimited=off")

    def ops(workers: int) -> Operations:
        return Operations(client, AuditLog(db), vault, tiers, max_workers=workers)

    guests = [t["grant_id"] for t in rows if t["kind"] == "guest" and not t["revoked"]]
    print(f"sandbox: {len(client.list_grants())} grants listed, {len(rows)} stored tokens, "
          f"{len(guests)} active Guests")

    # --- 1. grant_detail ---------------------------------------------------------------
    handle.set_latency(100)
    gid = guests[0]
    token = vault.reveal(gid)
    o8 = ops(8)
    o8.grants.grant_detail(ADMIN, gid)  # warm the connection pool
    walls, sums = [], []
    for _ in range(args.repeat):
        walls.append(timed(lambda: o8.grants.grant_detail(ADMIN, gid)))
        sums.append(sum(timed(f) for f in (
            client.list_grants,
            lambda: client.check_session(token),
            lambda: client.get_holdings(token),
            lambda: client.list_integrations(token),
            lambda: client.get_userinfo(token),
        )))
    wall, seq = statistics.median(walls), statistics.median(sums)
    print("\ngrant_detail, 100 ms sandbox latency, median of", args.repeat)
    print(f"  concurrent grant_detail wall time : {wall * 1000:7.0f} ms")
    print(f"  sum of its 5 calls one at a time  : {seq * 1000:7.0f} ms")
    print(f"  speed-up                          : {seq / wall:7.2f}x")

    # --- 2. bulk tier change -----------------------------------------------------------
    handle.set_latency(50)
    n = min(args.grants, len(guests))
    batch = guests[:n]
    t_par = timed(lambda: check(
        ops(8).limits.apply_tier(ADMIN, batch, "Plus", reason="bench run"), n))
    seq_n = min(100, n) if args.quick else n
    t_seq = timed(lambda: check(ops(1).limits.apply_tier(ADMIN, batch[:seq_n], "Pro",
                                                  reason="bench run"), seq_n))
    t_seq_full = t_seq * n / seq_n
    print(f"\nbulk tier change over {n} Guest grants, 50 ms sandbox latency "
          "(user info + PATCH + 2 audit events each)")
    print(f"  max_workers=8 : {t_par:7.1f} s  ({n / t_par:6.1f} grants/s)")
    label = f"extrapolated from {seq_n}" if seq_n != n else "measured"
    print(f"  max_workers=1 : {t_seq_full:7.1f} s  ({label}; {seq_n / t_seq:5.1f} grants/s)")
    print(f"  speed-up      : {t_seq_full / t_par:7.2f}x")
    client.close()
    db.dispose()
    handle.stop()


def check(result: object, n: int) -> None:
    counts = result.counts  # type: ignore[attr-defined]
    if counts["succeeded"] != n:
        raise SystemExit(f"bulk run did not succeed on every grant: {dict(counts)}")


if __name__ == "__main__":
    main()
