"""The signed-webhook receiver: signature, age, replay, duplicates, unknown types,
concurrent deliveries, and processing (grant found, hooks called)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from backend.webhooks import WebhookEvent, parse_timestamp
from services.store.schema import webhook_events
from tests.backend.helpers import assert_error, connect, post, signed

HOOK = "/api/kryptos/webhooks"


def _envelope(webhook_id: str, event: str = "integration.updated", **data) -> dict:
    return {"id": webhook_id, "event": event, "timestamp": datetime.now(UTC).isoformat(),
            "data": {"walletId": "wallet_1", "status": "COMPLETED", **data}}


def _rows(backend) -> list:
    with backend.db.read() as conn:
        return conn.execute(select(webhook_events).order_by(webhook_events.c.id)).all()


def _wait_processed(backend, webhook_id: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in _rows(backend):
            if row.webhook_id == webhook_id and row.processed_at is not None:
                return row
        time.sleep(0.02)
    raise AssertionError(f"{webhook_id} was not processed")


def test_signed_event_is_stored_processed_and_tied_to_its_grant(backend, sandbox):
    flow = connect(backend.url, sandbox, "cust-w")
    gid = backend.backend.vault.for_customer("cust-w").grant_id
    body = _envelope("whd_1", uid=flow["public"]["user_id"])
    raw, headers = signed(body, webhook_id="whd_1")
    answer = post(backend.url, HOOK, raw=raw, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True, "duplicate": False}
    row = _wait_processed(backend, "whd_1")
    assert row.type == "integration.updated" and row.grant_id == gid
    assert row.kryptos_user_id == flow["public"]["user_id"]
    assert json.loads(row.payload) == body
    assert [e.webhook_id for e in backend.hooks] == ["whd_1"]
    hooked: WebhookEvent = backend.hooks[0]
    assert hooked.grant_id == gid and hooked.payload == body
    assert [e.webhook_id for e in backend.backend.hub.for_grant(gid)] == ["whd_1"]


@pytest.mark.parametrize("mangle", ["missing", "wrong", "other_body", "upper_garbage"])
def test_bad_signature_is_401_and_not_stored(backend, mangle):
    raw, headers = signed(_envelope("whd_bad"), webhook_id="whd_bad")
    if mangle == "missing":
        del headers["X-Webhook-Signature"]
    elif mangle == "wrong":
        headers["X-Webhook-Signature"] = signed(raw, secret="not-the-secret")[1][
            "X-Webhook-Signature"]
    elif mangle == "other_body":
        raw = raw.replace(b"COMPLETED", b"FAILED")
    else:
        headers["X-Webhook-Signature"] = "Z" * 64
    assert_error(post(backend.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")
    assert _rows(backend) == []


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_timestamp_outside_the_window_is_401(backend, offset):
    raw, headers = signed(_envelope("whd_old"), webhook_id="whd_old",
                          ts=int(time.time()) + offset)
    assert_error(post(backend.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")
    assert _rows(backend) == []


@pytest.mark.parametrize("ts", ["", "yesterday", "nan"])
def test_missing_or_unreadable_timestamp_is_401(backend, ts):
    raw, headers = signed(_envelope("whd_ts"), webhook_id="whd_ts", ts=ts)
    if not ts:
        del headers["X-Webhook-Timestamp"]
    assert_error(post(backend.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")


def test_iso_timestamp_and_configured_max_age(start_backend):
    b = start_backend(webhook_max_age=60)
    iso = (datetime.now(UTC) - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    raw, headers = signed(_envelope("whd_iso"), webhook_id="whd_iso", ts=iso)
    assert post(b.url, HOOK, raw=raw, headers=headers).status_code == 200
    raw, headers = signed(_envelope("whd_90"), webhook_id="whd_90", ts=int(time.time()) - 90)
    assert_error(post(b.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")


def test_replay_of_the_same_id_is_200_and_stored_once(backend):
    raw, headers = signed(_envelope("whd_r"), webhook_id="whd_r")
    first = post(backend.url, HOOK, raw=raw, headers=headers)
    _wait_processed(backend, "whd_r")
    again = post(backend.url, HOOK, raw=raw, headers=headers)
    assert first.json()["duplicate"] is False
    assert again.status_code == 200 and again.json() == {"success": True, "duplicate": True}
    assert len(_rows(backend)) == 1
    assert len(backend.hooks) == 1


def test_a_retry_with_a_new_body_but_the_same_id_keeps_the_first(backend):
    raw1, h1 = signed(_envelope("whd_same", status="ONGOING"), webhook_id="whd_same")
    raw2, h2 = signed(_envelope("whd_same", status="COMPLETED"), webhook_id="whd_same")
    assert post(backend.url, HOOK, raw=raw1, headers=h1).status_code == 200
    assert post(backend.url, HOOK, raw=raw2, headers=h2).json()["duplicate"] is True
    assert json.loads(_rows(backend)[0].payload)["data"]["status"] == "ONGOING"


def test_unknown_event_types_are_stored(backend):
    raw, headers = signed({"id": "whd_u", "event": "costbasis.exploded", "data": {"x": 1}},
                          webhook_id="whd_u")
    assert post(backend.url, HOOK, raw=raw, headers=headers).status_code == 200
    row = _wait_processed(backend, "whd_u")
    assert row.type == "costbasis.exploded" and row.grant_id is None
    raw, headers = signed({"whatever": True}, webhook_id="whd_u2")
    assert post(backend.url, HOOK, raw=raw, headers=headers).status_code == 200
    assert _wait_processed(backend, "whd_u2").type == "unknown"


def test_id_from_the_body_when_no_header(backend):
    raw, headers = signed(_envelope("whd_body"))
    assert post(backend.url, HOOK, raw=raw, headers=headers).status_code == 200
    assert _rows(backend)[0].webhook_id == "whd_body"


def test_signed_but_unusable_bodies_are_400(backend):
    raw, headers = signed(b"not json", webhook_id="whd_nj")
    assert_error(post(backend.url, HOOK, raw=raw, headers=headers), 400, "INVALID_REQUEST")
    raw, headers = signed({"event": "integration.updated"})  # no id anywhere
    assert_error(post(backend.url, HOOK, raw=raw, headers=headers), 400, "INVALID_REQUEST")
    assert _rows(backend) == []


def test_concurrent_deliveries_of_one_id_store_one_row(backend):
    raw, headers = signed(_envelope("whd_c"), webhook_id="whd_c")
    answers: list = [None] * 12
    barrier = threading.Barrier(len(answers))

    def send(i: int) -> None:
        barrier.wait()
        answers[i] = post(backend.url, HOOK, raw=raw, headers=headers)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert sum(not a.json()["duplicate"] for a in answers) == 1
    _wait_processed(backend, "whd_c")
    with backend.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(webhook_events)).scalar() == 1


def test_a_failing_hook_leaves_the_event_for_redelivery(start_backend):
    b = start_backend()
    calls: list[str] = []

    def flaky(event: WebhookEvent) -> None:
        calls.append(event.webhook_id)
        if len(calls) == 1:
            raise RuntimeError("read model down")

    b.backend.hub.on_event.append(flaky)
    raw, headers = signed(_envelope("whd_f"), webhook_id="whd_f")
    assert post(b.url, HOOK, raw=raw, headers=headers).status_code == 200
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert _rows(b)[0].processed_at is None
    assert [e.webhook_id for e in b.hooks] == ["whd_f"]  # the other hook still ran
    assert post(b.url, HOOK, raw=raw, headers=headers).json()["duplicate"] is True
    _wait_processed(b, "whd_f")
    assert calls == ["whd_f", "whd_f"]


def test_no_secret_in_live_mode_refuses_webhooks(start_backend):
    b = start_backend(webhook_secret=None)
    raw, headers = signed(_envelope("whd_n"), webhook_id="whd_n")
    assert_error(post(b.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")


def test_parse_timestamp_forms():
    assert parse_timestamp("1700000000") == 1700000000
    assert parse_timestamp("1700000000000") == 1700000000
    assert parse_timestamp("2023-11-14T22:13:20Z") == 1700000000
    assert parse_timestamp("inf") is None and parse_timestamp("soon") is None
