"""One "exchange a public token once" for the console and the backend (one table): a token
exchanged on one side is answered with the same grant on the other, without asking Kryptos
again; and the migration that dropped the console's own table keeps its rows."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select, text

from services.operations import Operations
from services.store import Database, open_database
from services.store.db import MIGRATIONS_DIR
from services.store.schema import backend_exchanges
from tests.backend.helpers import auth, connect, post
from tests.services.operations.conftest import TIERS, actor
from tests.services.store.conftest import db_url, pg_base_url  # noqa: F401

EXCHANGE = "/api/kryptos/exchange-token"
SUPPORT = actor("support")


def _exchanges_upstream(sandbox) -> list[dict]:
    return [r for r in sandbox.requests_log() if r["method"] == "POST"
            and "exchange" in r["path"]]


def _ops(backend) -> Operations:
    b = backend.backend
    return Operations(b.client, b.audit, b.vault, TIERS, max_workers=2)


def test_a_token_the_backend_exchanged_is_the_same_grant_in_the_console(backend, sandbox):
    done = connect(backend.url, sandbox, "crm-5")
    gid = backend.backend.vault.for_customer("crm-5").grant_id
    sandbox.clear_requests_log()
    row = _ops(backend).connect.exchange_public_token(SUPPORT, "crm-5",
                                                      done["public"]["public_token"])
    assert row.grant_id == gid and row.has_token
    assert _exchanges_upstream(sandbox) == []


def test_a_token_the_console_exchanged_is_the_same_grant_at_the_backend(backend, sandbox):
    public = sandbox.create_public_token(kind="guest")["public_token"]
    row = _ops(backend).connect.exchange_public_token(SUPPORT, "crm-6", public)
    sandbox.clear_requests_log()
    again = post(backend.url, EXCHANGE, {"public_token": public}, headers=auth("crm-6"))
    assert again.status_code == 200 and again.json() == {"success": True}
    assert _exchanges_upstream(sandbox) == []
    assert backend.backend.vault.for_customer("crm-6").grant_id == row.grant_id
    other = post(backend.url, EXCHANGE, {"public_token": public}, headers=auth("crm-7"))
    assert other.status_code == 409 and other.json()["code"] == "TOKEN_ALREADY_USED"


def test_the_migration_keeps_the_consoles_exchanged_tokens(db_url):  # noqa: F811
    db = Database(db_url)
    now = datetime.now(UTC)
    with db.write() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0010_session_hash")
        conn.execute(text(
            "INSERT INTO vault_tokens (grant_id, token_ciphertext, masked_token, customer_ref, "
            "created_at, updated_at) VALUES ('cgrant_m1', 'x', 'cat_...1', 'crm-m', :n, :n)"),
            {"n": now})
        conn.execute(text(
            "INSERT INTO token_exchanges (public_token_sha256, grant_id, created_at) VALUES "
            "(:h1, 'cgrant_m1', :n), (:h2, 'cgrant_gone', :n)"),
            {"h1": "a" * 64, "h2": "b" * 64, "n": now})
    db.dispose()
    db = open_database(db_url)
    try:
        with db.read() as conn:
            assert "token_exchanges" not in inspect(conn).get_table_names()
            rows = {r.token_hash: r for r in conn.execute(select(backend_exchanges))}
        assert (rows["a" * 64].state, rows["a" * 64].grant_id,
                rows["a" * 64].customer_ref) == ("done", "cgrant_m1", "crm-m")
        assert (rows["b" * 64].grant_id, rows["b" * 64].customer_ref) == ("cgrant_gone", "")
    finally:
        db.dispose()
