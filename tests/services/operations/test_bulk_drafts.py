"""Each finance user's Guest limits draft: kept in the database per user (any replica reads
it), bounded, cleared on demand; a restored dry run is still checked at apply; "select all
that match" resolves a filter to grant ids, capped at the bulk limit."""

from __future__ import annotations

import json

import pytest

from services.operations import Operations, PermissionDenied, ValidationError
from services.operations import validation as v
from services.operations.bulk_drafts import BulkDraft, DraftDryRun, FilterMatch
from services.operations.limit_value import GuestLimit
from services.store.bulk_drafts import BulkDraftStore
from services.store.readmodel import GrantFilter

from .conftest import TIERS, Env, actor

FINANCE = actor("finance")
ADMIN = actor("admin")


def _guests(env: Env, n: int) -> list[str]:
    return [t["grant_id"] for t in env.stored(kind="guest")][:n]


def test_a_draft_with_its_dry_run_reads_back_the_same_on_another_replica(env: Env) -> None:
    gids = _guests(env, 3)
    dry = env.ops.limits.apply_tier(FINANCE, gids, "Free", dry_run=True)
    draft = BulkDraft(picked=tuple(gids[:2]), uploaded=(gids[2],), upload_name="ids.csv",
                      match=FilterMatch("cgrant", tuple(gids), capped=False),
                      how="tier", tier="Free",
                      dry_run=DraftDryRun(tuple(gids), "Free", None, dry))
    env.ops.bulk_drafts.save(FINANCE, draft)
    # Another console process on the same database (a second replica, a new tab's session).
    other = Operations(env.client, env.audit, env.vault, TIERS)
    back = other.bulk_drafts.load(FINANCE)
    assert back == draft and not back.problems
    assert back.dry_run is not None and back.dry_run.result.items == dry.items
    assert back.selected == tuple(gids)
    # A session holding what it read gets it back while nobody saved since (only the
    # revision is read); a save elsewhere is read whole.
    assert other.bulk_drafts.load(FINANCE, back) is back
    newer = env.ops.bulk_drafts.save(FINANCE, BulkDraft(picked=(gids[0],)))
    assert newer.rev != back.rev
    assert other.bulk_drafts.load(FINANCE, back) == BulkDraft(picked=(gids[0],))
    # Each user has their own.
    assert other.bulk_drafts.load(ADMIN) == BulkDraft()
    env.ops.bulk_drafts.clear(FINANCE)
    assert other.bulk_drafts.load(FINANCE) == BulkDraft()


def test_only_who_manages_limits_keeps_a_draft(env: Env) -> None:
    with pytest.raises(PermissionDenied):
        env.ops.bulk_drafts.save(actor("support"), BulkDraft(picked=tuple(_guests(env, 1))))
    with pytest.raises(PermissionDenied):
        env.ops.bulk_drafts.load(actor("viewer"))
    assert [e.outcome for e in env.events(action="guest.limit.update.bulk")] == ["denied"] * 2


def test_a_draft_is_bounded_and_holds_grant_ids_only(env: Env,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(v, "MAX_BULK", 3)
    gids = _guests(env, 4)
    with pytest.raises(ValidationError, match="At most 3 grants"):
        env.ops.bulk_drafts.save(FINANCE, BulkDraft(picked=tuple(gids)))
    with pytest.raises(ValidationError):
        env.ops.bulk_drafts.save(FINANCE, BulkDraft(uploaded=("DROP TABLE grants",)))
    kept = env.ops.bulk_drafts.save(FINANCE, BulkDraft(picked=(gids[0], gids[0], gids[1])))
    assert kept.picked == (gids[0], gids[1])  # each once
    # An empty selection leaves no row behind.
    env.ops.bulk_drafts.save(FINANCE, BulkDraft())
    assert BulkDraftStore(env.audit.db).load(FINANCE.username) is None


def test_an_unreadable_draft_starts_afresh_and_says_so(env: Env) -> None:
    store = BulkDraftStore(env.audit.db)
    store.save(FINANCE.username, "{not json")
    back = env.ops.bulk_drafts.load(FINANCE)
    assert back.selected == () and back.problems
    gid = _guests(env, 1)[0]
    store.save(FINANCE.username, json.dumps({"v": 1, "picked": [gid], "dry_run": {"ids": 5}}))
    back = env.ops.bulk_drafts.load(FINANCE)
    assert back.picked == (gid,) and back.dry_run is None
    assert any("dry run" in p for p in back.problems)


def test_a_restored_dry_run_is_checked_against_the_limit_read_at_apply(env: Env) -> None:
    gids = _guests(env, 2)
    for g in gids:
        env.ops.limits.set_guest_limit(FINANCE, g, 5000, reason="start", confirmed=True)
    dry = env.ops.limits.apply_tier(FINANCE, gids, "Plus", dry_run=True)
    env.ops.bulk_drafts.save(FINANCE, BulkDraft(
        picked=tuple(gids), dry_run=DraftDryRun(tuple(gids), "Plus", None, dry)))
    # Someone changes one grant after the dry run; the draft is read back after a reload.
    env.ops.limits.set_guest_limit(ADMIN, gids[1], 2500, reason="elsewhere", confirmed=True)
    restored = env.ops.bulk_drafts.load(FINANCE).dry_run
    assert restored is not None
    expected = {i.grant_id: i.before for i in restored.result.items}
    assert expected == {g: GuestLimit.capped(5000) for g in gids}
    res = env.ops.limits.apply_tier(FINANCE, gids, "Plus", "move up", dry_run=False,
                                    expected=expected)
    out = {i.grant_id: (i.outcome, i.error_code) for i in res.items}
    assert out == {gids[0]: ("succeeded", None), gids[1]: ("skipped", "STALE")}


def test_select_all_that_match_resolves_the_filter_to_the_pickers_grants(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.sync()
    viewer = actor("viewer")
    listed = [r.grant_id for kind in ("guest", "unknown") for r in env.ops.grants.page(
        viewer, GrantFilter(status="active", kind=kind), "grant_id", 1, 1000).rows]
    found = env.ops.bulk_drafts.match_filter(FINANCE, "  ")
    assert list(found.grant_ids) == listed and not found.capped
    assert found.message() == f"All {len(listed):,} grant(s) the picker lists."
    one = listed[3]
    assert env.ops.bulk_drafts.match_filter(FINANCE, one[-8:].upper()).grant_ids == (one,)
    monkeypatch.setattr(v, "MAX_BULK", 5)
    capped = env.ops.bulk_drafts.match_filter(FINANCE, "")
    assert capped.grant_ids == tuple(listed[:5]) and capped.capped
    assert "The first 5" in capped.message() and "at most 5" in capped.message()
    with pytest.raises(PermissionDenied):
        env.ops.bulk_drafts.match_filter(actor("support"), "")
