"""The sync worker against a real sandbox over HTTP: the read model ends equal to the
sandbox's state, one worker at a time holds the lock, 429s slow it down, staleness shows."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from sandbox import SandboxHandle, start_sandbox
from services.kryptos import (
    ConflictError,
    KryptosClient,
    NotFoundError,
    PermissionDeniedError,
)
from services.settings import parse_tiers
from services.store import Database, TokenVault, open_database
from services.store.readmodel import GrantFilter, ReadModel
from services.sync import SyncWorker, sync_lock_for
from services.sync.lock import FileSyncLock, PgAdvisorySyncLock
from services.sync.worker import UNREADABLE_ERRORS
from tests.databases import SqliteTemplate
from tests.timing import MovableClock

TIERS = parse_tiers("Free=1000,Plus=10000,Unlimited=off")


@pytest.fixture(scope="module")
def sandbox_slow() -> Iterator[SandboxHandle]:
    """A sandbox of this module's own whose resyncs stay ONGOING for an hour, so that the
    state compared does not move between the worker's read and the test's."""
    handle = start_sandbox(port=0, seed=7, grants=24, resync_delay=3600.0)
    yield handle
    handle.stop()


def client_for(sb: SandboxHandle, **kw: object) -> KryptosClient:
    kw.setdefault("max_retries", 0)
    return KryptosClient(sb.client_id, sb.client_secret, sb.connect_url, sb.data_url, **kw)


def store_tokens(sb: SandboxHandle, vault: TokenVault) -> None:
    """What the console's vault holds: every exported grant's token (revoked ones too)."""
    for t in sb.tokens():
        vault.put(t["grant_id"], t["access_token"], customer_ref=t["customer_ref"])


def upstream(sb: SandboxHandle, vault: TokenVault) -> dict:
    """The sandbox's state, read through the API with a client of its own."""
    client = client_for(sb, max_retries=2)
    listed = {g.grant_id for g in client.list_grants()}
    stored = vault.grant_ids()
    tokens = vault.reveal_many(sorted(listed & stored))
    integrations, limits = {}, {}
    for gid, token in tokens.items():
        try:
            integrations[gid] = sorted((i.wallet_id, i.status, i.last_synced_at,
                                        i.total_transactions, i.message)
                                       for i in client.list_integrations(token))
        except UNREADABLE_ERRORS:
            integrations[gid] = "unreadable"
        try:
            info = client.get_userinfo(token)
        except UNREADABLE_ERRORS:
            continue  # no user info scope: the kind stays what the vault says
        limits[gid] = ("guest", info.transaction_limit) if info.is_guest else ("linked", None)
    return {"active": listed, "revoked": stored - listed, "integrations": integrations,
            "limits": limits}


def model(rm: ReadModel) -> dict:
    rows = []
    page = 1
    while True:
        got = rm.page(sort="grant_id", page=page, page_size=100)
        rows += got.rows
        if page >= got.pages:
            break
        page += 1
    integrations, limits = {}, {}
    for r in rows:
        if r.status == "active" and r.has_token:
            integrations[r.grant_id] = "unreadable" if r.unreadable else sorted(
                (i.wallet_id, i.status, i.last_sync, i.transactions, i.message)
                for i in rm.grant(r.grant_id).integrations)
            if r.user_kind is not None and r.userinfo_refreshed_at is not None:
                limits[r.grant_id] = (r.user_kind, r.effective_limit, r.limit_source)
    return {"active": {r.grant_id for r in rows if r.status == "active"},
            "revoked": {r.grant_id for r in rows if r.status == "revoked"},
            "integrations": integrations, "limits": limits}


def assert_equal(e: Env) -> None:
    """The read model equals the sandbox. Limits: where user info is readable they match it;
    where it is not, only what the console itself set may be known."""
    m, u = model(e.rm), upstream(e.sb, e.vault)
    m_limits = m.pop("limits")
    u_limits = u.pop("limits")
    assert m == u
    assert {g: v[:2] for g, v in m_limits.items() if g in u_limits} == u_limits
    assert all(v[2] == "console" for g, v in m_limits.items() if g not in u_limits)


class Env:
    def __init__(self, sb: SandboxHandle, url: str) -> None:
        self.sb = sb
        self.db = open_database(url)
        self.vault = TokenVault(self.db, Fernet.generate_key())
        self.rm = ReadModel(self.db, TIERS)
        self.client = client_for(sb)
        self.workers: list[SyncWorker] = []

    def worker(self, **kw: object) -> SyncWorker:
        kw.setdefault("rate", 500.0)
        kw.setdefault("lock", sync_lock_for(self.db))
        w = SyncWorker(client_for(self.sb), self.vault, self.rm, **kw)
        self.workers.append(w)
        return w

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.db.dispose()


@pytest.fixture
def env(sandbox: SandboxHandle, db: Database) -> Iterator[Env]:
    e = Env(sandbox, db.url.render_as_string(hide_password=False))
    store_tokens(sandbox, e.vault)
    yield e
    e.close()


# --- the read model equals the sandbox ------------------------------------------------------

ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("revoke"), st.integers(0, 100)),
    st.tuples(st.just("limit"), st.integers(0, 100), st.sampled_from([1000, 5000, None]),
              st.booleans()),
    st.tuples(st.just("resync"), st.integers(0, 100)),
    st.tuples(st.just("new"), st.sampled_from(["guest", "linked"])),
), min_size=1, max_size=4)


def act(e: Env, action: tuple) -> None:
    """One change in the sandbox, on a grant the sandbox lists. A limit change made
    `through_console` also tells the read model at once, as the console's operations do."""
    stored = e.vault.grant_ids()
    active = sorted(g.grant_id for g in e.client.list_grants() if g.grant_id in stored)
    kind = action[0]
    if kind == "new":
        pub = e.sb.create_public_token(kind=action[1], email=f"new-{time.time_ns()}@x.test")
        ex = e.client.exchange_public_token(pub["public_token"])
        entry = e.vault.put(ex.grant_id, ex.access_token, customer_ref="new customer")
        e.rm.apply_grant(None, entry)  # as the console's exchange does
        assert e.rm.grant(ex.grant_id).grant.status == "active"  # shows at once
        return
    gid = active[action[1] % len(active)]
    if kind == "revoke":
        e.client.revoke_grant(gid)
        return
    token = e.vault.reveal(gid)
    if kind == "limit":
        limit, through_console = action[2], action[3]
        try:
            res = e.client.update_transaction_limit(
                gid, transaction_limit=limit or 2000, enable_limiter=limit is not None)
        except PermissionDeniedError:
            return  # NOT_ANON_USER: a Linked user has no limit
        if through_console:
            e.rm.apply_limit_change(gid, res.transaction_limit, res.enable_limiter)
            assert e.rm.grant(gid).grant.effective_limit == limit  # shows at once
        return
    try:
        user_id = e.client.get_userinfo(token).sub
        items = e.client.list_integrations(token)
    except UNREADABLE_ERRORS:
        return  # a grant with reduced scopes
    if items:
        try:
            e.client.resync_integration(items[0].wallet_id, user_id, "from_start")
        except (ConflictError, NotFoundError):
            return  # a CSV without its file, or sync disabled: nothing changed


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(actions=ACTIONS)
def test_after_random_changes_and_a_sync_the_read_model_equals_the_sandbox(
        sandbox_slow: SandboxHandle, sqlite_template: SqliteTemplate,
        actions: list[tuple]) -> None:
    sandbox_slow.reset()
    with tempfile.TemporaryDirectory() as tmp:
        e = Env(sandbox_slow, sqlite_template.copy_to(Path(tmp) / "console.db"))
        try:
            store_tokens(sandbox_slow, e.vault)
            w = e.worker()
            w.run_once(force=True)
            assert_equal(e)
            for action in actions:
                act(e, action)
            w.run_once(force=True)
            assert_equal(e)
        finally:
            e.close()


@pytest.mark.postgres
def test_the_same_on_postgresql(sandbox_slow: SandboxHandle, db_url: str) -> None:
    sandbox_slow.reset()
    e = Env(sandbox_slow, db_url)
    try:
        store_tokens(sandbox_slow, e.vault)
        w = e.worker()
        w.run_once(force=True)
        for action in [("revoke", 3), ("new", "guest"), ("limit", 0, 5000, True),
                       ("limit", 1, None, False), ("resync", 5)]:
            act(e, action)
        w.run_once(force=True)
        assert_equal(e)
    finally:
        e.close()


# --- one worker at a time -------------------------------------------------------------------

def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_only_one_worker_runs_and_another_takes_over(env: Env) -> None:
    a = env.worker(name="a", lock_retry=0.1, tick=0.2)
    b = env.worker(name="b", lock_retry=0.1, tick=0.2)
    assert a.run_once().full_sync
    report = b.run_once()
    assert not b.is_holder and report.full_sync is False and report.integrations_refreshed == 0
    a.start()
    b.start()
    time.sleep(0.5)
    assert a.is_holder and not b.is_holder
    a.stop()  # the holder dies: its lock is released
    assert wait_for(lambda: b.is_holder)
    assert wait_for(lambda: b.status().last_full_sync is not None)
    assert not a.is_holder and a.run_once().full_sync is False  # a restarted: b holds it


def test_a_killed_process_releases_the_file_lock(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'console.db'}")
    lock = sync_lock_for(db)
    assert isinstance(lock, FileSyncLock)
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock.path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert not lock.try_acquire()
        proc.kill()
        proc.wait(5)
        assert wait_for(lock.try_acquire, 5)
        assert lock.still_held()
    finally:
        proc.kill()
        proc.wait(5)
        lock.release()
        db.dispose()


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_postgres_advisory_lock_moves_when_the_holders_connection_dies(
        env: Env, db_url: str) -> None:
    a = env.worker(name="a", lock_retry=2.0, tick=0.2)
    b = env.worker(name="b", lock_retry=0.1, tick=0.2)
    assert isinstance(a.lock, PgAdvisorySyncLock)
    a.start()
    assert wait_for(lambda: a.is_holder)
    b.start()
    time.sleep(0.5)
    assert not b.is_holder
    pid = a.lock.backend_pid()
    engine = create_engine(db_url)
    with engine.connect() as conn:  # the holder's session ends the hard way
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        conn.commit()
    engine.dispose()
    assert wait_for(lambda: b.is_holder)
    assert wait_for(lambda: not a.is_holder)  # a notices at its next step
    time.sleep(2.5)
    assert b.is_holder and not a.is_holder  # and stays standing by


# --- rate, 429 and staleness ----------------------------------------------------------------

def test_429_pauses_for_retry_after_and_halves_the_rate(env: Env) -> None:
    w = env.worker(rate=40.0, concurrency=1)  # one call in flight: the order is exact
    w.sync_grants()
    env.sb.set_fault(path="/api/v1/integrations", status=429, retry_after=0.6, count=2)
    env.sb.clear_requests_log()
    report = w.run_once()
    assert report.deferred >= 1
    st_ = w.status()
    assert st_.rate_limited >= 1 and st_.rate <= 20.0 and "429" in (st_.last_error or "")
    log = [r for r in env.sb.requests_log() if r["path"] == "/api/v1/integrations"]
    first_429 = min(r["ended"] for r in log if r["status"] == 429)
    # Retry-After honoured: nothing is sent during the pause.
    during = [r for r in log if first_429 < r["started"] < first_429 + 0.55]
    assert during == []
    assert any(r["started"] >= first_429 + 0.55 for r in log)
    while w.status().never_refreshed:  # the deferred grants are read later
        w.run_once()
    assert env.rm.counts().never_refreshed == 0


def test_rate_bounds_the_calls(env: Env) -> None:
    w = env.worker(rate=20.0, tick=1.0)
    w.sync_grants()
    env.sb.clear_requests_log()
    started = time.monotonic()
    refreshed = 0
    while time.monotonic() - started < 1.5:
        refreshed += w.run_once().integrations_refreshed
    log = [r for r in env.sb.requests_log() if r["path"].startswith("/api/")]
    span = max(r["started"] for r in log) - min(r["started"] for r in log)
    assert len(log) <= 20 * span + 21  # the bucket's burst plus the rate
    assert refreshed > 0


def test_failing_grants_are_read_again_sooner(env: Env) -> None:
    w = env.worker(hot_interval=0.0, cold_interval=3600.0)
    w.run_once(force=True)
    failing = {r.grant_id for r in env.rm.page(
        env_filter("failing"), page_size=1000).rows}
    assert failing
    env.sb.clear_requests_log()
    w.run_once()
    due = env.rm.due_for_integrations(100, older_than=_past(3600), hot_older_than=_past(0))
    assert set(due) <= failing and due  # only the failing/syncing ones are due again


def env_filter(queue: str) -> GrantFilter:
    return GrantFilter(queue=queue)


def _past(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds) + timedelta(milliseconds=1)


def test_staleness_is_reported(env: Env) -> None:
    clock = MovableClock()
    w = env.worker(grants_interval=1.0, stale_after=2.0, clock=clock)
    st0 = w.status()
    assert st0.stale and st0.last_full_sync is None
    w.run_once(force=True)
    read_by = time.time()  # the read model stamps the rows it writes with the real clock
    st1 = w.status()
    assert not st1.stale and st1.rows_stale == 0 and st1.holder
    assert env.rm.freshness().as_of().startswith("as of ")
    clock.advance(1.9)  # within both limits (2 * grants_interval, stale_after)
    assert not w.status().stale and w.status().rows_stale == 0
    clock.now = read_by + 2.1  # past both, even for the last row written
    st2 = w.status()
    assert st2.stale and st2.rows_stale == st2.grants_listed - env.rm.counts().without_token
    assert env.rm.freshness().is_stale(2.0, now=datetime.fromtimestamp(clock(), UTC))


def test_the_admins_sync_view_counts_up_to_a_cap(env: Env, monkeypatch) -> None:
    """Right after a full load most grants were never read: the admin's view counts the
    never-read and stale rows up to the read model's cap (an index walk that stops
    there, on either database) and shows "more than" it, with a worker in this process
    and without one (another replica's published state)."""
    from dashboard.rm_sections import _at_least
    from services.operations import Actor, Operations
    from services.store import AuditLog
    from services.store.readmodel import queries

    w = env.worker(grants_interval=1.0)
    w.sync_grants()  # the list only: no integrations read yet
    with_token = env.rm.counts().never_refreshed
    assert with_token > 3
    ops = Operations(env.client, AuditLog(env.db), env.vault, TIERS, readmodel=env.rm)
    admin = Actor("admin", "Admin", frozenset({"admin"}))
    view = ops.sync.status(admin)
    assert (view.never_refreshed, view.never_refreshed_exact) == (with_token, True)
    monkeypatch.setattr(queries, "COUNT_CAP", 3)
    for attached in (False, True):
        if attached:
            ops.attach_sync_worker(w)
        view = ops.sync.status(admin, grants_interval=1.0)
        assert view.runs_here is attached
        assert (view.never_refreshed, view.never_refreshed_exact) == (3, False)
        assert (view.rows_stale, view.rows_stale_exact) == (3, False)
        assert _at_least(view.never_refreshed, view.never_refreshed_exact) == "more than 3"
    monkeypatch.setattr(queries, "COUNT_CAP", with_token)
    view = ops.sync.status(admin)
    assert (view.never_refreshed, view.never_refreshed_exact) == (with_token, True)
    assert _at_least(view.never_refreshed, True) == f"{with_token:,}"


def test_an_upstream_change_shows_within_the_interval(env: Env) -> None:
    w = env.worker(grants_interval=1.0, tick=0.2, lock_retry=0.1)
    w.start()
    assert wait_for(lambda: env.rm.counts().active > 0)
    gid = env.rm.page(GrantFilter(status="active"), sort="grant_id").rows[0].grant_id
    v = env.rm.version()
    env.client.revoke_grant(gid)
    assert wait_for(lambda: env.rm.grant(gid).grant.status == "revoked", 3.0)
    assert env.rm.version() > v


def test_a_requested_full_sync_runs_at_the_next_step(env: Env) -> None:
    w = env.worker(grants_interval=3600.0)
    assert w.run_once().full_sync
    assert not w.run_once().full_sync
    time.sleep(0.01)
    env.rm.request_full_sync()  # e.g. by another replica after a vault import
    assert w.run_once().full_sync
    assert not w.run_once().full_sync


def test_refresh_grant_reads_one_grant_now(env: Env) -> None:
    w = env.worker()
    w.sync_grants()
    gid = env.rm.active_with_token()[0]
    assert env.rm.grant(gid).grant.integrations_refreshed_at is None
    env.sb.clear_requests_log()
    w.refresh_grant(gid)
    row = env.rm.grant(gid)
    assert row.grant.integrations_refreshed_at is not None and row.grant.user_kind
    assert len([r for r in env.sb.requests_log() if r["path"].startswith("/api/")]) == 2


def test_no_token_in_the_state_or_the_read_model(env: Env) -> None:
    w = env.worker()
    w.run_once(force=True)
    secrets = [t["access_token"] for t in env.sb.tokens()]
    blob = repr(w.status()) + repr(env.rm.sync_state()) + "".join(env.rm.csv_chunks())
    blob += repr(env.rm.page(page_size=1000).rows)
    assert secrets and not any(s in blob for s in secrets)


def test_refresh_order_failing_then_webhook_marked_then_stalest(env: Env) -> None:
    """The worker reads failing/syncing grants first, then one a webhook just told about,
    then the one read longest ago; its read clears the webhook's mark."""
    from services.store.webhook_events import WebhookEvent
    from services.sync.webhooks import readmodel_hook

    w = env.worker(hot_interval=0.0, cold_interval=0.0)
    w.run_once(force=True)
    rows = env.rm.page(GrantFilter(status="active", has_token=True), sort="grant_id",
                       page_size=1000).rows
    hot = {r.grant_id for r in rows if r.sync_state in ("failing", "syncing")}
    quiet = [r.grant_id for r in rows if r.grant_id not in hot
             and r.sync_state not in ("unreadable",)]
    assert hot and len(quiet) >= 3
    marked, stalest = quiet[-1], quiet[-2]
    # `stalest` was read an hour ago; `marked` gets a webhook that names no integration.
    env.rm.apply_integrations(stalest, [], now=datetime.now(UTC) - timedelta(hours=1))
    event = WebhookEvent(id=1, webhook_id="wh_order_1", type="user.updated",
                         grant_id=marked, kryptos_user_id=None, received_at=datetime.now(UTC),
                         payload={"type": "user.updated", "data": {}})
    readmodel_hook(env.rm)(event)

    def due() -> list[str]:
        now = datetime.now(UTC) + timedelta(seconds=1)
        return env.rm.due_for_integrations(100, older_than=now, hot_older_than=now)

    order = due()
    assert set(order[:len(hot)]) == hot  # failing and syncing first
    assert order[len(hot)] == marked  # then what a webhook marked
    assert order[len(hot) + 1] == stalest  # then the stalest
    # The worker reads the hot ones and the marked one: the mark is gone.
    w.run_once()
    assert marked not in due()[:len(hot) + 1]
    # A flood of marks still leaves a fifth of the reads to the stalest.
    env.rm.apply_integrations(stalest, [], now=datetime.now(UTC) - timedelta(hours=1))
    assert len(quiet) >= 6
    for gid in quiet[:-2]:
        env.rm.mark_changed(gid)
    some = env.rm.due_for_integrations(5, older_than=datetime.now(UTC),
                                       hot_older_than=datetime.now(UTC) - timedelta(days=1))
    assert len(some) == 5 and some[-1] == stalest and set(some[:4]) <= set(quiet[:-2])


def test_a_sync_pass_keeps_the_charts_daily_counts(env: Env) -> None:
    """After a forced pass (grants listed, then user info read), today's counts hold every
    grant once, Guests by the tier their limit matches as the read model shows it."""
    from datetime import UTC, datetime

    from services.store.daily_counts import DailyCounts, daily_grant_counts, day_number
    from services.store.readmodel import GrantFilter

    env.worker().run_once(force=True)
    with env.db.read() as conn:
        rows = conn.execute(daily_grant_counts.select().where(
            daily_grant_counts.c.day == day_number(datetime.now(UTC)))).all()
    assert sum(r.n for r in rows) == env.rm.counts().total
    for t in TIERS:
        shown = env.rm.page(GrantFilter(status="active", kind="guest", tier=t.name)).total
        assert sum(r.n for r in rows if (r.status, r.user_kind, r.tier)
                   == ("active", "guest", t.name)) == shown, t.name
    assert DailyCounts(env.db).guests_by_tier()[1]


def test_tiers_are_counted_again_once_the_first_pass_has_read_every_guest(env: Env) -> None:
    """At start the kinds and limits are unknown and read a few per step: the counts taken
    after the first step know only the few read, and the step that finds nothing more to
    read counts again, without waiting for DAILY_COUNTS_EVERY."""
    from services.store.daily_counts import DailyCounts

    counts = DailyCounts(env.db)
    w = env.worker(rate=8.0, userinfo_share=0.25)  # 2 user infos a step
    assert w.run_once().full_sync
    day, before = counts.guests_by_tier()
    assert day is not None
    steps = 0
    while steps < 40 and env.rm.due_for_userinfo(  # what the worker still has to read
            1, older_than=datetime.now(UTC) - timedelta(seconds=w.userinfo_retry)):
        w.run_once()
        steps += 1
        assert counts.guests_by_tier()[1] == before  # not counted again in between
    assert steps > 1  # read over several steps
    w.run_once()  # finds the queue dry: counts
    _day, after = counts.guests_by_tier()
    guests = env.rm.page(GrantFilter(status="active", kind="guest")).total
    assert sum(b.n for b in before if b.label != "") < guests
    assert guests > 0 and sum(b.n for b in after if b.label != "") == guests
