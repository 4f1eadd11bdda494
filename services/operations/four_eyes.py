"""The four-eyes gate every change use case passes: it asks the policy, records the request
of a change that must wait (`Held`), and lets a held change through only with the proof of
an approved request (`ApprovalExecution`, issued by the approvals use case when a second
person approves). A caller cannot skip it: the use cases themselves ask it, whoever calls
them (a page, a CLI, the backend). Policy and life of a request: docs/architecture.md,
"Approvals: the life of a request".
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.kryptos.errors import KryptosError
from services.operations import validation as v
from services.operations.approval_policy import (
    ACTIONS,
    REVOKE,
    ApprovalPolicy,
    ApprovalRequest,
    Change,
)
from services.operations.context import OpsContext
from services.operations.errors import OperationError, UpstreamError, ValidationError
from services.operations.permissions import Actor
from services.settings import Tier
from services.store.actions import AuditAction
from services.store.approvals import AlreadyRequested, ApprovalRecord, ApprovalStore

#: The actor of events nobody triggers (a request expiring).
SYSTEM_ACTOR = "system"
#: Params of the events of a change an approval executed: who approved, which request.
APPROVED_BY = "approved_by"
APPROVAL_REQUEST = "approval_request"
#: Per-grant limit changes: what the bulk window counts.
_COUNTED = (AuditAction.LIMIT_UPDATE.value, AuditAction.TIER_APPLY.value)

Preview = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class Held:
    """A change not made: it waits for a second person as `request`; `why` is the policy's
    reason."""

    request: ApprovalRequest
    why: str

    def summary(self) -> str:
        return (f"Not changed yet: {self.why} Request #{self.request.id} "
                f"({self.request.describe()}) now waits for a second person's approval "
                "(Approvals page).")


class ApprovalExecution:
    """The proof that an approved request is being executed: only `FourEyes.issue` makes
    one, for a request a second person approved, and the gate checks it against the stored
    request (state `approved`, same change) before it lets the change through."""

    __slots__ = ("_key", "approver", "change", "correlation_id", "request_id")

    def __init__(self, key: object, rec: ApprovalRecord, approver: str) -> None:
        self._key = key
        self.request_id = rec.id
        self.approver = approver
        self.correlation_id = rec.correlation_id
        self.change = Change.of(rec)

    def __repr__(self) -> str:
        return f"ApprovalExecution(#{self.request_id}, approved by {self.approver})"

    def params(self) -> dict[str, Any]:
        """What the executed change's events carry: the approver and the request number."""
        return {APPROVED_BY: self.approver, APPROVAL_REQUEST: self.request_id}


def already_requested(rec: ApprovalRecord, grant_id: str) -> OperationError:
    """The refusal of a second pending request for a grant: names the waiting one."""
    when = rec.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return OperationError(
        f"Grant {grant_id} already has a request waiting for approval: request #{rec.id} "
        f"by {rec.requester_username} at {when}. See it on the Approvals page (/approvals); "
        "a second request is refused until it is decided.",
        code="ALREADY_REQUESTED")


class FourEyes:
    """The gate: `hold` for every change use case, `issue` for the approvals use case."""

    def __init__(self, ctx: OpsContext, store: ApprovalStore,
                 policy: ApprovalPolicy | None = None) -> None:
        self.ctx = ctx
        self.store = store
        self.policy = policy or ApprovalPolicy.off()
        self._key = object()  # what makes an `ApprovalExecution` this gate's own

    def __repr__(self) -> str:
        return f"FourEyes({self.policy!r})"

    # --- the policy ----------------------------------------------------------------------

    def tier_values(self, change: Change) -> tuple[int | None, bool | None]:
        if change.tier is None:
            return change.limit, change.limiter
        t: Tier | None = next((t for t in self.ctx.tiers
                               if t.name.lower() == change.tier.lower()), None)
        if t is None:
            raise ValidationError("tier", f"There is no tier “{change.tier}”.")
        return (t.limit, True) if t.limit is not None else (None, False)

    def recent_changes(self, actor: Actor, now: datetime | None = None) -> int:
        """Grants `actor` changed directly (not through an approval) within the window."""
        since = (now or datetime.now(UTC)) - timedelta(seconds=self.policy.bulk_window)
        return self.ctx.audit_log.count_changed_targets(actor.username, _COUNTED, since,
                                                        without_param=APPROVAL_REQUEST)

    def why(self, change: Change, actor: Actor | None = None) -> str | None:
        """Why `change` must wait for a second person, or None. With `actor`, the grants
        they changed within the window count with it."""
        if not self.policy.enabled:
            return None
        limit, limiter = self.tier_values(change)
        recent = (self.recent_changes(actor)
                  if actor is not None and change.action != REVOKE else 0)
        return self.policy.why(change.action, len(change.grant_ids), limit, limiter, recent)

    def form_note(self, form: str, actor: Actor | None = None) -> str | None:
        """The policy in words for a change form (`form`: "revoke", "limit" or "bulk"), with
        the actor's own count in the window; None when approvals are off."""
        p = self.policy
        if not p.enabled:
            return None
        if form == "revoke":
            return ("Four-eyes approval: a revoke becomes a request that a second person with "
                    "the permission must approve (Approvals page).")
        many = f"more than {p.bulk_over} grants, " if form == "bulk" else ""
        note = (f"Four-eyes approval: {many}a limit above {p.limit_over:,} or a limiter "
                "switched off becomes a request that a second person must approve (Approvals "
                "page).")
        recent = self.recent_changes(actor) if actor is not None else 0
        if recent:
            note += (f" You changed {recent} grant{'s' if recent != 1 else ''} in "
                     f"{p.window_words()}: a change that takes you past {p.bulk_over} waits "
                     "too.")
        return note

    # --- the gate ------------------------------------------------------------------------

    def hold(self, actor: Actor, change: Change, reason: str | None, ticket: str | None,
             approval: ApprovalExecution | None, preview: Preview) -> Held | None:
        """None: the change may be made now (the policy lets it through, or `approval` is
        the proof of an approved request for exactly this change). Else the request is
        recorded (`preview()` gives its before -> after per grant) and returned as `Held`."""
        if approval is not None:
            self.verify(approval, change)
            return None
        why = self.why(change, actor)
        if why is None:
            return None
        self.refuse_if_waiting(change)
        return Held(self.request(actor, change, reason, ticket, preview(), why), why)

    def verify(self, approval: ApprovalExecution, change: Change) -> None:
        """Refuse (`APPROVAL_INVALID`) unless `approval` is this gate's proof of a request
        now being executed (state `approved`) for this change."""
        ok = isinstance(approval, ApprovalExecution) and approval._key is self._key
        rec = self.store.get(approval.request_id) if ok else None
        if rec is not None:
            asked = Change.of(rec)
            ok = (rec.state == "approved" and rec.decided_by == approval.approver
                  and rec.decided_by != rec.requester_username
                  and asked.kind == change.kind
                  and set(change.grant_ids) <= set(asked.grant_ids)
                  and self.tier_values(asked) == self.tier_values(change))
        if not ok or rec is None:
            raise OperationError("This change needs an approved request: it was not made.",
                                 code="APPROVAL_INVALID")

    def issue(self, rec: ApprovalRecord) -> ApprovalExecution:
        """The proof for an approved request (the approvals use case, once the request
        moved to `approved`)."""
        if rec.state != "approved" or not rec.decided_by:
            raise OperationError(f"Request #{rec.id} is not approved.", code="APPROVAL_INVALID")
        return ApprovalExecution(self._key, rec, rec.decided_by)

    # --- requests ------------------------------------------------------------------------

    def refuse_if_waiting(self, change: Change) -> None:
        """`ALREADY_REQUESTED` when a grant of `change` has a pending request of its kind."""
        self.expire_due()
        found = self.store.waiting_for(change.grant_ids, change.kind)
        if found is not None:
            raise already_requested(*found)

    def request(self, actor: Actor, change: Change, reason: str | None, ticket: str | None,
                items: list[dict[str, Any]], why: str | None) -> ApprovalRequest:
        """Record a pending request for `change` with the dry run's `items`; audited
        `approval.requested`. One pending request per grant and kind of change: a second is
        refused (`ALREADY_REQUESTED`, naming the waiting one)."""
        if change.action not in ACTIONS:
            raise ValidationError("action", f"must be one of {', '.join(ACTIONS)}.")
        reason_ = v.reason(reason)
        assert reason_ is not None
        tkt = v.ticket(ticket)
        self.expire_due()
        cid = uuid.uuid4().hex
        try:
            rec = self.store.create(
                action=change.action, params={**change.values(), "items": items,
                                              "policy": why},
                requester=actor.username, roles=actor.roles, reason=reason_, ticket=tkt,
                ttl=timedelta(hours=self.policy.ttl_hours), correlation_id=cid,
                grants=change.grant_ids, kind=change.kind,
            )
        except AlreadyRequested as exc:
            raise already_requested(exc.waiting, exc.grant_id) from None
        self.ctx.event(
            actor.username, actor.roles, AuditAction.APPROVAL_REQUESTED, "succeeded", cid,
            target_type="approval", target_id=str(rec.id), reason=reason_, ticket=tkt,
            params={"action": change.action, "grants": len(change.grant_ids),
                    **{k: val for k, val in change.values().items() if k != "grant_ids"},
                    "grant_ids": list(change.grant_ids[:50])},
            before={i["grant_id"]: i["before"] for i in items[:50]},
            after={i["grant_id"]: i["after"] for i in items[:50]},
        )
        return ApprovalRequest(rec, change)

    def revoke_states(self, gids: Iterable[str]) -> list[dict[str, Any]]:
        """Each grant's status now (listed: active; stored but not listed: revoked; else
        unknown) and customer reference: the grants list read as ids (a stream) and the
        vault by key, never the whole list joined with the whole vault."""
        try:
            listed = self.ctx.client.listed_grant_ids()
        except KryptosError as exc:
            raise UpstreamError.from_kryptos(exc, "Listing grants") from None
        out = []
        for gid in gids:
            entry = self.ctx.vault.get(gid)
            before = ("active" if gid in listed else
                      "revoked" if entry is not None else "unknown")
            out.append({"grant_id": gid,
                        "customer_ref": entry.customer_ref if entry is not None else None,
                        "before": before, "after": "revoked", "outcome": "would_change"})
        return out

    def revoke_preview(self, gids: Iterable[str]) -> list[dict[str, Any]]:
        """A revoke request's items; refused when a grant is not active."""
        items = self.revoke_states(gids)
        for i in items:
            if i["before"] != "active":
                raise OperationError(f"Grant {i['grant_id']} is not active: nothing to "
                                     "revoke.", code="GRANT_NOT_ACTIVE")
        return items

    def expire_due(self, now: datetime | None = None) -> int:
        """Pending requests past their expiry become `expired` (each audited once, by the
        replica whose UPDATE won). Returns how many this call expired."""
        now = now or datetime.now(UTC)
        n = 0
        for rec in self.store.due(now):
            if not self.store.transition(rec.id, "pending", "expired", now=now):
                continue
            n += 1
            self.ctx.event(SYSTEM_ACTOR, (), AuditAction.APPROVAL_EXPIRED, "succeeded",
                           rec.correlation_id, target_type="approval", target_id=str(rec.id),
                           before={"state": "pending"},
                           after={"state": "expired", "expires_at": rec.expires_at.isoformat()})
        return n


def credit(event_params: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """(approver, request number) of an event made by an approval's execution, else None."""
    if not isinstance(event_params, Mapping):
        return None
    who, num = event_params.get(APPROVED_BY), event_params.get(APPROVAL_REQUEST)
    if isinstance(who, str) and who and isinstance(num, int):
        return who, num
    return None


__all__ = ["APPROVAL_REQUEST", "APPROVED_BY", "SYSTEM_ACTOR", "ApprovalExecution",
           "FourEyes", "Held", "already_requested", "credit"]
