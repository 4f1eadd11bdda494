"""`ops.timeline`: a grant's timeline, recent failures and integration news, over webhooks
the sandbox really sent to the customer backend, which stored them in the console's database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard.timeline import failure_line, merge
from sandbox import SandboxHandle, start_sandbox
from services.operations import PermissionDenied
from services.store.webhook_events import WebhookEventStore
from tests.backend.helpers import connect
from tests.databases import SqliteTemplate
from tests.services.operations.conftest import actor
from tests.timing import wait_for
from tests.webhook_stack import ConsoleWithWebhooks as Stack

SUPPORT, FINANCE, VIEWER = actor("support"), actor("finance"), actor("viewer")


@pytest.fixture
def stack(sandbox: Any, tmp_path: Path, sqlite_template: SqliteTemplate) -> Iterator[Stack]:
    s = Stack(sandbox, tmp_path, sqlite_template)
    yield s
    s.close()


@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[SandboxHandle]:
    """A sandbox whose resyncs end only when its clock is advanced (10 minutes): what a
    test sees while a resync runs cannot change under it on a busy machine."""
    handle = start_sandbox(port=0, seed=42, grants=40, resync_delay=600.0)
    yield handle
    handle.stop()


@pytest.fixture
def slow_stack(slow_sandbox: SandboxHandle, tmp_path: Path,
               sqlite_template: SqliteTemplate) -> Iterator[Stack]:
    slow_sandbox.reset()
    s = Stack(slow_sandbox, tmp_path, sqlite_template)
    yield s
    s.close()


def test_timeline_merges_webhooks_and_actions_in_plain_words(stack: Stack) -> None:
    gid, integ = stack.guest()
    wid = integ.wallet_id
    stack.ops.limits.set_guest_limit(FINANCE, gid, transaction_limit=3000, reason="downgrade",
                                     confirmed=True)
    stack.ops.grants.resync_integration(SUPPORT, gid, wid, "latest")
    stack.hooks.wait_event("integration.updated", wid, "ONGOING")
    stack.sandbox.advance_clock(60)
    done = stack.hooks.wait_event("integration.updated", wid, "COMPLETED")

    tl = stack.ops.timeline.grant_timeline(SUPPORT, gid)
    assert tl.audit_shown and tl.grant_id == gid
    assert [e.webhook_id for e in tl.webhooks][0] == done.webhook_id  # newest first
    texts = [i.what for i in merge(tl)]
    name = done.data.get("alias") or done.data.get("providerPublicName")
    n = done.data["totalTransactions"]
    completed = f"Resync of {name} (wallet {wid}) completed — {n:,} transaction"
    assert texts[0].startswith(completed), texts
    assert f"Resync of {name} (wallet {wid}) started" in texts
    assert f"Resync (latest) of {name} (wallet {wid}) requested by support" in texts
    limit = [t for t in texts if t.startswith("Limit changed")]
    assert len(limit) == 1 and limit[0].endswith("-> 3,000 by finance: downgrade"), limit
    # one line per change: the `requested` events are folded into their outcome
    assert len([t for t in texts if "requested by support" in t]) == 1
    times = [i.at for i in merge(tl)]
    assert times == sorted(times, reverse=True)


def test_viewer_sees_the_webhooks_but_not_who_did_what(stack: Stack) -> None:
    gid, integ = stack.guest(1)
    stack.ops.grants.resync_integration(SUPPORT, gid, integ.wallet_id, "latest")
    stack.hooks.wait_event("integration.updated", integ.wallet_id, "ONGOING")
    before = stack.ops.ctx.audit_log.count()
    tl = stack.ops.timeline.grant_timeline(VIEWER, gid)
    assert not tl.audit_shown and tl.audit == () and tl.webhooks
    assert all("support" not in i.what for i in merge(tl))
    assert stack.ops.ctx.audit_log.count() == before  # no refusal recorded for the part
    with pytest.raises(PermissionDenied):
        stack.ops.timeline.grant_timeline(actor(name="nobody"), gid)


def test_recent_failures_from_a_failed_resync(stack: Stack) -> None:
    gid, integ = stack.guest(2)
    wid = integ.wallet_id
    stack.sandbox.fail_next_resync(wallet_id=wid)
    stack.ops.grants.resync_integration(SUPPORT, gid, wid, "latest")
    stack.sandbox.advance_clock(60)
    failed = stack.hooks.wait_event("integration.failed", wid)
    found = stack.ops.timeline.recent_failures(VIEWER)
    assert [f.event.webhook_id for f in found] == [failed.webhook_id]
    assert found[0].grant_id == gid
    ref = stack.vault.get(gid).customer_ref
    assert found[0].customer_ref == ref
    message = failed.data["message"]
    line = failure_line(found[0])
    assert f"Integration failed: {message}" in line and (ref or gid) in line
    texts = [i.what for i in merge(stack.ops.timeline.grant_timeline(SUPPORT, gid))]
    assert texts[0].startswith(f"Integration failed: {message}")


def test_recent_failures_window_limit_and_unknown_users(stack: Stack) -> None:
    store = WebhookEventStore(stack.db)
    now = datetime.now(UTC)
    body = {"event": "integration.failed", "data": {"walletId": "w_x", "status": "FAILED",
                                                   "message": "boom", "uid": "anon_nobody"}}
    store.insert("whd_old", "integration.failed", body, kryptos_user_id="anon_nobody",
                 received_at=now - timedelta(hours=25))
    for i in range(12):
        store.insert(f"whd_{i:02d}", "integration.failed", body,
                     kryptos_user_id="anon_nobody", received_at=now - timedelta(minutes=i))
    found = stack.ops.timeline.recent_failures(SUPPORT)
    assert [f.event.webhook_id for f in found] == [f"whd_{i:02d}" for i in range(10)]
    assert {f.grant_id for f in found} == {None}
    assert "unknown grant" in failure_line(found[0])
    later = stack.ops.timeline.recent_failures(SUPPORT, now=now + timedelta(hours=30))
    assert later == ()


def test_integration_news_only_after_the_given_time(slow_stack: Stack) -> None:
    gid, integ = slow_stack.guest(3)
    wid = integ.wallet_id
    asked = datetime.now(UTC)
    assert slow_stack.ops.timeline.integration_news(SUPPORT, gid, wid, asked) is None
    slow_stack.ops.grants.resync_integration(SUPPORT, gid, wid, "latest")
    news = slow_stack.hooks.wait_event("integration.updated", wid, "ONGOING")
    got = slow_stack.ops.timeline.integration_news(SUPPORT, gid, wid, asked)
    assert got is not None and got.integration.status == "ONGOING"
    assert got.integration.wallet_id == wid and got.received_at == news.received_at
    assert slow_stack.ops.timeline.integration_news(SUPPORT, gid, wid, news.received_at) is None


def test_a_customers_connection_through_the_backend_shows_on_its_grant(stack: Stack) -> None:
    connect(stack.hooks.url, stack.sandbox, "cust-timeline")
    gid = stack.vault.for_customer("cust-timeline").grant_id
    wait_for(lambda: [e for e in stack.hooks.events()
                      if e.type == "integration.created" and e.grant_id == gid],
             what="the widget's webhooks tied to the new grant")
    connect(stack.hooks.url, stack.sandbox, "cust-other")  # another customer's events
    texts = [i.what for i in merge(stack.ops.timeline.grant_timeline(SUPPORT, gid))]
    assert "Connected: access token stored by customer cust-timeline" in texts
    assert any(t.startswith("Integration added: ") for t in texts)
    assert not any("cust-other" in t for t in texts)
    assert not any("Refused" in t for t in texts)
