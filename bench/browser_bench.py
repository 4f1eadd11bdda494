"""Browser-level figures at scale (docs/STATUS.md), side by side in one run.

    PYTHONPATH=$PWD .venv/bin/python bench/scale_bench.py --browser [--sizes 40,100000]
        [--step-timeout 300] [--keep-logs]

(or `python -m bench.browser_bench` with the same options). Needs Debian's chromium on
PATH (never `playwright install`). For each N it starts a sandbox (`python -m sandbox
--port 0 --grants N`) and the console (`streamlit run dashboard/app.py`, as the browser
tests do: tests/e2e/console_process.py, fresh CONSOLE_DATA_DIR, CONSOLE_APPROVALS=off), and
measures in headless Chromium:

- start: console process start until the login page shows its form;
- login: the "Log in" click (admin / admin-demo) until the Overview's metrics are drawn
  by a finished run (looked for every 50 ms; while the read model has no rows the page
  says so, and the bench reruns it every second until the counts show; counts of a first
  sync still running are drawn, labelled partial: "first sync notice at login" says
  whether they were);
- complete: console start until the Overview no longer says the first sync is in progress
  (rerun every 2 s): the whole first load, tokens and full grants sync;
- Grants rerun: a rerun ("r" key) of the Grants page until the script run is over (the
  `data-test-script-state` of stApp, as tests/e2e/helpers.py), median of 5, against the same
  for a bare `st.dataframe` of the same visible rows and columns in its own tiny Streamlit
  app; the ratio of the two;
- upstream calls: the sandbox's request log (cleared first) over loading Overview and Grants
  once warm, told apart by User-Agent: the sync worker's client sends its own
  (`SYNC_USER_AGENT`), so its background calls are counted apart from the pages';
- memory: VmHWM (peak RSS) of the streamlit process from /proc once 5 browser contexts are
  logged in and on the Grants page: over the process's life (the target; it includes the
  first sync) and over the opening of sessions 2-5 only (the mark reset through
  /proc/<pid>/clear_refs); those 4 logins, with the read model warm, are shown too.

Every wait is bounded (`--step-timeout`); a size whose step times out shows "-" for the
figures it did not reach. Every process started is stopped at the end, even on failure.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from bench.browser_common import (  # noqa: E402
    LOADING,
    Sandbox,
    focus_app,
    goto,
    metrics_drawn,
    new_page,
    rerun,
    wait_complete,
    wait_login_form,
)
from services.kryptos.client import SYNC_USER_AGENT  # noqa: E402
from tests.e2e import helpers as h  # noqa: E402
from tests.e2e.console_process import (  # noqa: E402
    ConsoleProcess,
    chromium_path,
    launch_chromium,
)

USER = "admin"
SESSIONS = 5
RERUNS = 5
MEMORY_LIMIT_MB = 400.0
#: The size the issue's ratios and memory target are checked at (when it is run).
TARGET_N = 100_000



BARE_APP = '''
import pandas as pd
import streamlit as st

rows = int(st.query_params.get("rows", "100"))
cols = int(st.query_params.get("cols", "10"))
st.title("Bare dataframe")
st.dataframe(pd.DataFrame({f"c{j}": [f"cgrant_{i:08d}_{j}" for i in range(rows)]
                           for j in range(cols)}), hide_index=True)
'''


@dataclass
class Result:
    n: int
    start_s: float | None = None
    login_s: float | None = None
    complete_s: float | None = None
    first_sync_seen: bool = False
    grants_rows: int | None = None
    grants_cols: int | None = None
    grants_rerun_ms: float | None = None
    bare_rerun_ms: float | None = None
    upstream_raw: int | None = None
    upstream_window_s: float | None = None
    upstream_background: float | None = None
    upstream_paths: dict[str, int] = field(default_factory=dict)
    login_warm_s: float | None = None
    peak_mb: float | None = None
    sessions_peak_mb: float | None = None
    rss_mb: float | None = None
    error: str | None = None

    upstream_pages: int | None = None


# --- processes ---------------------------------------------------------------------------

class BareApp(ConsoleProcess):
    """The bare `st.dataframe` app, run with the console's Streamlit flags."""

    def __init__(self, script: Path, log_path: Path) -> None:
        super().__init__("", script.parent / "bare-data", log_path=log_path)
        self.script = script

    def start(self, timeout: float = 60.0) -> BareApp:
        cmd = [sys.executable, "-m", "streamlit", "run", str(self.script),
               "--server.address", "127.0.0.1", "--server.port", str(self.port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(cmd, cwd=self.script.parent, stdout=self._log,
                                      stderr=subprocess.STDOUT)
        self._wait_healthy(timeout)
        return self


def vm_mb(pid: int, field_name: str) -> float | None:
    """VmHWM (peak RSS) or VmRSS of a process, in MB, from /proc/<pid>/status."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak(pid: int) -> None:
    """Start the process's VmHWM afresh (Linux: 5 > /proc/<pid>/clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")


# --- browser steps -----------------------------------------------------------------------

def wait_overview(page: Page, timeout_ms: float, result: Result | None = None) -> None:
    """Until the Overview's counts are drawn by a finished run (checked every 50 ms); while
    the read model has no rows yet the page says so, and it is rerun once a second."""
    deadline = time.monotonic() + timeout_ms / 1000
    expect(h.main(page).locator("h1", has_text="Overview").first).to_be_visible(
        timeout=timeout_ms)
    last_rerun = time.monotonic()
    while True:
        running = not h._not_running(page)
        if not running and metrics_drawn(page):
            return
        loading = h.main(page).get_by_text(re.compile(LOADING, re.I)).count() > 0
        if result is not None and loading:
            result.first_sync_seen = True
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Overview counts within {timeout_ms / 1000:.0f} s")
        if loading and not running and time.monotonic() - last_rerun >= 1.0:
            rerun(page)
            last_rerun = time.monotonic()
        page.wait_for_timeout(50)


def login(page: Page, url: str, timeout_ms: float, result: Result | None = None,
          load: bool = True) -> float:
    """Log in as admin from the login page; seconds until a usable Overview."""
    if load:
        wait_login_form(page, url, timeout_ms)
    form = page.get_by_test_id("stForm").filter(has_text="Log in")
    expect(form).to_have_count(1, timeout=timeout_ms)
    h.settle(page, timeout_ms)
    form.get_by_label("Username", exact=True).fill(USER)
    form.get_by_label("Password", exact=True).fill(h.PASSWORDS[USER])
    t = time.perf_counter()
    form.get_by_role("button", name="Log in").click()
    wait_overview(page, timeout_ms, result)
    took = time.perf_counter() - t
    h.wait_for_login_cookie(page, timeout=timeout_ms)
    h.quiet(page, timeout=timeout_ms)
    return took


def time_rerun(page: Page, timeout_ms: float) -> float:
    """ms from the rerun key to the end of the script run it started."""
    focus_app(page)
    starts = page.evaluate("window.__benchStarts.length")
    t0 = page.evaluate("performance.now()")
    page.keyboard.press("r")
    # A run the server restarts (rerunRequested) counts until its last run is over.
    try:
        _wait_run_over(page, starts, timeout_ms)
    except Exception as exc:
        state = page.evaluate(
            "[window.__benchStarts, window.__benchEnds, document.activeElement.tagName, "
            "document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state')]")
        raise TimeoutError(f"no rerun seen on {page.url}: {state}") from exc
    end = page.evaluate("window.__benchEnds[window.__benchEnds.length - 1]")
    h.quiet(page, timeout=timeout_ms)
    return float(end - t0)


def _wait_run_over(page: Page, starts: int, timeout_ms: float) -> None:
    page.wait_for_function(
        f"""() => {{
              const s = window.__benchStarts, e = window.__benchEnds;
              return s.length > {starts} && e.length > 0 && e[e.length - 1] >= s[s.length - 1]
                && document.querySelector('[data-testid="stApp"]')
                     .getAttribute('data-test-script-state') === 'notRunning';
            }}""",
        timeout=timeout_ms)


def median_rerun(page: Page, timeout_ms: float) -> float:
    time_rerun(page, timeout_ms)  # warm-up
    return statistics.median(time_rerun(page, timeout_ms) for _ in range(RERUNS))


def grants_shape(page: Page, timeout_ms: float) -> tuple[int, int]:
    """Visible rows (from the caption) and columns (the grid's header) of the Grants grid."""
    caption = h.fresh(page).get_by_text(re.compile(r"grant\(s\)")).first
    expect(caption).to_be_visible(timeout=timeout_ms)
    text = caption.inner_text().replace(",", "")
    m = re.search(r"showing (\d+)-(\d+)", text)
    rows = int(m.group(2)) - int(m.group(1)) + 1 if m else int(
        re.search(r"(\d+) grant\(s\)", text).group(1))  # type: ignore[union-attr]
    table = h.fresh(page).get_by_test_id("stDataFrame").first.locator("table[role=grid]")
    expect(table).to_be_attached(timeout=timeout_ms)
    cols = table.evaluate(
        "t => Number(t.getAttribute('aria-colcount')) "
        "|| t.querySelectorAll('thead th').length")
    return rows, int(cols)


def upstream_calls(page: Page, sandbox: Sandbox, timeout_ms: float, r: Result) -> None:
    """Calls logged by the sandbox while Overview and Grants load (warm), told apart by
    User-Agent: the sync worker's own client (`SYNC_USER_AGENT`) against everything else."""
    sandbox.call("DELETE", "/sandbox/requests")
    t = time.monotonic()
    goto(page, "Overview", timeout_ms)
    wait_overview(page, timeout_ms)
    goto(page, "Grants", timeout_ms)
    r.upstream_window_s = time.monotonic() - t
    calls = sandbox.call("GET", "/sandbox/requests")["requests"]
    worker = [c for c in calls if c.get("user_agent") == SYNC_USER_AGENT]
    r.upstream_raw = len(calls)
    r.upstream_background = float(len(worker))
    r.upstream_pages = len(calls) - len(worker)
    for c in calls:
        if c.get("user_agent") != SYNC_USER_AGENT:
            r.upstream_paths[c["path"]] = r.upstream_paths.get(c["path"], 0) + 1


def measure(n: int, browser: Browser, bare: BareApp, work: Path,
            timeout_s: float) -> Result:
    r = Result(n)
    ms = timeout_s * 1000
    pages: list[Page] = []
    sandbox = Sandbox(n, work / f"sandbox-{n}.log")
    console: ConsoleProcess | None = None
    try:
        sandbox.start(timeout_s)
        page = new_page(browser)
        pages.append(page)
        console = ConsoleProcess(sandbox.url, work / f"data-{n}",
                                 log_path=work / f"console-{n}.log")
        t = time.perf_counter()
        console.start(timeout_s)
        wait_login_form(page, console.url, ms)
        r.start_s = time.perf_counter() - t
        print(f"  N={n:,}: start {r.start_s:.1f} s", file=sys.stderr, flush=True)
        r.login_s = login(page, console.url, ms, r, load=False)
        print(f"  N={n:,}: login {r.login_s:.1f} s", file=sys.stderr, flush=True)
        wait_complete(page, ms)
        r.complete_s = time.perf_counter() - t
        print(f"  N={n:,}: first load complete {r.complete_s:.1f} s after start",
              file=sys.stderr, flush=True)
        goto(page, "Grants", ms)
        r.grants_rows, r.grants_cols = grants_shape(page, ms)
        r.grants_rerun_ms = median_rerun(page, ms)
        print(f"  N={n:,}: grants rerun {r.grants_rerun_ms:.0f} ms", file=sys.stderr,
              flush=True)
        bare_page = new_page(browser)
        pages.append(bare_page)
        bare_page.goto(f"{bare.url}/?rows={r.grants_rows}&cols={r.grants_cols}", timeout=ms)
        expect(bare_page.get_by_test_id("stDataFrame")).to_be_visible(timeout=ms)
        h.quiet(bare_page, timeout=ms)
        r.bare_rerun_ms = median_rerun(bare_page, ms)
        print(f"  N={n:,}: bare rerun {r.bare_rerun_ms:.0f} ms", file=sys.stderr, flush=True)
        upstream_calls(page, sandbox, ms, r)
        pid = console._proc.pid if console._proc else 0
        r.peak_mb = vm_mb(pid, "VmHWM")
        reset_peak(pid)
        warm = []
        for _ in range(SESSIONS - 1):
            other = new_page(browser)
            pages.append(other)
            warm.append(login(other, console.url, ms))
            goto(other, "Grants", ms)
        r.login_warm_s = statistics.median(warm) if warm else None
        r.sessions_peak_mb, r.rss_mb = vm_mb(pid, "VmHWM"), vm_mb(pid, "VmRSS")
        r.peak_mb = max(r.peak_mb or 0.0, r.sessions_peak_mb or 0.0)
    except Exception as exc:  # noqa: BLE001 - reported in the table, the other sizes still run
        r.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if console is not None:
            print(console.log_tail(1500), file=sys.stderr)
    finally:
        for p in pages:
            p.context.close()
        if console is not None:
            console.stop()
        sandbox.stop()
    return r


# --- table -------------------------------------------------------------------------------

def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def table(results: list[Result]) -> str:
    # The targets compare 100,000 grants with 40; larger sizes are shown for the
    # growth (the ratio column then also gives the largest against the smallest).
    small = results[0]
    big = next((r for r in results if r.n == TARGET_N), results[-1])
    cols = [f"N={r.n:,}" for r in results]
    rows: list[tuple[str, list[str], str, str, str]] = []

    def ratio_row(name: str, key: str, fmt: str) -> None:
        vals = [getattr(r, key) for r in results]
        q = _ratio(getattr(big, key), getattr(small, key))
        ok = None if q is None or len(results) < 2 else q <= 2
        rows.append((name, [_f(v, fmt) for v in vals],
                     f"{big.n:,}/{small.n:,}: {_f(q, '.2f')}", "<= 2", _verdict(ok)))

    ratio_row("console start to login form (s)", "start_s", ".2f")
    ratio_row("login to usable Overview (s)", "login_s", ".2f")
    rows.append(("  start to first load complete (s)",
                 [_f(r.complete_s, ".1f") for r in results], "", "", ""))
    warm_q = _ratio(big.login_warm_s, small.login_warm_s)
    rows.append(("  later logins, read model warm (s, median)",
                 [_f(r.login_warm_s, ".2f") for r in results],
                 f"{big.n:,}/{small.n:,}: {_f(warm_q, '.2f')}", "", ""))
    rows.append(("Grants visible rows x cols",
                 [f"{r.grants_rows}x{r.grants_cols}" if r.grants_rows else "-"
                  for r in results], "", "", ""))
    rows.append(("Grants rerun (ms, median of 5)",
                 [_f(r.grants_rerun_ms, ".0f") for r in results], "", "", ""))
    rows.append(("bare st.dataframe rerun (ms)",
                 [_f(r.bare_rerun_ms, ".0f") for r in results], "", "", ""))
    q = [_ratio(r.grants_rerun_ms, r.bare_rerun_ms) for r in results]
    rows.append(("Grants rerun / bare", [_f(x, ".2f") for x in q],
                 f"worst: {_f(max((x for x in q if x is not None), default=None), '.2f')}",
                 "<= 1.5", _verdict(None if None in q
                                    else all(x is not None and x <= 1.5 for x in q))))
    rows.append(("upstream calls while Overview+Grants load, warm",
                 [_f(r.upstream_raw, "d") for r in results], "", "", ""))
    rows.append(("  by the sync worker (its User-Agent)",
                 [_f(r.upstream_background, ".0f") for r in results], "", "", ""))
    up = [r.upstream_pages for r in results]
    rows.append(("  by the pages", [_f(x, "d") for x in up], "", "0",
                 _verdict(None if None in up else all(x == 0 for x in up))))
    rows.append((f"server peak RSS, {SESSIONS} sessions on Grants (MB)",
                 [_f(r.peak_mb, ".0f") for r in results], "", f"<= {MEMORY_LIMIT_MB:.0f}",
                 _verdict(None if big.peak_mb is None else big.peak_mb <= MEMORY_LIMIT_MB)))
    rows.append(("  peak while the 5 sessions open (MB)",
                 [_f(r.sessions_peak_mb, ".0f") for r in results], "", "", ""))
    rows.append(("  RSS at the end (MB)", [_f(r.rss_mb, ".0f") for r in results], "", "", ""))
    rows.append(("first-sync notice at login (partial counts)",
                 ["yes" if r.first_sync_seen else "no" for r in results], "", "", ""))

    head = ["figure", *cols, "ratio", "target", "verdict"]
    body = [[name, *vals, ratio, target, verdict] for name, vals, ratio, target, verdict in rows]
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                     for i, (c, w) in enumerate(zip(line, widths, strict=True)))
           for line in [head, *body]]
    out.append(f"(targets are checked at N={big.n:,} against N={small.n:,}, as the issue "
               "states them; other sizes show the growth)")
    for r in results:
        if r.error:
            out.append(f"N={r.n:,}: stopped early: {r.error}")
        if r.upstream_paths:
            paths = ", ".join(f"{p} x{c}" for p, c in sorted(r.upstream_paths.items()))
            out.append(f"N={r.n:,}: the pages' upstream calls over "
                       f"{r.upstream_window_s:.1f} s: {paths}")
    return "\n".join(out)


def run(sizes: list[int], timeout_s: float, keep_logs: bool = False) -> list[Result]:
    if chromium_path() is None:
        raise SystemExit("chromium is not on PATH (apt-get install chromium; never "
                         "`playwright install`)")
    results: list[Result] = []
    with ExitStack() as stack:
        tmp = tempfile.mkdtemp(prefix="browser-bench-")
        work = Path(tmp)
        if not keep_logs:
            import shutil

            stack.callback(shutil.rmtree, tmp, True)
        script = work / "bare_app.py"
        script.write_text(BARE_APP)
        bare = BareApp(script, work / "bare.log")
        bare.start(timeout_s)
        stack.callback(bare.stop)
        p = stack.enter_context(sync_playwright())
        browser = launch_chromium(p)
        stack.callback(browser.close)
        warm = new_page(browser)  # the first size does not pay for a cold browser
        warm.goto(f"{bare.url}/?rows=5&cols=3", timeout=timeout_s * 1000)
        h.quiet(warm, timeout=timeout_s * 1000)
        warm.context.close()
        for n in sizes:
            t = time.perf_counter()
            results.append(measure(n, browser, bare, work, timeout_s))
            print(f"N={n:,}: done in {time.perf_counter() - t:.0f} s", file=sys.stderr,
                  flush=True)
        if keep_logs:
            print(f"logs in {work}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="40,100000")
    parser.add_argument("--step-timeout", type=float, default=300.0,
                        help="seconds any one wait may take (default 300)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the console/sandbox logs (their folder is printed)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = run(sizes, args.step_timeout, args.keep_logs)
    print(table(results))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
