"""Soak bench: three people at work in the console while it is killed and restarted.

    .venv/bin/python -m bench.soak --minutes 10 [--kill-every 60] [--grants 40] [--seed 42]
        [--latency-ms 200] [--change-latency-ms 1000] [--aim] [--keep-logs]

Starts a sandbox (a thread of this process) and the console as a real `streamlit run`
process (tests/e2e/console_process.py's environment, with CONSOLE_APPROVALS=on) on a data
folder of its own, then drives three headless Chromium sessions (Debian's chromium, never
`playwright install`), each in a thread of its own, each looping over real work with short
think times:

- support: opens a grant from the Grants page and reads its session; resyncs an
  integration; asks for a revoke (a request: revokes always need approval);
- finance: sets one Guest's limit (now and then above the approval threshold: a request);
  applies a tier to 3 grants (done at once) and to 12 (a request); approves what waits for
  finance (a revoke needs the revoke permission, which finance does not hold, so support's
  requests never wait for finance);
- admin: approves what waits (support's revokes, finance's large changes); reads the audit
  log and verifies its chain.

Every `--kill-every` seconds the console's whole process group gets SIGKILL and the console
is started again on the same data folder and port; the sessions reconnect (or log in again)
and go on. An action a kill fell into is "interrupted", not failed. The sandbox adds
`--latency-ms` to every API call and holds the calls that change something (revoke, limit,
resync) `--change-latency-ms` more before applying them (it applies them even when the
console died meanwhile, as Kryptos would); with `--aim` a kill waits (at most half a period)
for a session to send a change and falls 0.1-1.5 s after its click, so that kills land
while changes are in flight rather than between them.

At the end the work stops, the console is stopped, one reconciler pass runs (the console's
reconciler use case over its database, with no minimum age: nothing is in flight any more),
and the checks of bench/soak_checks.py compare what the UI reported with the sandbox, the
audit log, the approval store and the read model. Exit status 1 when any lost change,
unsettled outcome or read-model mismatch is found, 2 when the bench itself could not run.

Every wait is bounded (Playwright timeouts, joins with timeouts), and every process started
is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from bench.soak_checks import Action, Claim, Findings, check_all  # noqa: E402
from sandbox import SandboxHandle, start_sandbox  # noqa: E402
from tests.e2e import helpers as h  # noqa: E402
from tests.e2e.console_process import (  # noqa: E402
    ConsoleProcess,
    chromium_path,
    launch_chromium,
)

STEP_MS = 30_000  # any one wait of a step
RECONNECT_S = 90.0  # how long a session waits for the console to come back
THINK = (0.5, 2.0)  # seconds between two steps of a session
SMALL_BULK = 3
LARGE_BULK = 12
BULK_OVER = 10  # CONSOLE_APPROVAL_BULK_OVER's default: a run of more grants is a request
SMALL_TIERS = {"Free": 1000, "Plus": 10000, "Pro": 100000}
#: The upstream calls that change something (revoke, limit PATCH, resync).
CHANGE_CALLS = (("/token/revoke", "POST"), ("/developer/grants/", "PATCH"),
                ("/developer/integrations/", "POST"))
REQUEST_RE = re.compile(r"Request #(\d+)")
#: What the Grant detail page's toast says after the limit form (a toast starts with its
#: icon's name, so nothing is anchored at the start; Markdown may draw "->" as an arrow).
LIMIT_TOAST = r"Limit .+ (->|→) |Limit set to |Not changed yet|Tier applied"


# --- the console, killed and restarted ------------------------------------------------------

class SoakConsole(ConsoleProcess):
    """The console in a process group of its own (so a kill takes all of it), its log
    appended to across restarts, on the same port every time (the browsers reconnect)."""

    def start(self, timeout: float = 90.0) -> SoakConsole:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the console makes it
        cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
               "--server.address", "127.0.0.1", "--server.port", str(self.port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop/kill)
        self._proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_healthy(timeout)
        return self

    def kill(self) -> None:
        """SIGKILL the console's whole process group, as a crash would end it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Terminate (then kill) the console and anything left in its group."""
        proc = self._proc
        super().stop()
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass
class Kill:
    at: float
    back: float | None = None
    aimed: bool = False  # right after a session sent a change


def kill_moment(soak: Soak, due: float, end: float, aim: bool, rng: random.Random) -> tuple[
        float, bool]:
    """When to kill: at `due`; with `aim`, at the first change a session sends after `due`
    (waiting at most until `end`), 0.1-1.5 s after its click, so that the kill often falls
    while the console handles it (upstream call, audit events, approval state)."""
    time.sleep(max(0.0, due - time.time()))
    if not aim:
        return time.time(), False
    soak.sent.clear()
    if not soak.sent.wait(max(0.0, end - time.time())):
        return time.time(), False
    time.sleep(rng.uniform(0.1, 1.5))
    return time.time(), True


@dataclass
class Pools:
    """Which grants each kind of change works on (chosen once from the sandbox's seed)."""

    revoke: list[str]
    limit: list[str]
    small: list[str]
    large_from: list[str]
    readable: list[str]


def pick_pools(sandbox: SandboxHandle, rng: random.Random) -> Pools:
    """Plain Guests (nothing special seeded on them) for the changes, apart so that one
    person's change is seldom overwritten by another's; any stored, active grant to read."""
    sc = sandbox.scenarios()
    special = {v["grant_id"] for v in sc.values() if isinstance(v, dict) and "grant_id" in v}
    special |= set(sc.get("revoked", [])) | set(sc.get("not_exported", []))
    tokens = [t for t in sandbox.tokens() if not t["revoked"]]
    plain = [t["grant_id"] for t in tokens if t["kind"] == "guest"
             and t["grant_id"] not in special]
    guests = [t["grant_id"] for t in tokens if t["kind"] == "guest"]
    if len(plain) < 8:
        raise SystemExit(f"only {len(plain)} plain Guest grants: use --grants 40 or more")
    n_revoke = max(3, len(plain) // 4)
    revoke, rest = plain[:n_revoke], plain[n_revoke:]
    half = max(3, len(rest) // 3)
    limit, small = rest[:half], rest[half:]
    large_from = [g for g in guests if g not in revoke]
    readable = [t["grant_id"] for t in tokens]
    rng.shuffle(readable)
    return Pools(revoke, limit, small, large_from, readable)


# --- the bench -----------------------------------------------------------------------------

@dataclass
class Soak:
    url: str
    sandbox: SandboxHandle
    pools: Pools
    work: Path
    seed: int
    stop: threading.Event = field(default_factory=threading.Event)
    up: threading.Event = field(default_factory=threading.Event)
    sent: threading.Event = field(default_factory=threading.Event)
    kills: list[Kill] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    requested_revokes: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submitted(self) -> None:
        """A session just sent a change (its last click): an aimed kill may follow."""
        self.sent.set()

    def record(self, action: Action) -> None:
        with self.lock:
            self.actions.append(action)

    def killed_during(self, start: float, end: float) -> bool:
        """A kill fell in [start, end], or the console was down at some point of it."""
        with self.lock:
            return any(k.at <= end + 1.0 and (k.back or time.time()) >= start - 1.0
                       for k in self.kills)

    def revoke_candidate(self, pool: list[str]) -> str | None:
        """A grant of `pool` no revoke was sent for yet (one request per grant)."""
        with self.lock:
            return next((g for g in pool if g not in self.requested_revokes), None)

    def revoke_sent(self, grant_id: str) -> None:
        with self.lock:
            self.requested_revokes.add(grant_id)


Step = Callable[["Session", Action], None]


def describe(exc: BaseException) -> str:
    """An error in one line: its first line, and what Playwright was waiting for."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    waiting = next((x for x in lines if x.startswith("- waiting for")), "")
    return f"{type(exc).__name__}: {(lines or [''])[0][:120]} {waiting[:140]}".strip()


class Session(threading.Thread):
    """One person in one browser, looping over `steps` (weighted) until the bench stops."""

    def __init__(self, soak: Soak, user: str, steps: list[tuple[str, Step, int]]) -> None:
        super().__init__(name=f"soak-{user}", daemon=True)
        self.soak = soak
        self.user = user
        self.steps = steps
        self.rng = random.Random(f"{soak.seed}:{user}")
        self.page: Page | None = None
        self.logins = 0
        self.restart = True  # open the console afresh before the next step
        self.error: str | None = None

    @property
    def url(self) -> str:
        return self.soak.url

    def run(self) -> None:
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                try:
                    ctx = browser.new_context(viewport={"width": 1280, "height": 900},
                                              accept_downloads=True)
                    ctx.add_init_script(h.RUN_COUNTER_JS)
                    ctx.set_default_timeout(STEP_MS)
                    self.page = ctx.new_page()
                    self.loop()
                finally:
                    browser.close()
        except Exception as exc:  # noqa: BLE001 - reported in the table; the others go on
            self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"

    def loop(self) -> None:
        names = [s for s in self.steps for _ in range(s[2])]
        while not self.soak.stop.is_set():
            kind, step, _ = self.rng.choice(names)
            if not self.soak.up.wait(RECONNECT_S):
                continue
            action = Action(self.user, kind, time.time())
            try:
                self.ensure_logged_in()
                step(self, action)
            except Exception as exc:  # noqa: BLE001 - the step's outcome, not the bench's
                action.ended = time.time()
                action.outcome = ("interrupted"
                                  if self.soak.killed_during(action.started, action.ended)
                                  else "failed")
                action.detail = describe(exc)
                self.restart = True
            else:
                action.ended = action.ended or time.time()
            self.soak.record(action)
            self.soak.stop.wait(self.rng.uniform(*THINK))

    # --- getting in ---------------------------------------------------------------------

    def ensure_logged_in(self) -> None:
        """The console open and this user logged in: after a restart the page reconnects by
        itself (the login cookie may bring the login back); else log in again."""
        page = self.page
        assert page is not None
        if self.restart or not page.url.startswith(self.url):
            page.goto(self.url + "/", timeout=STEP_MS)
            self.restart = False
        app = page.get_by_test_id("stApp")
        expect(app).to_have_attribute("data-test-connection-state", "CONNECTED",
                                      timeout=STEP_MS)
        h.quiet(page, timeout=STEP_MS)
        if h.nav(page).get_by_role("link").count() > 0:
            return
        h.fill_login(page, self.user, h.PASSWORDS[self.user])
        h.expect_page(page, "Overview", timeout=STEP_MS)
        h.wait_for_login_cookie(page, timeout=STEP_MS)
        h.quiet(page, timeout=STEP_MS)
        self.logins += 1


# --- page-driving steps (small, one page each: adapt them when the pages change) -------------

RESYNC_ROW = re.compile(r"^(?P<name>.+) - (?P<provider>.+), (?P<type>[\w ]+), "
                        r"status (?P<status>[a-z_ ]+)\nwallet (?P<wallet>[^,\s]+)")


def _toast(page: Page, pattern: str) -> Any:
    return page.get_by_test_id("stToast").filter(has_text=re.compile(pattern))


def _no_toast(page: Page) -> None:
    """Wait until an earlier step's toasts are gone, so the next toast read is this step's
    (a lingering "Limit ... ->" or "Resync of ... requested" once counted as done)."""
    expect(page.get_by_test_id("stToast")).to_have_count(0, timeout=STEP_MS)


def _active(s: Session, pool: list[str]) -> list[str]:
    revoked = {t["grant_id"] for t in s.soak.sandbox.tokens() if t["revoked"]}
    return [g for g in pool if g not in revoked]


def open_grant(s: Session, gid: str) -> None:
    """Grants page -> "Open a grant by id" -> Grant detail of `gid`."""
    assert s.page is not None
    h.open_grant(s.page, s.url, gid)


def step_check_session(s: Session, a: Action) -> None:
    """Support: open a grant from the Grants page and read its session."""
    page = s.page
    assert page is not None
    gid = s.rng.choice(_active(s, s.soak.pools.readable) or s.soak.pools.readable)
    a.grants = (gid,)
    open_grant(s, gid)
    said = h.main(page).get_by_text(re.compile(r"^The session is (not )?valid\.$|"
                                               r"^Not available: the grant is revoked\.$"))
    expect(said.first).to_be_visible(timeout=STEP_MS)
    a.detail = said.first.inner_text()
    a.outcome = "done"


def step_resync(s: Session, a: Action) -> None:
    """Support: resync the first non-CSV integration of a grant."""
    page = s.page
    assert page is not None
    gid = s.rng.choice(_active(s, s.soak.pools.readable) or s.soak.pools.readable)
    a.grants = (gid,)
    open_grant(s, gid)
    texts = h.fresh(page).get_by_test_id("stText").all_inner_texts()
    rows = [m for m in (RESYNC_ROW.match(t.strip()) for t in texts) if m]
    pick = next((i for i, r in enumerate(rows) if r["type"] != "csv"), None)
    if pick is None:
        a.outcome, a.detail = "none", "no integration to resync"
        return
    wallet = rows[pick]["wallet"]
    a.value = wallet
    _no_toast(page)
    h.main(page).get_by_role("button", name="Resync", exact=True).nth(pick).click()
    s.soak.submitted()
    expect(_toast(page, r"Resync of .* requested").first).to_be_visible(timeout=STEP_MS)
    a.ended = time.time()
    a.outcome = "done"
    a.claims.append(Claim("resync", gid, wallet))


def step_revoke(s: Session, a: Action) -> None:
    """Support: revoke a grant through the dialog (with approvals on: a request)."""
    page = s.page
    assert page is not None
    gid = s.soak.revoke_candidate(_active(s, s.soak.pools.revoke))
    if gid is None:
        a.outcome, a.detail = "none", "no grant left to revoke"
        return
    a.grants = (gid,)
    open_grant(s, gid)
    h.main(page).get_by_role("button", name="Revoke grant...").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=STEP_MS)
    dialog.get_by_label("Reason", exact=True).fill("soak: customer asked")
    dialog.get_by_label("Grant id, typed again", exact=True).fill(gid)
    _no_toast(page)
    # "Revoke" where it acts at once, "Request the revoke" where it files a request.
    dialog.get_by_role("button", name=re.compile(r"^(Revoke|Request the revoke)$")).click()
    s.soak.revoke_sent(gid)  # sent: whatever the page says next, never asked again
    s.soak.submitted()
    said = _toast(page, r"Not changed yet|Grant revoked").first
    expect(said).to_be_visible(timeout=STEP_MS)
    a.ended = time.time()
    text = said.inner_text()
    found = REQUEST_RE.search(text)
    if "Not changed yet" in text and found:
        a.outcome, a.request_id = "held", int(found.group(1))
    else:
        a.outcome = "done"
        a.claims.append(Claim("revoke", gid))


def _limit_outcome(page: Page) -> str:
    """Wait for what the limit form says: a toast (done or held), the confirmation of a risky
    change, or a refusal; returns "toast", "confirm" or raises with the refusal."""
    deadline = time.monotonic() + STEP_MS / 1000
    while time.monotonic() < deadline:
        if _toast(page, LIMIT_TOAST).count():
            return "toast"
        if h.main(page).get_by_role("button", name="Yes, apply this change").count():
            return "confirm"
        err = h.fresh(page).get_by_test_id("stAlertContentError")
        if err.count():
            raise RuntimeError(f"refused: {err.first.inner_text()[:160]}")
        page.wait_for_timeout(200)
    raise TimeoutError("the limit form said nothing")


def step_set_limit(s: Session, a: Action) -> None:
    """Finance: set one Guest's limit on Grant detail (one in five above the approval
    threshold: a request)."""
    page = s.page
    assert page is not None
    pool = _active(s, s.soak.pools.limit)
    if not pool:
        a.outcome, a.detail = "none", "no grant left"
        return
    gid = s.rng.choice(pool)
    value = (s.rng.randrange(150_000, 500_000, 1000) if s.rng.random() < 0.2
             else s.rng.randrange(20_000, 90_000, 7))
    a.grants, a.value = (gid,), value
    open_grant(s, gid)
    form = h.main(page).get_by_test_id("stForm").filter(has_text="Apply limit")
    form.get_by_label("New limit", exact=True).fill(str(value))
    form.get_by_label("Reason", exact=True).fill("soak: plan change")
    _no_toast(page)
    form.get_by_role("button", name="Apply limit").click()
    s.soak.submitted()
    if _limit_outcome(page) == "confirm":
        h.settle(page)
        h.main(page).get_by_role("button", name="Yes, apply this change").click()
        s.soak.submitted()
        _limit_outcome(page)
    said = _toast(page, LIMIT_TOAST).first
    text = said.inner_text()
    a.ended = time.time()
    found = REQUEST_RE.search(text)
    if "Not changed yet" in text and found:
        a.outcome, a.request_id = "held", int(found.group(1))
    else:
        a.outcome, a.detail = "done", text[:80]
        a.claims.append(Claim("limit", gid, value))


def _parse_limit(cell: str) -> tuple[bool, int | None]:
    cell = cell.strip()
    if cell == "no cap":
        return True, None
    digits = cell.replace(",", "")
    return (True, int(digits)) if digits.isdigit() else (False, None)


def choose_tier(page: Page, tier: str) -> None:
    """The Guest limits page's Tier select, by typing the tier's name."""
    box = h.main(page).get_by_role("combobox", name="Tier")
    box.click()
    page.keyboard.type(tier)
    page.keyboard.press("Enter")
    expect(box).to_have_value(re.compile(rf"^{re.escape(tier)}\b"), timeout=STEP_MS)
    h.settle(page)


def dry_run(page: Page, tier: str) -> int:
    """Choose `tier` and run the Guest limits page's dry run: how many grants would change."""
    m = h.main(page)
    h.settle(page)
    choose_tier(page, tier)
    m.get_by_role("button", name="Dry run", exact=True).click()
    dry = m.get_by_text(re.compile(r"Apply would change [\d,]+ grant|"
                                   r"^The dry run found no grant that would change"))
    expect(dry.first).to_be_visible(timeout=STEP_MS)
    found = re.search(r"Apply would change ([\d,]+) grant", dry.first.inner_text())
    return int(found.group(1).replace(",", "")) if found else 0


def step_bulk(s: Session, a: Action, large: bool) -> None:
    """Finance: a tier on several Guests from an uploaded CSV of grant ids: dry run, then
    Apply (12 grants: a request; 3: done at once)."""
    page = s.page
    assert page is not None
    pools = s.soak.pools
    source = _active(s, pools.large_from if large else pools.small)
    n = LARGE_BULK if large else SMALL_BULK
    if len(source) < n:
        a.outcome, a.detail = "none", f"fewer than {n} grants left"
        return
    grants = s.rng.sample(source, n)
    tier = s.rng.choice(list(SMALL_TIERS))
    a.grants, a.value = tuple(grants), tier
    h.goto_page(page, "Guest limits")
    m = h.main(page)
    # A file (or ticks) left from an earlier step, e.g. one a kill interrupted, would count
    # as this step's selection: remove them first, so the page holds exactly these grants.
    read = m.get_by_text(re.compile(r"grant id\(s\) read from the file\.$"))
    if read.count():
        m.get_by_test_id("stFileChipDeleteBtn").first.click()
        expect(read).to_have_count(0, timeout=STEP_MS)
    clear = m.get_by_role("button", name="Clear selection")
    if clear.count():
        clear.first.click()
        expect(clear).to_have_count(0, timeout=STEP_MS)
    # a new name each time: the uploader may not register a file named like the one just
    # removed
    upload = s.soak.work / f"ids-{s.user}-{time.monotonic_ns()}.csv"
    upload.write_text("grant_id\n" + "\n".join(grants) + "\n", encoding="utf-8")
    m.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(upload))
    expect(m.get_by_text(f"{n} grant id(s) read from the file.")).to_be_visible(
        timeout=STEP_MS)
    expect(m.get_by_test_id("stMetric").filter(has_text="Grants selected")
           .get_by_test_id("stMetricValue")).to_have_text(str(n), timeout=STEP_MS)
    m.get_by_label("Reason (required to apply)", exact=True).fill("soak: plan review")
    # A large run is meant to wait for approval: when the dry run says no more than the
    # threshold would change (some grants already have the tier), try the other tiers.
    tiers = [tier] + [t for t in SMALL_TIERS if t != tier]
    for tier in tiers if large else tiers[:1]:
        a.value = tier
        would = dry_run(page, tier)
        if would > BULK_OVER or not large:
            break
    if would == 0:
        a.outcome, a.detail = "none", "the dry run found nothing to change"
        return
    h.settle(page)
    m.get_by_role("button", name="Apply", exact=True).click()
    said = m.get_by_text(re.compile(r"^Of the \d+ grant\(s\) the dry run said would change|"
                                    r"^Not changed yet"))
    # A cut by more than half asks first, as on one grant; nothing is sent before "Yes".
    yes = m.get_by_role("button", name="Yes, apply this change")
    expect(said.or_(yes).first).to_be_visible(timeout=STEP_MS)
    if yes.count():
        yes.click()
    s.soak.submitted()
    expect(said.first).to_be_visible(timeout=STEP_MS)
    a.ended = time.time()
    text = said.first.inner_text()
    found = REQUEST_RE.search(text)
    if text.startswith("Not changed yet") and found:
        a.outcome, a.request_id = "held", int(found.group(1))
        return
    a.outcome, a.detail = "done", text[:100]
    changed = int(re.search(r": ([\d,]+) changed", text).group(1).replace(",", ""))  # type: ignore[union-attr]

    def rows() -> list[dict[str, str]]:
        return [r for r in h.grid_dicts(h.grid(m, "Outcome")) if r.get("Outcome") == "succeeded"]

    h.eventually(page, lambda: len(rows()) == changed,
                 f"the results table shows the {changed} changed grant(s)", timeout=STEP_MS)
    for r in rows():
        known, value = _parse_limit(r.get("After", ""))
        a.claims.append(Claim("limit", r["Grant id"], value, value_known=known))


def goto_approvals(page: Page) -> None:
    h.nav(page).get_by_role("link", name=re.compile(r"^Approvals")).click()
    h.expect_page(page, "Approvals")


def step_approve(s: Session, a: Action) -> None:
    """Approve the oldest request waiting for this user (Approvals page)."""
    page = s.page
    assert page is not None
    goto_approvals(page)
    m = h.main(page)
    head = m.get_by_role("heading", name=re.compile(r"^Waiting for me \(\d+\)"))
    expect(head).to_be_visible(timeout=STEP_MS)
    if head.inner_text().strip().endswith("(0)"):
        a.outcome, a.detail = "none", "nothing waits"
        return
    box = m.locator("[class*='st-key-appr_box_']").first
    title = box.get_by_text(REQUEST_RE).first.inner_text()
    a.request_id = int(REQUEST_RE.search(title).group(1))  # type: ignore[union-attr]
    box.get_by_text("I have checked this change").click()
    h.settle(page)
    box.get_by_role("button", name="Approve and execute").click()
    s.soak.submitted()
    said = m.get_by_test_id("stAlertContentSuccess").filter(
        has_text=f"Request #{a.request_id} approved and executed")
    err = m.get_by_test_id("stAlertContentError")
    expect(said.or_(err).first).to_be_visible(timeout=STEP_MS)
    a.ended = time.time()
    if said.count() == 0:
        a.outcome, a.detail = "failed", err.first.inner_text()[:160]
        return
    text = said.first.inner_text()
    found = re.search(r"(\d+) succeeded", text)
    a.value = int(found.group(1)) if found else 0
    a.outcome, a.detail = "done", text[:120]


def step_audit(s: Session, a: Action) -> None:
    """Admin: read the audit log and verify its chain."""
    page = s.page
    assert page is not None
    h.goto_page(page, "Audit log")
    m = h.main(page)
    expect(m.get_by_text(re.compile(r"event\(s\), newest first")).first).to_be_visible(
        timeout=STEP_MS)
    m.get_by_role("button", name="Verify the chain").click()
    said = m.get_by_text(re.compile(r"the chain is intact|the chain is broken|are missing|"
                                    r"is not the one recorded|link up, but"))
    expect(said.first).to_be_visible(timeout=STEP_MS)
    a.ended = time.time()
    text = said.first.inner_text()
    a.detail = text[:120]
    a.outcome = "done" if "the chain is intact" in text else "failed"


SUPPORT_STEPS: list[tuple[str, Step, int]] = [
    ("check_session", step_check_session, 3),
    ("resync", step_resync, 2),
    ("revoke", step_revoke, 1),
]
FINANCE_STEPS: list[tuple[str, Step, int]] = [
    ("set_limit", step_set_limit, 3),
    ("bulk_small", lambda s, a: step_bulk(s, a, large=False), 2),
    ("bulk_large", lambda s, a: step_bulk(s, a, large=True), 1),
    ("approve", step_approve, 1),
]
ADMIN_STEPS: list[tuple[str, Step, int]] = [
    ("approve", step_approve, 3),
    ("verify_audit", step_audit, 1),
]


# --- the end: one reconciler pass, the checks ---------------------------------------------------

def reconcile_and_check(console: SoakConsole, sandbox: SandboxHandle,
                        actions: list[Action]) -> tuple[Any, Findings]:
    """One reconciler pass over the console's database (the console is stopped: nothing is in
    flight, so no minimum age), then the checks."""
    from services.kryptos.client import KryptosClient
    from services.operations import Operations
    from services.settings import load_settings

    settings = load_settings(env=console.env())
    client = KryptosClient.from_settings(settings, connect_url=sandbox.base_url,
                                         data_url=sandbox.base_url + "/api")
    ops = Operations.from_settings(settings, client=client)
    try:
        ops.reconciler.min_age = timedelta(0)
        report = ops.reconciler.run_once()
        grants = {t["grant_id"] for t in sandbox.tokens()} | client.listed_grant_ids()
        return report, check_all(ops, sandbox, client, actions, grants)
    finally:
        client.close()
        ops.ctx.audit_log.db.dispose()


# --- the table ---------------------------------------------------------------------------------

def table(args: argparse.Namespace, soak: Soak, sessions: list[Session], report: Any,
          f: Findings, ran_s: float) -> str:
    out = [f"soak: {ran_s / 60:.1f} min of work, kill every {args.kill_every:.0f} s, "
           f"{args.grants} grants, seed {args.seed}, sandbox latency {args.latency_ms} ms "
           f"(+{args.change_latency_ms} ms on changes){', aimed kills' if args.aim else ''}"]
    by = Counter((a.session, a.kind, a.outcome) for a in soak.actions)
    kinds = sorted({(a.session, a.kind) for a in soak.actions})
    cols = ("done", "held", "failed", "interrupted", "none")
    out.append(f"{'actions (as the UI said)':<28}" + "".join(f"{c:>12}" for c in cols))
    for session, kind in kinds:
        out.append(f"  {session + ' ' + kind:<26}"
                   + "".join(f"{by[(session, kind, c)]:>12}" for c in cols))
    out.append(f"  {'total':<26}"
               + "".join(f"{sum(n for k, n in by.items() if k[2] == c):>12}" for c in cols))
    downs = [k.back - k.at for k in soak.kills if k.back is not None]
    aimed = sum(k.aimed for k in soak.kills)
    out.append(f"kills: {len(soak.kills)}, {aimed} aimed at a change (console back after "
               + (f"{min(downs):.1f}-{max(downs):.1f} s" if downs else "-") + "); logins "
               + ", ".join(f"{s.user} {s.logins}" for s in sessions))
    audit = f.audit_counts
    total = sum(audit.values())
    outcomes: Counter[str] = Counter()
    for (_, outcome), n in audit.items():
        outcomes[outcome] += n
    out.append(f"audit log: {total} events ("
               + ", ".join(f"{o} {n}" for o, n in sorted(outcomes.items())) + ")")
    if report is not None:
        out.append(f"reconciler pass: {report.open_requests} open, {report.settled} settled, "
                   f"{len(report.unsettled)} left unsettled by it"
                   + (f", error {report.error}" if report.error else ""))
    out.append(f"claims checked against sandbox + audit log: {f.claims_checked}")
    out.append(f"LOST CHANGES:          {len(f.lost)}")
    out.append(f"UNSETTLED OUTCOMES:    {f.unsettled_total} ({len(f.unsettled)} requested "
               f"events without their own outcome, {len(f.stuck_requests)} requests stuck "
               "in approved)")
    out.append(f"READ-MODEL MISMATCHES: {len(f.mismatches)} (of {f.checked_grants} grants; "
               f"{f.unknown_limits} Guest limits not known to the read model yet)")
    for title, lines in (("lost", f.lost), ("unsettled", f.unsettled + f.stuck_requests),
                         ("mismatch", f.mismatches)):
        for line in lines[:25]:
            out.append(f"  {title}: {line}")
        if len(lines) > 25:
            out.append(f"  {title}: ... {len(lines) - 25} more")
    for outcome in ("failed", "interrupted"):
        for a in [a for a in soak.actions if a.outcome == outcome][:15]:
            out.append(f"  {outcome}: {a.session} {a.kind} {','.join(a.grants)[:40]}: "
                       f"{a.detail}")
    for s in sessions:
        if s.error:
            out.append(f"  session {s.user} stopped: {s.error}")
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    if chromium_path() is None:
        print("chromium is not on PATH (apt-get install chromium; never `playwright "
              "install`)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    sandbox = start_sandbox(port=0, seed=args.seed, grants=args.grants, resync_delay=2.0)
    sandbox.set_latency(args.latency_ms)
    if args.change_latency_ms > 0:  # a change is held before the sandbox applies it
        for path, method in CHANGE_CALLS:
            sandbox.set_fault(path=path, method=method, latency_ms=args.change_latency_ms)
    console = SoakConsole(sandbox.base_url, work / "data", log_path=work / "console.log",
                          extra_env={"CONSOLE_APPROVALS": "on"})
    soak = Soak("", sandbox, pick_pools(sandbox, random.Random(args.seed)), work, args.seed)
    sessions: list[Session] = []
    report, findings, started = None, None, time.time()
    broken = interrupted = False
    try:
        console.start()
        soak.url = console.url
        soak.up.set()
        print(f"console {console.url} (data and logs in {work}); sandbox {sandbox.base_url}",
              file=sys.stderr, flush=True)
        sessions = [Session(soak, "support", SUPPORT_STEPS),
                    Session(soak, "finance", FINANCE_STEPS),
                    Session(soak, "admin", ADMIN_STEPS)]
        started = time.time()
        for s in sessions:
            s.start()
        end = started + args.minutes * 60
        next_kill = started + args.kill_every
        rng = random.Random(f"{args.seed}:kills")
        while args.kill_every > 0 and next_kill < end:
            # an aimed kill waits for a change at most half a period
            _, aimed = kill_moment(soak, next_kill, min(end, next_kill + args.kill_every / 2),
                                   args.aim, rng)
            if time.time() >= end:
                break
            soak.up.clear()
            kill = Kill(time.time(), aimed=aimed)
            with soak.lock:
                soak.kills.append(kill)
            console.kill()
            console.start()
            kill.back = time.time()
            soak.up.set()
            print(f"kill {len(soak.kills)}{' (aimed)' if aimed else ''}: console back after "
                  f"{kill.back - kill.at:.1f} s; {len(soak.actions)} actions so far",
                  file=sys.stderr, flush=True)
            next_kill = max(next_kill + args.kill_every, time.time() + 1.0)
        time.sleep(max(0.0, end - time.time()))
    except KeyboardInterrupt:
        print("interrupted: stopping (no checks)", file=sys.stderr)
        interrupted = True
    except Exception as exc:  # noqa: BLE001 - the bench could not run: say why, clean up
        print(f"the bench stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(console.log_tail(2000), file=sys.stderr)
        broken = True
    finally:
        # The clean-up is bounded; a second Ctrl-C must not cut it short and leave the
        # console running.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        ran = time.time() - started
        try:
            soak.stop.set()
            soak.up.set()
            # one step's waits and a login; a few seconds only after Ctrl-C (the sessions
            # are daemon threads, and their browsers end with this process)
            budget = 5.0 if interrupted else STEP_MS / 1000 * 3
            joined_by = time.monotonic() + budget
            for s in sessions:
                s.join(timeout=max(0.1, joined_by - time.monotonic()))
        finally:
            console.stop()
    try:
        if not (broken or interrupted) and sessions:
            try:
                report, findings = reconcile_and_check(console, sandbox, list(soak.actions))
            except Exception as exc:  # noqa: BLE001
                print(f"the checks failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        sandbox.stop()
        if not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        return 130
    if findings is None:
        return 2
    print(table(args, soak, sessions, report, findings, ran))
    return 0 if findings.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--kill-every", type=float, default=60.0,
                        help="seconds between two kills of the console (0: never)")
    parser.add_argument("--grants", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-ms", type=int, default=200,
                        help="added by the sandbox to every API call (default 200), so that "
                             "a kill often falls while a change is in flight")
    parser.add_argument("--change-latency-ms", type=int, default=1000,
                        help="more latency on the calls that change something (revoke, limit, "
                             "resync; default 1000): the sandbox holds them before applying "
                             "them, and applies them even when the console died meanwhile")
    parser.add_argument("--aim", action="store_true",
                        help="kill just after a session sends a change (waiting for one at "
                             "most half a period) rather than at the exact time")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the console's data folder and log (the path is printed)")
    args = parser.parse_args(argv)

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Also SIGINT: a process started in the background by a shell ignores it otherwise.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
