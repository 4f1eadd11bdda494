"""Read model figures at scale (store and worker), and with `--browser` the
browser figures (bench/browser_bench.py: console start to the login page, login to a usable
Overview, Grants page rerun vs a bare st.dataframe, upstream calls once warm, peak server
memory with 5 browser sessions on the Grants page; headless Chromium at /usr/bin/chromium,
never `playwright install`):

    PYTHONPATH=$PWD .venv/bin/python bench/scale_bench.py --browser [--sizes 40,100000]
        [--step-timeout 300] [--keep-logs]

Without `--browser`, the read model figures:

    PYTHONPATH=$PWD .venv/bin/python bench/scale_bench.py [--sizes 1000,10000,100000]
        [--with-300k] [--database-url URL] [--sample 2000] [--test-rate 400]

For each N a child process (so that peak RSS is per size and the console side's only)
starts the sandbox as another process (`python -m sandbox --grants N`), stores every
exported grant's token in a fresh vault (one CSV import), and times:

- a full grants sync (`GET /token/grants` + `ReadModel.apply_grants`), rows/s;
- `counts()`; `page()`: first page, filtered, sorted, a deep page, a substring search
  (median of 5 runs, ms);
- streaming the whole grants CSV from SQL;
- integration refresh of `--sample` grants at `--test-rate` calls/s (achieved calls/s),
  and from it how long a full integration refresh of all N grants takes at the default
  rate (SYNC_RATE 10/s): the refresh is rate-bound, so N / rate when the worker keeps up;
- memory of the child (the console side: client, worker, read model): the resident set
  before the sync, the peak during the full sync (the kernel's high-water mark, reset just
  before it through /proc/self/clear_refs, so the bench's own vault import is not counted),
  and the peak from the sync to the end (queries, CSV, integrations).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RATE = 10.0


def _ms(fn: Callable[[], Any], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _start_sandbox(n: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--grants", str(n)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline() if proc.stdout else ""
    if " on http" not in line:
        proc.kill()
        raise RuntimeError(f"sandbox did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].split(" ", 1)[0]


def _rss_mb(field: str = "VmRSS") -> float:
    """A field of /proc/self/status in MB (VmRSS now, VmHWM the peak since the last reset)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Start the peak-RSS high-water mark afresh (Linux: 5 > /proc/self/clear_refs)."""
    import gc

    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


class _Sink:
    """Counts the characters written to it, keeps none."""

    bytes = 0

    def write(self, s: str) -> int:
        self.bytes += len(s)
        return len(s)


def _null_sink() -> _Sink:
    return _Sink()


def _awaiting_ms(db: object, rm: object, ids: list[str]) -> float:
    """The Grants page's "waiting for approval" filter with one pending bulk request over
    up to 1,000 grants (a semi-join on `approval_grants`)."""
    from datetime import timedelta

    from services.store.approvals import ApprovalStore
    from services.store.readmodel import GrantFilter

    held = ids[:1000]
    ApprovalStore(db).create(  # type: ignore[arg-type]
        action="guest.tier.apply.bulk", params={"grant_ids": held, "tier": "Plus"},
        requester="bench", roles=["finance"], reason="bench run", ticket=None,
        ttl=timedelta(hours=1), correlation_id="bench", grants=held, kind="limit")
    return _ms(lambda: rm.page(GrantFilter(awaiting_approval=True),  # type: ignore[attr-defined]
                               page_size=100))


def measure(n: int, database_url: str | None, sample: int, test_rate: float) -> dict:
    from cryptography.fernet import Fernet

    from sandbox.handle import SandboxClient
    from services.kryptos import KryptosClient
    from services.settings import DEFAULT_TIERS, parse_tiers
    from services.store import TokenVault, open_database
    from services.store.readmodel import GrantFilter, ReadModel
    from services.sync import SyncWorker

    proc, base = _start_sandbox(n)
    tmp = tempfile.TemporaryDirectory()
    schema = _pg_schema(database_url) if database_url else None
    try:
        sb = SandboxClient(base)
        url: str | URL = database_url or f"sqlite:///{Path(tmp.name) / 'console.db'}"
        if schema:
            from sqlalchemy.engine import make_url
            url = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        db = open_database(url)
        vault = TokenVault(db, Fernet.generate_key())
        t = time.perf_counter()
        csv_text = io.StringIO()
        csv_text.write("grant_id,access_token,customer_ref\n")
        for tok in sb.tokens():
            csv_text.write(f"{tok['grant_id']},{tok['access_token']},{tok['customer_ref'] or ''}\n")
        csv_text.seek(0)
        vault.import_csv(csv_text)
        del csv_text
        vault_s = time.perf_counter() - t
        client = KryptosClient(sb.client_id, sb.client_secret, sb.connect_url, sb.data_url,
                               max_retries=0, read_timeout=120)
        rm = ReadModel(db, parse_tiers(DEFAULT_TIERS))
        worker = SyncWorker(client, vault, rm, rate=test_rate, userinfo_share=0.0)
        _reset_peak()
        rss_before = _rss_mb()
        t, cpu = time.perf_counter(), time.process_time()
        worker.sync_grants()
        sync_s = time.perf_counter() - t
        sync_cpu = time.process_time() - cpu
        sync_peak = _rss_mb("VmHWM")
        rows = rm.counts().total
        t, cpu = time.perf_counter(), time.process_time()
        worker.sync_grants()  # nothing changed: the diff writes nothing
        resync_s = time.perf_counter() - t
        resync_cpu = time.process_time() - cpu
        # Integrations of a sample at the test rate.
        ids = rm.active_with_token()[:sample]
        t = time.perf_counter()
        worker._refresh(ids, [])
        refresh_s = time.perf_counter() - t
        with_token = rm.counts().with_token
        total = rm.counts().total
        deep = max(1, total // 100 - 1)
        out = {
            "n": n, "rows": rows, "vault_import_s": vault_s, "full_sync_s": sync_s,
            "rows_per_s": rows / sync_s, "unchanged_sync_s": resync_s,
            "rss_before_sync_mb": rss_before, "sync_peak_mb": sync_peak,
            "sync_cpu_s": sync_cpu, "unchanged_cpu_s": resync_cpu,
            "counts_ms": _ms(rm.counts),
            "page_first_ms": _ms(lambda: rm.page(page_size=100)),
            "page_filtered_ms": _ms(lambda: rm.page(
                GrantFilter(status="active", has_token=True, kind="unknown"), page_size=100)),
            "page_queue_ms": _ms(lambda: rm.page(GrantFilter(queue="failing"), page_size=100)),
            "page_sorted_ms": _ms(lambda: rm.page(sort="customer_ref", descending=True,
                                                  page_size=100)),
            "page_deep_ms": _ms(lambda: rm.page(page=deep, page_size=100)),
            "page_search_ms": _ms(lambda: rm.page(GrantFilter(search="cust-00"),
                                                  page_size=100)),
            "page_awaiting_ms": _awaiting_ms(db, rm, ids),
            "grant_ms": _ms(lambda: rm.grant(ids[0] if ids else "cgrant_x")),
            "version_ms": _ms(rm.version),
        }
        sink = _null_sink()
        t = time.perf_counter()
        written = rm.iter_csv(None, sink)
        out["csv_s"] = time.perf_counter() - t
        out["csv_rows"] = written
        out["csv_mb"] = sink.bytes / 1e6
        out["refresh_sample"] = len(ids)
        out["refresh_calls_per_s"] = len(ids) / refresh_s if refresh_s else 0.0
        out["with_token"] = with_token
        out["full_refresh_default_s"] = with_token / DEFAULT_RATE
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        db.dispose()
        return out
    finally:
        proc.terminate()
        proc.wait(10)
        tmp.cleanup()
        if schema and database_url:
            _pg_schema(database_url, drop=schema)


def _pg_schema(url: str, drop: str | None = None) -> str | None:
    """A fresh schema of this run's own in a PostgreSQL database (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    if not url.startswith("postgresql"):
        return None
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    name = drop or f"rm_bench_{os.getpid()}"
    with engine.connect() as conn:
        if drop:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        else:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    return name


def _hms(seconds: float) -> str:
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def print_table(results: list[dict], test_rate: float) -> None:
    cols = [str(r["n"]) for r in results]
    lines = [
        ("grants listed / rows", lambda r: f"{r['rows']:,}"),
        ("vault import of all tokens (s)", lambda r: f"{r['vault_import_s']:.1f}"),
        ("full grants sync (s)", lambda r: f"{r['full_sync_s']:.2f}"),
        ("  rows/s", lambda r: f"{r['rows_per_s']:,.0f}"),
        ("  us per grant", lambda r: f"{r['full_sync_s'] * 1e6 / max(1, r['rows']):,.0f}"),
        ("  console CPU (s)", lambda r: f"{r['sync_cpu_s']:.2f}"),
        ("  console CPU us per grant",
         lambda r: f"{r['sync_cpu_s'] * 1e6 / max(1, r['rows']):,.0f}"),
        ("  RSS before / peak during (MB)",
         lambda r: f"{r['rss_before_sync_mb']:.0f} / {r['sync_peak_mb']:.0f}"),
        ("  peak above before (MB)",
         lambda r: f"{r['sync_peak_mb'] - r['rss_before_sync_mb']:.1f}"),
        ("unchanged re-sync (s)", lambda r: f"{r['unchanged_sync_s']:.2f}"),
        ("  console CPU (s)", lambda r: f"{r['unchanged_cpu_s']:.2f}"),
        ("counts() ms", lambda r: f"{r['counts_ms']:.1f}"),
        ("page() first ms", lambda r: f"{r['page_first_ms']:.1f}"),
        ("page() filtered ms", lambda r: f"{r['page_filtered_ms']:.1f}"),
        ("page() work queue ms", lambda r: f"{r['page_queue_ms']:.1f}"),
        ("page() sorted desc ms", lambda r: f"{r['page_sorted_ms']:.1f}"),
        ("page() deep (last pages) ms", lambda r: f"{r['page_deep_ms']:.1f}"),
        ("page() substring search ms", lambda r: f"{r['page_search_ms']:.1f}"),
        ("page() waiting for approval ms", lambda r: f"{r['page_awaiting_ms']:.1f}"),
        ("grant() ms", lambda r: f"{r['grant_ms']:.2f}"),
        ("version() ms", lambda r: f"{r['version_ms']:.2f}"),
        ("CSV stream, all rows (s)", lambda r: f"{r['csv_s']:.2f} ({r['csv_mb']:.1f} MB)"),
        (f"integrations at {test_rate:g}/s: calls/s",
         lambda r: f"{r['refresh_calls_per_s']:.0f} (n={r['refresh_sample']})"),
        (f"full integration refresh at {DEFAULT_RATE:g}/s",
         lambda r: _hms(r["full_refresh_default_s"])),
        ("peak RSS from the sync on (MB)",
         lambda r: f"{r['peak_rss_mb']:.0f}"),
    ]
    width = max(len(name) for name, _ in lines) + 2
    colw = max(18, *(len(c) + 2 for c in cols))
    print("".ljust(width) + "".join(c.rjust(colw) for c in cols))
    for name, fmt in lines:
        print(name.ljust(width) + "".join(fmt(r).rjust(colw) for r in results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=None,
                        help="default 1000,10000,100000 (40,100000 with --browser)")
    parser.add_argument("--browser", action="store_true",
                        help="the browser figures instead (bench/browser_bench.py)")
    parser.add_argument("--step-timeout", type=float, default=300.0,
                        help="--browser: seconds any one wait may take")
    parser.add_argument("--keep-logs", action="store_true",
                        help="--browser: keep the console and sandbox logs")
    parser.add_argument("--with-300k", action="store_true")
    parser.add_argument("--database-url", default=None,
                        help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--test-rate", type=float, default=400.0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.database_url, args.sample, args.test_rate)))
        return 0
    if args.browser:
        from bench import browser_bench

        argv = ["--sizes", args.sizes or "40,100000", "--step-timeout", str(args.step_timeout)]
        return browser_bench.main(argv + (["--keep-logs"] if args.keep_logs else []))
    sizes = [int(s) for s in (args.sizes or "1000,10000,100000").split(",") if s.strip()]
    if args.with_300k:
        sizes.append(300000)
    results = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--sample", str(args.sample),
               "--test-rate", str(args.test_rate)]
        if args.database_url:
            cmd += ["--database-url", args.database_url]
        t = time.perf_counter()
        child = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return child.returncode
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"N={n:,}: done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    print_table(results, args.test_rate)
    print("\nBrowser figures: --browser (bench/browser_bench.py).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
