"""An unchanged re-sync against its floor (a bare stream-parse of the same list), repeated
on one database, with the console's CPU time of each and the rows each re-sync wrote
(must be 0). Cheaper than scale_bench for comparing two versions of the sync at one size:

    PYTHONPATH=$PWD .venv/bin/python bench/resync_ratio.py 30000 [DATABASE_URL] [--profile]

Run it from each checkout in turn (the code imported is the working directory's). With a
PostgreSQL URL it works in a schema of its own, dropped at the end."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())

from cryptography.fernet import Fernet  # noqa: E402

from bench.scale_bench import _bare_parse_s, _pg_schema, _start_sandbox  # noqa: E402
from sandbox.handle import SandboxClient  # noqa: E402
from services.kryptos import KryptosClient  # noqa: E402
from services.settings import DEFAULT_TIERS, parse_tiers  # noqa: E402
from services.store import TokenVault, open_database  # noqa: E402
from services.store.readmodel import ReadModel  # noqa: E402
from services.sync import SyncWorker  # noqa: E402
from services.sync.worker import BATCH  # noqa: E402


def main(argv: list[str]) -> int:
    n = int(argv[0])
    dburl = next((a for a in argv[1:] if a.startswith("postgres")), None)
    profile = "--profile" in argv
    proc, base = _start_sandbox(n)
    tmp = tempfile.TemporaryDirectory()
    schema = _pg_schema(dburl) if dburl else None
    try:
        sb = SandboxClient(base)
        url: object = dburl or f"sqlite:///{Path(tmp.name) / 'c.db'}"
        if schema and dburl:
            from sqlalchemy.engine import make_url
            url = make_url(dburl).update_query_dict({"options": f"-csearch_path={schema}"})
        db = open_database(url)  # type: ignore[arg-type]
        vault = TokenVault(db, Fernet.generate_key())
        buf = io.StringIO()
        buf.write("grant_id,access_token,customer_ref\n")
        for tok in (t for page in sb.token_pages() for t in page):
            buf.write(f"{tok['grant_id']},{tok['access_token']},{tok['customer_ref'] or ''}\n")
        buf.seek(0)
        vault.import_csv(buf)
        client = KryptosClient(sb.client_id, sb.client_secret, sb.connect_url, sb.data_url,
                               max_retries=0, read_timeout=120)
        rm = ReadModel(db, parse_tiers(DEFAULT_TIERS))
        t = time.perf_counter()
        SyncWorker(client, vault, rm, rate=400, userinfo_share=0.0).sync_grants()
        print(f"full sync {time.perf_counter() - t:.2f} s", flush=True)
        prof = cProfile.Profile()
        for i in range(3):
            cpu = time.process_time()
            parse = _bare_parse_s(client)
            parse_cpu = time.process_time() - cpu
            t, cpu = time.perf_counter(), time.process_time()
            if profile and i == 2:
                prof.enable()
            applied = rm.apply_grant_batches(client.iter_grants(BATCH))
            prof.disable()
            took, took_cpu = time.perf_counter() - t, time.process_time() - cpu
            print(f"written {applied.written} parse {parse:.2f} s (cpu {parse_cpu:.2f}) "
                  f"re-sync {took:.2f} s (cpu {took_cpu:.2f}) ratio {took / parse:.2f}x "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        if profile:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        db.dispose()
        return 0
    finally:
        proc.terminate()
        proc.wait(30)
        tmp.cleanup()
        if schema and dburl:
            _pg_schema(dburl, drop=schema)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
