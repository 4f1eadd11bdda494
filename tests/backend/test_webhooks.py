"""The signed-webhook receiver: signature, age, replay, duplicates, unknown types,
concurrent deliveries, and processing (grant found, hooks called)."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from backend.webhooks import WebhookEvent
from services.settings import SANDBOX_WEBHOOK_SECRET, ConfigError, load_settings
from services.store.schema import webhook_events
from tests.backend.helpers import WEBHOOK_SECRET, assert_error, connect, post, signed

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


OTHER_SECRET = "whsec_" + base64.b64encode(b"a-second-webhook-secret-for-rotation").decode()
THIRD_SECRET = "whsec_" + base64.b64encode(b"a-third-webhook-secret-nobody-accepts").decode()
#: A fixed instant for the window tests: the backend's clock does not move during them.
T = 1_800_000_000


@pytest.mark.parametrize("mangle", ["missing", "wrong_secret", "other_body", "garbage",
                                    "not_base64", "other_version", "empty_entry"])
def test_bad_signature_is_401_and_not_stored(backend, log_of, mangle):
    log = log_of(backend)
    raw, headers = signed(_envelope("whd_bad"), webhook_id="whd_bad")
    good = headers["webhook-signature"]
    if mangle == "missing":
        del headers["webhook-signature"]
    elif mangle == "wrong_secret":
        headers = signed(raw, secret=OTHER_SECRET, webhook_id="whd_bad")[1]
    elif mangle == "other_body":
        raw = raw.replace(b"COMPLETED", b"FAILED")
    elif mangle == "garbage":
        headers["webhook-signature"] = "Z" * 64
    elif mangle == "not_base64":
        headers["webhook-signature"] = "v1,!!!!"
    elif mangle == "other_version":
        headers["webhook-signature"] = "v2," + good.split(",", 1)[1]
    else:
        headers["webhook-signature"] = "v1,"
    assert_error(post(backend.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")
    assert _rows(backend) == []
    assert log.problems() == []


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp"])
def test_missing_id_or_timestamp_is_401(backend, header):
    raw, headers = signed(_envelope("whd_m"), webhook_id="whd_m")
    del headers[header]
    assert_error(post(backend.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")
    assert _rows(backend) == []


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamp_inside_the_window_is_accepted(start_backend, offset):
    b = start_backend(clock=lambda: T + 0.0)
    raw, headers = signed(_envelope("whd_in"), webhook_id="whd_in", ts=T + offset)
    assert post(b.url, HOOK, raw=raw, headers=headers).status_code == 200


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_timestamp_outside_the_window_is_401(start_backend, offset):
    b = start_backend(clock=lambda: T + 0.0)
    raw, headers = signed(_envelope("whd_old"), webhook_id="whd_old", ts=T + offset)
    assert_error(post(b.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")
    assert _rows(b) == []


@pytest.mark.parametrize("ts", ["", "yesterday", "nan", "1e9", "-5", "2027-01-15T08:00:00Z",
                                "1800000000.5"])
def test_missing_or_unreadable_timestamp_is_401(start_backend, ts):
    b = start_backend(clock=lambda: T + 0.0)
    raw, headers = signed(_envelope("whd_ts"), webhook_id="whd_ts", ts=T)
    headers["webhook-timestamp"] = ts
    assert_error(post(b.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")


def test_configured_max_age(start_backend):
    b = start_backend(webhook_max_age=60, clock=lambda: T + 0.0)
    raw, headers = signed(_envelope("whd_60"), webhook_id="whd_60", ts=T - 60)
    assert post(b.url, HOOK, raw=raw, headers=headers).status_code == 200
    raw, headers = signed(_envelope("whd_61"), webhook_id="whd_61", ts=T - 61)
    assert_error(post(b.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")


def test_a_captured_delivery_resent_with_a_fresh_id_and_time_is_refused(start_backend):
    now = [float(T)]
    b = start_backend(clock=lambda: now[0])
    raw, captured = signed(_envelope("whd_cap"), webhook_id="whd_cap", ts=T)
    assert post(b.url, HOOK, raw=raw, headers=captured).json()["duplicate"] is False
    _wait_processed(b, "whd_cap")
    now[0] += 3600  # an hour later the attacker replays it under a new id and time
    forged = {**captured, "webhook-id": "whd_fresh", "webhook-timestamp": str(T + 3600)}
    assert_error(post(b.url, HOOK, raw=raw, headers=forged), 401, "UNAUTHENTICATED")
    forged = {**captured, "webhook-id": "whd_fresh"}  # inside the window, new id only
    now[0] = T + 10
    assert_error(post(b.url, HOOK, raw=raw, headers=forged), 401, "UNAUTHENTICATED")
    # Resent as captured, within the window: a duplicate, answered 200 and processed once.
    again = post(b.url, HOOK, raw=raw, headers=captured)
    assert again.status_code == 200 and again.json() == {"success": True, "duplicate": True}
    assert [r.webhook_id for r in _rows(b)] == ["whd_cap"]
    assert [e.webhook_id for e in b.hooks] == ["whd_cap"]


def test_only_the_signed_id_counts(backend):
    """Unsigned headers (the old X-Webhook-Id) and the body's own id never name the event."""
    raw, headers = signed(_envelope("whd_body_id"), webhook_id="whd_signed")
    first = post(backend.url, HOOK, raw=raw, headers={**headers, "X-Webhook-Id": "whd_a"})
    again = post(backend.url, HOOK, raw=raw, headers={**headers, "X-Webhook-Id": "whd_b"})
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert [r.webhook_id for r in _rows(backend)] == ["whd_signed"]


def test_rotation_accepts_the_previous_secret_beside_the_new_one(start_backend):
    b = start_backend(webhook_secret=OTHER_SECRET, webhook_secret_previous=WEBHOOK_SECRET)
    for n, secret in enumerate([WEBHOOK_SECRET, OTHER_SECRET, [THIRD_SECRET, OTHER_SECRET],
                                [WEBHOOK_SECRET, OTHER_SECRET]]):
        raw, headers = signed(_envelope(f"whd_rot{n}"), secret=secret, webhook_id=f"whd_rot{n}")
        assert post(b.url, HOOK, raw=raw, headers=headers).status_code == 200, secret
    raw, headers = signed(_envelope("whd_rot_x"), secret=THIRD_SECRET, webhook_id="whd_rot_x")
    assert_error(post(b.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")


def test_without_a_rotation_the_old_secret_is_refused(start_backend):
    b = start_backend(webhook_secret=OTHER_SECRET)
    raw, headers = signed(_envelope("whd_old_key"), webhook_id="whd_old_key")
    assert_error(post(b.url, HOOK, raw=raw, headers=headers), 401, "UNAUTHENTICATED")


def test_a_secret_that_is_not_whsec_stops_the_backend(backend):
    from backend.app import create_app

    for bad in ("plain-text-secret-of-some-length", "whsec_" + "y" * 30,
                "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ConfigError):
            create_app(replace(backend.settings, webhook_secret=bad), client=backend.client,
                       db=backend.db)


def test_webhook_secret_settings(tmp_path):
    none = tmp_path / "absent.toml"
    s = load_settings({"KRYPTOS_WEBHOOK_SECRET": WEBHOOK_SECRET,
                       "KRYPTOS_WEBHOOK_SECRET_PREVIOUS": OTHER_SECRET}, secrets_path=none)
    assert (s.webhook_secret, s.webhook_secret_previous) == (WEBHOOK_SECRET, OTHER_SECRET)
    assert WEBHOOK_SECRET not in repr(s) and OTHER_SECRET not in repr(s)
    with pytest.raises(ConfigError, match="whsec_"):
        load_settings({"KRYPTOS_WEBHOOK_SECRET": "plain"}, secrets_path=none)
    with pytest.raises(ConfigError, match="KRYPTOS_WEBHOOK_SECRET_PREVIOUS"):
        load_settings({"KRYPTOS_WEBHOOK_SECRET_PREVIOUS": "whsec_%%%"}, secrets_path=none)
    live = {"KRYPTOS_CLIENT_ID": "a", "KRYPTOS_CLIENT_SECRET": "b"}
    with pytest.raises(ConfigError, match="sandbox"):
        load_settings({**live, "KRYPTOS_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET},
                      secrets_path=none)
    assert load_settings({}, secrets_path=none).effective_webhook_secret == SANDBOX_WEBHOOK_SECRET


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


def test_signed_but_unusable_bodies_are_400(backend):
    raw, headers = signed(b"not json", webhook_id="whd_nj")
    assert_error(post(backend.url, HOOK, raw=raw, headers=headers), 400, "INVALID_REQUEST")
    assert _rows(backend) == []


def test_a_body_without_its_own_id_is_stored_under_the_signed_id(backend):
    raw, headers = signed({"event": "integration.updated"}, webhook_id="whd_noid")
    assert post(backend.url, HOOK, raw=raw, headers=headers).status_code == 200
    assert _rows(backend)[0].webhook_id == "whd_noid"


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
