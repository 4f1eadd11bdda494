"""Guest transaction limits: tiers, one grant's limit, a tier or a custom limit on many."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from services.kryptos.errors import KryptosError
from services.operations import validation as v
from services.operations.bulk import (
    CUSTOM_LIMIT,
    BulkPlan,
    BulkRun,
    Effective,
    Progress,
    after_fields,
    before_fields,
    effective,
    limit_words,
)
from services.operations.bulk_resume import recorded_run, resumed_plan, settled_grants
from services.operations.context import UNREAD, EntryArg, OpsContext, Unread
from services.operations.errors import OperationError, StaleChange, ValidationError
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

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"LimitOps({self.ctx!r})"

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
        correlation_id: str | None = None,
    ) -> LimitChange:
        """Set a Guest's transaction limit and/or switch its limiter; refused before the call
        when the grant is known to be Linked (`NOT_ANON_USER`).

        `expected_limit`/`expected_limiter`: what the person saw (the effective limit, and
        whether the limiter was on); when a fresh read differs, `StaleChange` (audited as
        failed, `STALE`) and nothing is sent."""
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.LIMIT_UPDATE, "grant",
                       grant_id)
        gid, limit, limiter, why, tkt = _validate_limit(
            grant_id, transaction_limit, enable_limiter, reason, ticket
        )
        seen = seen_effective(expected_limit, expected_limiter)

        def body() -> tuple[LimitChange, dict[str, Any], dict[str, Any]]:
            change = self.change_limit(gid, limit, limiter, seen=seen)
            return change, before_fields(change), after_fields(change)

        return self.ctx.run(
            actor, AuditAction.LIMIT_UPDATE, body, what="Changing the limit",
            target_type="grant", target_id=gid,
            params={"transaction_limit": limit, "enable_limiter": limiter},
            reason=why, ticket=tkt, correlation_id=correlation_id,
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
        correlation_id: str | None = None,
    ) -> BulkResult:
        """Apply a configured tier to many grants (`BulkRun`); reason optional for a dry run.
        `expected`: per grant, the effective limit the person saw (a dry run's `before`);
        a grant whose fresh value differs is skipped as `STALE`."""
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.TIER_APPLY)
        gids = v.grant_ids(grant_ids)
        seen = _seen_map(expected)
        t = self.tier(tier)
        why = v.reason(reason, required=not dry_run)
        tkt = v.ticket(ticket)
        limit, limiter = (t.limit, True) if t.limit is not None else (None, False)
        plan = BulkPlan(
            label=t.name, limit=limit, limiter=limiter, action=AuditAction.TIER_APPLY,
            bulk_action=AuditAction.TIER_APPLY_BULK, what=f"Applying tier {t.name}",
            params={"tier": t.name, "transaction_limit": limit, "enable_limiter": limiter},
        )
        return BulkRun(self, actor, plan, why, tkt, seen).run(
            gids, dry_run=dry_run, progress=progress, correlation_id=correlation_id)

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
        correlation_id: str | None = None,
    ) -> BulkResult:
        """One custom limit and/or limiter switch on many grants; validated like
        `set_guest_limit`, run like `apply_tier`; `BulkResult.tier` is `CUSTOM_LIMIT`."""
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.LIMIT_UPDATE)
        gids = v.grant_ids(grant_ids)
        seen = _seen_map(expected)
        limit = v.transaction_limit(transaction_limit) if transaction_limit is not None else None
        limiter = v.enable_limiter(enable_limiter) if enable_limiter is not None else None
        if limit is None and limiter is None:
            raise ValidationError("transaction_limit", NOTHING_TO_CHANGE)
        why = v.reason(reason, required=not dry_run)
        tkt = v.ticket(ticket)
        plan = BulkPlan(
            label=CUSTOM_LIMIT, limit=limit, limiter=limiter, action=AuditAction.LIMIT_UPDATE,
            bulk_action=AuditAction.LIMIT_UPDATE_BULK, what="Changing the limit",
            params={"transaction_limit": limit, "enable_limiter": limiter},
        )
        return BulkRun(self, actor, plan, why, tkt, seen).run(
            gids, dry_run=dry_run, progress=progress, correlation_id=correlation_id)

    def resume_bulk(
        self,
        actor: Actor,
        bulk_id: str,
        reason: str | None = None,
        *,
        dry_run: bool = False,
        ticket: str | None = None,
        progress: Progress | None = None,
    ) -> BulkResult:
        """Run again, as a new bulk run, the grants of an interrupted run (`bulk_id`) that
        have no settled outcome; a grant already at the target is left alone. The plan is
        the one recorded with the run; the reason defaults to the run's."""
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
