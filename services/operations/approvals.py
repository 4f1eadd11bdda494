"""Four-eyes approval, the use cases: changes that cannot be undone or that touch many
customers wait for a second person. The rules and the request model are in
`approval_policy.py`. Policy, life of a request and execution: docs/architecture.md,
"Approvals: the life of a request".

    ops.approvals  needs_approval, request, approve, reject, cancel, expire_due,
                   list_waiting_for, list_mine, history, waiting_count, pending_for_grant,
                   find, decide_many
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from services.operations import validation as v
from services.operations.approval_policy import (
    ACTIONS,
    CHANGED,
    KINDS,
    LABELS,
    LIMIT,
    REVOKE,
    ApprovalPolicy,
    ApprovalRequest,
    Change,
    RolesOf,
)
from services.operations.bulk import item_dict
from services.operations.context import OpsContext
from services.operations.errors import NotFound, OperationError, ValidationError
from services.operations.four_eyes import ApprovalExecution, FourEyes
from services.operations.grants import GrantOps
from services.operations.limit_value import NO_CAP, UNKNOWN, GuestLimit
from services.operations.limits import LimitOps
from services.operations.models import BulkResult, LimitChange
from services.operations.permissions import Actor, Permission, can
from services.store.actions import AuditAction
from services.store.approvals import DECIDED, STATES, ApprovalRecord

log = logging.getLogger(__name__)


def _counts(items: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[str(i["outcome"])] = out.get(str(i["outcome"]), 0) + 1
    return out


def _not_pending(rec: ApprovalRecord) -> OperationError:
    return OperationError(f"Request #{rec.id} is no longer pending: it is {rec.state}.",
                          code="ALREADY_DECIDED")


class ApprovalOps:
    """Use cases on approval requests. `roles_of(username)`: a user's roles as they are now
    (the runtime passes the users file's); None when the user no longer exists. The
    requests are made by the four-eyes gate (`gate`) when a change use case is held, or
    here (`request`); an approval executes the change through the same use cases, with the
    gate's proof (`ApprovalExecution`)."""

    def __init__(self, ctx: OpsContext, gate: FourEyes, grants: GrantOps,
                 limits: LimitOps, roles_of: RolesOf | None = None) -> None:
        self.ctx = ctx
        self.gate = gate
        self.store = gate.store
        self.grants = grants
        self.limits = limits
        self.roles_of = roles_of

    def __repr__(self) -> str:
        return f"ApprovalOps({self.policy!r})"

    @property
    def policy(self) -> ApprovalPolicy:
        return self.gate.policy

    @policy.setter
    def policy(self, value: ApprovalPolicy) -> None:
        self.gate.policy = value

    # --- policy ---------------------------------------------------------------------------

    def needs_approval(self, change: Change, actor: Actor | None = None) -> str | None:
        """Why `change` must wait for a second person, or None (policy off, or a change
        below every threshold). With `actor`, their recent changes count (the window)."""
        return self.gate.why(change, actor)

    # --- request --------------------------------------------------------------------------

    def request(self, actor: Actor, change: Change, reason: str,
                ticket: str | None = None) -> ApprovalRequest:
        """Record a pending request for `change` (the requester must hold its permission),
        with the dry run's before -> after; audited `approval.requested`. A grant with a
        pending request of the same kind refuses it (`ALREADY_REQUESTED`)."""
        if change.action not in ACTIONS:
            raise ValidationError("action", f"must be one of {', '.join(ACTIONS)}.")
        first = change.grant_ids[0] if change.grant_ids else None
        self.ctx.check(actor, change.permission, AuditAction.APPROVAL_REQUESTED, "grant", first)
        change = Change(change.action, v.grant_ids(change.grant_ids), change.tier,
                        change.limit, change.limiter)
        v.reason(reason)
        self.gate.refuse_if_waiting(change)
        return self.gate.request(actor, change, reason, ticket, self._preview(actor, change),
                                 self.needs_approval(change, actor))

    def _preview(self, actor: Actor, change: Change) -> list[dict[str, Any]]:
        if change.action == REVOKE:
            return self.gate.revoke_preview(change.grant_ids)
        return [item_dict(i) for i in self._dry(actor, change, change.grant_ids).items]

    def _revoke_states(self, gids: Iterable[str]) -> list[dict[str, Any]]:
        return self.gate.revoke_states(gids)

    def _dry(self, actor: Actor, change: Change, gids: Iterable[str]) -> BulkResult:
        if change.tier is not None:
            res = self.limits.apply_tier(actor, gids, change.tier, dry_run=True)
        else:
            res = self.limits.apply_limit(actor, gids, change.limit, change.limiter,
                                          dry_run=True)
        assert isinstance(res, BulkResult)  # a dry run is never held
        return res

    # --- decisions ------------------------------------------------------------------------

    def _load(self, request_id: int) -> ApprovalRecord:
        self.expire_due()
        rec = self.store.get(int(request_id))
        if rec is None:
            raise NotFound(f"There is no approval request #{request_id}.",
                           code="APPROVAL_NOT_FOUND")
        return rec

    def _refuse_same_person(self, actor: Actor, rec: ApprovalRecord, action: str) -> None:
        if actor.username != rec.requester_username:
            return
        self.ctx.event(actor.username, actor.roles, action, "denied", rec.correlation_id,
                       target_type="approval", target_id=str(rec.id), error_code="SAME_PERSON",
                       error_message="the requester cannot decide their own request")
        raise OperationError("You asked for this change: a second person must approve it.",
                             code="SAME_PERSON")

    def approve(self, approver: Actor, request_id: int) -> ApprovalRequest:
        """Approve and execute a pending request, exactly once: the conditional UPDATE
        pending -> approved lets one approver through; the others get `ALREADY_DECIDED`.
        Both people's permissions are checked again; grants changed since the request are
        left alone (`CHANGED_SINCE_REQUEST`)."""
        rec = self._load(request_id)
        change = Change.of(rec)
        self.ctx.check(approver, change.permission, AuditAction.APPROVAL_APPROVED, "approval",
                       str(rec.id))
        self._refuse_same_person(approver, rec, AuditAction.APPROVAL_APPROVED)

        def body() -> tuple[ApprovalRequest, dict[str, Any], dict[str, Any]]:
            if not rec.pending:
                raise _not_pending(rec)
            requester = self._requester_now(rec, change)
            # Read the grants as they are now before taking the request: a read that fails
            # leaves it pending, to be approved again.
            now = self._current(requester, change)
            if not self.store.transition(rec.id, "pending", "approved",
                                         decided_by=approver.username, unexpired=True):
                raise _not_pending(self.store.get(rec.id) or rec)
            proof = self.gate.issue(self.store.get(rec.id) or rec)
            try:
                result = self._execute(requester, rec, change, now, proof)
            except BaseException as exc:
                self.store.transition(rec.id, "approved", "executed", result={
                    "error_code": getattr(exc, "code", "INTERNAL"),
                    "message": getattr(exc, "user_message", type(exc).__name__)})
                raise
            self.store.transition(rec.id, "approved", "executed", result=result)
            done = self.store.get(rec.id) or rec
            return (ApprovalRequest(done, change), {"state": "pending"},
                    {"state": "executed", "counts": result["counts"]})

        return self.ctx.run(approver, AuditAction.APPROVAL_APPROVED, body,
                            what=f"Approving request #{rec.id}", target_type="approval",
                            target_id=str(rec.id), correlation_id=rec.correlation_id)

    def _requester_now(self, rec: ApprovalRecord, change: Change) -> Actor:
        """The requester with their roles as they are now; refused when they no longer hold
        the change's permission."""
        roles: Iterable[str] | None = rec.requester_roles
        if self.roles_of is not None:
            roles = self.roles_of(rec.requester_username)
        actor = Actor(rec.requester_username, roles=frozenset(roles or ()))
        if roles is None or not can(actor, change.permission):
            raise OperationError(
                f"{rec.requester_username} no longer holds the permission "
                f"{change.permission.value}: the request cannot be executed; reject it.",
                code="REQUESTER_NOT_PERMITTED")
        return actor

    def reject(self, approver: Actor, request_id: int, reason: str) -> ApprovalRequest:
        """Reject a pending request, with a reason."""
        rec = self._load(request_id)
        change = Change.of(rec)
        self.ctx.check(approver, change.permission, AuditAction.APPROVAL_REJECTED, "approval",
                       str(rec.id))
        self._refuse_same_person(approver, rec, AuditAction.APPROVAL_REJECTED)
        why = v.reason(reason)
        return self._decide(approver, rec, change, "rejected", AuditAction.APPROVAL_REJECTED,
                            why)

    def cancel(self, requester: Actor, request_id: int) -> ApprovalRequest:
        """The requester withdraws their own pending request."""
        rec = self._load(request_id)
        if requester.username != rec.requester_username:
            self.ctx.event(requester.username, requester.roles, AuditAction.APPROVAL_CANCELLED,
                           "denied", rec.correlation_id, target_type="approval",
                           target_id=str(rec.id), error_code="NOT_REQUESTER",
                           error_message="only the requester can cancel a request")
            raise OperationError("Only the person who asked can cancel a request.",
                                 code="NOT_REQUESTER")
        return self._decide(requester, rec, Change.of(rec), "cancelled",
                            AuditAction.APPROVAL_CANCELLED, None)

    def _decide(self, actor: Actor, rec: ApprovalRecord, change: Change, state: str,
                action: AuditAction, why: str | None) -> ApprovalRequest:
        def body() -> tuple[ApprovalRequest, dict[str, Any], dict[str, Any]]:
            if not self.store.transition(rec.id, "pending", state, decided_by=actor.username,
                                         decision_reason=why):
                raise _not_pending(self.store.get(rec.id) or rec)
            done = self.store.get(rec.id) or rec
            return ApprovalRequest(done, change), {"state": "pending"}, {"state": state}

        return self.ctx.run(actor, action, body, what=f"Deciding request #{rec.id}",
                            target_type="approval", target_id=str(rec.id), reason=why,
                            correlation_id=rec.correlation_id)

    # --- execution ------------------------------------------------------------------------

    def _current(self, requester: Actor, change: Change) -> dict[str, dict[str, Any]]:
        """Each grant's before value now (a new dry run), by grant id."""
        if change.action == REVOKE:
            return {i["grant_id"]: i for i in self._revoke_states(change.grant_ids)}
        return {i.grant_id: item_dict(i) for i in self._dry(requester, change,
                                                         change.grant_ids).items}

    def _execute(self, requester: Actor, rec: ApprovalRecord, change: Change,
                 now: Mapping[str, Mapping[str, Any]],
                 proof: ApprovalExecution) -> dict[str, Any]:
        asked = {i["grant_id"]: i for i in rec.params.get("items", [])}
        changed: dict[str, dict[str, Any]] = {}
        for gid in change.grant_ids:
            was = asked.get(gid, {}).get("before")
            is_ = now.get(gid, {}).get("before")
            if was != is_:
                changed[gid] = {
                    "grant_id": gid, "customer_ref": now.get(gid, {}).get("customer_ref"),
                    "outcome": "skipped", "before": is_, "after": is_, "error_code": CHANGED,
                    "message": f"Changed since the request (was {was}, now {is_}): left "
                               "as it is.",
                }
        todo = [g for g in change.grant_ids if g not in changed]
        done = self._run(requester, rec, change, todo, proof) if todo else {}
        items = [changed.get(g) or done[g] for g in change.grant_ids]
        return {"items": items, "counts": _counts(items)}

    def _run(self, requester: Actor, rec: ApprovalRecord, change: Change,
             gids: list[str], proof: ApprovalExecution) -> dict[str, dict[str, Any]]:
        why, tkt = rec.reason, rec.ticket
        if change.action in (REVOKE, LIMIT):
            return {g: self._one(requester, change, g, why, tkt, proof) for g in gids}
        if change.tier is not None:
            res = self.limits.apply_tier(requester, gids, change.tier, why, ticket=tkt,
                                         approval=proof)
        else:
            res = self.limits.apply_limit(requester, gids, change.limit, change.limiter, why,
                                          ticket=tkt, approval=proof)
        assert isinstance(res, BulkResult)  # the proof lets it through
        return {i.grant_id: item_dict(i) for i in res.items}

    def _one(self, requester: Actor, change: Change, gid: str, why: str,
             tkt: str | None, proof: ApprovalExecution) -> dict[str, Any]:
        base: dict[str, Any] = {"grant_id": gid, "customer_ref": None, "error_code": None,
                                "message": None}
        try:
            if change.action == REVOKE:
                msg = self.grants.revoke_grant(requester, gid, why, tkt, approval=proof)
                return {**base, "outcome": "succeeded", "before": "active",
                        "after": "revoked", "message": str(msg)}
            c = self.limits.set_guest_limit(requester, gid, change.limit, change.limiter, why,
                                            tkt, approval=proof)
        except OperationError as err:
            outcome = "skipped" if err.code == "NOT_ANON_USER" else "failed"
            return {**base, "outcome": outcome, "before": None, "after": None,
                    "error_code": err.code, "message": err.user_message}
        assert isinstance(c, LimitChange)
        return {**base, "outcome": "succeeded",
                "before": GuestLimit.of(c.before_limit, c.before_limiter).to_json(),
                "after": GuestLimit.of(c.after_limit, c.after_limiter).to_json()}

    # --- expiry ---------------------------------------------------------------------------

    def expire_due(self, now: datetime | None = None) -> int:
        """Pending requests past their expiry become `expired` (each audited once, by the
        replica whose UPDATE won). Returns how many this call expired."""
        return self.gate.expire_due(now)

    def start_expiry_timer(self, interval: float = 60.0) -> threading.Event:
        """Expire due requests every `interval` seconds in a daemon thread, until the
        returned event is set or these operations are gone."""
        stop = threading.Event()
        ref = weakref.ref(self)

        def loop() -> None:
            while not stop.wait(interval):
                ops = ref()
                if ops is None:
                    return
                try:
                    ops.expire_due()
                except Exception:  # the next tick tries again; the log says why
                    log.exception("approvals: expiring due requests failed")
                del ops

        threading.Thread(target=loop, name="approval-expiry", daemon=True).start()
        return stop

    # --- reads ----------------------------------------------------------------------------

    def _view(self, actor: Actor) -> None:
        self.ctx.check(actor, Permission.VIEW_GRANT_HISTORY, AuditAction.AUDIT_READ)
        self.expire_due()

    def get(self, actor: Actor, request_id: int) -> ApprovalRequest:
        self._view(actor)
        rec = self._load(request_id)
        return ApprovalRequest(rec, Change.of(rec))

    def pending_for_grant(self, actor: Actor, grant_id: str) -> list[ApprovalRequest]:
        """The pending requests holding this grant, oldest first (an indexed lookup: the
        grant detail's banner)."""
        self.ctx.check(actor, Permission.VIEW_GRANTS, AuditAction.GRANT_VIEW, "grant",
                       grant_id)
        gid = v.grant_id(grant_id)
        self.expire_due()
        return [ApprovalRequest(r, Change.of(r)) for r in self.store.pending_for_grant(gid)]

    def before_now(self, actor: Actor, request: ApprovalRequest) -> dict[str, Any]:
        """Each grant's *before* as the console knows it now (its read model: one indexed
        read, no upstream call), to show beside the one recorded at request time: a
        revoke's status, else the limit in its JSON form (`GuestLimit.to_json`)."""
        self._view(actor)
        rows = self.ctx.readmodel.grants_by_id(request.change.grant_ids)
        out: dict[str, Any] = {}
        for gid in request.change.grant_ids:
            row = rows.get(gid)
            if row is None:
                out[gid] = UNKNOWN.to_json()
            elif request.change.action == REVOKE:
                out[gid] = row.status
            elif row.limiter_enabled is False:
                out[gid] = NO_CAP.to_json()
            else:
                out[gid] = (GuestLimit.capped(row.transaction_limit)
                            if row.transaction_limit is not None else UNKNOWN).to_json()
        return out

    def list_waiting_for(self, actor: Actor) -> list[ApprovalRequest]:
        """Pending requests this actor may decide: someone else's, with a permission the
        actor holds. Oldest first."""
        self._view(actor)
        return self._waiting(actor)

    def _waiting(self, actor: Actor) -> list[ApprovalRequest]:
        out = [ApprovalRequest(r, Change.of(r)) for r in self.store.newest(states=["pending"])]
        return [r for r in reversed(out) if r.record.requester_username != actor.username
                and can(actor, r.change.permission)]

    def waiting_count(self, actor: Actor) -> int:
        """How many requests wait for this actor (for the navigation; nothing audited)."""
        if not can(actor, Permission.VIEW_GRANT_HISTORY):
            return 0
        self.expire_due()
        return len(self._waiting(actor))

    def list_mine(self, actor: Actor, limit: int = 200) -> list[ApprovalRequest]:
        """The actor's own requests, newest first."""
        self._view(actor)
        return [ApprovalRequest(r, Change.of(r))
                for r in self.store.newest(requester=actor.username, limit=limit)]

    def find(self, actor: Actor, *, state: str | None = None, kind: str | None = None,
             requester: str | None = None, query: str = "",
             limit: int = 200) -> list[ApprovalRequest]:
        """Requests newest first, filtered by state (one of STATES), kind ("revoke",
        "limit"), requester (a username) and a search: a request number (`12` or `#12`)
        or a grant id (the pending requests holding it, by the grants' index). At most
        `limit` rows (the newest), read by one query."""
        self._view(actor)
        if state is not None and state not in STATES:
            raise ValidationError("state", f"Unknown state {state!r}: one of "
                                               f"{', '.join(STATES)}.")
        actions = None
        if kind is not None:
            actions = [a for a, k in KINDS.items() if k == kind]
            if not actions:
                raise ValidationError("kind", f"Unknown kind {kind!r}: revoke or limit.")
        text = (query or "").strip()
        number = text.removeprefix("#")
        request_id = int(number) if number.isdigit() else None
        grant = None if request_id is not None or not text else v.grant_id(text)
        who = (requester or "").strip() or None
        rows = self.store.newest(states=None if state is None else [state],
                                 requester=who, actions=actions, request_id=request_id,
                                 pending_grant=grant, limit=limit)
        return [ApprovalRequest(r, Change.of(r)) for r in rows]

    def decide_many(self, approver: Actor, request_ids: Iterable[int], decision: str,
                    reason: str = "") -> list[tuple[int, ApprovalRequest | None,
                                                     OperationError | None]]:
        """Approve (and execute) or reject several requests, each one by `approve` or
        `reject`: checked and audited one by one, and a refusal of one (the approver's own
        request, one decided meanwhile) does not stop the others. Returns, in the order
        given, (request id, the request as decided, None) or (id, None, the refusal)."""
        if decision not in ("approve", "reject"):
            raise ValidationError("decision", "A decision is approve or reject.")
        ids = list(dict.fromkeys(int(i) for i in request_ids))
        if not ids:
            raise ValidationError("requests", "Select at least one request.")
        if decision == "reject":
            v.reason(reason)  # a missing reason refuses them all before any is decided
        out: list[tuple[int, ApprovalRequest | None, OperationError | None]] = []
        for rid in ids:
            try:
                done = (self.approve(approver, rid) if decision == "approve"
                        else self.reject(approver, rid, reason))
            except OperationError as exc:
                out.append((rid, None, exc))
            else:
                out.append((rid, done, None))
        return out

    def history(self, actor: Actor, limit: int = 200) -> list[ApprovalRequest]:
        """Decided requests (any outcome), newest first."""
        self._view(actor)
        return [ApprovalRequest(r, Change.of(r))
                for r in self.store.newest(states=DECIDED, limit=limit)]


# The rules and the request model stay importable from here.
__all__ = ["ACTIONS", "CHANGED", "LABELS", "STATES", "ApprovalOps", "ApprovalPolicy",
           "ApprovalRequest", "Change", "RolesOf"]
