"""Every change the pages make, as plain functions a test can call.

Each one calls an operation (which checks permission, validates and audits) and then drops
from `dashboard.reads`' cache what the change may have touched, whatever the outcome: a call
that failed may still have changed something upstream. AppTest does not run buttons inside
`st.dialog`, so a dialog only collects and confirms and then calls one of these.

No Streamlit import here.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

from dashboard import reads
from dashboard.formats import fmt_bool, fmt_limit
from dashboard.runtime import NotInSandbox, Runtime, play_widget
from sandbox import PublicTokenAnswer, SandboxControlError
from services.operations import (
    CUSTOM_LIMIT,
    Actor,
    BulkItem,
    BulkResult,
    GrantRow,
    LimitChange,
    LinkTokenIssued,
    OperationError,
    Operations,
    Permission,
    PermissionDenied,
    ResyncOutcome,
    ValidationError,
    validation,
)
from services.operations.approvals import ApprovalRequest
from services.operations.four_eyes import Held
from services.operations.limit_value import UNKNOWN, GuestLimit
from services.store.actions import AuditAction
from services.store.trail import watch_pending

#: `with watch_records() as pending: actions.confirm_revoke(...)`; `pending` is true when a
#: change was made but its audit record waits in the journal (see `ui.record_pending_note`).
watch_records = watch_pending

LIMITER_KEEP = "keep"
LIMITER_ON = "on"
LIMITER_OFF = "off"
LIMITER_CHOICES = (LIMITER_KEEP, LIMITER_ON, LIMITER_OFF)
CUSTOM = CUSTOM_LIMIT

ProgressFn = Callable[[int, int], None]


# --- refusals -------------------------------------------------------------------------------


def refusal(ops: Operations, actor: Actor, permission: Permission, action: str,
            target_type: str, target_id: str) -> PermissionDenied | None:
    """For a page reached without its permission: let the operations refuse (one `denied`
    event for `action` on the target) and return the refusal to show; None when the actor
    is in fact allowed."""
    try:
        ops.require(actor, permission, action, target_type, target_id)
    except PermissionDenied as exc:
        return exc
    return None


GUEST_LIMITS_PAGE = ("page", "guest_limits")


def refuse_unless_allowed(ops: Operations, actor: Actor) -> PermissionDenied | None:
    """The Guest limits page reached without the permission to manage limits (action
    `guest.tier.apply`, target the page)."""
    return refusal(ops, actor, Permission.MANAGE_LIMITS, AuditAction.TIER_APPLY, *GUEST_LIMITS_PAGE)


# --- one grant (Grant detail page) ---------------------------------------------------------


def confirm_revoke(
    ops: Operations,
    actor: Actor,
    grant_id: str,
    typed_grant_id: str,
    reason: str,
    ticket: str | None = None,
) -> str | Held:
    """Revoke `grant_id` once the user typed the same id again. Returns the API's message,
    or the request the use case made instead (`Held`: the change waits for approval).

    Refuses (ValidationError, nothing sent, nothing audited) when the typed id does not match.
    """
    if (typed_grant_id or "").strip() != grant_id:
        raise ValidationError(
            "grant id", "The id typed does not match this grant: type it again exactly."
        )
    try:
        # The page offers Revoke only on an active grant: refused (STALE) if it no longer is.
        done = ops.grants.revoke_grant(actor, grant_id, reason, ticket=ticket or None,
                                       expected_status="active")
        return done if isinstance(done, Held) else str(done)
    finally:
        reads.invalidate_grant(grant_id)


def request_resync(
    ops: Operations,
    actor: Actor,
    grant_id: str,
    wallet_id: str,
    mode: str,
    reason: str | None = None,
) -> ResyncOutcome:
    """Ask Kryptos to resync one integration (`mode` "latest" or "from_start")."""
    try:
        return ops.grants.resync_integration(
            actor, grant_id, wallet_id, mode, reason=reason or None)
    finally:
        reads.invalidate_grant(grant_id)


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
            return (
                f"Limit {fmt_limit(c.before_limit)} -> {fmt_limit(c.after_limit)}, "
                f"limiter {fmt_bool(c.before_limiter)} -> {fmt_bool(c.after_limiter)}."
            )
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


def needs_confirmation(ops: Operations, actor: Actor, grant_id: str, seen: GuestLimit,
                       limit: int | None, limiter: str, tier: str | None) -> str | None:
    """The question the limit use case asks before this change (before -> after), or None;
    the rule (a cut of more than half, the limiter switched off) is the operation's."""
    if tier:
        return ops.limits.confirmation_for(actor, grant_id, tier=tier, **_seen_values(seen))
    return ops.limits.confirmation_for(actor, grant_id, limit, _form_limiter(limit, limiter),
                                       **_seen_values(seen))


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


# --- many grants (Guest limits page) -------------------------------------------------------


def run_bulk(
    ops: Operations,
    actor: Actor,
    grant_ids: Sequence[str],
    tier: str,
    reason: str,
    *,
    dry_run: bool,
    ticket: str | None = None,
    progress: ProgressFn | None = None,
    expected: Mapping[str, GuestLimit] | None = None,
    confirmed: bool = False,
) -> BulkResult | Held:
    """Apply a configured tier to many grants (or preview it with `dry_run`); the use case
    may hold it for approval (`Held`)."""
    return _bulk(dry_run, lambda: ops.limits.apply_tier(
        actor, list(grant_ids), tier, reason, dry_run=dry_run, ticket=ticket or None,
        progress=progress, expected=expected, confirmed=confirmed))


def run_bulk_limit(
    ops: Operations,
    actor: Actor,
    grant_ids: Sequence[str],
    limit: int,
    reason: str,
    *,
    dry_run: bool,
    ticket: str | None = None,
    progress: ProgressFn | None = None,
    expected: Mapping[str, GuestLimit] | None = None,
) -> BulkResult | Held:
    """Set one custom limit (limiter on) on many grants (or preview it with `dry_run`): one
    bulk operation, like a tier (bounded concurrency, per-grant outcome, a dry run that reads
    each grant's current limit); the use case may hold it for approval (`Held`)."""
    return _bulk(dry_run, lambda: ops.limits.apply_limit(
        actor, list(grant_ids), transaction_limit=limit, enable_limiter=True, reason=reason,
        dry_run=dry_run, ticket=ticket or None, progress=progress, expected=expected))


def _bulk(dry_run: bool, run: Callable[[], BulkResult | Held]) -> BulkResult | Held:
    """Run a bulk change; after a real run (whatever its outcome) every cached read goes."""
    try:
        return run()
    finally:
        if not dry_run:
            reads.invalidate_all()


@dataclass(frozen=True)
class BulkPlan:
    """What the Guest limits page is about to change: grants, and a tier or a custom limit
    (a dry run is valid for the apply of the same plan only)."""

    grant_ids: tuple[str, ...]
    tier: str | None = None
    limit: int | None = None


@overload
def run_plan(ops: Operations, actor: Actor, plan: BulkPlan, reason: str, *,
             dry_run: Literal[True], ticket: str | None = None,
             progress: ProgressFn | None = None,
             preview: BulkResult | None = None) -> BulkResult: ...


@overload
def run_plan(ops: Operations, actor: Actor, plan: BulkPlan, reason: str, *, dry_run: bool,
             ticket: str | None = None, progress: ProgressFn | None = None,
             preview: BulkResult | None = None) -> BulkResult | Held: ...


def run_plan(ops: Operations, actor: Actor, plan: BulkPlan, reason: str, *, dry_run: bool,
             ticket: str | None = None, progress: ProgressFn | None = None,
             preview: BulkResult | None = None) -> BulkResult | Held:
    """Run `plan`: its tier, else its custom limit (refused when none was entered). A real
    run after a dry run (`preview`) acts only on the grants that would change, each against
    the limit the dry run showed (a grant changed since is skipped as `STALE`); a change
    that needs approval becomes a request."""
    ids: Sequence[str] = plan.grant_ids
    expected: dict[str, GuestLimit] | None = None
    if preview is not None and not dry_run:
        todo = [i for i in preview.items if i.outcome == "would_change"]
        if not todo:
            raise OperationError("Nothing to apply: the dry run found no grant that would "
                                 "change.", code="NOTHING_TO_APPLY")
        ids = [i.grant_id for i in todo]
        expected = {i.grant_id: i.before for i in todo}
    if plan.tier is not None:
        # Applying after the dry run is the person's yes to the before -> after it showed.
        return run_bulk(ops, actor, ids, plan.tier, reason, dry_run=dry_run,
                        ticket=ticket, progress=progress, expected=expected,
                        confirmed=preview is not None)
    if plan.limit is None:
        raise ValidationError("transaction_limit", "Please type the transaction limit to set "
                                                   "(a whole number, e.g. 7500).")
    return run_bulk_limit(ops, actor, ids, plan.limit, reason, dry_run=dry_run,
                          ticket=ticket, progress=progress, expected=expected)


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


# --- Connect page ---------------------------------------------------------------------------


def create_link_token(ops: Operations, actor: Actor, customer_ref: str,
                      returning_grant_id: str | None = None) -> LinkTokenIssued:
    """A link token for a new customer, or one resuming `returning_grant_id`'s session.
    Nothing cached changes (the grant is changed only when the widget completes)."""
    returning = (returning_grant_id or "").strip() or None
    return ops.connect.create_link_token(actor, customer_ref, returning)


def exchange_public_token(ops: Operations, actor: Actor, customer_ref: str,
                          public_token: str) -> GrantRow:
    """Exchange the widget's public token for the customer's grant (its token goes to the
    vault). On failure a grant may still have been created upstream: the lists are dropped."""
    try:
        row = ops.connect.exchange_public_token(actor, customer_ref, public_token)
    except BaseException:
        reads.invalidate_lists()
        raise
    reads.invalidate_grant(row.grant_id)
    return row


def complete_widget(runtime: Runtime, issued: LinkTokenIssued,
                    kind: str) -> PublicTokenAnswer:
    """Sandbox mode: play the customer's part of the widget opened with `issued`'s link
    token. A returning customer's run adds an integration to their grant (`resumed`), which
    is dropped from the cache; a new customer's gives a public token to exchange."""
    try:
        answer = play_widget(runtime, kind, issued.link_token)
    except (OSError, SandboxControlError, NotInSandbox) as exc:
        raise OperationError(
            "The sandbox did not complete the widget run "
            f"({type(exc).__name__}). If the link token has expired, create a new one; "
            "otherwise restart the console.",
            code="SANDBOX_WIDGET_FAILED",
        ) from None
    if answer.get("resumed"):
        reads.invalidate_grant(str(answer.get("grant_id")))
    return answer


def import_tokens_csv(ops: Operations, actor: Actor, content: bytes) -> Any:
    """Import an uploaded CSV of `grant_id, access_token, customer_ref` into the vault (the
    same as `python -m services.store import-tokens`); returns the store's `ImportReport`.
    Every cached read is dropped (any grant may have got a token)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("file", "This file is not UTF-8 text: save the CSV as UTF-8 "
                                      "(in Excel: \"CSV UTF-8\") and upload it again.") from None
    try:
        return ops.connect.import_tokens(actor, io.StringIO(text, newline=""))
    finally:
        reads.invalidate_all()


# --- four-eyes approval (Approvals page) -----------------------------------------------------


def approval_note(ops: Operations, form: str, actor: Actor | None = None) -> str | None:
    """What a form says before it is sent, when approvals are on: which of its changes
    would wait for approval (`form`: "revoke", "limit" or "bulk"), in the policy's words."""
    return ops.four_eyes.form_note(form, actor)


def approve_request(ops: Operations, actor: Actor, request_id: int) -> ApprovalRequest:
    """Approve and execute a request; every cached read goes (grants may have changed)."""
    try:
        return ops.approvals.approve(actor, request_id)
    finally:
        reads.invalidate_all()


def reject_request(ops: Operations, actor: Actor, request_id: int,
                   reason: str) -> ApprovalRequest:
    """Reject a request; the lists go (their "waiting for approval" filter changed)."""
    try:
        return ops.approvals.reject(actor, request_id, reason)
    finally:
        reads.invalidate_lists()


def cancel_request(ops: Operations, actor: Actor, request_id: int) -> ApprovalRequest:
    """Withdraw one's own request; the lists go, as for a rejection."""
    try:
        return ops.approvals.cancel(actor, request_id)
    finally:
        reads.invalidate_lists()


def reconcile_now(ops: Operations, actor: Actor) -> Any:
    """One reconciler pass now (admins); it may record outcomes, so cached reads go."""
    try:
        return ops.reconciler.run_now(actor)
    finally:
        reads.invalidate_all()


def resume_bulk(ops: Operations, actor: Actor, bulk_id: str, reason: str | None, *,
                dry_run: bool) -> BulkResult | Held:
    """Run again the unsettled grants of an interrupted bulk run (or preview it)."""
    try:
        return ops.limits.resume_bulk(actor, bulk_id, reason, dry_run=dry_run)
    finally:
        if not dry_run:
            reads.invalidate_all()
