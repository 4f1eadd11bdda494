"""Limit reads: tiers, the grants a bulk change may target, and each row's limit.
"""

from __future__ import annotations

from collections.abc import Iterable

from dashboard.reads.grants import grant_page
from services.operations import UNKNOWN, Actor, GrantFilter, GuestLimit, Operations, RmGrant
from services.operations.bulk_drafts import BulkDraft, FilterMatch
from services.settings import Tier

#: Rows the Guest limits picker shows at most (the rest is reached by its filter).
CANDIDATES_MAX = 500


def bulk_candidates(ops: Operations, actor: Actor, search: str | None = None
                    ) -> tuple[RmGrant, ...]:
    """The grants a bulk limit change may target: active Guest grants, then active grants
    whose kind is not known yet, matching `search`, from the read model (at most
    `CANDIDATES_MAX`; `bulk_candidate_count` says how many match)."""
    search = (search or "").strip() or None
    rows: list[RmGrant] = []
    for kind in ("guest", "unknown"):
        if len(rows) >= CANDIDATES_MAX:
            break
        found = grant_page(ops, actor, GrantFilter(search=search, status="active", kind=kind),
                           "grant_id", 1, CANDIDATES_MAX - len(rows))
        rows.extend(found.rows)
    return tuple(rows)


def bulk_candidate_count(ops: Operations, actor: Actor, search: str | None = None) -> int:
    """How many grants `bulk_candidates` would list without its cap."""
    search = (search or "").strip() or None
    return sum(grant_page(ops, actor, GrantFilter(search=search, status="active", kind=kind),
                          "grant_id", 1, 1).total for kind in ("guest", "unknown"))


def bulk_draft(ops: Operations, actor: Actor, known: BulkDraft | None = None) -> BulkDraft:
    """The user's Guest limits selection and dry run as kept in the database, so a reload or
    a new tab continues it. `known`: the draft this session read or saved last, returned
    as it is while nobody saved another since (a primary-key read of its revision only)."""
    return ops.bulk_drafts.load(actor, known)


def match_filter(ops: Operations, actor: Actor, search: str | None) -> FilterMatch:
    """Every grant the picker would list for `search` ("select all that match"), as grant
    ids resolved by the service layer, capped at the bulk limit."""
    return ops.bulk_drafts.match_filter(actor, search)


def limits_of(rows: Iterable[RmGrant]) -> dict[str, GuestLimit]:
    """Each read-model row's limit, without an upstream call: unknown where neither user
    info nor a console change told the read model yet."""
    return {r.grant_id: (GuestLimit.of(r.transaction_limit, r.limiter_enabled)
                         if r.limit_source is not None else UNKNOWN) for r in rows}


def tiers(ops: Operations) -> tuple[Tier, ...]:
    """The configured tier presets."""
    return tuple(ops.tiers)


def matching_tier(ops: Operations, limit: GuestLimit) -> Tier | None:
    """The configured tier whose limit is this one (None: unknown, or no tier matches)."""
    return ops.limits.matching_tier(limit)


def tier_label(ops: Operations, name: str) -> str:
    """A tier's name with what it sets (for select boxes); the name when it is not a tier."""
    return next((t.describe() for t in tiers(ops) if t.name == name), name)
