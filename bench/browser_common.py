"""What the browser benches share (bench/browser_bench.py, bench/felt_speed.py): a sandbox
process with N grants, a Chromium page that records its script runs, the login form, the
Overview's counts, the first sync's end, page switches, and the CPU time of processes.

Needs Debian's chromium on PATH (never `playwright install`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.e2e import helpers as h
from tests.e2e.console_process import stop_process

ROOT = Path(__file__).resolve().parents[1]

#: The Overview's words while the read model has no rows yet, and while its first sync runs.
LOADING = "first sync in progress"
PARTIAL = "First sync in progress"

#: Script-run start/end times (performance.now()) of the page, next to helpers' run counter.
TIMES_JS = """
(() => {
  window.__benchStarts = []; window.__benchEnds = [];
  let last = null;
  // A run is busy from leaving notRunning (rerunRequested or running: a short run may
  // never show running) until notRunning again.
  const busy = (s) => s !== null && s !== 'notRunning';
  const note = (state, now) => {
    if (state === last) return;
    if (!busy(last) && busy(state)) window.__benchStarts.push(now);
    if (busy(last) && state === 'notRunning') window.__benchEnds.push(now);
    last = state;
  };
  // Every transition, even a run so short that both changes land in one batch: each
  // record's oldValue is the value before it, the next record's the value after.
  new MutationObserver((records) => {
    const now = performance.now();
    const mine = records.filter(r => r.attributeName === 'data-test-script-state'
                                     && r.target.getAttribute('data-testid') === 'stApp');
    mine.forEach((r, i) => {
      if (i === 0) note(r.oldValue, now);
      note(i + 1 < mine.length ? mine[i + 1].oldValue
                               : r.target.getAttribute('data-test-script-state'), now);
    });
  }).observe(document, {attributes: true, subtree: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});
})();
"""


class Sandbox:
    def __init__(self, n: int, log: Path) -> None:
        self.n = n
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float) -> Sandbox:
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--port", "0", "--grants", str(self.n)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        line = _readline(self.proc, timeout)
        if " on http" not in line:
            self.stop()
            raise RuntimeError(f"sandbox did not start: {line!r}")
        self.url = line.split(" on ", 1)[1].split(" ", 1)[0]
        return self

    def call(self, method: str, path: str) -> Any:

        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    """The process's first stdout line, or "" after `timeout` seconds."""

    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline() if proc.stdout
                                                   else ""), daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else ""




def new_page(browser: Browser) -> Page:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.add_init_script(h.RUN_COUNTER_JS)
    ctx.add_init_script(TIMES_JS)
    return ctx.new_page()


def wait_login_form(page: Page, url: str, timeout_ms: float) -> None:
    page.goto(url + "/", timeout=timeout_ms)
    form = page.get_by_test_id("stForm").filter(has_text="Log in")
    expect(form.get_by_label("Username", exact=True)).to_be_visible(timeout=timeout_ms)


def metrics_drawn(page: Page) -> bool:
    metric = h.fresh(page).get_by_test_id("stMetric").filter(has_text="Active")
    return metric.count() > 0 and metric.first.is_visible()




def wait_complete(page: Page, timeout_ms: float) -> None:
    """Until the Overview no longer says that the first sync is in progress."""
    deadline = time.monotonic() + timeout_ms / 1000
    while h.main(page).get_by_text(PARTIAL).count() > 0 or not metrics_drawn(page):
        if time.monotonic() > deadline:
            raise TimeoutError(f"first sync not over within {timeout_ms / 1000:.0f} s")
        page.wait_for_timeout(2000)
        rerun(page)
        h.settle(page, timeout_ms)




def goto(page: Page, title: str, timeout_ms: float) -> None:
    h.nav(page).get_by_role("link", name=title, exact=True).click()
    expect(h.main(page).locator("h1", has_text=title).first).to_be_visible(timeout=timeout_ms)
    h.quiet(page, timeout=timeout_ms)


def focus_app(page: Page) -> None:
    """The focus on the page's own document: not in an input, nor in a component's frame,
    where Streamlit's rerun key would not reach the app."""
    page.locator("h1").first.click(position={"x": 2, "y": 2})
    page.evaluate("document.activeElement && document.activeElement.blur()")


def rerun(page: Page) -> None:
    """Streamlit's rerun shortcut."""
    focus_app(page)
    page.keyboard.press("r")





# --- CPU time of processes -----------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pid: int, kids: dict[int, list[int]] | None = None) -> set[int]:
    """`pid` and every process below it."""
    kids = _children() if kids is None else kids
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(kids.get(p, ()))
    return out


def cpu_seconds(pids: set[int]) -> float:
    """User + system CPU time of these processes (those still running), from /proc."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


class CpuMeter:
    """CPU seconds spent by the console process and by the browser (every process this one
    started, but the console and the sandbox) between `start()` and `stop()`. On a loaded
    machine the wall time of a step grows; the CPU it needs much less."""

    def __init__(self, console_pid: int, sandbox_pid: int) -> None:
        self.console_pid = console_pid
        self.sandbox_pid = sandbox_pid
        self._t: tuple[float, float] = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        kids = _children()
        console = tree(self.console_pid, kids)
        others = tree(os.getpid(), kids) - console - tree(self.sandbox_pid, kids) - {os.getpid()}
        return cpu_seconds(console), cpu_seconds(others)

    def start(self) -> None:
        self._t = self._now()

    def stop(self) -> tuple[float, float]:
        """(console, browser) CPU seconds since `start()`."""
        c, b = self._now()
        return c - self._t[0], b - self._t[1]


def last_full_sync(data_dir: Path) -> str | None:
    """When the console's read model last ended a full sync (its `rm_sync_state` row), read
    from the console's SQLite database in `data_dir`, or None (none yet, or no database)."""
    import sqlite3

    db = data_dir / "console.db"
    if not db.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT value FROM rm_sync_state "
                               "WHERE name = 'last_full_sync'").fetchone()
    except sqlite3.Error:
        return None  # not migrated yet, or busy: asked again
    return None if row is None or row[0] is None else str(row[0])


def active_guests(data_dir: Path, n: int) -> list[str]:
    """The first `n` active Guest grants (by grant id) of the console's read model: grants
    with holdings, integrations and a limit, the heaviest Grant detail support opens."""
    import sqlite3

    db = data_dir / "console.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT grant_id FROM rm_grants WHERE status = 'active' AND "
                            "user_kind = 'guest' ORDER BY grant_id LIMIT ?", (n,)).fetchall()
    return [str(r[0]) for r in rows]


def wait_first_sync(data_dir: Path, timeout_s: float, every_s: float = 2.0) -> float:
    """Wait (without a browser: no page reruns competing with the sync for the CPU) until
    the console's first full sync of the read model has ended; its seconds."""
    t = time.monotonic()
    while last_full_sync(data_dir) is None:
        if time.monotonic() - t > timeout_s:
            raise TimeoutError(f"first full sync not over within {timeout_s:.0f} s")
        time.sleep(every_s)
    return time.monotonic() - t
