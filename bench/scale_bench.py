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

- a full grants sync (`GET /token/grants` + `ReadModel.apply_grants`), rows/s, and an
  unchanged re-sync, each against its floor: a bare stream-parse of the same list (the
  re-sync's floor: it must write nothing) plus a bare bulk insert of the same rows into an
  empty `rm_grants` of the same schema (with the parse, the full sync's floor); the ratios
  are printed;
- `counts()`; `page()`: first page, filtered, sorted, every work queue, a deep page by
  OFFSET and by keyset, the last page, substring searches (a rare needle, a customer
  reference, a needle 30% of rows hold, a grant id), prefix searches (customer reference,
  grant id) (median of 5 runs, ms);
- the admin's sync view (`SyncWorker.status`, ms);
- how long a newly failed integration takes to show as failing with webhooks on (an
  `integration.failed` applied by the backend's hook, measured, plus the pages' 1 s version
  poll) and off (the worker's pass over the stalest grants at the default rate, computed
  from the failing/syncing share of the sample and the worker's queue: `detection_s`);
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
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
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
    from services.store.readmodel import LAST_PAGE, QUEUES, GrantFilter, ReadModel
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
        for tok in (t for page in sb.token_pages() for t in page):  # pages: short calls
            csv_text.write(f"{tok['grant_id']},{tok['access_token']},{tok['customer_ref'] or ''}\n")
        csv_text.seek(0)
        vault.import_csv(csv_text)
        del csv_text
        vault_s = time.perf_counter() - t
        client = KryptosClient(sb.client_id, sb.client_secret, sb.connect_url, sb.data_url,
                               max_retries=0, read_timeout=120)
        rm = ReadModel(db, parse_tiers(DEFAULT_TIERS))
        worker = SyncWorker(client, vault, rm, rate=test_rate, userinfo_share=0.0)
        applied = _record_applied(rm)
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
        full_written, unchanged_written = applied[0].written, applied[1].written
        parse_s = _bare_parse_s(client)
        insert_s = _bare_insert_s(db, database_url)
        if not db.is_sqlite:  # what autovacuum does within a minute of a bulk load
            from sqlalchemy import text
            with db.write() as conn:
                conn.execute(text("ANALYZE rm_grants"))
        # Integrations of a sample at the test rate.
        ids = rm.active_with_token()[:sample]
        t = time.perf_counter()
        worker._refresh(ids, [])
        refresh_s = time.perf_counter() - t
        with_token = rm.counts().with_token
        total = rm.counts().total
        deep = max(1, total // 100 - 1)
        deep_cursor = _cursor_at(db, max(0, total - 250))
        some = rm.page(page_size=1, cursor=deep_cursor).rows
        some_id = some[0].grant_id if some else "cgrant_x"
        queues = {q: _ms(partial(rm.page, GrantFilter(queue=q), page_size=100))
                  for q in QUEUES}
        out = {
            "n": n, "rows": rows, "vault_import_s": vault_s, "full_sync_s": sync_s,
            "full_written": full_written, "unchanged_written": unchanged_written,
            "bare_parse_s": parse_s, "bare_insert_s": insert_s,
            "queues_ms": queues,
            "page_deep_keyset_ms": _ms(lambda: rm.page(page_size=100, cursor=deep_cursor)),
            "page_last_ms": _ms(lambda: rm.page(page_size=100, cursor=LAST_PAGE)),
            "search_prefix_ms": _ms(lambda: rm.page(
                GrantFilter(search="cust-12", search_mode="prefix"), page_size=100)),
            "search_ref_ms": _ms(lambda: rm.page(GrantFilter(search="stomer12"),
                                                 page_size=100)),
            "search_dense_ms": _ms(lambda: rm.page(GrantFilter(search="example"),
                                                   page_size=100)),
            "search_id_ms": _ms(lambda: rm.page(GrantFilter(search=some_id[3:]),
                                                page_size=100)),
            "search_id_prefix_ms": _ms(lambda: rm.page(
                GrantFilter(search=some_id, search_mode="prefix"), page_size=100)),
            "sync_view_ms": _ms(worker.status),
            "webhook_apply_ms": _webhook_apply_ms(rm, some_id),
            "hot": _hot_rows(rm, ids),
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
        planned = {**page_queries(rm, deep_cursor, some_id), "sync view": worker.status}
        out["plans"] = {name: _plans(db, fn) for name, fn in planned.items()}
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
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        tmp.cleanup()
        if schema and database_url:
            _pg_schema(database_url, drop=schema)


def page_queries(rm: Any, deep_cursor: Any, some_id: str) -> dict[str, Callable[[], Any]]:
    """The page reads whose plans and times the benches print: every work queue, a filtered
    page, deep and last pages, searches by customer reference and grant id (`some_id`: a
    stored grant; `deep_cursor`: a keyset cursor near the end)."""
    from services.store.readmodel import LAST_PAGE, QUEUES, GrantFilter

    return {
        **{f"queue {q}": partial(rm.page, GrantFilter(queue=q), page_size=100)
           for q in QUEUES},
        "filtered": lambda: rm.page(
            GrantFilter(status="active", has_token=True, kind="unknown"), page_size=100),
        "deep by keyset": lambda: rm.page(page_size=100, cursor=deep_cursor),
        "last page": lambda: rm.page(page_size=100, cursor=LAST_PAGE),
        "prefix, customer ref": lambda: rm.page(
            GrantFilter(search="cust-12", search_mode="prefix"), page_size=100),
        "substring, customer ref": lambda: rm.page(GrantFilter(search="stomer12"),
                                                   page_size=100),
        "substring, grant id": lambda: rm.page(GrantFilter(search=some_id[3:]),
                                               page_size=100),
        "prefix, grant id": lambda: rm.page(
            GrantFilter(search=some_id, search_mode="prefix"), page_size=100),
    }


def _record_applied(rm: Any) -> list[Any]:
    """What each `apply_grant_batches` of `rm` returned (rows written, revoked), in order:
    the check that a full load writes each row once and an unchanged re-sync none."""
    seen: list[Any] = []
    apply = rm.apply_grant_batches

    def recorded(*args: Any, **kwargs: Any) -> Any:
        seen.append(apply(*args, **kwargs))
        return seen[-1]

    rm.apply_grant_batches = recorded
    return seen


def _bare_parse_s(client: Any) -> float:
    """The floor of a sync's reading: the same grants list streamed and parsed into
    `Grant`s, nothing else done with it."""
    from services.sync.worker import BATCH

    t = time.perf_counter()
    for _ in client.iter_grants(BATCH):
        pass
    return time.perf_counter() - t


def _bare_insert_s(db: Any, database_url: str | None) -> float:
    """The floor of a sync's writing: the rows the full sync wrote, inserted as they are
    into an empty `rm_grants` of the same schema (its indexes and, on SQLite, the search
    table's triggers), a batch of 2,000 a transaction. Only the inserts are timed, not
    reading the rows back."""
    from sqlalchemy import insert, select

    from services.store import open_database
    from services.store.readmodel import rm_grants
    from services.sync.worker import BATCH

    tmp = tempfile.TemporaryDirectory()
    schema = _pg_schema(database_url, suffix="_floor") if database_url else None
    try:
        if schema and database_url:
            from sqlalchemy.engine import make_url
            url: Any = make_url(database_url).update_query_dict(
                {"options": f"-csearch_path={schema},public"})
        else:
            url = f"sqlite:///{Path(tmp.name) / 'floor.db'}"
        floor = open_database(url)
        spent, after = 0.0, ""
        cols = list(rm_grants.c)
        while True:
            with db.read() as conn:
                rows = [dict(r._mapping) for r in conn.execute(
                    select(*cols).where(rm_grants.c.grant_id > after)
                    .order_by(rm_grants.c.grant_id).limit(BATCH))]
            if not rows:
                break
            after = rows[-1]["grant_id"]
            t = time.perf_counter()
            with floor.write() as conn:
                conn.execute(insert(rm_grants), rows)
            spent += time.perf_counter() - t
        floor.dispose()
        return spent
    finally:
        tmp.cleanup()
        if schema and database_url:
            _pg_schema(database_url, drop=schema)


def _cursor_at(db: Any, offset: int) -> Any:
    """The keyset cursor of the row at `offset` in the default order (read once, by
    OFFSET, outside the timing: a user reaches it page by page)."""
    from sqlalchemy import select

    from services.store.readmodel import PageCursor, rm_grants

    c = rm_grants.c
    with db.read() as conn:
        row = conn.execute(select(c.created_at, c.grant_id).order_by(c.created_at, c.grant_id)
                           .offset(offset).limit(1)).first()
    return PageCursor(row[0], row[1]) if row else None


#: An index a plan line reads (PostgreSQL's index scans, SQLite's `USING ... INDEX` and
#: its FTS5 trigram table).
_INDEX_READ = re.compile(r"(?:Index (?:Only )?Scan(?: Backward)? using|Bitmap Index Scan on"
                         r"|USING (?:COVERING )?INDEX|SCAN) "
                         r"(\w+(?= VIRTUAL TABLE)|ix_\w+|\w+_pkey)")
#: A table a plan line reads whole: PostgreSQL's sequential scan, SQLite's SCAN without
#: an index.
_WHOLE_READ = re.compile(r"Seq Scan on (\w+)|^SCAN (\w+)$")


def _plans(db: Any, fn: Callable[[], Any]) -> dict[str, Any]:
    """What the statements `fn` runs read, from the database's own plans: on PostgreSQL
    `EXPLAIN (ANALYZE)` of each statement (run again with its parameters), on SQLite
    `EXPLAIN QUERY PLAN`. Returns the indexes read, the tables read whole (a sequential
    scan of `rm_grants` or the vault is what a million rows must not see; SQLite's
    materialised count subqueries `anon_*` are left out), and the slowest statement's
    plan text (SQLite: every statement's). Load changes the timings, not the plan."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any,
             many: bool) -> None:
        if not many and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    indexes: set[str] = set()
    scans: set[str] = set()
    worst: tuple[float, str] = (-1.0, "")
    raw = db.engine.raw_connection()
    try:
        for statement, params in seen:
            cur = raw.cursor()
            if db.is_sqlite:
                cur.execute("EXPLAIN QUERY PLAN " + statement, params)
                lines = [str(r[-1]) for r in cur.fetchall()]
                took = 0.0
            else:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                lines = [str(r[0]) for r in cur.fetchall()]
                took = next((float(x.split(":")[1].split()[0]) for x in lines
                             if x.startswith("Execution Time")), 0.0)
            cur.close()
            for line in lines:
                indexes.update(m.group(1) for m in _INDEX_READ.finditer(line))
                scans.update(name for m in _WHOLE_READ.finditer(line.strip())
                             if not (name := m.group(1) or m.group(2)).startswith("anon_"))
            if db.is_sqlite:  # no timings: every statement's plan
                worst = (0.0, "\n".join([worst[1], *lines]).strip())
            elif took >= worst[0]:
                worst = (took, "\n".join(lines))
        raw.rollback()
    finally:
        raw.close()
    return {"statements": len(seen), "indexes": sorted(indexes), "scans": sorted(scans),
            "worst_ms": worst[0], "worst_plan": worst[1]}


def _webhook_apply_ms(rm: Any, grant_id: str) -> float:
    """An `integration.failed` webhook applied to the read model (what the backend's hook
    does once the event is stored), median ms."""
    from datetime import UTC, datetime

    from services.kryptos.models import Integration

    item = Integration.from_api({"walletId": "wal_bench", "status": "FAILED",
                                 "provider": "bench", "type": "exchange",
                                 "totalTransactions": 1})
    seq = iter(range(1000))
    return _ms(lambda: rm.apply_webhook_integration(
        grant_id, item, webhook_id=f"wh_bench_{next(seq)}", received_at=datetime.now(UTC)))


def _hot_rows(rm: Any, sample: list[str]) -> float:
    """The share of the read sample that is failing or syncing (the worker's hot queue)."""
    if not sample:
        return 0.0
    rows = rm.grants_by_id(sample).values()
    return sum(1 for r in rows if r.sync_state in ("failing", "syncing")) / len(sample)


def detection_s(with_token: int, hot_share_of_rows: float, rate: float = DEFAULT_RATE,
                hot_interval: float = 60.0, hot_share: float = 0.5,
                webhook_ms: float = 0.0, version_poll_s: float = 1.0) -> dict[str, float]:
    """How long a newly failed integration (its grant was fine) takes to show as failing,
    from the worker's queue and rate (services/sync/worker.py):

    - webhooks on: the `integration.failed` event is applied by the backend's hook at
      once; pages see it at their next version poll (at most a second);
    - webhooks off: only the pass over the stalest grants finds it. The failing/syncing
      grants are read again every `hot_interval`, using at most `hot_share` of the rate;
      the rest reads the other grants oldest first, so the grant waits for every other
      one: worst one full pass, on average half."""
    hot = with_token * hot_share_of_rows
    hot_rate = min(hot / hot_interval, rate * hot_share)
    pass_s = (with_token - hot) / max(1e-9, rate - hot_rate)
    return {"webhooks_on_s": webhook_ms / 1000 + version_poll_s,
            "webhooks_off_worst_s": pass_s, "webhooks_off_mean_s": pass_s / 2}


def _pg_schema(url: str, drop: str | None = None, suffix: str = "") -> str | None:
    """A fresh schema of this run's own in a PostgreSQL database (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    if not url.startswith("postgresql"):
        return None
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    name = drop or f"rm_bench_{os.getpid()}{suffix}"
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


QUEUE_NAMES = ("failing", "syncing", "never_synced", "not_readable", "no_token")


def _detect(r: dict) -> dict[str, float]:
    return detection_s(r["with_token"], r["hot"], webhook_ms=r["webhook_apply_ms"])


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
        ("  bare stream-parse of the list (s)", lambda r: f"{r['bare_parse_s']:.2f}"),
        ("  bare bulk insert of the rows (s)", lambda r: f"{r['bare_insert_s']:.2f}"),
        ("  full sync / (parse + insert)",
         lambda r: f"{r['full_sync_s'] / (r['bare_parse_s'] + r['bare_insert_s']):.2f}x"),
        ("  rows written (each row once: = rows)",
         lambda r: f"{r['full_written']:,}" + ("" if r["full_written"] == r["rows"]
                                                else " NOT MET")),
        ("unchanged re-sync (s)", lambda r: f"{r['unchanged_sync_s']:.2f}"),
        ("  rows written (none: 0)",
         lambda r: f"{r['unchanged_written']:,}" + ("" if not r["unchanged_written"]
                                                    else " NOT MET")),
        ("  console CPU (s)", lambda r: f"{r['unchanged_cpu_s']:.2f}"),
        ("  unchanged re-sync / parse",
         lambda r: f"{r['unchanged_sync_s'] / r['bare_parse_s']:.2f}x"),
        ("counts() ms", lambda r: f"{r['counts_ms']:.1f}"),
        ("page() first ms", lambda r: f"{r['page_first_ms']:.1f}"),
        ("page() filtered ms", lambda r: f"{r['page_filtered_ms']:.1f}"),
        ("page() work queue ms", lambda r: f"{r['page_queue_ms']:.1f}"),
        ("page() sorted desc ms", lambda r: f"{r['page_sorted_ms']:.1f}"),
        ("page() every work queue, max ms",
         lambda r: f"{max(r['queues_ms'].values()):.1f}"),
        *((f"  queue {q} ms", lambda r, q=q: f"{r['queues_ms'][q]:.1f}") for q in QUEUE_NAMES),
        ("page() deep by OFFSET ms", lambda r: f"{r['page_deep_ms']:.1f}"),
        ("page() deep by keyset ms", lambda r: f"{r['page_deep_keyset_ms']:.1f}"),
        ("page() last page (keyset) ms", lambda r: f"{r['page_last_ms']:.1f}"),
        ("page() substring search ms", lambda r: f"{r['page_search_ms']:.1f}"),
        ("page() substring, customer ref ms", lambda r: f"{r['search_ref_ms']:.1f}"),
        ("page() substring, 30% match ms", lambda r: f"{r['search_dense_ms']:.1f}"),
        ("page() prefix, customer ref ms", lambda r: f"{r['search_prefix_ms']:.1f}"),
        ("page() grant id, substring ms", lambda r: f"{r['search_id_ms']:.1f}"),
        ("page() grant id, prefix ms", lambda r: f"{r['search_id_prefix_ms']:.1f}"),
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
        ("admin sync view (worker.status) ms", lambda r: f"{r['sync_view_ms']:.1f}"),
        ("failing/syncing share (sample)", lambda r: f"{r['hot']:.1%}"),
        ("integration.failed webhook applied ms", lambda r: f"{r['webhook_apply_ms']:.1f}"),
        (f"newly failed shows, webhooks on (at {DEFAULT_RATE:g}/s)",
         lambda r: f"{_detect(r)['webhooks_on_s']:.1f} s"),
        ("  webhooks off, mean",
         lambda r: _hms(_detect(r)['webhooks_off_mean_s'])),
        ("  webhooks off, worst",
         lambda r: _hms(_detect(r)['webhooks_off_worst_s'])),
    ]
    width = max(len(name) for name, _ in lines) + 2
    colw = max(18, *(len(c) + 2 for c in cols))
    print("".ljust(width) + "".join(c.rjust(colw) for c in cols))
    for name, fmt in lines:
        print(name.ljust(width) + "".join(fmt(r).rjust(colw) for r in results))


def print_plans(results: list[dict]) -> None:
    """Per query, at the largest size: the indexes its statements read, the tables read
    whole, and (PostgreSQL) the slowest statement's execution time by EXPLAIN ANALYZE."""
    r = results[-1]
    print(f"\nQuery plans at {r['n']:,} rows (indexes read; tables read whole; slowest "
          "statement's EXPLAIN ANALYZE ms on PostgreSQL):")
    for name, p in r["plans"].items():
        whole = ", ".join(p["scans"]) or "none"
        took = f"; {p['worst_ms']:.1f} ms" if p["worst_ms"] > 0 else ""
        print(f"  {name}: {', '.join(p['indexes']) or '-'}; whole: {whole}{took}")
    if os.environ.get("BENCH_PLANS"):
        for name, p in r["plans"].items():
            print(f"\n-- {name} (slowest statement)\n{p['worst_plan']}")


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
    print_plans(results)
    print("\nBrowser figures: --browser (bench/browser_bench.py).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
