"""Bulk picking at scale: "select all that match" (a filter resolved to up to `MAX_BULK` grant
ids) and a finance user's kept draft (the largest one: `MAX_BULK` ticked ids and a dry run of
as many grants), on a read model of many grants.

    .venv/bin/python -m bench.bulk_pick_bench [--grants 1000000]

Fills a fresh SQLite database (bench/out/bulk_pick.db) with `--grants` read-model rows (as
charts_bench.py does: 45 % active Guests, 22.5 % active of unknown kind), then prints the
median of 5 runs, in ms, of: the filter resolved for each kind the picker lists, the whole
"select all" use case, and saving and loading the largest draft (whole, and as each page
run of a session that holds it reads it: its revision only).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from cryptography.fernet import Fernet

from bench.charts_bench import OUT, TIERS, fill
from services.kryptos.client import KryptosClient
from services.operations import Actor, BulkItem, BulkResult, GrantFilter, Operations
from services.operations import validation as v
from services.operations.bulk_drafts import BulkDraft, DraftDryRun
from services.operations.limit_value import GuestLimit
from services.store import open_database
from services.store.audit import AuditLog
from services.store.vault import TokenVault


def median_ms(fn) -> float:  # noqa: ANN001
    times = []
    for _ in range(5):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grants", type=int, default=1_000_000)
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    path = OUT / "bulk_pick.db"
    path.unlink(missing_ok=True)
    db = open_database(f"sqlite:///{path}")
    db.migrate()
    t = time.perf_counter()
    fill(db, a.grants, 0, datetime.now(UTC))
    print(f"sqlite: {a.grants:,} grants filled in {time.perf_counter() - t:.0f} s")
    client = KryptosClient("bench", "bench", "http://127.0.0.1:9", "http://127.0.0.1:9")
    ops = Operations(client, AuditLog(db), TokenVault(db, Fernet.generate_key()), TIERS)
    finance = Actor("finance", "Finance", frozenset({"finance"}))
    rm = ops.readmodel
    for kind in ("guest", "unknown"):
        f = GrantFilter(status="active", kind=kind)
        n = len(rm.grant_ids(f, v.MAX_BULK + 1))
        print(f"filter resolved, kind {kind} ({n:,} ids): "
              f"{median_ms(lambda f=f: rm.grant_ids(f, v.MAX_BULK + 1)):.0f} ms")
    found = ops.bulk_drafts.match_filter(finance, "")
    print(f"select all that match, no filter ({len(found.grant_ids):,} ids, capped "
          f"{found.capped}): {median_ms(lambda: ops.bulk_drafts.match_filter(finance, '')):.0f} ms")
    ids = found.grant_ids
    dry = BulkResult(tuple(BulkItem(g, f"cust-{i}", "would_change", GuestLimit.capped(1000),
                                    GuestLimit.capped(10000)) for i, g in enumerate(ids)),
                     dry_run=True, tier="Plus")
    draft = BulkDraft(picked=ids, tier="Plus", dry_run=DraftDryRun(ids, "Plus", None, dry))
    print(f"save the largest draft ({len(ids):,} ticked, a dry run of {len(ids):,}): "
          f"{median_ms(lambda: ops.bulk_drafts.save(finance, draft)):.0f} ms")
    kept = ops.bulk_drafts.save(finance, draft)
    print(f"load it whole (a new session, or another tab saved): "
          f"{median_ms(lambda: ops.bulk_drafts.load(finance)):.0f} ms")
    print(f"load it again, unchanged (each page run of a session that holds it): "
          f"{median_ms(lambda: ops.bulk_drafts.load(finance, kept)):.2f} ms")
    small = BulkDraft(picked=ids[:20], tier="Plus")
    ops.bulk_drafts.save(finance, small)
    print(f"load a draft of 20 ticked, no dry run: "
          f"{median_ms(lambda: ops.bulk_drafts.load(finance)):.2f} ms")
    client.close()
    db.dispose()


if __name__ == "__main__":
    main()
