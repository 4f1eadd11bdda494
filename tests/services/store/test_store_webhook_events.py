"""The store's received webhooks (`WebhookEventStore`), on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from services.store import Database
from services.store.webhook_events import WebhookEventStore


def _event(kind: str, wallet: str = "w_1", uid: str = "anon_u1", **data: object) -> dict:
    return {"id": "x", "event": kind, "timestamp": "2026-12-01T10:00:00Z",
            "data": {"walletId": wallet, "uid": uid, "status": "COMPLETED", **data}}


def test_insert_once_by_webhook_id_even_concurrently(db: Database) -> None:
    store = WebhookEventStore(db)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(
            lambda _: store.insert("whd_same", "integration.updated",
                                   _event("integration.updated")), range(12)))
    assert sum(1 for _, new in results if new) == 1
    assert len({row_id for row_id, _ in results}) == 1
    event = store.get(results[0][0])
    assert event is not None and event.webhook_id == "whd_same"
    assert event.payload["data"]["walletId"] == "w_1" and event.wallet_id == "w_1"
    assert event.received_at.tzinfo is not None and event.processed_at is None
    with pytest.raises(ValueError):
        store.insert("", "integration.updated", {})


def test_mark_processed_is_kept_once_set(db: Database) -> None:
    store = WebhookEventStore(db)
    row_id, _ = store.insert("whd_1", "integration.created", _event("integration.created"))
    first = store.mark_processed(row_id, datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    store.mark_processed(row_id, datetime(2026, 12, 1, 11, 0, tzinfo=UTC))
    got = store.get(row_id)
    assert got is not None and got.processed_at == first


def test_for_grant_newest_first_with_the_users_unattached_events(db: Database) -> None:
    store = WebhookEventStore(db)
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    store.insert("whd_a", "integration.created", _event("integration.created"),
                 grant_id="cgrant_1", kryptos_user_id="anon_u1", received_at=t0)
    store.insert("whd_b", "integration.updated", _event("integration.updated"),
                 kryptos_user_id="anon_u1", received_at=t0 + timedelta(minutes=1))
    store.insert("whd_c", "integration.updated", _event("integration.updated", uid="anon_u2"),
                 grant_id="cgrant_2", kryptos_user_id="anon_u2",
                 received_at=t0 + timedelta(minutes=2))
    assert [e.webhook_id for e in store.for_grant("cgrant_1")] == ["whd_a"]
    both = store.for_grant("cgrant_1", kryptos_user_id="anon_u1")
    assert [e.webhook_id for e in both] == ["whd_b", "whd_a"]
    later = store.for_grant("cgrant_1", kryptos_user_id="anon_u1", since=t0)
    assert [e.webhook_id for e in later] == ["whd_b"]
    assert [e.webhook_id for e in store.for_grant("cgrant_1", 1, kryptos_user_id="anon_u1")
            ] == ["whd_b"]


def test_recent_by_type_and_time(db: Database) -> None:
    store = WebhookEventStore(db)
    now = datetime.now(UTC)
    store.insert("whd_old", "integration.failed", _event("integration.failed"),
                 received_at=now - timedelta(hours=30))
    store.insert("whd_new", "integration.failed", _event("integration.failed"),
                 received_at=now - timedelta(hours=1))
    store.insert("whd_ok", "integration.updated", _event("integration.updated"),
                 received_at=now)
    store.insert("whd_odd", "costbasis.completed", {"event": "costbasis.completed"},
                 received_at=now)
    assert [e.webhook_id for e in store.recent()] == ["whd_odd", "whd_ok", "whd_new",
                                                      "whd_old"]
    assert [e.webhook_id for e in store.recent(("integration.failed",))] == [
        "whd_new", "whd_old"]
    day = now - timedelta(hours=24)
    assert [e.webhook_id for e in store.recent(["integration.failed"], since=day)] == [
        "whd_new"]
    assert [e.webhook_id for e in store.recent(limit=2)] == ["whd_odd", "whd_ok"]
    odd = store.recent(("costbasis.completed",))[0]
    assert odd.wallet_id is None and odd.data == {}


def test_attach_user_ties_only_unattached_events(db: Database) -> None:
    store = WebhookEventStore(db)
    a, _ = store.insert("whd_1", "integration.created", _event("integration.created"),
                        kryptos_user_id="anon_u1")
    store.insert("whd_2", "integration.created", _event("integration.created"),
                 kryptos_user_id="anon_u1", grant_id="cgrant_old")
    store.insert("whd_3", "integration.created", _event("integration.created", uid="anon_u9"),
                 kryptos_user_id="anon_u9")
    attached = store.attach_user("anon_u1", "cgrant_new")
    assert [(e.id, e.grant_id) for e in attached] == [(a, "cgrant_new")]
    assert {e.webhook_id for e in store.for_grant("cgrant_old")} == {"whd_2"}
    assert store.attach_user("anon_u1", "cgrant_new") == []
