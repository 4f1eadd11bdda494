"""The sandbox's own webhook sender posting to the backend: widget runs, resyncs, failures,
and the sender's faults (duplicate, bad signature)."""

from __future__ import annotations

import base64
import time

from sqlalchemy import select

from services.store.schema import webhook_events
from tests.backend.helpers import WEBHOOK_SECRET, connect
from tests.sandbox.helpers import connect as kryptos


def _rows(backend) -> list:
    with backend.db.read() as conn:
        return conn.execute(select(webhook_events).order_by(webhook_events.c.id)).all()


def _wait(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def _deliveries_done(sandbox) -> list[dict]:
    found = sandbox.webhook_deliveries()
    return found if found and all(d["status"] != "pending" for d in found) else []


def test_widget_run_and_resync_events_reach_the_grant(backend, sandbox):
    sandbox.set_webhooks(backend.url + "/api/kryptos/webhooks", WEBHOOK_SECRET)
    flow = connect(backend.url, sandbox, "cust-live")
    gid = backend.backend.vault.for_customer("cust-live").grant_id
    user = flow["public"]["user_id"]
    created = _wait(lambda: [r for r in _rows(backend) if r.type == "integration.created"
                             and r.grant_id == gid and r.processed_at is not None])
    assert created[0].kryptos_user_id == user
    # Widget events came before the exchange: the hooks saw them again with the grant.
    assert any(e.type == "integration.created" and e.grant_id == gid for e in backend.hooks)

    token = backend.backend.vault.reveal(gid)
    wallet = __import__("tests.sandbox.helpers", fromlist=["data"]).data(
        sandbox, "/v1/integrations", token).json()["data"][0]["walletId"]
    sandbox.fail_next_resync(wallet_id=wallet)
    answer = kryptos(sandbox, "POST", f"/developer/integrations/{wallet}/resync",
                     {"user_id": user, "mode": "from_start"})
    assert answer.status_code == 202, answer.text
    sandbox.advance_clock(60)
    failed = _wait(lambda: [r for r in _rows(backend) if r.type == "integration.failed"
                            and r.processed_at is not None])
    assert failed[0].grant_id == gid
    assert [e.webhook_id for e in backend.backend.hub.recent(("integration.failed",))] == \
        [failed[0].webhook_id]
    assert all(d["status"] == "delivered" for d in _wait(lambda: _deliveries_done(sandbox)))


def test_sender_faults_duplicate_and_bad_signature(backend, sandbox):
    sandbox.set_webhooks(backend.url + "/api/kryptos/webhooks", WEBHOOK_SECRET,
                         backoff=[0.05, 0.05])
    sandbox.set_webhook_fault("duplicate", count=1)
    first = sandbox.create_public_token()
    done = _wait(lambda: _deliveries_done(sandbox))
    ids = {d["id"] for d in done}
    rows = _wait(lambda: [r for r in _rows(backend) if r.webhook_id in ids])
    assert len(rows) == len(ids)  # the duplicate was stored once
    assert {r.kryptos_user_id for r in rows} == {first["user_id"]}

    sandbox.set_webhook_fault("bad_signature", count=1)
    second = sandbox.create_public_token()
    failed = _wait(lambda: [d for d in sandbox.webhook_deliveries() if d["fault"] ==
                            "bad_signature" and d["status"] == "failed"])
    assert failed[0]["attempts"] == 3 and set(failed[0]["responses"]) == {401}
    others = {d["id"] for d in _wait(lambda: _deliveries_done(sandbox))} - ids - {
        failed[0]["id"]}
    stored = {r.webhook_id: r for r in _rows(backend)}
    assert failed[0]["id"] not in stored  # refused, never stored
    assert others <= set(stored)  # the run's other events were (one fault, one event)
    assert {stored[i].kryptos_user_id for i in others} <= {second["user_id"]}


def test_a_secret_rotation_keeps_the_sandbox_deliveries_flowing(start_backend, sandbox):
    new = "whsec_" + base64.b64encode(b"the-rotated-webhook-secret-0123456789").decode()
    # The backend already has the new secret; the sender still signs with the previous one.
    rotating = start_backend(webhook_secret=new, webhook_secret_previous=WEBHOOK_SECRET)
    sandbox.set_webhooks(rotating.url + "/api/kryptos/webhooks", WEBHOOK_SECRET,
                         backoff=[0.05, 0.05])
    sandbox.create_public_token()
    done = _wait(lambda: _deliveries_done(sandbox))
    assert [d["status"] for d in done] == ["delivered"] * len(done)
    assert {r.webhook_id for r in _rows(rotating)} == {d["id"] for d in done}

    # Once the rotation is over (no previous secret), the old secret is refused.
    after = start_backend(webhook_secret=new)
    sandbox.reset()
    sandbox.set_webhooks(after.url + "/api/kryptos/webhooks", WEBHOOK_SECRET,
                         backoff=[0.05, 0.05])
    sandbox.create_public_token()
    done = _wait(lambda: _deliveries_done(sandbox))
    assert {d["status"] for d in done} == {"failed"}
    assert {code for d in done for code in d["responses"]} == {401}
    assert _rows(after) == []
