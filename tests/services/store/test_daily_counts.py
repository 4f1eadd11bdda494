"""The charts' counts (services/store/daily_counts.py) on SQLite and PostgreSQL: each event
counted once whether rolled up or counted live, grants by status/kind/tier per day, the age
buckets of the console's copy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select, text

from services.settings import parse_tiers
from services.store import AuditLog, Database, NewAuditEvent, open_database
from services.store.audit.changes import limit_changes
from services.store.daily_counts import NEVER_READ, DailyCounts, daily_grant_counts
from services.store.db import MIGRATIONS_DIR
from services.store.readmodel.tables import rm_grants, rm_integrations
from services.store.schema import audit_log

TIERS = parse_tiers("Free=1000,Plus=10000,Unlimited=off")


def _append(log: AuditLog, outcome: str, n: int, actor: str = "ann") -> None:
    for _ in range(n):
        log.append(NewAuditEvent(actor, ["admin"], "grant.revoke", outcome))


def _by_outcome(counts: DailyCounts) -> dict[str, int]:
    today = datetime.now(UTC).date()
    return {p.key: p.n for p in counts.audit_days(today - timedelta(days=1))}


def test_events_counted_once_rolled_up_or_live(db: Database):
    db.migrate()
    log = AuditLog(db)
    counts = DailyCounts(db)
    _append(log, "succeeded", 3)
    _append(log, "failed", 2)
    assert _by_outcome(counts) == {"succeeded": 3, "failed": 2}  # all live
    assert counts.roll_up_audit() == 5
    assert counts.roll_up_audit() == 0  # nothing new: nothing counted twice
    _append(log, "denied", 1)
    assert _by_outcome(counts) == {"succeeded": 3, "failed": 2, "denied": 1}
    assert counts.roll_up_audit(limit=1) == 1
    _append(log, "succeeded", 1)
    assert counts.keep(TIERS, datetime.now(UTC))[1] == 1
    assert _by_outcome(counts) == {"succeeded": 4, "failed": 2, "denied": 1}
    by_actor = counts.audit_days(datetime.now(UTC).date(), by="actor_username")
    assert {p.key: p.n for p in by_actor} == {"ann": 7}


def _grant(i: int, now: datetime, **kw) -> dict:
    row = {"grant_id": f"cgrant_{i}", "status": "active", "has_token": True,
           "user_kind": "guest", "transaction_limit": None, "limiter_enabled": None,
           "refreshed_at": now, "unreadable": False, "n_integrations": 1, "n_failing": 0,
           "n_syncing": 0, "n_never_synced": 0, "integrations_refreshed_at": now}
    row.update(kw)
    return row


def test_grants_per_day_by_status_kind_and_tier(db: Database):
    db.migrate()
    now = datetime.now(UTC)
    rows = [
        _grant(1, now, transaction_limit=1000, limiter_enabled=True),
        _grant(2, now, transaction_limit=1000, limiter_enabled=True, status="revoked"),
        _grant(3, now, transaction_limit=2500, limiter_enabled=True),
        _grant(4, now, limiter_enabled=False),
        _grant(5, now, user_kind="linked"),
        _grant(6, now, user_kind=None),
    ]
    with db.write() as conn:
        conn.execute(insert(rm_grants), rows)
    counts = DailyCounts(db)
    counts.record_grants(TIERS, now - timedelta(days=1))
    counts.record_grants(TIERS, now)
    counts.record_grants(TIERS, now)  # the same day again replaces, never adds
    with db.read() as conn:
        stored = {(r.status, r.user_kind, r.tier): r.n for r in conn.execute(
            daily_grant_counts.select().where(
                daily_grant_counts.c.day == max(r.day for r in conn.execute(
                    daily_grant_counts.select()))))}
    assert stored == {("active", "guest", "Free"): 1, ("revoked", "guest", "Free"): 1,
                      ("active", "guest", "custom"): 1, ("active", "guest", "Unlimited"): 1,
                      ("active", "linked", ""): 1, ("active", "", ""): 1}
    days = counts.grant_status_days(now.date() - timedelta(days=89))
    assert {(p.day, p.key): p.n for p in days} == {
        (now.date() - timedelta(days=1), "active"): 5, (now.date() - timedelta(days=1),
                                                        "revoked"): 1,
        (now.date(), "active"): 5, (now.date(), "revoked"): 1}


def test_freshness_buckets_and_failing_providers(db: Database):
    db.migrate()
    now = datetime.now(UTC)
    ages = [timedelta(minutes=1), timedelta(minutes=30), timedelta(hours=2),
            timedelta(hours=12), timedelta(days=3)]
    rows = [_grant(i, now, integrations_refreshed_at=now - age) for i, age in enumerate(ages)]
    rows.append(_grant(10, now, integrations_refreshed_at=None))
    rows.append(_grant(11, now, status="revoked"))  # not counted: not active
    rows.append(_grant(12, now, has_token=False))  # not counted: no token to read with
    with db.write() as conn:
        conn.execute(insert(rm_grants), rows)
        conn.execute(insert(rm_integrations), [
            {"grant_id": f"cgrant_{i}", "wallet_id": "w", "provider": p, "status": s,
             "limit_exceeded": False, "refreshed_at": now}
            for i, (p, s) in enumerate([("Binance", "FAILED"), ("Binance", "PARTIALLY SYNCED"),
                                        ("Kraken", "FAILED"), ("Kraken", "COMPLETED")])])
    counts = DailyCounts(db)
    assert [(b.label, b.n) for b in counts.freshness(now)] == [
        ("under 15 min", 1), ("15–60 min", 1), ("1–6 h", 1), ("6–24 h", 1),
        ("over a day", 1), (NEVER_READ, 1)]
    assert [(b.label, b.n) for b in counts.failing_by_provider()] == [
        ("Binance", 2), ("Kraken", 1)]


def test_largest_limit_changes_read_the_stored_before_and_after(db: Database):
    db.migrate()
    log = AuditLog(db)
    for gid, before, after in (("cgrant_a", 1000, 1500), ("cgrant_b", 10000, 1000),
                               ("cgrant_c", None, 500)):
        log.append(NewAuditEvent(
            "fin", ["finance"], "guest.limit.update", "succeeded", target_type="grant",
            target_id=gid, before={"transaction_limit": before, "enable_limiter": True},
            after={"transaction_limit": after, "enable_limiter": True}))
    log.append(NewAuditEvent("fin", ["finance"], "guest.limit.update", "failed",
                             target_id="cgrant_d", before={"transaction_limit": 1},
                             after={"transaction_limit": 99999}))
    rows = DailyCounts(db).largest_limit_changes(datetime.now(UTC) - timedelta(days=30))
    assert [(r.grant_id, r.before, r.after) for r in rows] == [
        ("cgrant_b", 10000, 1000), ("cgrant_a", 1000, 1500)]


def _change(log: AuditLog, gid: str, before: int | None, after: int | None,
            tier: str | None = None, outcome: str = "succeeded") -> None:
    log.append(NewAuditEvent(
        "fin", ["finance"], "guest.tier.apply" if tier else "guest.limit.update", outcome,
        target_type="grant", target_id=gid, params={"tier": tier} if tier else None,
        before={"transaction_limit": before, "enable_limiter": True},
        after={"transaction_limit": after, "enable_limiter": after is not None}))


def test_limit_changes_per_day_by_tier_rolled_up_or_live(db: Database):
    db.migrate()
    log = AuditLog(db)
    counts = DailyCounts(db)
    _change(log, "cgrant_a", 1000, 10000, tier="Plus")
    _change(log, "cgrant_b", 1000, 10000, tier="Plus")
    _change(log, "cgrant_c", 10000, None, tier="Unlimited")
    _change(log, "cgrant_d", 1000, 2500)  # a custom limit
    _change(log, "cgrant_e", 1000, 10000, tier="Plus", outcome="failed")  # not a change
    log.append(NewAuditEvent("fin", ["finance"], "guest.tier.apply.bulk", "succeeded",
                             params={"tier": "Plus"}))  # the run's summary: not per grant
    today = datetime.now(UTC).date()
    expected = {"Plus": 2, "Unlimited": 1, "": 1}
    assert {p.key: p.n for p in counts.limit_days(today)} == expected  # all live
    counts.roll_up_audit()
    assert {p.key: p.n for p in counts.limit_days(today)} == expected  # all rolled up
    _change(log, "cgrant_f", 10000, 1000, tier="Free")
    counts.roll_up_audit(limit=1)
    _change(log, "cgrant_g", 10000, 1000, tier="Free")  # one rolled up, one live
    assert {p.key: p.n for p in counts.limit_days(today)} == {**expected, "Free": 2}
    assert counts.limit_days(today + timedelta(days=1)) == []


def test_largest_changes_walk_each_day_of_the_period(db: Database):
    """Older changes are larger: each day's own largest still come first within the
    period, and the period's start cuts the first day at the right event."""
    db.migrate()
    now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    clock = [now - timedelta(days=40)]
    log = AuditLog(db, clock=lambda: clock[0])
    for day, (before, after) in enumerate([(1, 900_000), (1, 800_000), (1, 700_000)]):
        clock[0] = now - timedelta(days=40 - day)  # 40, 39, 38 days ago: outside
        _change(log, f"cgrant_old{day}", before, after)
    for day in range(12):  # 12 days inside the period, two changes a day
        clock[0] = now - timedelta(days=11 - day, hours=1)
        _change(log, f"cgrant_{day}_small", 1000, 1000 + day)
        _change(log, f"cgrant_{day}_big", 1000, 1000 + 100 * day, tier="Plus")
    clock[0] = now
    _change(log, "cgrant_nocap", 1000, None, tier="Unlimited")  # no size: never listed
    rows = DailyCounts(db).largest_limit_changes(now - timedelta(days=30), n=3)
    assert [(r.grant_id, r.before, r.after, r.by) for r in rows] == [
        ("cgrant_11_big", 1000, 2100, "fin"), ("cgrant_10_big", 1000, 2000, "fin"),
        ("cgrant_9_big", 1000, 1900, "fin")]
    # A period that starts inside a day leaves out that day's earlier events.
    cut = DailyCounts(db).largest_limit_changes(now - timedelta(days=11, hours=1), n=30)
    assert "cgrant_old2" not in {r.grant_id for r in cut}
    assert {r.grant_id for r in cut} >= {"cgrant_0_small", "cgrant_0_big"}
    assert len(cut) == 24


def test_migration_copies_the_limit_changes_already_logged(db_url: str):
    """Events stored before 0015_change_size get their size and tier rows, and the ones
    already rolled up are counted per tier, so the charts read the same after the upgrade."""
    db = Database(db_url)
    with db.write() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0014_daily_counts")
    now = datetime.now(UTC)
    ms = int(now.timestamp() * 1000)

    def row(seq: int, action: str, outcome: str, before: object, after: object,
            params: str | None = None, cid: str | None = None) -> dict:
        return {"seq": seq, "event_id": f"e{seq}", "ts_ms": ms + seq,
                "actor_username": "fin", "actor_roles": "finance", "action": action,
                "outcome": outcome, "target_type": "grant", "target_id": f"cgrant_{seq}",
                "params": params, "correlation_id": cid or f"c{seq}", "prev_hash": "0" * 64,
                "hash": "0" * 64,
                "before_value": json.dumps({"transaction_limit": before}),
                "after_value": json.dumps({"transaction_limit": after})}

    with db.write() as conn:
        conn.execute(insert(audit_log), [
            row(1, "guest.limit.update", "succeeded", 1000, 5000),
            row(2, "guest.tier.apply", "succeeded", 5000, 10, json.dumps({"tier": "Free"})),
            row(3, "guest.tier.apply", "succeeded", 10, None,
                json.dumps({"tier": "Unlimited"})),
            row(4, "guest.limit.update", "failed", 1, 900_000),
            row(5, "guest.limit.update", "succeeded", True, 7),  # not a limit: no size
            # As the trail writes them: the tier on the requested event only.
            row(6, "guest.tier.apply", "requested", 7, None, json.dumps({"tier": "Plus"}),
                cid="bulk"),
            row(7, "guest.tier.apply", "succeeded", 7, 10_000, cid="bulk"),
        ])
        conn.execute(text("UPDATE daily_audit_rollup SET seq = 2"))  # 1-2 rolled up
    db.dispose()
    db = open_database(db_url)
    try:
        with db.read() as conn:
            stored = {r.seq: (r.tier, r.size, r.before_limit, r.after_limit)
                      for r in conn.execute(select(limit_changes))}
        assert stored == {1: ("", 4000, 1000, 5000), 2: ("Free", 4990, 5000, 10),
                          3: ("Unlimited", None, 10, None), 5: ("", None, None, 7),
                          7: ("Plus", 9993, 7, 10_000)}
        counts = DailyCounts(db)
        assert {p.key: p.n for p in counts.limit_days(now.date())} == {
            "": 2, "Free": 1, "Unlimited": 1, "Plus": 1}
        assert [(r.grant_id, r.before, r.after) for r in counts.largest_limit_changes(
            now - timedelta(days=1))] == [("cgrant_7", 7, 10_000), ("cgrant_2", 5000, 10),
                                          ("cgrant_1", 1000, 5000)]
        counts.roll_up_audit()  # the events after the watermark, counted once
        assert {p.key: p.n for p in counts.limit_days(now.date())} == {
            "": 2, "Free": 1, "Unlimited": 1, "Plus": 1}
    finally:
        db.dispose()
