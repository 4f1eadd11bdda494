"""The backend's tables on SQLite and PostgreSQL: migration 0003, the vault's customer
lookup and revoked marker, the DB-backed rate limit, exchange-once and webhook storage."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from sqlalchemy import inspect, select

from backend.errors import ApiError
from backend.exchange import ExchangeOnce
from backend.ratelimit import RateLimiter, take
from backend.webhook_auth import StandardWebhooks
from backend.webhooks import WebhookHub, process_event
from services.store import TokenVault
from services.store.db import MIGRATIONS_DIR
from services.store.schema import webhook_events
from tests.backend.helpers import WEBHOOK_SECRET, signed
from tests.services.store.conftest import db, db_url, pg_base_url  # noqa: F401


def test_migration_0003_schema(db):  # noqa: F811
    with db.read() as conn:
        insp = inspect(conn)
        cols = {c["name"] for c in insp.get_columns("vault_tokens")}
        assert "revoked_at" in cols
        assert {c["name"] for c in insp.get_columns("webhook_events")} >= {
            "id", "webhook_id", "type", "grant_id", "received_at", "payload", "processed_at"}
        assert {"backend_exchanges", "backend_rate_hits"} <= set(insp.get_table_names())
        assert any(ix["column_names"][:1] == ["customer_ref"]
                   for ix in insp.get_indexes("vault_tokens"))
        assert any(ix["column_names"][:1] == ["grant_id"]
                   for ix in insp.get_indexes("webhook_events"))
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert version == script.get_current_head()
    assert "0003_backend" in {r.revision for r in script.iterate_revisions(version, "base")}


def test_vault_customer_lookup_and_revoked_marker(db):  # noqa: F811
    vault = TokenVault(db, Fernet.generate_key())
    vault.put_for_customer("cgrant_old", "cat_old_token_123", "c1", workspace_id="ws")
    vault.put_for_customer("cgrant_new", "cat_new_token_456", "c1")
    vault.put_for_customer("cgrant_other", "cat_other_token_789", "c2")
    assert vault.for_customer("c1").grant_id == "cgrant_new"
    vault.mark_revoked("cgrant_new")
    assert vault.for_customer("c1").grant_id == "cgrant_old"
    vault.mark_revoked("cgrant_old")
    assert vault.for_customer("c1") is None
    assert vault.get("cgrant_old").revoked_at is not None
    assert vault.for_customer("c2").grant_id == "cgrant_other"
    vault.put_for_customer("cgrant_old", "cat_old_token_123", "c1")  # exchanged again
    assert vault.for_customer("c1").grant_id == "cgrant_old"


def test_rate_limit_is_shared_and_exact_under_concurrency(db):  # noqa: F811
    now = [1000.0]
    limiters = [RateLimiter(db, 5, clock=lambda: now[0]) for _ in range(2)]  # two "replicas"
    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(lambda i: limiters[i % 2].hit("link_token:c"), range(20)))
    assert sum(w == 0 for w in waits) == 5
    assert all(0 < w <= 60 for w in waits if w)
    assert limiters[0].hit("link_token:other") == 0
    now[0] += 61
    assert limiters[1].hit("link_token:c") == 0


def test_take_checks_several_limits_in_order_in_one_transaction(db):  # noqa: F811
    """The customer's limit, then the endpoint's: a full first limit takes no slot at all;
    a full second one keeps the first's slot taken; the wait is the full bucket's own."""
    now = [1000.0]
    customer = RateLimiter(db, 3, clock=lambda: now[0])
    endpoint = RateLimiter(db, 2, clock=lambda: now[0])
    checks = [(customer, "customer:a"), (endpoint, "link_token:a")]
    assert [take(db, checks) for _ in range(2)] == [(-1, 0.0), (-1, 0.0)]
    now[0] += 10
    assert take(db, checks) == (1, 50.0)  # the endpoint's 2 are used; 50 s until one frees
    # ... but the customer's third slot was taken by that call: its limit is full now.
    assert take(db, checks) == (0, 50.0)
    assert take(db, [(endpoint, "link_token:b")]) == (-1, 0.0)  # other buckets are apart
    assert take(db, [(None, "x"), (RateLimiter(db, 0), "y")]) == (-1, 0.0)  # no checks
    now[0] += 51  # the two first calls' hits left the window; the third's is still in
    assert [take(db, checks) for _ in range(2)] == [(-1, 0.0), (-1, 0.0)]
    assert take(db, checks) == (0, 9.0)  # the customer's 3: 1010, 1061, 1061


def test_the_customers_stored_token_is_read_once(db):  # noqa: F811
    vault = TokenVault(db, Fernet.generate_key())
    assert vault.reveal_for_customer("c1") is None
    vault.put_for_customer("cgrant_one", "cat_one_token_123", "c1")
    entry, token = vault.reveal_for_customer("c1")
    assert (entry.grant_id, token) == ("cgrant_one", "cat_one_token_123")
    vault.mark_revoked("cgrant_one")
    assert vault.reveal_for_customer("c1") is None


def test_exchange_once_under_concurrency(db):  # noqa: F811
    calls: list[int] = []
    gate = threading.Event()

    def exchange() -> str:
        calls.append(1)
        gate.wait(5)
        return "cgrant_once"

    once = [ExchangeOnce(db), ExchangeOnce(db)]
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(once[i % 2].run, "c", "public_abc", exchange) for i in range(6)]
        threading.Timer(0.3, gate.set).start()
        results = [f.result(timeout=20) for f in futures]
    assert results == ["cgrant_once"] * 6 and len(calls) == 1


def test_exchange_once_remembers_refusals_and_forgets_outages(db):  # noqa: F811
    once = ExchangeOnce(db)

    def refused() -> str:
        raise ApiError(409, "TOKEN_EXPIRED", "expired")

    def down() -> str:
        raise ApiError(503, "UPSTREAM_UNAVAILABLE", "down")

    for _ in range(2):
        try:
            once.run("c", "public_r", refused)
        except ApiError as err:
            assert err.code == "TOKEN_EXPIRED"
    try:
        once.run("c", "public_d", down)
    except ApiError as err:
        assert err.status == 503
    assert once.run("c", "public_d", lambda: "cgrant_later") == "cgrant_later"


def test_webhook_store_once_under_concurrency(db):  # noqa: F811
    hub = WebhookHub(db)
    raw, headers = signed({"id": "whd_1", "event": "integration.failed", "data": {}},
                          secret=WEBHOOK_SECRET, webhook_id="whd_1")
    delivery = StandardWebhooks([WEBHOOK_SECRET]).verify(raw, headers)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: hub.store(raw, delivery), range(16)))
    assert sum(new for _, new in results) == 1 and len({rid for rid, _ in results}) == 1
    seen = []
    event = process_event(db, results[0][0], hooks=[seen.append])
    assert event.processed_at is not None and seen[0].type == "integration.failed"
    assert process_event(db, results[0][0], hooks=[seen.append]).processed_at is not None
    assert len(seen) == 1  # processed events are left alone
    with db.read() as conn:
        assert len(conn.execute(select(webhook_events)).all()) == 1


def test_customer_lookup_uses_the_index(tmp_path):
    from services.store import open_database

    database = open_database(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        with database.read() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM vault_tokens WHERE customer_ref = 'c' "
                "AND revoked_at IS NULL ORDER BY updated_at DESC LIMIT 1").all()
        assert any("USING INDEX ix_vault_tokens_customer_ref" in str(row) for row in plan)
        assert not any("SCAN vault_tokens" in str(row) for row in plan)
    finally:
        database.dispose()
