"""What one create-link-token costs the database: its transactions and statements, counted
with SQLAlchemy's cursor events on the backend's own engine (SQLite), for a new customer
and a returning one. A new statement or transaction on this path shows here first.

The audit anchor's own read (`SELECT audit_log.hash ...`, in a transaction of its own, at
most once per anchor interval, from the call's thread or the anchor's timer) is left out:
it belongs to the anchor's timing, not to the call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from tests.backend.helpers import auth, connect, post

LINK = "/api/kryptos/create-link-token"


ANCHOR_READ = "SELECT audit_log.hash"


@contextmanager
def counted(engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def statement(conn, cursor, text, params, context, many) -> None:
        seen.append(" ".join(text.split()[:2]))

    event.listen(engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)


def transactions(seen: list[str]) -> int:
    """BEGINs, less the anchor's reads."""
    return sum(s.startswith("BEGIN") for s in seen) - seen.count(ANCHOR_READ)


def work(seen: list[str]) -> list[str]:
    """The statements that do the call's work (not BEGIN, not a sync-level PRAGMA, not the
    anchor's read), by verb."""
    return [s.split()[0] for s in seen
            if not s.startswith(("BEGIN", "PRAGMA")) and s != ANCHOR_READ]


def test_a_link_token_is_four_transactions_and_seven_statements(backend, sandbox):
    engine = backend.backend.db.engine
    assert post(backend.url, LINK, headers=auth("cost-new")).status_code == 200  # warm
    with counted(engine) as seen:
        assert post(backend.url, LINK, headers=auth("cost-new")).status_code == 200
    # The rate limits (one count of both buckets, one insert of both hits), `requested`
    # (head, insert), the vault read, the outcome (head, insert).
    assert transactions(seen) == 4, seen
    assert work(seen) == ["SELECT", "INSERT", "SELECT", "INSERT", "SELECT", "SELECT",
                          "INSERT"], seen

    connect(backend.url, sandbox, "cost-back")
    assert post(backend.url, LINK, headers=auth("cost-back")).status_code == 200
    with counted(engine) as seen:
        answer = post(backend.url, LINK, headers=auth("cost-back"))
    assert answer.status_code == 200 and answer.json()["isAuthorized"] is True
    # A returning customer's grant and token come from the same one read.
    assert transactions(seen) == 4, seen
    assert len(work(seen)) == 7, seen
