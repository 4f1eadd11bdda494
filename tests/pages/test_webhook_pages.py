"""The console's webhook views with the sandbox sending real signed webhooks to the customer
backend, which stores them in the console's own database (as `bin/console` runs them):
the Grant detail timeline, the resync watch following webhooks, the Overview's failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.runtime import Runtime
from services.operations import Actor
from services.store import load_vault_key
from tests.webhook_stack import WebhookStack

DETAIL = "../pages/grant_detail.py"
XSS = '<img src=x onerror="window.__xss=1"> **bold** [x](javascript:alert(1))'
SUPPORT = Actor("sam", "Sam", frozenset({"support"}))


@pytest.fixture
def hooks(runtime: Runtime, sandbox: Any, tmp_path: Path) -> Iterator[WebhookStack]:
    """The backend on the console's database and vault key, receiving the sandbox's
    webhooks."""
    key = load_vault_key(runtime.settings)
    stack = WebhookStack.start(sandbox, runtime.settings.effective_database_url,
                               key.decode() if isinstance(key, bytes) else key,
                               tmp_path / "backend-data")
    yield stack
    stack.stop()


def _guest_wallet(runtime: Runtime, sandbox: Any, n: int = 0) -> tuple[str, Any]:
    guests = [t for t in sandbox.tokens() if not t["revoked"] and t["kind"] == "guest"]
    for t in guests[n:]:
        for integ in runtime.ops.ctx.client.list_integrations(t["access_token"]):
            if not (integ.is_csv or integ.is_syncing or integ.is_failing):
                return t["grant_id"], integ
    raise AssertionError("no Guest grant with a plain integration")


def _open(make_app: Callable[..., AppTest], role: str, gid: str) -> AppTest:
    at = make_app(role)
    at.session_state["selected_grant_id"] = gid
    at.switch_page(DETAIL).run()
    assert not at.exception, at.exception
    return at


def _timeline(at: AppTest) -> list[str]:
    found = [df.value for df in at.dataframe if "what" in df.value.columns]
    assert found, "no timeline table"
    return list(found[-1]["what"])


def test_resync_status_and_timeline_follow_the_webhooks(
        make_app: Callable[..., AppTest], runtime: Runtime, sandbox: Any,
        hooks: WebhookStack) -> None:
    gid, integ = _guest_wallet(runtime, sandbox)
    wid = integ.wallet_id
    at = _open(make_app, "support", gid)
    assert "Timeline" in [s.value for s in at.subheader]
    at.button(key=f"resync_{wid}").click().run()
    assert not at.exception and not at.error
    watch = at.session_state["resync_watch"]
    assert watch.watching(gid) == {wid: "latest"}
    hooks.wait_event("integration.updated", wid, "ONGOING")
    sandbox.advance_clock(60)
    done = hooks.wait_event("integration.updated", wid, "COMPLETED")
    polls = watch.api_polls
    at.run()  # the poller finds the COMPLETED webhook: settled without asking Kryptos
    assert not at.exception
    watch = at.session_state["resync_watch"]
    assert watch.watching(gid) == {} and watch.webhook_updates >= 1
    assert watch.api_polls == polls
    texts = _timeline(at)
    name = integ.display_name
    n = done.data["totalTransactions"]
    assert texts[0] == f"Resync of {name} (wallet {wid}) completed — {n:,} transactions"
    assert f"Resync of {name} (wallet {wid}) started" in texts
    assert f"Resync (latest) of {name} (wallet {wid}) requested by support" in texts


def test_viewer_timeline_has_webhooks_only(make_app: Callable[..., AppTest], runtime: Runtime,
                                           sandbox: Any, hooks: WebhookStack) -> None:
    gid, integ = _guest_wallet(runtime, sandbox, 1)
    runtime.ops.grants.resync_integration(SUPPORT, gid, integ.wallet_id, "latest")
    hooks.wait_event("integration.updated", integ.wallet_id, "ONGOING")
    at = _open(make_app, "viewer", gid)
    texts = _timeline(at)
    # The sandbox ends a resync 2 s after it began: on a busy machine its "completed"
    # webhook may be in by the time the page is drawn. Either way the viewer sees the
    # webhooks' entries and never the audit log's ("requested by support").
    started = f"Resync of {integ.display_name} (wallet {integ.wallet_id}) started"
    completed = f"Resync of {integ.display_name} (wallet {integ.wallet_id}) completed"
    assert texts[-1] == started
    assert all(t == started or t.startswith(completed + " — ") for t in texts), texts
    assert len(texts) <= 2 and not any("requested by" in t for t in texts), texts
    assert any("Webhooks from Kryptos only" in c.value for c in at.caption)


def test_overview_lists_webhook_failures_and_opens_the_grant(
        make_app: Callable[..., AppTest], runtime: Runtime, sandbox: Any,
        hooks: WebhookStack) -> None:
    gid, integ = _guest_wallet(runtime, sandbox, 2)
    wid = integ.wallet_id
    at = make_app("viewer")
    assert any("No integration failure reported" in c.value for c in at.caption)
    sandbox.set_fault(resync="fail", wallet_id=wid, message=XSS)
    runtime.ops.grants.resync_integration(SUPPORT, gid, wid, "latest")
    sandbox.advance_clock(60)
    hooks.wait_event("integration.failed", wid)
    at.run()
    assert not at.exception
    assert "Integration failures (last 24 hours)" in [s.value for s in at.subheader]
    lines = [t.value for t in at.text if "Integration failed" in t.value]
    assert len(lines) == 1 and f"Integration failed: {XSS}" in lines[0]
    ref = runtime.ops.ctx.vault.get(gid).customer_ref
    assert (f"customer {ref}" if ref else f"grant {gid}") in lines[0]
    # upstream text only ever as plain text
    assert not any("<img" in m.value or "javascript" in m.value for m in at.markdown)
    at.button(key="failure_open_0").click().run()
    assert not at.exception
    assert at.session_state["selected_grant_id"] == gid
    assert any(t.value == "Grant detail" for t in at.title)
    # the viewer's timeline has the failure, the upstream message as plain cell text
    assert any(t.startswith(f"Integration failed: {XSS}") for t in _timeline(at))
    assert not any("<img" in m.value or "javascript" in m.value for m in at.markdown)
