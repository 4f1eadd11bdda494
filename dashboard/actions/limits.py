"""The Guest limit form of one grant: a limit and/or the limiter, or a tier; the question a
risky change asks first, and the summary of what was done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboard import reads
from dashboard.formats import fmt_bool, fmt_limit
from services.operations import (
    Actor,
    BulkItem,
    LimitChange,
    OperationError,
    Operations,
    ValidationError,
    validation,
)
from services.operations.four_eyes import Held
from services.operations.limit_value import UNKNOWN, GuestLimit

LIMITER_KEEP = "keep"
LIMITER_ON = "on"
LIMITER_OFF = "off"
LIMITER_CHOICES = (LIMITER_KEEP, LIMITER_ON, LIMITER_OFF)


def limiter_value(choice: str) -> bool | None:
    """The limiter select of the form -> the operation's `enable_limiter` argument."""
    if choice == LIMITER_KEEP:
        return None
    if choice == LIMITER_ON:
        return True
    if choice == LIMITER_OFF:
        return False
    raise ValidationError("limiter", "Please choose keep, on or off for the limiter.")


@dataclass(frozen=True)
class LimitFormResult:
    """What the Guest limit form did: a direct change, or a tier applied to this one grant."""

    change: LimitChange | None = None
    tier_item: BulkItem | None = None
    held: Held | None = None  # a request made instead (needs approval)

    def summary(self) -> str:
        if self.held is not None:
            return self.held.summary()
        if self.change is not None:
            c = self.change
            if not c.before_known:
                return (f"Limit set to {fmt_limit(c.after_limit)}, limiter "
                        f"{fmt_bool(c.after_limiter)} (before: unknown).")
            # Only what moved: "limiter on -> on" says nothing.
            if c.before_limit == c.after_limit:
                said = f"Limit kept at {fmt_limit(c.after_limit)}"
            else:
                said = f"Limit {fmt_limit(c.before_limit)} -> {fmt_limit(c.after_limit)}"
            if c.before_limiter != c.after_limiter:
                said += f", limiter {fmt_bool(c.before_limiter)} -> {fmt_bool(c.after_limiter)}"
            return said + "."
        if self.tier_item is not None:
            i = self.tier_item
            return f"Tier applied: limit {i.before.label()} -> {i.after.label()}."
        return "Nothing changed."


def limit_from_text(text: object) -> int | None:
    """The limit typed in a form (text, so "12.5" or "1e3" is refused, not rounded); None
    when nothing was typed."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    return validation.parse_limit(text)


def _form_limiter(limit: int | None, limiter: str) -> bool | None:
    """The form's limiter choice as the operation's `enable_limiter`: a new limit with the
    limiter left on "keep" switches it on."""
    return True if limit is not None and limiter == LIMITER_KEEP else limiter_value(limiter)


def _seen_values(seen: GuestLimit) -> dict[str, Any]:
    """What the page showed, as the use cases' `expected_limit`/`expected_limiter`."""
    if not seen.known:
        return {}
    return {"expected_limit": seen.cap, "expected_limiter": seen.limiter}


def submit_limit(
    ops: Operations,
    actor: Actor,
    grant_id: str,
    *,
    limit: int | str | None,
    limiter: str,
    tier: str | None,
    reason: str,
    ticket: str | None = None,
    seen: GuestLimit = UNKNOWN,
    confirmed: bool = False,
) -> LimitFormResult:
    """The Guest limit form: either apply a tier, or set a limit and/or switch the limiter.

    A new limit with the limiter left on "keep" also switches the limiter on (a limit on a
    Guest whose limiter is off would never be enforced); "off" chosen explicitly still stores
    a limit without enforcing it. `limit` may be the typed text. `seen`: what the page showed;
    when the grant changed since, `StaleChange` and nothing is sent. `confirmed`: the person
    answered yes to the use case's question (`ConfirmationRequired` without it).
    """
    try:
        value = limit_from_text(limit)
        if tier:
            return _apply_tier_to_one(ops, actor, grant_id, value, limiter, tier, reason,
                                      ticket, seen, confirmed)
        change = ops.limits.set_guest_limit(
            actor,
            grant_id,
            transaction_limit=value,
            enable_limiter=_form_limiter(value, limiter),
            reason=reason,
            ticket=ticket or None,
            confirmed=confirmed,
            **_seen_values(seen),
        )
        if isinstance(change, Held):
            return LimitFormResult(held=change)
        return LimitFormResult(change=change)
    finally:
        reads.invalidate_grant(grant_id)


def _apply_tier_to_one(ops: Operations, actor: Actor, grant_id: str, limit: int | None,
                       limiter: str, tier: str, reason: str, ticket: str | None,
                       seen: GuestLimit, confirmed: bool) -> LimitFormResult:
    if limit is not None or limiter != LIMITER_KEEP:
        raise ValidationError("tier", "Choose a tier, or a limit and limiter, not both.")
    result = ops.limits.apply_tier(actor, [grant_id], tier, reason, ticket=ticket or None,
                                   expected={grant_id: seen}, confirmed=confirmed)
    if isinstance(result, Held):
        return LimitFormResult(held=result)
    item = next((i for i in result.items if i.grant_id == grant_id), None)
    if item is None:
        raise OperationError(f"The tier run returned no result for {grant_id}.")
    if item.outcome in ("failed", "skipped"):
        raise OperationError(item.message or "Applying the tier failed.", code=item.error_code)
    return LimitFormResult(tier_item=item)
