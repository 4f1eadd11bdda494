"""Server-side cost of support's everyday page runs, without a browser.

    PYTHONPATH=$PWD .venv/bin/python -m bench.page_profile [--grants 40] [--runs 5]
        [--profile overview|grants|detail]

Starts a sandbox with N grants (`python -m sandbox`), builds the console's runtime in this
process against it (fresh data directory, sync worker off) and fills the read model with one
full sync, then runs `dashboard/app.py` in Streamlit's AppTest as support: the login run
(the "Log in" click until the Overview is drawn), an Overview rerun, the Grants page, Grant
detail opened by its address and a rerun of it. For each it prints the median wall time and
the CPU time of this process (CPU is what the console spends; the load of other processes
changes it far less than the wall time). `--profile STEP` prints a pyinstrument profile of
one more run of that step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from bench.browser_bench import Sandbox  # noqa: E402

USER, PASSWORD = "support", "support-demo"
APP = str(ROOT / "dashboard" / "app.py")


def _env(sandbox_url: str, data_dir: Path) -> None:
    os.environ.update({
        "SANDBOX_URL": sandbox_url, "CONSOLE_DATA_DIR": str(data_dir),
        "CONSOLE_SECRETS_FILE": str(data_dir.parent / "no-secrets.toml"),
        "CONSOLE_RECONCILE_INTERVAL": "0", "SYNC_ENABLED": "false",
        "CONSOLE_APPROVALS": "off",
    })


def _full_sync() -> None:
    from dashboard.runtime import get_runtime
    from services.sync import SyncWorker

    rt = get_runtime()
    assert rt.ok and rt.ops is not None, rt.problems
    worker = SyncWorker(rt.ops.ctx.client, rt.ops.ctx.vault, rt.ops.readmodel, rate=1000,
                        name="bench")
    try:
        worker.run_once(force=True)
    finally:
        worker.stop()


def _timed(step: Callable[[], AppTest]) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    at = step()
    if at.exception:
        raise RuntimeError(f"the run raised: {at.exception[0].value}")
    return time.perf_counter() - w, time.process_time() - c


def _logged_in(at: AppTest) -> AppTest:
    at.text_input(key="login_username").input(USER)
    at.text_input(key="login_password").input(PASSWORD)
    at.button[0].click()
    return at.run()


def steps(grant_id: str) -> dict[str, Callable[[], Callable[[], AppTest]]]:
    """Each step: a set-up (run untimed) returning the timed action."""
    def login() -> Callable[[], AppTest]:
        at = AppTest.from_file(APP, default_timeout=120).run()
        return lambda: _logged_in(at)

    def overview() -> Callable[[], AppTest]:
        at = _logged_in(AppTest.from_file(APP, default_timeout=120).run())
        return at.run

    def grants() -> Callable[[], AppTest]:
        at = _logged_in(AppTest.from_file(APP, default_timeout=120).run())
        return lambda: at.switch_page("../pages/grants.py").run()

    def detail() -> Callable[[], AppTest]:
        at = _logged_in(AppTest.from_file(APP, default_timeout=120).run())
        at.query_params["grant"] = grant_id
        return lambda: at.switch_page("../pages/grant_detail.py").run()

    def detail_rerun() -> Callable[[], AppTest]:
        at = _logged_in(AppTest.from_file(APP, default_timeout=120).run())
        at.query_params["grant"] = grant_id
        at.switch_page("../pages/grant_detail.py").run()
        return at.run

    return {"login": login, "overview": overview, "grants": grants, "detail": detail,
            "detail-rerun": detail_rerun}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="page-profile-") as tmp:
        sandbox = Sandbox(args.grants, Path(tmp) / "sandbox.log").start(600)
        try:
            _env(sandbox.url, Path(tmp) / "data")
            t = time.perf_counter()
            _full_sync()
            print(f"first sync of {args.grants:,} grants: {time.perf_counter() - t:.1f} s",
                  file=sys.stderr, flush=True)
            grant_id = _first_grant()
            print(f"Page runs as {USER} at {args.grants:,} grants, median of {args.runs} "
                  f"(ms); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            print(f"{'step':>14} | {'wall':>7} | {'CPU':>7}")
            for name, make in steps(grant_id).items():
                got = [_timed(make()) for _ in range(args.runs)]
                wall = statistics.median(g[0] for g in got) * 1000
                cpu = statistics.median(g[1] for g in got) * 1000
                print(f"{name:>14} | {wall:7.0f} | {cpu:7.0f}", flush=True)
            if args.profile:
                from pyinstrument import Profiler
                from streamlit.runtime.scriptrunner import script_runner

                # Script runs happen in the script runner's thread: profile them there.
                profiles: list[Profiler] = []
                original = script_runner.ScriptRunner._run_script

                def profiled(self: object, rerun_data: object) -> None:
                    prof = Profiler(interval=0.001)
                    profiles.append(prof)
                    with prof:
                        original(self, rerun_data)  # type: ignore[arg-type]

                action = steps(grant_id)[args.profile]()
                script_runner.ScriptRunner._run_script = profiled  # type: ignore[method-assign]
                try:
                    action()
                finally:
                    script_runner.ScriptRunner._run_script = original  # type: ignore[method-assign]
                for prof in profiles:
                    print(prof.output_text(unicode=False, color=False, show_all=False))
        finally:
            sandbox.stop()
    return 0


def _first_grant() -> str:
    from dashboard.runtime import get_runtime

    rt = get_runtime()
    assert rt.ops is not None
    with rt.ops.readmodel.db.engine.connect() as conn:
        from sqlalchemy import text

        row = conn.execute(text("SELECT grant_id FROM rm_grants WHERE status = 'active' "
                                "ORDER BY grant_id LIMIT 1")).first()
    assert row is not None, "no active grant in the read model"
    return str(row[0])


if __name__ == "__main__":
    raise SystemExit(main())
