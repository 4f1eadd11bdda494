"""The console's runtime runs the read model's sync worker: started in the
background by a sandbox-mode start that does not wait on data, stopped with the runtime."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dashboard.runtime import build_runtime
from services.kryptos.client import SYNC_USER_AGENT, USER_AGENT
from services.operations import Actor

_ENV = ("KRYPTOS_CLIENT_ID", "KRYPTOS_CLIENT_SECRET", "KRYPTOS_CONNECT_URL",
        "KRYPTOS_DATA_URL", "DATABASE_URL", "KRYPTOS_VAULT_KEY", "CONSOLE_COOKIE_KEY",
        "CONSOLE_AUTH_FILE", "CONSOLE_TIERS", "SANDBOX_PORT")


@pytest.fixture
def sandbox_env(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SANDBOX_URL", sandbox.base_url)
    monkeypatch.setenv("CONSOLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "none.toml"))
    return tmp_path


def _wait(check: Any, seconds: float = 120.0) -> bool:
    """Poll `check` until it holds; `seconds` only bounds a failing run (a passing one
    returns as soon as the state is reached, however slow the machine)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_sandbox_start_syncs_in_the_background_and_stops_with_the_runtime(
        sandbox_env: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_ENABLED", "true")
    rt = build_runtime()
    try:
        assert rt.ok, rt.problems
        assert rt.sync is not None and rt.ops is not None
        worker = rt.sync
        listed = len(rt.ops.ctx.client.list_grants())
        # The loaded tokens show in the read model before any sync, and the worker holds
        # its lock before its first full sync ends: wait on that sync itself.
        assert _wait(lambda: worker.status().last_full_sync is not None)
        counts = rt.ops.readmodel.counts()
        assert counts.active == listed and counts.with_token > 0  # tokens joined
        assert worker.is_holder
        view = rt.ops.sync.status(Actor("admin", "", frozenset({"admin"})))
        assert view.runs_here and view.holder_here and view.last_full_sync is not None
        # The worker's calls say who makes them (upstream logs tell them from the pages').
        agents = {(r["path"], r["user_agent"]) for r in sandbox.requests_log()}
        assert ("/token/grants", SYNC_USER_AGENT) in agents
        rt.ops.ctx.client.list_grants()
        agents = {(r["path"], r["user_agent"]) for r in sandbox.requests_log()}
        assert ("/token/grants", USER_AGENT) in agents and USER_AGENT != SYNC_USER_AGENT
    finally:
        rt.stop()
    assert rt.sync is not None and not rt.sync.running and not rt.sync.is_holder


def test_sync_disabled_runs_no_worker_and_loads_tokens_before_the_start_ends(
        sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_ENABLED", "false")
    rt = build_runtime()
    try:
        assert rt.ok, rt.problems
        assert rt.sync is None and rt.ops is not None
        stored = rt.ops.ctx.vault.list()
        assert stored  # loaded in the start itself
        # Each page of tokens shows in the read model at once, before any sync.
        counts = rt.ops.readmodel.counts()
        assert counts.total == len(stored) and counts.with_token == len(stored)
        assert rt.ops.readmodel.freshness().last_full_sync is None  # nobody synced
    finally:
        rt.stop()


def test_sandbox_tokens_load_a_page_at_a_time_and_show_before_the_first_sync(
        sandbox_env: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paged load (pages of 7 here): every exported token stored once, revoked ones shown
    revoked, kinds and references shown; loading again writes nothing."""
    import dashboard.runtime as runtime_mod
    from services.settings import SANDBOX_CLIENT_ID

    monkeypatch.setenv("SYNC_ENABLED", "false")
    monkeypatch.setattr(runtime_mod, "TOKEN_PAGE", 7)
    rt = build_runtime()
    try:
        assert rt.ok, rt.problems
        exported = sandbox.tokens(client_id=SANDBOX_CLIENT_ID)
        assert len(exported) > 7 * 3  # several pages
        rm = rt.ops.readmodel
        assert {e.grant_id for e in rt.ops.ctx.vault.list()} == {t["grant_id"]
                                                                  for t in exported}
        for t in exported:
            row = rm.grant(t["grant_id"])
            assert row is not None, t["grant_id"]
            g = row.grant
            assert g.status == ("revoked" if t["revoked"] else "active")
            assert (g.has_token, g.user_kind, g.customer_ref) == (True, t["kind"],
                                                                  t["customer_ref"])
            assert g.masked_token and t["access_token"] not in g.masked_token
        v = rm.version()
        assert runtime_mod.load_sandbox_tokens(rt.ops, rt.sandbox, SANDBOX_CLIENT_ID) \
            == len(exported)
        assert rm.version() == v  # nothing differed: no row written
    finally:
        rt.stop()
