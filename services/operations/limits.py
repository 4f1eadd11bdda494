"""Guest transaction limits: tiers, one grant's limit, a tier or a custom limit on many."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, overload

from services.operations import validation as v
from services.operations.approval_policy import Change
from services.operations.bulk import (
    CUSTOM_LIMIT,
    BulkPlan,
    BulkRun,
    Progress,
    item_dict,
)
from services.operations.bulk_resume import recorded_run, resumed_plan, settled_grants
from services.operations.context import OpsContext
from services.operations.errors import ConfirmationRequired, ValidationError
from services.operations.four_eyes import ApprovalExecution, FourEyes, Held
from services.operations.limit_change import (
    GrantLimitChange,
    after_fields,
    before_fields,
)
from services.operations.limit_value import (
    UNKNOWN,
    GuestLimit,
    bulk_confirmation_question,
    confirmation_question,
)
from services.operations.models import BulkResult, LimitChange
from services.operations.permissions import Actor, Permission
from services.settings import Tier
from services.store.actions import AuditAction

NOTHING_TO_CHANGE = "Please type a limit, switch the limiter, or both."


class LimitOps:
    """Use cases on Guest transaction limits."""

    def __init__(self, ctx: OpsContext, gate: FourEyes) -> None:
        self.ctx = ctx
        self.gate = gate  # four-eyes: every change asks it
        self.grant = GrantLimitChange(ctx)  # one grant's change, as the bulk engine's

    def __repr__(self) -> str:
        return f"LimitOps({self.ctx!r})"

    def _preview(self, actor: Actor, change: Change) -> Callable[[], list[dict[str, Any]]]:
        """A request's before -> after per grant: the change's dry run."""
        def run() -> list[dict[str, Any]]:
            if change.tier is not None:
                res = self.apply_tier(actor, change.grant_ids, change.tier, dry_run=True)
            else:
                res = self.apply_limit(actor, change.grant_ids, change.limit, change.limiter,
                                       dry_run=True)
            return [item_dict(i) for i in res.items]
        return run

    def confirmation_for(self, actor: Actor, grant_id: str, transaction_limit: object = None,
                         enable_limiter: object = None, *, tier: str | None = None,
                         expected_limit: object = None, expected_limiter: object = None,
                         ) -> str | None:
        """The question a person must answer yes to before this change of one grant is
        made (None: no question): a cut of the limit by more than half, or the limiter
        switched off. Judged against what the person saw (`expected_*`), else the limit
        read now. `set_guest_limit` and `apply_tier` on one grant refuse such a change
        without `confirmed=True`."""
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.LIMIT_UPDATE, "grant",
                       grant_id)
        gid = v.grant_id(grant_id)
        limit: int | None
        limiter: bool | None
        if tier is not None:
            t = self.tier(tier)
            limit, limiter = (t.limit, True) if t.limit is not None else (None, False)
        else:
            limit = v.transaction_limit(transaction_limit) if transaction_limit is not None \
                else None
            limiter = v.enable_limiter(enable_limiter) if enable_limiter is not None else None
        seen = seen_limit(expected_limit, expected_limiter)
        if not seen.known and expected_limiter is None:
            seen = self.grant.read(gid).value
        return confirmation_question(seen, limit, limiter)

    def _confirm(self, actor: Actor, gid: str, confirmed: bool, **values: Any) -> None:
        if confirmed:
            return
        question = self.confirmation_for(actor, gid, **values)
        if question is not None:
            raise ConfirmationRequired(question)

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self.ctx.tiers

    def tier(self, name: str | Tier) -> Tier:
        """The configured tier with this name (case-insensitive)."""
        wanted = name.name if isinstance(name, Tier) else name
        if not isinstance(wanted, str):
            raise ValidationError("tier", "Please choose a tier.")
        for t in self.ctx.tiers:
            if t.name.lower() == wanted.strip().lower():
                return t
        names = ", ".join(t.name for t in self.ctx.tiers)
        raise ValidationError("tier", f"There is no tier “{wanted}”; the tiers are {names}.")

    def matching_tier(self, value: GuestLimit) -> Tier | None:
        """The configured tier whose limit is this one (a tier without a limit: no cap);
        None when unknown or no tier matches."""
        if not value.known:
            return None
        return next((t for t in self.ctx.tiers if t.limit == value.cap), None)

    def set_guest_limit(
        self,
        actor: Actor,
        grant_id: str,
        transaction_limit: int | None = None,
        enable_limiter: bool | None = None,
        reason: str | None = None,
        ticket: str | None = None,
        *,
        expected_limit: int | None = None,
        expected_limiter: bool | None = None,
        approval: ApprovalExecution | None = None,
        confirmed: bool = False,
    ) -> LimitChange | Held:
        """Set a Guest's transaction limit and/or switch its limiter; refused before the call
        when the grant is known to be Linked (`NOT_ANON_USER`). `Held` (nothing sent) when
        the four-eyes policy says it waits for a second person; `approval`: the proof of an
        approved request for it (the approvals use case's).

        A cut by more than half or a limiter switched off is refused (`ConfirmationRequired`,
        its question; nothing recorded) unless `confirmed`.
        `expected_limit`/`expected_limiter`: what the person saw (the effective limit, and
        whether the limiter was on); when a fresh read differs, `StaleChange` (audited as
        failed, `STALE`) and nothing is sent."""
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.LIMIT_UPDATE, "grant",
                       grant_id)
        gid, limit, limiter, why, tkt = _validate_limit(
            grant_id, transaction_limit, enable_limiter, reason, ticket
        )
        seen = seen_limit(expected_limit, expected_limiter)
        if approval is None:
            self._confirm(actor, gid, confirmed, transaction_limit=limit,
                          enable_limiter=limiter, expected_limit=expected_limit,
                          expected_limiter=expected_limiter)
        change_ = Change.guest_limit(gid, limit, limiter)
        held = self.gate.hold(actor, change_, why, tkt, approval,
                              self._preview(actor, change_))
        if held is not None:
            return held

        def body() -> tuple[LimitChange, dict[str, Any], dict[str, Any]]:
            change = self.grant.change(gid, limit, limiter, seen=seen)
            return change, before_fields(change), after_fields(change)

        return self.ctx.run(
            actor, AuditAction.LIMIT_UPDATE, body, what="Changing the limit",
            target_type="grant", target_id=gid,
            params={"transaction_limit": limit, "enable_limiter": limiter,
                    **(approval.params() if approval is not None else {})},
            reason=why, ticket=tkt,
            correlation_id=approval.correlation_id if approval is not None else None,
        )

    @overload
    def apply_tier(self, actor: Actor, grant_ids: Iterable[str], tier: str | Tier,
                   reason: str | None = None, *, dry_run: Literal[True],
                   ticket: str | None = None, progress: Progress | None = None,
                   expected: Mapping[str, GuestLimit] | None = None,
                   approval: ApprovalExecution | None = None,
                   confirmed: bool = False) -> BulkResult: ...

    @overload
    def apply_tier(self, actor: Actor, grant_ids: Iterable[str], tier: str | Tier,
                   reason: str | None = None, *, dry_run: bool = False,
                   ticket: str | None = None, progress: Progress | None = None,
                   expected: Mapping[str, GuestLimit] | None = None,
                   approval: ApprovalExecution | None = None,
                   confirmed: bool = False) -> BulkResult | Held: ...

    def apply_tier(
        self,
        actor: Actor,
        grant_ids: Iterable[str],
        tier: str | Tier,
        reason: str | None = None,
        *,
        dry_run: bool = False,
        ticket: str | None = None,
        progress: Progress | None = None,
        expected: Mapping[str, GuestLimit] | None = None,
        approval: ApprovalExecution | None = None,
        confirmed: bool = False,
    ) -> BulkResult | Held:
        """Apply a configured tier to many grants (`BulkRun`); reason optional for a dry run.
        A real run asks the four-eyes gate first (`Held`: nothing sent); `approval`: the
        proof of an approved request. On one grant, a cut by more than half or a limiter
        switched off needs `confirmed` (as `set_guest_limit`).
        `expected`: per grant, the limit the person saw (a dry run's `before`);
        a grant whose fresh value differs is skipped as `STALE`."""
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.TIER_APPLY)
        gids = v.grant_ids(grant_ids)
        seen = _seen_map(expected)
        t = self.tier(tier)
        why = v.reason(reason, required=not dry_run)
        tkt = v.ticket(ticket)
        limit, limiter = (t.limit, True) if t.limit is not None else (None, False)
        if not dry_run:
            if len(gids) == 1 and approval is None:
                self._confirm(actor, gids[0], confirmed, tier=t.name,
                              **_shown_values(seen.get(gids[0], UNKNOWN)))
            elif approval is None:
                _confirm_bulk(gids, seen, limit, limiter, confirmed)
            change_ = Change.apply_tier(gids, t.name)
            held = self.gate.hold(actor, change_, why, tkt, approval,
                                  self._preview(actor, change_))
            if held is not None:
                return held
        plan = BulkPlan(
            label=t.name, limit=limit, limiter=limiter, action=AuditAction.TIER_APPLY,
            bulk_action=AuditAction.TIER_APPLY_BULK, what=f"Applying tier {t.name}",
            params={"tier": t.name, "transaction_limit": limit, "enable_limiter": limiter},
        )
        return _bulk_run(self, actor, plan, why, tkt, seen, approval).run(
            gids, dry_run=dry_run, progress=progress,
            correlation_id=approval.correlation_id if approval is not None else None)

    @overload
    def apply_limit(self, actor: Actor, grant_ids: Iterable[str],
                    transaction_limit: int | None = None, enable_limiter: bool | None = None,
                    reason: str | None = None, *, dry_run: Literal[True],
                    ticket: str | None = None, progress: Progress | None = None,
                    expected: Mapping[str, GuestLimit] | None = None,
                    approval: ApprovalExecution | None = None,
                    confirmed: bool = False) -> BulkResult: ...

    @overload
    def apply_limit(self, actor: Actor, grant_ids: Iterable[str],
                    transaction_limit: int | None = None, enable_limiter: bool | None = None,
                    reason: str | None = None, *, dry_run: bool = False,
                    ticket: str | None = None, progress: Progress | None = None,
                    expected: Mapping[str, GuestLimit] | None = None,
                    approval: ApprovalExecution | None = None,
                    confirmed: bool = False) -> BulkResult | Held: ...

    def apply_limit(
        self,
        actor: Actor,
        grant_ids: Iterable[str],
        transaction_limit: int | None = None,
        enable_limiter: bool | None = None,
        reason: str | None = None,
        *,
        dry_run: bool = False,
        ticket: str | None = None,
        progress: Progress | None = None,
        expected: Mapping[str, GuestLimit] | None = None,
        approval: ApprovalExecution | None = None,
        confirmed: bool = False,
    ) -> BulkResult | Held:
        """One custom limit and/or limiter switch on many grants; validated like
        `set_guest_limit`, run (and held for approval) like `apply_tier`, confirmed like
        it (a cut by more than half or a limiter switched off on any grant, judged against
        `expected`); `BulkResult.tier` is `CUSTOM_LIMIT`."""
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.LIMIT_UPDATE)
        gids = v.grant_ids(grant_ids)
        seen = _seen_map(expected)
        limit = v.transaction_limit(transaction_limit) if transaction_limit is not None else None
        limiter = v.enable_limiter(enable_limiter) if enable_limiter is not None else None
        if limit is None and limiter is None:
            raise ValidationError("transaction_limit", NOTHING_TO_CHANGE)
        why = v.reason(reason, required=not dry_run)
        tkt = v.ticket(ticket)
        if not dry_run:
            if approval is None:
                _confirm_bulk(gids, seen, limit, limiter, confirmed)
            change_ = Change.apply_limit(gids, limit, limiter)
            held = self.gate.hold(actor, change_, why, tkt, approval,
                                  self._preview(actor, change_))
            if held is not None:
                return held
        plan = BulkPlan(
            label=CUSTOM_LIMIT, limit=limit, limiter=limiter, action=AuditAction.LIMIT_UPDATE,
            bulk_action=AuditAction.LIMIT_UPDATE_BULK, what="Changing the limit",
            params={"transaction_limit": limit, "enable_limiter": limiter},
        )
        return _bulk_run(self, actor, plan, why, tkt, seen, approval).run(
            gids, dry_run=dry_run, progress=progress,
            correlation_id=approval.correlation_id if approval is not None else None)

    def resume_bulk(
        self,
        actor: Actor,
        bulk_id: str,
        reason: str | None = None,
        *,
        dry_run: bool = False,
        ticket: str | None = None,
        progress: Progress | None = None,
    ) -> BulkResult | Held:
        """Run again, as a new bulk run, the grants of an interrupted run (`bulk_id`) that
        have no settled outcome; a grant already at the target is left alone. The plan is
        the one recorded with the run; the reason defaults to the run's. A real run asks
        the four-eyes gate like any change of these grants (`Held`: a request for the
        remaining grants with the run's values; an approval given to the interrupted run
        does not carry over)."""
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.LIMIT_UPDATE, "bulk",
                       bulk_id)
        bid = v.bulk_id(bulk_id)
        first = recorded_run(self.ctx.audit_log, bid)
        params = first.params
        plan = resumed_plan(first.action, params)
        settled = settled_grants(self.ctx.audit_log, bid, plan.action, first)
        remaining = tuple(g for g in params["grant_ids"] if g not in settled)
        why = v.reason(reason if reason is not None else first.reason,
                       required=not dry_run)
        tkt = v.ticket(ticket if ticket is not None else first.ticket)
        if not dry_run and remaining:
            change_ = (Change.apply_tier(remaining, plan.label)
                       if plan.action == AuditAction.TIER_APPLY
                       and any(t.name == plan.label for t in self.ctx.tiers)
                       else Change.apply_limit(remaining, plan.limit, plan.limiter))
            held = self.gate.hold(actor, change_, why, tkt, None,
                                  self._preview(actor, change_))
            if held is not None:
                return held
        run = BulkRun(self.ctx, actor, plan, why, tkt)
        run.skip_at_target = True
        run.extra_params = {"resumes": bid}
        return run.run(remaining, dry_run=dry_run, progress=progress)


def seen_limit(limit: object, limiter: object) -> GuestLimit:
    """The limit a person saw, from the limit and limiter shown: no cap when the limiter
    was off, unknown when nothing was shown."""
    try:
        return GuestLimit.shown(limit, limiter)
    except TypeError:
        raise ValidationError("expected_limiter", "The limiter shown must be on or off.") \
            from None
    except ValueError:
        raise ValidationError("expected_limit", "The limit shown must be a whole number.") \
            from None


def _confirm_bulk(gids: Iterable[str], seen: Mapping[str, GuestLimit], limit: int | None,
                  limiter: bool | None, confirmed: bool) -> None:
    """The single grant's rule over a bulk change: `ConfirmationRequired` (nothing sent or
    recorded) when any grant, as the person saw it, is cut by more than half or gets its
    limiter switched off, unless `confirmed`."""
    if confirmed:
        return
    question = bulk_confirmation_question({g: seen.get(g, UNKNOWN) for g in gids}, limit,
                                          limiter)
    if question is not None:
        raise ConfirmationRequired(question)


def _shown_values(shown: GuestLimit) -> dict[str, Any]:
    """A seen limit as `expected_limit`/`expected_limiter`."""
    if not shown.known:
        return {}
    if shown.cap is None:
        return {"expected_limiter": False}
    return {"expected_limit": shown.cap, "expected_limiter": True}


def _bulk_run(limits: LimitOps, actor: Actor, plan: BulkPlan, why: str | None,
              tkt: str | None, seen: Mapping[str, GuestLimit],
              approval: ApprovalExecution | None) -> BulkRun:
    run = BulkRun(limits.ctx, actor, plan, why, tkt, seen)
    if approval is not None:  # every event of the run credits the approver and the request
        run.approval_params = approval.params()
    return run


def _seen_map(expected: Mapping[str, object] | None) -> dict[str, GuestLimit]:
    """Per grant, the limit seen: a `GuestLimit`, or its JSON form (a number, None for no
    cap, "unknown")."""
    out: dict[str, GuestLimit] = {}
    for gid, val in (expected or {}).items():
        if isinstance(val, GuestLimit) or val is None or val == "unknown":
            out[str(gid)] = GuestLimit.from_json(val)
        else:
            out[str(gid)] = seen_limit(val, None)
    return out


def _validate_limit(
    grant_id: object, limit: object, limiter: object, reason: object, ticket: object
) -> tuple[str, int | None, bool | None, str, str | None]:
    gid = v.grant_id(grant_id)
    lim = v.transaction_limit(limit) if limit is not None else None
    on = v.enable_limiter(limiter) if limiter is not None else None
    if lim is None and on is None:
        raise ValidationError("transaction_limit", NOTHING_TO_CHANGE)
    why = v.reason(reason)
    assert why is not None
    return gid, lim, on, why, v.ticket(ticket)
