"""What one create-link-token costs the database: its transactions and statements, counted
with SQLAlchemy's cursor events on the backend's own engine (SQLite), for a new customer
and a returning one. A new statement or transaction on this path shows here first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from tests.backend.helpers import auth, connect, post

LINK = "/api/kryptos/create-link-token"


@contextmanager
def counted(engine) -> Iterator[dict[str, list[str]]]:
    seen: dict[str, list[str]] = {"statements": [], "checkouts": []}

    def statement(conn, cursor, text, params, context, many) -> None:
        seen["statements"].append(" ".join(text.split()[:3]))

    def checkout(*_args) -> None:
        seen["checkouts"].append("checkout")

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "checkout", checkout)


def _work(statements: list[str]) -> list[str]:
    """The statements that do the call's work (not BEGIN, not a sync-level PRAGMA)."""
    return [s for s in statements if not s.startswith(("BEGIN", "PRAGMA"))]


def test_a_link_token_is_four_transactions_and_seven_statements(backend, sandbox):
    engine = backend.backend.db.engine
    assert post(backend.url, LINK, headers=auth("cost-new")).status_code == 200  # warm
    with counted(engine) as seen:
        assert post(backend.url, LINK, headers=auth("cost-new")).status_code == 200
    # The rate limits (one count of both buckets, one insert of both hits), `requested`
    # (head, insert), the vault read, the outcome (head, insert).
    assert len(seen["checkouts"]) == 4, seen
    assert [s.split()[0] for s in _work(seen["statements"])] == [
        "SELECT", "INSERT", "SELECT", "INSERT", "SELECT", "SELECT", "INSERT"], seen

    connect(backend.url, sandbox, "cost-back")
    assert post(backend.url, LINK, headers=auth("cost-back")).status_code == 200
    with counted(engine) as seen:
        answer = post(backend.url, LINK, headers=auth("cost-back"))
    assert answer.status_code == 200 and answer.json()["isAuthorized"] is True
    # A returning customer's grant and token come from the same one read.
    assert len(seen["checkouts"]) == 4, seen
    assert len(_work(seen["statements"])) == 7, seen
