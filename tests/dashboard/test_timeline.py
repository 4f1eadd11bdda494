"""`dashboard.timeline` wording, and the resync watch following webhooks (polling Kryptos
only as the fallback), with the sandbox sending real webhooks to the customer backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard import reads
from dashboard.resync_watch import ResyncWatch
from dashboard.timeline import audit_text, merge, webhook_text
from sandbox import SandboxHandle, start_sandbox
from services.operations import Actor
from services.operations.timeline import GrantTimeline
from services.store.audit import AuditEvent
from services.store.webhook_events import WebhookEvent
from tests.databases import SqliteTemplate
from tests.webhook_stack import ConsoleWithWebhooks

SUPPORT = Actor("sam", "Sam", frozenset({"support"}))
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
XSS = '<img src=x onerror="alert(1)"> **bold** [x](javascript:alert(1))'


def hook(kind: str, at: datetime = T0, **data: Any) -> WebhookEvent:
    body = {"walletId": "w_1", "provider": "coinbase", "providerPublicName": "Coinbase",
            "status": "COMPLETED", "uid": "anon_1", **data}
    return WebhookEvent(1, "whd_1", kind, "cgrant_1", "anon_1", at,
                        {"id": "whd_1", "event": kind, "data": body})


def audit(action: str, outcome: str = "succeeded", at: datetime = T0, cid: str = "c1",
          actor: str = "finance", **fields: Any) -> AuditEvent:
    base: dict[str, Any] = dict(
        seq=1, event_id="e", ts=at, actor_username=actor, actor_roles=("finance",),
        action=action, outcome=outcome, target_type="grant", target_id="cgrant_1",
        params=None, before=None, after=None, reason=None, ticket=None, error_code=None,
        error_message=None, request_id=None, correlation_id=cid, prev_hash="0", hash="1")
    base.update(fields)
    return AuditEvent(**base)


def test_webhook_wording() -> None:
    assert webhook_text(hook("integration.updated", totalTransactions=12)) == (
        "Resync of Coinbase (wallet w_1) completed — 12 transactions", "resync")
    assert webhook_text(hook("integration.updated", totalTransactions=1, alias="Cold"))[0] == (
        "Resync of Cold (wallet w_1) completed — 1 transaction")
    assert webhook_text(hook("integration.updated", status="ONGOING"))[0] == (
        "Resync of Coinbase (wallet w_1) started")
    assert webhook_text(hook("integration.failed", status="FAILED", message=XSS)) == (
        f"Integration failed: {XSS} (Coinbase (wallet w_1))", "failure")
    assert webhook_text(hook("integration.failed", status="FAILED"))[0].startswith(
        "Integration failed: no message given")
    assert webhook_text(hook("integration.created"))[0] == (
        "Integration added: Coinbase (wallet w_1)")
    odd = WebhookEvent(2, "whd_2", "costbasis.completed", None, None, T0, {"data": {}})
    assert webhook_text(odd) == ("Kryptos event costbasis.completed", "other")
    broken = WebhookEvent(3, "whd_3", "integration.updated", None, None, T0,
                          {"data": {"status": "COMPLETED"}})  # no walletId
    assert webhook_text(broken)[0] == "Kryptos event integration.updated"


def test_audit_wording() -> None:
    limit = audit("guest.limit.update", before={"transaction_limit": 7500,
                                                "enable_limiter": True},
                  after={"transaction_limit": 3000, "enable_limiter": True}, reason="downgrade")
    assert audit_text(limit) == ("Limit changed 7,500 -> 3,000 by finance: downgrade", "limit")
    switched = audit("guest.tier.apply", params={"tier": "Free"},
                     before={"transaction_limit": 1000, "enable_limiter": False},
                     after={"transaction_limit": 1000, "enable_limiter": True})
    assert audit_text(switched)[0] == (
        "Limit kept at 1,000, limiter off -> on, tier Free by finance")
    failed = audit("guest.limit.update", "failed", error_message="Kryptos said no")
    assert audit_text(failed) == ("Limit change by finance failed: Kryptos said no", "failure")
    revoke = audit("grant.revoke", actor="admin", reason="fraud", ticket="T-1")
    assert audit_text(revoke)[0] == "Grant revoked by admin: fraud (ticket T-1)"
    exchange = audit("token.exchange", actor="customer:acme-7")
    assert audit_text(exchange)[0] == "Connected: access token stored by customer acme-7"
    denied = audit("grant.view", "denied", actor="vic")
    assert audit_text(denied) == ("Refused to vic: grant.view (no permission)", "access")
    assert audit_text(audit("something.new", actor="cli:root"))[0] == (
        "something.new succeeded by cli:root")


def test_merge_folds_requested_into_outcome_and_names_wallets() -> None:
    asked = audit("integration.resync", "requested", at=T0, actor="sam",
                  params={"wallet_id": "w_1", "mode": "from_start"}, reason="stuck")
    done = audit("integration.resync", "succeeded", at=T0 + timedelta(seconds=1), actor="sam",
                 reason="stuck")
    lone = audit("grant.revoke", "requested", at=T0 + timedelta(seconds=2), cid="c2",
                 actor="admin")
    started = hook("integration.updated", at=T0 + timedelta(seconds=3), status="ONGOING")
    finished = hook("integration.updated", at=T0 + timedelta(seconds=9), totalTransactions=5)
    tl = GrantTimeline("cgrant_1", (finished, started), (lone, done, asked), True)
    items = merge(tl)
    assert [i.what for i in items] == [
        "Resync of Coinbase (wallet w_1) completed — 5 transactions",
        "Resync of Coinbase (wallet w_1) started",
        "Revoke being made by admin",
        "Resync (from start) of Coinbase (wallet w_1) requested by sam: stuck",
    ]
    assert [i.source for i in items] == ["Kryptos (webhook)", "Kryptos (webhook)", "console",
                                         "console"]


# --- the resync watch over real webhooks ------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[SandboxHandle]:
    """A sandbox whose resyncs end only when its clock is advanced (10 minutes): what a
    test sees while a resync runs cannot change under it on a busy machine."""
    handle = start_sandbox(port=0, seed=42, grants=40, resync_delay=600.0)
    yield handle
    handle.stop()


@pytest.fixture
def slow_stack(slow_sandbox: SandboxHandle, tmp_path: Path,
               sqlite_template: SqliteTemplate) -> Iterator[ConsoleWithWebhooks]:
    slow_sandbox.reset()
    s = ConsoleWithWebhooks(slow_sandbox, tmp_path, sqlite_template)
    yield s
    s.close()


def _integration_reads(sandbox: Any) -> int:
    return sum(1 for r in sandbox.requests_log() if r["path"].startswith("/api/v1/integrations"))


def test_resync_watch_follows_webhooks_and_polls_only_as_fallback(
        slow_stack: ConsoleWithWebhooks) -> None:
    gid, integ = slow_stack.guest()
    wid = integ.wallet_id
    clock = FakeClock()
    watch = ResyncWatch(fallback_after=6.0, clock=clock)
    asked = datetime.now(UTC)
    reads.invalidate_all()
    slow_stack.ops.grants.resync_integration(SUPPORT, gid, wid, "latest")
    watch.started(gid, wid, "latest", at=asked)
    slow_stack.hooks.wait_event("integration.updated", wid, "ONGOING")
    slow_stack.sandbox.clear_requests_log()

    poll = watch.poll(slow_stack.ops, SUPPORT, gid, {})
    assert not poll.settled and any("ONGOING" in line.upper() for line in poll.progress)
    assert (watch.webhook_updates, watch.api_polls) == (1, 0)
    clock.now += 2  # no new webhook, but one came 2 s ago: Kryptos is not asked
    poll = watch.poll(slow_stack.ops, SUPPORT, gid, {})
    assert not poll.settled and any("ONGOING" in line.upper() for line in poll.progress)
    assert watch.api_polls == 0 and _integration_reads(slow_stack.sandbox) == 0
    clock.now += 5  # 7 s without a webhook: the fallback asks Kryptos
    poll = watch.poll(slow_stack.ops, SUPPORT, gid, {})
    assert watch.api_polls == 1 and _integration_reads(slow_stack.sandbox) == 1
    assert not poll.settled

    slow_stack.sandbox.advance_clock(700)
    slow_stack.hooks.wait_event("integration.updated", wid, "COMPLETED")
    clock.now += 1
    poll = watch.poll(slow_stack.ops, SUPPORT, gid, {})
    assert poll.settled and watch.watching(gid) == {}
    assert watch.api_polls == 1 and _integration_reads(slow_stack.sandbox) == 1  # from the webhook
    assert watch.settled_lines(gid) == (f"{integ.display_name}: completed",)


def test_resync_watch_without_webhooks_polls_kryptos(
        slow_stack: ConsoleWithWebhooks) -> None:
    gid, integ = slow_stack.guest(1)
    wid = integ.wallet_id
    slow_stack.sandbox.set_webhook_fault("drop", count=50)  # webhooks lost: the watch must not wait
    watch = ResyncWatch(fallback_after=6.0, clock=FakeClock())
    reads.invalidate_all()
    slow_stack.ops.grants.resync_integration(SUPPORT, gid, wid, "latest")
    watch.started(gid, wid, "latest")
    poll = watch.poll(slow_stack.ops, SUPPORT, gid, {})
    assert watch.api_polls == 1 and not poll.settled and watch.webhook_updates == 0
    slow_stack.sandbox.advance_clock(700)
    poll = watch.poll(slow_stack.ops, SUPPORT, gid, {})
    assert poll.settled and watch.api_polls == 2
