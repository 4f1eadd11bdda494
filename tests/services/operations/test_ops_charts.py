"""The charts' use cases over real limit changes (sandbox over HTTP): limit changes per day
by tier, the largest changes with who made them, and who may read them."""

from __future__ import annotations

import pytest

from services.operations import PermissionDenied, ValidationError

from .conftest import Env, actor

FINANCE = actor("finance")


def test_limit_changes_by_tier_and_the_largest_change(env: Env) -> None:
    guests = [t["grant_id"] for t in env.stored(kind="guest")][:4]
    res = env.ops.limits.apply_tier(FINANCE, guests[:3], "Plus", reason="promo for Q3")
    assert res.counts["succeeded"] == 3
    env.ops.limits.set_guest_limit(FINANCE, guests[0], 2_000_000, reason="verified business",
                                   confirmed=True)
    by_tier = env.ops.charts.limit_changes(FINANCE, "tier")
    assert {p.key: p.n for p in by_tier.points} == {"Plus": 3, "": 1}
    assert by_tier.total == 4
    largest = env.ops.charts.largest_limit_changes(FINANCE)
    assert (largest[0].grant_id, largest[0].before, largest[0].after, largest[0].by) == (
        guests[0], 10_000, 2_000_000, FINANCE.username)
    # Every row is a change of a capped limit, largest first.
    sizes = [abs(r.after - r.before) for r in largest]
    assert sizes == sorted(sizes, reverse=True)


def test_limit_change_charts_are_for_readers_of_grant_history(env: Env) -> None:
    with pytest.raises(PermissionDenied):
        env.ops.charts.limit_changes(actor("viewer"), "tier")
    with pytest.raises(PermissionDenied):
        env.ops.charts.largest_limit_changes(actor("viewer"))
    with pytest.raises(ValidationError):
        env.ops.charts.limit_changes(FINANCE, "grant_id")
