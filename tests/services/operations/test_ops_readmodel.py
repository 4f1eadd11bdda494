"""The operations over the read model: pages' reads from SQL, changes shown at
once, an upstream change after a sync, opening a grant refreshes its row, CSV export,
the sync worker's state for admins."""

from __future__ import annotations

import csv
import io

import pytest

from services.operations import GrantFilter, PermissionDenied, ValidationError
from services.store import NewVaultEntry

from .conftest import Env, actor

VIEWER = actor("viewer")
SUPPORT = actor("support")
FINANCE = actor("finance")
ADMIN = actor("admin")


def _row(env: Env, gid: str):  # type: ignore[no-untyped-def]
    found = env.ops.readmodel.grant(gid)
    assert found is not None, gid
    return found.grant


def test_a_revoke_through_the_console_shows_at_once(env: Env) -> None:
    env.sync()
    gid = env.stored()[0]["grant_id"]
    before = env.ops.grants.counts(VIEWER)
    env.sandbox.clear_requests_log()
    env.ops.grants.revoke_grant(SUPPORT, gid, reason="customer asked")
    assert _row(env, gid).status == "revoked"
    after = env.ops.grants.counts(VIEWER)
    assert (after.active, after.revoked) == (before.active - 1, before.revoked + 1)
    revoked = env.ops.grants.page(VIEWER, GrantFilter(status="revoked", search=gid))
    assert [r.grant_id for r in revoked.rows] == [gid]
    # the revoke's own call only: the reads went nowhere near Kryptos
    assert len(env.upstream()) == 1


def test_a_limit_change_shows_at_once(env: Env) -> None:
    env.sync()
    gid = env.stored(kind="guest")[0]["grant_id"]
    env.ops.limits.set_guest_limit(FINANCE, gid, 4321, reason="trial extension", confirmed=True)
    row = _row(env, gid)
    assert (row.transaction_limit, row.limiter_enabled, row.limit_source) == (
        4321, True, "console")
    assert gid in {r.grant_id for r in env.ops.grants.page(
        VIEWER, GrantFilter(limit=4321), page_size=1000).rows}


def test_a_bulk_tier_updates_every_changed_row(env: Env) -> None:
    env.sync()
    gids = [t["grant_id"] for t in env.stored(kind="guest")[:3]]
    result = env.ops.limits.apply_tier(FINANCE, gids, "Plus", reason="upgrade")
    changed = [i.grant_id for i in result.items if i.outcome == "succeeded"]
    assert changed
    for gid in changed:
        assert _row(env, gid).transaction_limit == 10000
    plus = env.ops.grants.page(VIEWER, GrantFilter(tier="Plus"), page_size=1000)
    assert set(changed) <= {r.grant_id for r in plus.rows}


def test_an_upstream_change_shows_after_a_sync(env: Env) -> None:
    env.sync()
    gid = env.stored()[0]["grant_id"]
    env.client.revoke_grant(gid)  # behind the console's back
    assert _row(env, gid).status == "active"
    env.sync()
    assert _row(env, gid).status == "revoked"


def test_opening_a_grant_refreshes_its_row(env: Env) -> None:
    row, integ = env.find_integration(lambda i: True)
    gid = row["grant_id"]
    assert env.ops.readmodel.grant(gid) is None  # nothing synced yet
    detail = env.ops.grants.grant_detail(VIEWER, gid)
    assert detail.integrations.ok
    synced = _row(env, gid)
    assert synced.integrations_refreshed_at is not None
    assert synced.n_integrations == len(detail.integrations.value or ())
    assert synced.user_kind in ("guest", "linked")
    items = env.ops.readmodel.grant(gid).integrations  # type: ignore[union-attr]
    assert integ.wallet_id in {i.wallet_id for i in items}
    # a second opening reads the row, not the grants list
    env.sandbox.clear_requests_log()
    env.ops.grants.grant_detail(VIEWER, gid)
    assert "/token/grants" not in [r["path"] for r in env.upstream()]


def test_paging_sort_and_filters_are_the_servers(env: Env) -> None:
    env.sync()
    total = env.ops.grants.counts(VIEWER).total
    first = env.ops.grants.page(VIEWER, None, "grant_id", 1, 5)
    second = env.ops.grants.page(VIEWER, None, "grant_id", 2, 5)
    assert first.total == total and first.pages == -(-total // 5)
    ids = [r.grant_id for r in first.rows + second.rows]
    assert ids == sorted(ids) and len(set(ids)) == 10
    desc = env.ops.grants.page(VIEWER, None, "grant_id", 1, 5, descending=True)
    assert [r.grant_id for r in desc.rows] == sorted(
        (r.grant_id for r in env.ops.grants.page(VIEWER, None, "grant_id", 1, 1000).rows),
        reverse=True)[:5]
    failing = env.ops.grants.page(VIEWER, GrantFilter(queue="failing"), page_size=1000)
    assert failing.total == env.ops.grants.counts(VIEWER).queues["failing"] > 0
    assert all(r.n_failing > 0 and r.status == "active" for r in failing.rows)
    no_token = env.ops.grants.page(VIEWER, GrantFilter(has_token=False), page_size=1000)
    assert no_token.total > 0 and not any(r.has_token for r in no_token.rows)
    with pytest.raises(ValidationError):
        env.ops.grants.page(VIEWER, None, "secret_column")
    with pytest.raises(ValidationError):
        env.ops.grants.page(VIEWER, None, "grant_id", 1, 100_000)


def test_csv_export_streams_every_row_with_safe_cells(env: Env) -> None:
    t = env.stored()[0]
    env.vault.put_many([NewVaultEntry(t["grant_id"], t["access_token"],
                                      customer_ref="=HYPERLINK(\"http://x\")")])
    env.sync()
    out = io.StringIO()
    written = env.ops.grants.export_csv(VIEWER, None, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert written == len(rows) == env.ops.grants.counts(VIEWER).total
    cell = next(r["customer_ref"] for r in rows if r["grant_id"] == t["grant_id"])
    assert cell.startswith("'=")  # the formula guard
    assert not any(t["access_token"] in out.getvalue() for t in env.stored())
    # filtered: one grant
    one = io.StringIO()
    assert env.ops.grants.export_csv(VIEWER, GrantFilter(search=t["grant_id"]), one) == 1


def test_sync_status_is_for_admins(env: Env) -> None:
    env.sync()
    view = env.ops.sync.status(ADMIN)
    assert view.last_full_sync is not None and view.rows > 0 and not view.stale
    assert not view.runs_here  # no worker in this process
    assert view.holder == "test"
    with pytest.raises(PermissionDenied):
        env.ops.sync.status(SUPPORT)
    assert env.events(action="sync.status.view", outcome="denied")
