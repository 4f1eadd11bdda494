"""The read model's page queries and the admin's sync view over N synthetic rows, without a
sync: `rm_grants` is filled by one INSERT ... SELECT in the database itself (rows shaped like
the sandbox's: 24-hex grant ids, `cust-NNNN` / `customerN@example.org` references, `anon_`
user ids, about 1% of rows in each work queue, a sixteenth read an hour ago, the rest never
read), so a million rows take minutes where scale_bench's full sync at a million needs a
quiet machine. Prints, per query, the wall time (median of 5), the slowest statement's
`EXPLAIN ANALYZE` time on PostgreSQL, the indexes read and any table read whole:

    PYTHONPATH=$PWD .venv/bin/python bench/synthetic_million.py [--rows 1000000]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

PostgreSQL: a schema of its own, VACUUM ANALYZE after the fill, dropped at the end.
SQLite (no URL): a temporary file. The created_at order follows the reference's number
(as in the sandbox), which the planners' choice for a prefix search depends on."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, os.getcwd())

from sqlalchemy import create_engine, text  # noqa: E402

from bench.scale_bench import _cursor_at, _ms, _pg_schema, _plans, page_queries  # noqa: E402
from services.settings import DEFAULT_TIERS, parse_tiers  # noqa: E402
from services.store import open_database  # noqa: E402
from services.store.readmodel import ReadModel  # noqa: E402

_COLS = ("grant_id, status, workspace_id, scopes, created_at, customer_ref, kryptos_user_id, "
         "has_token, unreadable, n_integrations, n_failing, n_syncing, n_never_synced, "
         "search_text, refreshed_at, status_changed_at, sync_state, integrations_refreshed_at")

_FILL_PG = f"""INSERT INTO rm_grants ({_COLS})
SELECT g, CASE WHEN i % 10 = 0 THEN 'revoked' ELSE 'active' END, 'ws_1', 'x',
  timestamptz '2025-01-01' + i * interval '1 second', r, u, i % 64 <> 7, i % 500 = 3,
  CASE WHEN i % 100 < 3 THEN 1 ELSE 0 END, CASE WHEN i % 100 = 1 THEN 1 ELSE 0 END,
  CASE WHEN i % 100 = 2 THEN 1 ELSE 0 END, CASE WHEN i % 100 = 0 THEN 1 ELSE 0 END,
  lower(g || chr(10) || r || chr(10) || u), now(), now(),
  CASE i % 100 WHEN 1 THEN 'failing' WHEN 2 THEN 'syncing' END,
  CASE WHEN i % 16 = 5 THEN now() - interval '1 hour' END
FROM (SELECT i, 'cgrant_' || substr(md5(i::text), 1, 24) AS g,
             CASE WHEN i % 10 < 7 THEN 'cust-' || lpad(i::text, 4, '0')
                  ELSE 'customer' || i || '@example.org' END AS r,
             'anon_' || substr(md5('u' || i), 1, 24) AS u
      FROM generate_series(1, :n) i) s"""

_FILL_SQLITE = f"""WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n)
INSERT INTO rm_grants ({_COLS})
SELECT g, CASE WHEN i % 10 = 0 THEN 'revoked' ELSE 'active' END, 'ws_1', 'x',
  strftime('%Y-%m-%d %H:%M:%f', '2025-01-01', '+' || i || ' seconds'), r, u, i % 64 <> 7,
  i % 500 = 3, i % 100 < 3, i % 100 = 1, i % 100 = 2, i % 100 = 0,
  lower(g || char(10) || r || char(10) || u), datetime('now'), datetime('now'),
  CASE i % 100 WHEN 1 THEN 'failing' WHEN 2 THEN 'syncing' END,
  CASE WHEN i % 16 = 5 THEN datetime('now', '-1 hour') END
FROM (SELECT i, 'cgrant_' || lower(hex(randomblob(12))) AS g,
             CASE WHEN i % 10 < 7 THEN printf('cust-%04d', i)
                  ELSE 'customer' || i || '@example.org' END AS r,
             'anon_' || lower(hex(randomblob(12))) AS u FROM s)"""


def measure(db: Any) -> None:
    rm = ReadModel(db, parse_tiers(DEFAULT_TIERS))
    total = rm.row_count()
    deep_cursor = _cursor_at(db, max(0, total - 250))
    some_id = rm.page(page_size=1, cursor=deep_cursor).rows[0].grant_id
    stale_cutoff = datetime.now(UTC) - timedelta(minutes=15)
    planned: dict[str, Callable[[], Any]] = {
        **page_queries(rm, deep_cursor, some_id),
        "sync view counts (freshness, stale_rows)": lambda: (rm.freshness(),
                                                             rm.stale_rows(stale_cutoff)),
    }
    print(f"rows {total:,}; load {os.getloadavg()[0]:.1f}", flush=True)
    for name, fn in planned.items():
        p = _plans(db, fn)
        took = f"; EXPLAIN ANALYZE {p['worst_ms']:.1f} ms" if p["worst_ms"] > 0 else ""
        print(f"  {name}: wall {_ms(fn):.1f} ms{took}; {', '.join(p['indexes']) or '-'}; "
              f"whole: {', '.join(p['scans']) or 'none'}", flush=True)
        if os.environ.get("BENCH_PLANS"):
            print(p["worst_plan"])
    with db.read() as conn:  # the sync view's Rows figure, uncached
        t = time.perf_counter()
        conn.execute(text("SELECT count(*) FROM rm_grants")).scalar_one()
        print(f"  row_count uncached: {(time.perf_counter() - t) * 1000:.1f} ms")
    print(f"load {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    url: Any = f"sqlite:///{Path(tmp.name) / 'synthetic.db'}"
    schema = _pg_schema(args.database_url, suffix="_synth") if args.database_url else None
    try:
        if schema and args.database_url:
            from sqlalchemy.engine import make_url
            url = make_url(args.database_url).update_query_dict(
                {"options": f"-csearch_path={schema},public"})
        db = open_database(url)
        t = time.perf_counter()
        with db.write() as conn:
            conn.execute(text(_FILL_SQLITE if db.is_sqlite else _FILL_PG), {"n": args.rows})
        if not db.is_sqlite:
            engine = create_engine(url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text("VACUUM ANALYZE rm_grants"))
            engine.dispose()
        print(f"filled in {time.perf_counter() - t:.0f} s", flush=True)
        measure(db)
        db.dispose()
        return 0
    finally:
        tmp.cleanup()
        if schema and args.database_url:
            _pg_schema(args.database_url, drop=schema)


if __name__ == "__main__":
    raise SystemExit(main())
