"""Limit changes to many grants (Guest limits page): a tier or a custom limit, dry run
first, then the apply of what the dry run showed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, overload

from dashboard import reads
from services.operations import Actor, BulkResult, OperationError, Operations, ValidationError
from services.operations.bulk_drafts import BulkDraft
from services.operations.four_eyes import Held
from services.operations.limit_value import GuestLimit

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class BulkPlan:
    """What the Guest limits page is about to change: grants, and a tier or a custom limit
    (a dry run is valid for the apply of the same plan only)."""

    grant_ids: tuple[str, ...]
    tier: str | None = None
    limit: int | None = None


def run_bulk(
    ops: Operations,
    actor: Actor,
    plan: BulkPlan,
    reason: str,
    *,
    dry_run: bool,
    ticket: str | None = None,
    progress: ProgressFn | None = None,
    expected: Mapping[str, GuestLimit] | None = None,
    confirmed: bool = False,
) -> BulkResult | Held:
    """Apply `plan` to its grants (or preview it with `dry_run`): its tier, else its custom
    limit with the limiter on (refused when none was entered). One bulk operation either
    way (bounded concurrency, per-grant outcome, a dry run that reads each grant's current
    limit); the use case may hold it for approval (`Held`). After a real run, whatever its
    outcome, every cached read goes."""
    ids = list(plan.grant_ids)
    common: dict[str, Any] = {"dry_run": dry_run, "ticket": ticket or None,
                              "progress": progress, "expected": expected,
                              "confirmed": confirmed}
    try:
        if plan.tier is not None:
            return ops.limits.apply_tier(actor, ids, plan.tier, reason, **common)
        if plan.limit is None:
            raise ValidationError("transaction_limit", "Please type the transaction limit to "
                                                       "set (a whole number, e.g. 7500).")
        return ops.limits.apply_limit(actor, ids, transaction_limit=plan.limit,
                                      enable_limiter=True, reason=reason, **common)
    finally:
        if not dry_run:
            reads.invalidate_all()


@overload
def run_plan(ops: Operations, actor: Actor, plan: BulkPlan, reason: str, *,
             dry_run: Literal[True], ticket: str | None = None,
             progress: ProgressFn | None = None,
             preview: BulkResult | None = None, confirmed: bool = False) -> BulkResult: ...


@overload
def run_plan(ops: Operations, actor: Actor, plan: BulkPlan, reason: str, *, dry_run: bool,
             ticket: str | None = None, progress: ProgressFn | None = None,
             preview: BulkResult | None = None,
             confirmed: bool = False) -> BulkResult | Held: ...


def run_plan(ops: Operations, actor: Actor, plan: BulkPlan, reason: str, *, dry_run: bool,
             ticket: str | None = None, progress: ProgressFn | None = None,
             preview: BulkResult | None = None, confirmed: bool = False,
             ) -> BulkResult | Held:
    """Run `plan`: its tier, else its custom limit (refused when none was entered). A real
    run after a dry run (`preview`) acts only on the grants that would change, each against
    the limit the dry run showed (a grant changed since is skipped as `STALE`); a change
    that needs approval becomes a request. A cut by more than half or a limiter switched
    off on any grant asks first (`ConfirmationRequired`) unless `confirmed`."""
    ids: Sequence[str] = plan.grant_ids
    expected: dict[str, GuestLimit] | None = None
    if preview is not None and not dry_run:
        todo = [i for i in preview.items if i.outcome == "would_change"]
        if not todo:
            raise OperationError("Nothing to apply: the dry run found no grant that would "
                                 "change.", code="NOTHING_TO_APPLY")
        ids = [i.grant_id for i in todo]
        expected = {i.grant_id: i.before for i in todo}
    return run_bulk(ops, actor, replace(plan, grant_ids=tuple(ids)), reason, dry_run=dry_run,
                    ticket=ticket, progress=progress, expected=expected, confirmed=confirmed)


def applied_summary(preview: BulkResult | None, result: BulkResult) -> str:
    """The final message of a run, in the dry run's terms."""
    c = result.counts
    parts = [f"{c['succeeded']:,} changed"]
    if c["unchanged"]:
        parts.append(f"{c['unchanged']:,} already there")
    if c["skipped"]:
        parts.append(f"{c['skipped']:,} skipped (changed since the dry run, or not a Guest)")
    if c["failed"]:
        parts.append(f"{c['failed']:,} failed")
    text = ", ".join(parts)
    if preview is not None:
        would = preview.count("would_change")
        left = len(preview.items) - would
        text = f"Of the {would:,} grant(s) the dry run said would change: {text}."
        if left:
            text += f" The other {left:,} selected grant(s) were not touched (see the dry run)."
    return text


def save_bulk_draft(ops: Operations, actor: Actor, draft: BulkDraft) -> BulkDraft:
    """Keep the user's Guest limits selection and dry run in the database (every replica,
    every tab of the user sees it); returns what was kept."""
    return ops.bulk_drafts.save(actor, draft)


def clear_bulk_draft(ops: Operations, actor: Actor) -> None:
    """Forget the user's Guest limits selection and dry run (Clear selection)."""
    ops.bulk_drafts.clear(actor)
