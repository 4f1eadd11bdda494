"""Guest transaction limits: tiers, one grant's limit, a tier or a custom limit on many."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from services.kryptos.errors import KryptosError
from services.operations import validation as v
from services.operations.approval_policy import Change
from services.operations.bulk import (
    CUSTOM_LIMIT,
    BulkPlan,
    BulkRun,
    Effective,
    Progress,
    after_fields,
    before_fields,
    effective,
    item_dict,
    limit_words,
    projected,
)
from services.operations.bulk_resume import recorded_run, resumed_plan, settled_grants
from services.operations.context import UNREAD, EntryArg, OpsContext, Unread
from services.operations.errors import (
    ConfirmationRequired,
    OperationError,
    StaleChange,
    ValidationError,
)
from services.operations.four_eyes import ApprovalExecution, FourEyes, Held
from services.operations.models import BulkResult, LimitChange
from services.operations.permissions import Actor, Permission
from services.settings import Tier
from services.store.actions import AuditAction
from services.store.audit import AuditEvent
from services.store.vault import VaultEntry

log = logging.getLogger(__name__)

NOT_ANON_MESSAGE = (
    "Limit not changed: this user is not a Guest account. Transaction limits only apply to "
    "Guest users; Linked users manage their own volume."
)

NOTHING_TO_CHANGE = "Please type a limit, switch the limiter, or both."


@dataclass(frozen=True)
class Before:
    """A grant's limit before a change: raw limit and limiter, Guest or not, whether
    anything was known, and the vault entry as it now is."""

    limit: int | None
    limiter: bool | None
    is_guest: bool | None
    known: bool
    entry: VaultEntry | None = None


class LimitOps:
    """Use cases on Guest transaction limits."""

    def __init__(self, ctx: OpsContext, gate: FourEyes) -> None:
        self.ctx = ctx
        self.gate = gate  # four-eyes: every change asks it

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
        if tier is not None:
            t = self.tier(tier)
            limit, limiter = (t.limit, True) if t.limit is not None else (None, False)
        else:
            limit = v.transaction_limit(transaction_limit) if transaction_limit is not None \
                else None
            limiter = v.enable_limiter(enable_limiter) if enable_limiter is not None else None
        seen = seen_effective(expected_limit, expected_limiter)
        seen_on: bool | None = None if expected_limiter is None else bool(expected_limiter)
        if seen == "unknown" and expected_limiter is None:
            b = self.known_before(gid)
            if b.known:
                seen = effective(b.limit, b.limiter)
                seen_on = b.limiter if b.limiter is not None else seen is not None
        return confirmation_question(seen, seen_on, limit, limiter)

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

    def current_limits(self, actor: Actor, grant_ids: Iterable[str]
                       ) -> dict[str, tuple[Effective, bool | None]]:
        """Each grant's limit as it is now: (effective limit, limiter), read concurrently from
        the user info, else the last recorded change; ("unknown", None) when nobody knows."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW)
        gids = list(dict.fromkeys(v.grant_id(g) for g in grant_ids))
        if not gids:
            return {}
        entries = {e.grant_id: e for e in self.ctx.vault.list()}

        def read(gid: str) -> tuple[Effective, bool | None]:
            b = self.known_before(gid, entries.get(gid))
            if not b.known:
                return "unknown", None
            eff = effective(b.limit, b.limiter)
            return eff, (eff is not None) if b.limiter is None else b.limiter

        workers = min(self.ctx.max_workers, len(gids))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="limits") as pool:
            return dict(zip(gids, pool.map(read, gids), strict=True))

    def matching_tier(self, value: Effective) -> Tier | None:
        """The configured tier whose limit is this effective limit (None: limiter off)."""
        if value == "unknown":
            return None
        return next((t for t in self.ctx.tiers if t.limit == value), None)

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
        seen = seen_effective(expected_limit, expected_limiter)
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
            change = self.change_limit(gid, limit, limiter, seen=seen)
            return change, before_fields(change), after_fields(change)

        return self.ctx.run(
            actor, AuditAction.LIMIT_UPDATE, body, what="Changing the limit",
            target_type="grant", target_id=gid,
            params={"transaction_limit": limit, "enable_limiter": limiter,
                    **(approval.params() if approval is not None else {})},
            reason=why, ticket=tkt,
            correlation_id=approval.correlation_id if approval is not None else None,
        )

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
        expected: Mapping[str, Effective] | None = None,
        approval: ApprovalExecution | None = None,
        confirmed: bool = False,
    ) -> BulkResult | Held:
        """Apply a configured tier to many grants (`BulkRun`); reason optional for a dry run.
        A real run asks the four-eyes gate first (`Held`: nothing sent); `approval`: the
        proof of an approved request. On one grant, a cut by more than half or a limiter
        switched off needs `confirmed` (as `set_guest_limit`).
        `expected`: per grant, the effective limit the person saw (a dry run's `before`);
        a grant whose fresh value differs is skipped as `STALE`."""
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.TIER_APPLY)
        gids = v.grant_ids(grant_ids)
        seen = _seen_map(expected)
        t = self.tier(tier)
        why = v.reason(reason, required=not dry_run)
        tkt = v.ticket(ticket)
        if not dry_run:
            if len(gids) == 1 and approval is None:
                shown = seen.get(gids[0], "unknown")
                self._confirm(actor, gids[0], confirmed, tier=t.name,
                              **_shown_values(shown))
            change_ = Change.apply_tier(gids, t.name)
            held = self.gate.hold(actor, change_, why, tkt, approval,
                                  self._preview(actor, change_))
            if held is not None:
                return held
        limit, limiter = (t.limit, True) if t.limit is not None else (None, False)
        plan = BulkPlan(
            label=t.name, limit=limit, limiter=limiter, action=AuditAction.TIER_APPLY,
            bulk_action=AuditAction.TIER_APPLY_BULK, what=f"Applying tier {t.name}",
            params={"tier": t.name, "transaction_limit": limit, "enable_limiter": limiter},
        )
        return _bulk_run(self, actor, plan, why, tkt, seen, approval).run(
            gids, dry_run=dry_run, progress=progress,
            correlation_id=approval.correlation_id if approval is not None else None)

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
        expected: Mapping[str, Effective] | None = None,
        approval: ApprovalExecution | None = None,
    ) -> BulkResult | Held:
        """One custom limit and/or limiter switch on many grants; validated like
        `set_guest_limit`, run (and held for approval) like `apply_tier`;
        `BulkResult.tier` is `CUSTOM_LIMIT`."""
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
        run = BulkRun(self, actor, plan, why, tkt)
        run.skip_at_target = True
        run.extra_params = {"resumes": bid}
        return run.run(remaining, dry_run=dry_run, progress=progress)

    # --- one grant's limit (also used by the bulk engine) ----------------------------------

    def known_before(self, gid: str, entry: EntryArg = UNREAD) -> Before:
        """The limit before a change, from user info or else the audit log's last succeeded
        change; `known` is False when neither says anything."""
        if isinstance(entry, Unread):
            entry = self.ctx.entry(gid)
        token = self.ctx.token(gid, entry)
        if token is not None:
            try:
                info = self.ctx.client.get_userinfo(token)
            except KryptosError as exc:
                log.info("limit: user info of %s unreadable: %s", gid, exc)
            else:
                entry = self.ctx.learn_from_userinfo(gid, info, entry)
                lim = info.transaction_limit
                return Before(lim, lim is not None, info.is_guest, True, entry)
        is_guest = None if entry is None or entry.user_kind is None else entry.user_kind == "guest"
        last = self.last_change(gid)
        if last is not None and isinstance(last.after, Mapping):
            after = last.after
            return Before(after.get("transaction_limit"), after.get("enable_limiter"),
                          is_guest, True, entry)
        return Before(None, None, is_guest, False, entry)

    def change_limit(
        self,
        gid: str,
        limit: int | None,
        limiter: bool | None,
        entry: EntryArg = UNREAD,
        *,
        read_before: bool = True,
        seen: Effective = "unknown",
    ) -> LimitChange:
        """PATCH one grant's limit, refusing a grant known to be Linked before the call.
        `read_before=False`: skip the user-info pre-read (the API reports `previous_*`).
        `seen`: the effective limit the person saw; `StaleChange` when it differs now."""
        if isinstance(entry, Unread):
            entry = self.ctx.entry(gid)
        if read_before or seen != "unknown":
            before = self.known_before(gid, entry)
            self.check_seen(gid, before, seen)
        else:
            kind = getattr(entry, "user_kind", None)
            before = Before(None, None, None if kind is None else kind == "guest", False, entry)
        if before.is_guest is False:
            raise OperationError(NOT_ANON_MESSAGE, code="NOT_ANON_USER")
        entry = before.entry
        try:
            res = self.ctx.client.update_transaction_limit(
                gid, transaction_limit=limit, enable_limiter=limiter
            )
        except KryptosError as exc:
            if exc.code == "NOT_ANON_USER":
                self.ctx.remember(gid, entry, user_kind="linked")
            raise
        self.ctx.remember(gid, entry, user_kind="guest", kryptos_user_id=res.user_id)
        self.ctx.rm_update("a limit change", lambda rm: rm.apply_limit_change(
            gid, res.transaction_limit, res.enable_limiter))
        before_limit, before_limiter, before_known = before.limit, before.limiter, before.known
        reported = (res.previous_transaction_limit is not None
                    or res.previous_enable_limiter is not None)
        if reported:
            before_limit = res.previous_transaction_limit
            before_limiter = res.previous_enable_limiter
            before_known = True
        return LimitChange(
            grant_id=gid,
            before_limit=before_limit,
            before_limiter=before_limiter,
            after_limit=res.transaction_limit,
            after_limiter=res.enable_limiter,
            resync=res.resync,
            before_reported=reported,
            before_known=before_known,
        )

    def check_seen(self, gid: str, before: Before, seen: Effective) -> None:
        """Raise `StaleChange` when the effective limit read now is not the one seen (no
        check when either is unknown)."""
        if seen == "unknown" or not before.known:
            return
        now = effective(before.limit, before.limiter)
        if now == seen:
            return
        who, when = None, None
        last = self.last_change(gid)
        if last is not None and isinstance(last.after, Mapping) and effective(
                last.after.get("transaction_limit"), last.after.get("enable_limiter")) == now:
            who, when = last.actor_username, last.ts
        raise StaleChange("the limit", limit_words(seen), limit_words(now), who, when)

    def last_change(self, gid: str) -> AuditEvent | None:
        """The newest succeeded limit change or tier application on this grant."""
        last = None
        for action in (AuditAction.LIMIT_UPDATE, AuditAction.TIER_APPLY):
            ev = self.ctx.audit_log.last_event(gid, action=action, outcome="succeeded")
            if ev is not None and (last is None or ev.seq > last.seq):
                last = ev
        return last


def seen_effective(limit: object, limiter: object) -> Effective:
    """The effective limit a person saw, from the limit and limiter shown: None when the
    limiter was off, "unknown" when nothing was shown."""
    if limiter is not None and not isinstance(limiter, bool):
        raise ValidationError("expected_limiter", "The limiter shown must be on or off.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise ValidationError("expected_limit", "The limit shown must be a whole number.")
    if limiter is False:
        return None
    return limit if limit is not None else "unknown"


def confirmation_question(before: Effective, before_on: bool | None, limit: int | None,
                          limiter: bool | None) -> str | None:
    """The rule: a change of one grant's limit that cuts it by more than half, or switches
    the limiter off, must be confirmed; this is the question (None: nothing to confirm).
    `before`/`before_on`: the effective limit and limiter as known (seen or read)."""
    on = True if limit is not None and limiter is None else limiter
    after = projected(before, limit, on)
    if on is False and before_on is not False:
        return (f"This switches the limiter off: the limit goes from {limit_words(before)} "
                "to no cap (the Guest can make any number of transactions).")
    if isinstance(before, int) and isinstance(after, int) and after * 2 < before:
        return (f"This cuts the limit by more than half: {before:,} -> {after:,} "
                "transactions.")
    return None


def _shown_values(shown: Effective) -> dict[str, Any]:
    """A seen effective limit as `expected_limit`/`expected_limiter`."""
    if shown == "unknown":
        return {}
    if shown is None:
        return {"expected_limiter": False}
    return {"expected_limit": shown, "expected_limiter": True}


def _bulk_run(limits: LimitOps, actor: Actor, plan: BulkPlan, why: str | None,
              tkt: str | None, seen: Mapping[str, Effective],
              approval: ApprovalExecution | None) -> BulkRun:
    run = BulkRun(limits, actor, plan, why, tkt, seen)
    if approval is not None:  # every event of the run credits the approver and the request
        run.approval_params = approval.params()
    return run


def _seen_map(expected: Mapping[str, Effective] | None) -> dict[str, Effective]:
    out: dict[str, Effective] = {}
    for gid, val in (expected or {}).items():
        if val is None or val == "unknown":
            out[str(gid)] = val
        else:
            out[str(gid)] = seen_effective(val, None)
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
