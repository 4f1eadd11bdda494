"""The charts' counts (services/store/daily_counts.py) on SQLite and PostgreSQL: each event
counted once whether rolled up or counted live, grants by status/kind/tier per day, the age
buckets of the console's copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from services.settings import parse_tiers
from services.store import AuditLog, Database, NewAuditEvent
from services.store.daily_counts import NEVER_READ, DailyCounts, daily_grant_counts
from services.store.readmodel.tables import rm_grants, rm_integrations

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
    rows = DailyCounts(db).largest_limit_changes(
        datetime.now(UTC) - timedelta(days=30), ("guest.limit.update", "guest.tier.apply"))
    assert [(r.grant_id, r.before, r.after) for r in rows] == [
        ("cgrant_b", 10000, 1000), ("cgrant_a", 1000, 1500)]
