"""The read model's writes and SQL queries, on SQLite and PostgreSQL (the `db` fixture)."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime, timedelta

import pytest

from services.kryptos.models import Grant, Integration
from services.settings import parse_tiers
from services.store import Database, TokenVault
from services.store.errors import StoreError
from services.store.readmodel import (
    LAST_PAGE,
    GrantFilter,
    IntegrationsError,
    ReadModel,
    UserFacts,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TIERS = parse_tiers("Free=1000,Plus=10000,Unlimited=off")


def grant(n: int) -> Grant:
    return Grant(grant_id=f"cgrant_{n:05d}", workspace_id="ws_1", scopes="integrations:read",
                 created_at=T0 + timedelta(hours=n), expires_at=None)


def integ(wallet: str, status: str = "COMPLETED", synced: bool = True,
          txs: int | None = 10) -> Integration:
    return Integration(
        wallet_id=wallet, provider="coinbase", provider_public_name="Coinbase",
        public_address=None, alias=None, status=status, message=None, last_sync_log=None,
        limit_exceeded=False, added_on=None, last_synced_at=T0 if synced else None,
        category="exchange", type="api", total_transactions=txs)


@pytest.fixture
def vault(db: Database, vault_key: bytes) -> TokenVault:
    return TokenVault(db, vault_key)


@pytest.fixture
def rm(db: Database) -> ReadModel:
    return ReadModel(db, TIERS)


def seeded(rm: ReadModel, vault: TokenVault, n: int = 12) -> None:
    """n listed grants; the even ones have a token (customer-<n>); grant 99 only in the vault."""
    for i in range(0, n, 2):
        vault.put(grant(i).grant_id, f"cat_secret{i:04d}xyz", customer_ref=f"customer-{i}")
    vault.put("cgrant_00099", "cat_secret0099xyz", customer_ref="gone-customer")
    rm.apply_grants([grant(i) for i in range(n)])


def test_apply_grants_joins_the_vault_and_revokes_the_unlisted(rm, vault):
    seeded(rm, vault)
    counts = rm.counts()
    assert (counts.total, counts.active, counts.revoked) == (13, 12, 1)
    assert (counts.with_token, counts.without_token) == (7, 6)
    assert counts.queues["no_token"] == 6
    row = rm.grant("cgrant_00002")
    assert row is not None and row.grant.has_token and row.grant.customer_ref == "customer-2"
    assert row.grant.masked_token == "cat_se...yz"
    assert rm.grant("cgrant_00099").grant.status == "revoked"
    assert rm.grant("cgrant_00003").grant.customer_ref is None
    # A grant that disappears from the list is revoked; one listed again is active again.
    v = rm.version()
    applied = rm.apply_grants([grant(i) for i in range(1, 12)] + [grant(99)])
    assert (applied.revoked, applied.reactivated) == (1, 1)
    assert rm.grant("cgrant_00000").grant.status == "revoked"
    assert rm.grant("cgrant_00099").grant.status == "active"
    assert rm.version() > v


def test_an_unchanged_list_writes_nothing_and_keeps_the_version(rm, vault):
    seeded(rm, vault)
    v = rm.version()
    applied = rm.apply_grants([grant(i) for i in range(12)])
    assert applied.written == 0 and applied.revoked == 0
    assert rm.version() == v
    items = [integ("w1"), integ("w2", "FAILED")]
    rm.apply_integrations("cgrant_00002", items)
    v = rm.version()
    rm.apply_integrations("cgrant_00002", items)
    assert rm.version() == v  # same integrations: only the times move
    rm.apply_integrations("cgrant_00002", items[:1])
    assert rm.version() == v + 1


def test_integrations_aggregates_and_work_queues(rm, vault):
    seeded(rm, vault)
    rm.apply_integrations_many([
        ("cgrant_00000", [integ("a", "FAILED"), integ("b", "PARTIALLY SYNCED")]),
        ("cgrant_00002", [integ("c", "ONGOING"), integ("d", synced=False)]),
        ("cgrant_00004", [integ("e")]),
        ("cgrant_00006", []),
        ("cgrant_00008", IntegrationsError("The data API refused the token.")),
    ])
    c = rm.counts()
    assert c.queues == {"failing": 1, "syncing": 1, "never_synced": 1, "not_readable": 1,
                        "no_token": 6}
    assert (c.integrations, c.integrations_failing, c.integrations_syncing) == (5, 2, 1)
    assert c.never_refreshed == 1  # cgrant_00010 has a token and was not read yet
    by_state = {s: [r.grant_id for r in rm.page(GrantFilter(integration_status=s)).rows]
                for s in ("failing", "syncing", "ok", "empty", "unreadable")}
    assert by_state == {"failing": ["cgrant_00000"], "syncing": ["cgrant_00002"],
                        "ok": ["cgrant_00004"], "empty": ["cgrant_00006"],
                        "unreadable": ["cgrant_00008"]}
    assert rm.page(GrantFilter(queue="never_synced")).rows[0].grant_id == "cgrant_00002"
    detail = rm.grant("cgrant_00008")
    assert detail.grant.unreadable and "refused" in detail.grant.error_message
    detail = rm.grant("cgrant_00000")
    assert [i.status for i in detail.integrations] == ["FAILED", "PARTIALLY SYNCED"]
    assert detail.grant.total_transactions == 20
    # Unknown grants are ignored rather than invented.
    rm.apply_integrations("cgrant_77777", [integ("x")])
    assert rm.grant("cgrant_77777") is None


def test_user_info_limits_and_the_consoles_own_changes(rm, vault):
    seeded(rm, vault)
    rm.apply_userinfo("cgrant_00000", UserFacts("anon_1", True, 1000))
    rm.apply_userinfo("cgrant_00002", UserFacts("anon_2", True, None))  # limiter off
    rm.apply_userinfo("cgrant_00004", UserFacts("user-4", False, None))
    rm.apply_userinfo("cgrant_00006", UserFacts("anon_6", True, 777))
    v = rm.version()
    rm.apply_limit_change("cgrant_00006", 10000, True)
    assert rm.version() == v + 1
    row = rm.grant("cgrant_00006").grant
    assert (row.transaction_limit, row.limiter_enabled, row.limit_source) == (10000, True,
                                                                              "console")
    ids = lambda f: [r.grant_id for r in rm.page(f, sort="grant_id").rows]  # noqa: E731
    assert ids(GrantFilter(tier="Free")) == ["cgrant_00000"]
    assert ids(GrantFilter(tier="Plus")) == ["cgrant_00006"]
    assert ids(GrantFilter(tier="Unlimited")) == ["cgrant_00002"]
    assert ids(GrantFilter(limit=1000)) == ["cgrant_00000"]
    assert ids(GrantFilter(limit="off")) == ["cgrant_00002"]
    rm.apply_limit_change("cgrant_00000", 4242, None)
    assert ids(GrantFilter(limit="custom")) == ["cgrant_00000"]
    assert ids(GrantFilter(kind="linked")) == ["cgrant_00004"]
    assert ids(GrantFilter(kind="guest")) == ["cgrant_00000", "cgrant_00002", "cgrant_00006"]
    assert len(ids(GrantFilter(kind="unknown"))) == 9
    with pytest.raises(StoreError):
        rm.page(GrantFilter(tier="Gold"))
    # The user id is searchable once known.
    assert ids(GrantFilter(search="ANON_6")) == ["cgrant_00006"]


def test_search_sort_and_paging_in_sql(rm, vault):
    seeded(rm, vault, n=30)
    page = rm.page(GrantFilter(status="active"), sort="created_at", page=2, page_size=7,
                   descending=True)
    assert page.total == 30 and page.pages == 5
    assert [r.grant_id for r in page.rows] == [f"cgrant_{i:05d}" for i in range(22, 15, -1)]
    assert rm.page(GrantFilter(search="customer-1"), sort="grant_id").total == 5  # 10..18
    assert rm.page(GrantFilter(search="customer-1", search_mode="prefix")).total == 5
    assert rm.page(GrantFilter(search="CGRANT_0002", search_mode="prefix")).total == 10
    assert rm.page(GrantFilter(search="grant_0002", search_mode="prefix")).total == 0
    assert rm.page(GrantFilter(search="grant_0002")).total == 10
    assert rm.page(GrantFilter(search="ustomer-2")).total == 6  # substring: 2, 20..28
    assert rm.page(GrantFilter(search="100%_")).total == 0  # wildcards are literal
    assert rm.page(GrantFilter(has_token=False)).total == 15
    assert rm.page(GrantFilter(status="active"), page=9, page_size=7).rows == ()
    with pytest.raises(StoreError):
        rm.page(sort="token_ciphertext")
    with pytest.raises(StoreError):
        rm.page(page_size=5000)


def test_csv_streams_in_chunks_and_is_formula_safe(rm, vault):
    seeded(rm, vault, n=25)
    vault.update("cgrant_00004", customer_ref="=HYPERLINK(\"http://x\")")
    rm.apply_grants([grant(i) for i in range(25)])
    pieces = list(rm.csv_chunks(GrantFilter(status="active"), chunk=10))
    assert len(pieces) == 4  # header + 10 + 10 + 5
    rows = list(csv.DictReader(io.StringIO("".join(pieces))))
    assert [r["grant_id"] for r in rows] == [f"cgrant_{i:05d}" for i in range(25)]
    assert rows[4]["customer_ref"].startswith("'=")
    out = io.StringIO()
    assert rm.iter_csv(GrantFilter(has_token=True), out, sort="created_at", chunk=4) == 14
    assert "cat_secret" not in out.getvalue()  # never a token


def test_freshness_and_sync_state(rm, vault):
    assert rm.freshness().as_of() == "not synced yet"
    seeded(rm, vault)
    now = datetime.now(UTC)
    rm.set_sync_state({"last_full_sync": (now - timedelta(seconds=12)).isoformat()})
    fresh = rm.freshness()
    assert fresh.rows == 13 and fresh.never_refreshed == 6  # active, with a token
    assert fresh.as_of(now) == "as of 12 s ago"
    assert fresh.is_stale(10, now) and not fresh.is_stale(60, now)
    assert fresh.oldest <= fresh.newest
    assert fresh.never_refreshed_exact
    assert rm.stale_rows(now + timedelta(seconds=1)) == (6, True)
    rm.apply_integrations("cgrant_00000", [integ("w")])
    assert rm.stale_rows(now - timedelta(seconds=60)) == (5, True)
    assert rm.stale_rows(now + timedelta(seconds=60)) == (6, True)  # 5 never read, 1 old
    # Rows untouched by a full sync still say when the list last confirmed them.
    assert rm.grant("cgrant_00000").grant.grants_seen_at >= now - timedelta(seconds=13)


def test_row_count_is_cached_per_version_and_sees_every_write(rm, vault):
    assert rm.row_count() == 0
    seeded(rm, vault)
    assert rm.row_count() == 13 == rm.counts().total
    vault.put("cgrant_00700", "cat_secret0700xyz")
    rm.apply_grant(None, vault.get("cgrant_00700"))
    assert rm.row_count() == 14  # a new version: counted again
    rm._counts_cache = None  # noqa: SLF001 - the count of its own, not the counts' total
    rm.mark_revoked("cgrant_00700")
    assert rm.row_count() == 14


def test_mark_revoked_shows_at_once(rm, vault):
    seeded(rm, vault)
    v = rm.version()
    rm.mark_revoked("cgrant_00002")
    assert rm.version() == v + 1
    assert rm.grant("cgrant_00002").grant.status == "revoked"
    assert rm.counts().revoked == 2


def test_a_new_grant_from_the_console_shows_at_once(rm, vault):
    seeded(rm, vault)
    entry = vault.put("cgrant_00500", "cat_newtoken500xyz", customer_ref="fresh")
    v = rm.version()
    rm.apply_grant(None, entry)  # just exchanged: not in the grants list yet
    row = rm.grant("cgrant_00500").grant
    assert (row.status, row.has_token, row.customer_ref) == ("active", True, "fresh")
    assert rm.version() == v + 1 and rm.counts().active == 13
    rm.apply_grants([grant(i) for i in range(12)] + [grant(500)])  # the list agrees
    assert rm.grant("cgrant_00500").grant.created_at == grant(500).created_at


def test_stored_tokens_show_before_any_sync_and_the_sync_then_agrees(rm, vault):
    for i in range(5):
        vault.put(grant(i).grant_id, f"cat_secret{i:04d}xyz", customer_ref=f"customer-{i}",
                  user_kind="guest")
    ids = [grant(i).grant_id for i in range(5)] + ["cgrant_77777"]  # the last not stored
    assert rm.apply_stored_tokens(ids, revoked=[grant(4).grant_id]) == 5
    counts = rm.counts()
    assert (counts.total, counts.active, counts.revoked, counts.with_token) == (5, 4, 1, 5)
    row = rm.grant(grant(1).grant_id).grant
    assert (row.customer_ref, row.user_kind, row.masked_token) == ("customer-1", "guest",
                                                                   "cat_se...yz")
    assert rm.freshness().last_full_sync is None
    v = rm.version()
    assert rm.apply_stored_tokens(ids, revoked=[grant(4).grant_id]) == 0  # nothing differs
    assert rm.version() == v
    # The first full sync writes the rows whole (created_at from the list; the unlisted
    # grant 4 stays revoked); then all agree.
    applied = rm.apply_grants([grant(i) for i in range(4)])
    assert rm.grant(grant(4).grant_id).grant.status == "revoked"
    assert applied.written == 5 and rm.grant(grant(2).grant_id).grant.created_at == \
        grant(2).created_at
    assert rm.apply_grants([grant(i) for i in range(4)]).written == 0


def test_another_process_sees_a_change_within_two_seconds(rm, vault, db_url):
    """Two real processes: a change made by one moves the version the other polls."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    seeded(rm, vault)
    v = rm.version()
    code = ("import sys, time; from services.store import open_database;"
            "from services.store.readmodel import ReadModel;"
            "rm = ReadModel(open_database(sys.argv[1])); time.sleep(0.5);"
            "rm.mark_revoked('cgrant_00004'); print(time.time(), flush=True)")
    root = Path(__file__).resolve().parents[3]
    child = subprocess.Popen([sys.executable, "-c", code, db_url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=root,
                             env={**os.environ, "PYTHONPATH": str(root)})
    try:
        deadline = time.time() + 30
        while rm.version() == v and time.time() < deadline:  # what a console's cache does
            time.sleep(0.1)
        seen = time.time()
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, err
    committed = float(out.split()[-1])
    assert rm.version() > v and seen - committed < 2.0
    assert rm.grant("cgrant_00004").grant.status == "revoked"


def test_counts_are_cached_per_version_and_see_another_writer(rm, vault, db):
    seeded(rm, vault)
    first = rm.counts()
    assert rm.counts() is first  # nothing written: the cached counts
    ReadModel(db, TIERS).mark_revoked("cgrant_00002")  # another writer (another process)
    after = rm.counts()
    assert after is not first and after.active == first.active - 1
    rm.apply_integrations("cgrant_00004", [integ("w1", "FAILED")])
    assert rm.counts().queues["failing"] == 1


def test_a_full_sync_in_batches_and_a_grant_stored_meanwhile(rm, vault):
    seeded(rm, vault, n=10)
    v = rm.version()
    applied = rm.apply_grant_batches(iter([[grant(i) for i in range(5)],
                                           [grant(i) for i in range(5, 10)]]))
    assert (applied.listed, applied.written, applied.revoked) == (10, 0, 0)
    assert rm.version() == v  # unchanged: nothing written

    def batches():  # a customer connects while the list is being read
        yield [grant(i) for i in range(5)]
        vault.put("cgrant_00777", "cat_secret0777xyz", customer_ref="new-customer")
        rm.apply_grant(None, vault.get("cgrant_00777"))
        yield [grant(i) for i in range(5, 9)]  # grant 9 has gone

    applied = rm.apply_grant_batches(batches())
    assert applied.listed == 9 and applied.revoked == 1
    assert rm.grant("cgrant_00009").grant.status == "revoked"
    assert rm.grant("cgrant_00777").grant.status == "active"  # left for the next sync
    assert rm.grant("cgrant_00099").grant.status == "revoked"


def test_prefix_search_uses_the_lower_case_indexes(rm, vault, db):
    seeded(rm, vault, n=30)
    if not db.is_sqlite:
        pytest.skip("the plan is checked on SQLite; PostgreSQL plans by statistics")
    from sqlalchemy import func, select

    from services.store.readmodel import rm_grants

    q = select(func.count()).select_from(rm_grants).where(
        *rm._where(GrantFilter(search="Customer-1", search_mode="prefix")))
    sql = str(q.compile(db.engine, compile_kwargs={"literal_binds": True}))
    with db.read() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_rm_grants_lower_ref" in plan and "ix_rm_grants_lower_id" in plan, plan
    assert rm.page(GrantFilter(search="Customer-1", search_mode="prefix")).total == 5


def test_webhook_integration_updates_idempotently(rm, vault):
    seeded(rm, vault)
    gid = "cgrant_00004"
    t1 = datetime.now(UTC)
    rm.apply_integrations(gid, [integ("w1"), integ("w2")], now=t1 - timedelta(minutes=5))
    v = rm.version()
    assert rm.apply_webhook_integration(gid, integ("w1", "FAILED"), webhook_id="whd_1",
                                        received_at=t1)
    g = rm.grant(gid)
    assert (g.grant.sync_state, g.grant.n_failing, g.grant.n_integrations) == ("failing", 1, 2)
    assert rm.version() == v + 1
    # A redelivery, and older news than the row holds: nothing changes.
    assert not rm.apply_webhook_integration(gid, integ("w1", "FAILED"), webhook_id="whd_1",
                                            received_at=t1)
    assert not rm.apply_webhook_integration(gid, integ("w1", "COMPLETED"), webhook_id="whd_0",
                                            received_at=t1 - timedelta(minutes=1))
    assert rm.version() == v + 1
    # A new integration, then one deleted; an unknown grant is ignored.
    assert rm.apply_webhook_integration(gid, integ("w3", "ONGOING", synced=False),
                                        webhook_id="whd_2", received_at=t1)
    g = rm.grant(gid).grant
    assert (g.n_integrations, g.n_syncing, g.n_never_synced) == (3, 1, 1)
    assert rm.apply_webhook_integration(gid, integ("w1"), webhook_id="whd_3",
                                        received_at=t1, deleted=True)
    g = rm.grant(gid)
    assert [i.wallet_id for i in g.integrations] == ["w2", "w3"]
    assert (g.grant.n_failing, g.grant.sync_state) == (0, "syncing")
    assert not rm.apply_webhook_integration("cgrant_nope", integ("w1"), webhook_id="whd_4",
                                            received_at=t1)
    # The worker's next read is written whatever it holds (the fingerprint was cleared).
    rm.apply_integrations(gid, [integ("w1"), integ("w2")])
    assert [i.wallet_id for i in rm.grant(gid).integrations] == ["w1", "w2"]
    # A grant our token cannot read stays unreadable.
    rm.apply_integrations("cgrant_00006", IntegrationsError("refused"))
    rm.apply_webhook_integration("cgrant_00006", integ("w9", "FAILED"), webhook_id="whd_5",
                                 received_at=datetime.now(UTC))
    assert rm.grant("cgrant_00006").grant.sync_state == "unreadable"


def _walk_forward(rm: ReadModel, sort: str, descending: bool, size: int) -> list[str]:
    """Every grant id, page after page by `next_cursor()`."""
    out: list[str] = []
    page = rm.page(sort=sort, descending=descending, page_size=size)
    while page.rows:
        out += [r.grant_id for r in page.rows]
        page = rm.page(sort=sort, descending=descending, page_size=size,
                       cursor=page.next_cursor())
    return out


@pytest.mark.parametrize("sort", ["created_at", "customer_ref", "grant_id", "n_failing"])
def test_keyset_pages_walk_every_row_once_both_ways(rm, vault, sort):
    seeded(rm, vault, n=30)  # odd grants have no token, so no customer reference (NULL)
    rm.apply_integrations("cgrant_00004", [integ("w1", "FAILED")])
    for descending in (False, True):
        expected = [r.grant_id for r in rm.page(sort=sort, descending=descending,
                                                page_size=1000).rows]
        assert len(expected) == 31
        assert _walk_forward(rm, sort, descending, 7) == expected
        # Backwards from the last page (the last 7 rows) by `previous_cursor()`.
        page = rm.page(sort=sort, descending=descending, page_size=7, page=2,
                       cursor=LAST_PAGE)
        assert [r.grant_id for r in page.rows] == expected[-3:]  # 31 = 4 * 7 + 3
        assert page.page == 5
        back: list[str] = []
        while True:
            back = [r.grant_id for r in page.rows] + back
            if page.page == 1:
                break
            page = rm.page(sort=sort, descending=descending, page_size=7,
                           page=page.page - 1, cursor=page.previous_cursor())
        assert page.rows == rm.page(sort=sort, descending=descending, page_size=7).rows
        assert back == expected  # pages line up with the first one
        # Fewer rows than a page before the cursor: the first page, full.
        second = rm.page(sort=sort, descending=descending, page_size=7, page=1,
                         cursor=rm.page(sort=sort, descending=descending, page_size=7,
                                        page=2).previous_cursor())
        assert second.rows == page.rows
        early = rm.page(sort=sort, descending=descending, page_size=7, page=2,
                        cursor=rm.page(sort=sort, descending=descending, page_size=3,
                                       page=2).previous_cursor())
        assert early.page == 1 and early.rows == page.rows


def test_page_totals_are_counted_up_to_a_cap(rm, vault, monkeypatch):
    from services.store.readmodel import queries

    seeded(rm, vault, n=30)
    monkeypatch.setattr(queries, "COUNT_CAP", 10)
    found = rm.page(GrantFilter(status="active"), page_size=4)
    assert (found.total, found.total_exact, len(found.rows)) == (10, False, 4)
    found = rm.page(GrantFilter(search="customer-1"))
    assert (found.total, found.total_exact) == (5, True)
    assert rm.page().total == 31 and rm.page().total_exact  # every row: the row count


def test_a_long_substring_is_found_whole(rm, vault):
    """A needle longer than the part PostgreSQL's trigram index is given (its last 8
    characters) finds exactly the rows holding the whole needle: rows holding only its
    tail are not matched, and wildcards on either side of the cut stay literal."""
    seeded(rm, vault, n=30)
    vault.put("cgrant_00031", "cat_secret0031xyz", customer_ref="other-r%f_00012")
    vault.put("cgrant_00032", "cat_secret0032xyz", customer_ref="xr%f_00012")
    rm.apply_grants([grant(i) for i in range(33)])

    def ids(needle: str) -> list[str]:
        return [r.grant_id for r in rm.page(GrantFilter(search=needle), sort="grant_id",
                                            page_size=100).rows]

    assert ids("cgrant_00012") == ["cgrant_00012"]
    assert ids("GRANT_00012") == ["cgrant_00012"]
    assert ids("Xgrant_00012") == []  # its tail "t_00012" is in cgrant_00012 only
    assert ids("ant_0001") == [f"cgrant_{i:05d}" for i in range(10, 20)]
    assert ids("other-r%f_00012") == ["cgrant_00031"]
    assert ids("r%f_00012") == ["cgrant_00031", "cgrant_00032"]
    assert ids("ther-r%f_00012") == ["cgrant_00031"]
    assert ids("thXr-r%f_00012") == []
    assert ids("er-r_f%00012") == []  # _ and % are literal, also in the tail


def test_freshness_counts_stop_at_the_cap(rm, vault, monkeypatch):
    """The never-read and stale counts walk at most `COUNT_CAP` + 1 index entries each
    (right after a load most grants were never read) and say when they stopped."""
    from services.store.readmodel import queries

    seeded(rm, vault, n=30)
    fresh = rm.freshness()
    assert (fresh.never_refreshed, fresh.never_refreshed_exact) == (15, True)
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert rm.stale_rows(later) == (15, True)
    monkeypatch.setattr(queries, "COUNT_CAP", 10)
    fresh = rm.freshness()
    assert (fresh.never_refreshed, fresh.never_refreshed_exact) == (10, False)
    assert rm.stale_rows(later) == (10, False)
    for gid in rm.active_with_token()[:7]:  # 8 never read; 7 read, stale later
        rm.apply_integrations(gid, [integ("w")])
    fresh = rm.freshness()
    assert (fresh.never_refreshed, fresh.never_refreshed_exact) == (8, True)
    assert rm.stale_rows(datetime.now(UTC) - timedelta(seconds=60)) == (8, True)
    assert rm.stale_rows(later) == (10, False)  # 8 + 7 stopped at the cap


def _plan(db: Database, rm: ReadModel, f: GrantFilter) -> str:
    """SQLite's plan of the page query's id walk for filter `f`."""
    from sqlalchemy import select

    from services.store.readmodel import rm_grants

    with db.read() as conn:
        conds = rm._where(f, conn)
    q = select(rm_grants.c.grant_id).where(*conds).order_by(
        rm_grants.c.created_at, rm_grants.c.grant_id).limit(100)
    sql = str(q.compile(db.engine, compile_kwargs={"literal_binds": True}))
    with db.read() as conn:
        return " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))


def test_substring_search_reads_a_trigram_index(rm, vault, db):
    seeded(rm, vault, n=30)
    vault.update("cgrant_00008", customer_ref="Shop 100%_off")
    rm.apply_grants([grant(i) for i in range(30)])
    assert rm.page(GrantFilter(search="ustomer-2")).total == 6  # 2, 20..28
    assert rm.page(GrantFilter(search="0%_o")).total == 1  # wildcards are literal
    assert rm.page(GrantFilter(search="0%")).total == 1  # under 3 characters: a walk
    assert [r.grant_id for r in rm.page(GrantFilter(search="rant_00017")).rows] == [
        "cgrant_00017"]
    if not db.is_sqlite:
        from sqlalchemy import text

        with db.read() as conn:
            assert conn.execute(text(
                "SELECT 1 FROM pg_indexes WHERE indexname = 'ix_rm_grants_trgm'")).first()
        return
    # The trigram table's matches, then their rows by rowid: no scan of rm_grants.
    plan = _plan(db, rm, GrantFilter(search="ustomer-2"))
    assert "(rowid=?)" in plan and "SCAN rm_grants" not in plan, plan
    # A customer reference changed in the vault is found under its new value only.
    vault.update("cgrant_00020", customer_ref="renamed-shop")
    rm.apply_grants([grant(i) for i in range(30)])
    assert [r.grant_id for r in rm.page(GrantFilter(search="named-sh")).rows] == [
        "cgrant_00020"]
    assert rm.page(GrantFilter(search="ustomer-2")).total == 5


@pytest.mark.parametrize("queue", ["failing", "syncing", "never_synced", "not_readable",
                                   "no_token"])
def test_each_work_queue_reads_its_own_index(rm, vault, db, queue):
    seeded(rm, vault, n=30)
    rm.apply_integrations("cgrant_00004", [integ("w1", "FAILED")])
    rm.apply_integrations("cgrant_00006", [integ("w1", "SYNCING", synced=False)])
    rm.apply_integrations("cgrant_00008", IntegrationsError("Token revoked"))
    expected = {"failing": 1, "syncing": 1, "never_synced": 1, "not_readable": 1,
                "no_token": 15}[queue]
    assert rm.page(GrantFilter(queue=queue)).total == expected
    if db.is_sqlite:
        assert f"ix_rm_grants_q_{queue}" in _plan(db, rm, GrantFilter(queue=queue))


def test_an_exact_workspace_is_found_by_its_index(rm, vault, db):
    rm.apply_grants([dataclasses.replace(grant(i), workspace_id=f"ws_{i % 7}")
                     for i in range(40)])
    found = rm.exact_matches("ws_3", limit=2)
    assert found["workspace_id"] == ("cgrant_00003", "cgrant_00010")
    assert rm.exact_matches("ws_", limit=2)["workspace_id"] == ()  # exact, not a prefix
    assert rm.exact_matches("WS_3", limit=2)["workspace_id"] == ()  # ids are exact
    from sqlalchemy import select

    from services.store.readmodel import rm_grants

    q = select(rm_grants.c.grant_id).where(rm_grants.c.workspace_id == "ws_3").order_by(
        rm_grants.c.grant_id).limit(2)
    sql = str(q.compile(db.engine, compile_kwargs={"literal_binds": True}))
    with db.read() as conn:
        if not db.is_sqlite:
            # 40 rows: the planner would rather read them all; is the index usable at all?
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = " ".join(str(r[-1] if db.is_sqlite else r[0])
                        for r in conn.exec_driver_sql("EXPLAIN " + (
                            "QUERY PLAN " if db.is_sqlite else "") + sql))
    assert "ix_rm_grants_workspace" in plan, plan
    assert "SCAN rm_grants" not in plan and "Seq Scan" not in plan, plan
