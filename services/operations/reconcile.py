"""The reconciler: what became of changes whose outcome was never written.

A `requested` event with no outcome of its own (the console was killed, or the store failed
and no journal took the outcome) says nothing about whether Kryptos acted. Each `requested`
event is paired with its own outcome: same correlation id, action and target (several
events share a correlation id: an approval request, its approval and the change it ran).
The reconciler replays the journal first, then reads the real state upstream for each
unpaired event older than `min_age` and records a `reconciled` outcome with what it found:
a limit change (limit and limiter from the user info), a revoke (the grants list), a resync
(the integration's status), a bulk run (its grants' settled outcomes), an approval (the
request's state; a request left `approved` by an execution that died is moved to `executed`
with each grant's real outcome). What it reads goes to the read model too, so the pages
show what Kryptos holds. What it cannot settle is listed (`ReconcileReport.unsettled`) for
an admin. See docs/architecture.md, "The reconciler's pairing"."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.counters import reconciler_pass
from services.kryptos.errors import KryptosError
from services.operations.context import OpsContext
from services.operations.permissions import Actor, Permission
from services.store.actions import AuditAction
from services.store.approvals import ApprovalRecord, ApprovalStore
from services.store.audit import AuditEvent, AuditFilter
from services.store.journal import ReplayReport
from services.store.readmodel import UserFacts

log = logging.getLogger(__name__)

ACTOR = "console.reconciler"
ROLES = ("system",)
MIN_AGE = timedelta(minutes=1)
LOOKBACK = timedelta(days=7)

_LIMIT_ACTIONS = (AuditAction.LIMIT_UPDATE, AuditAction.TIER_APPLY)
_BULK_ACTIONS = {AuditAction.LIMIT_UPDATE_BULK: AuditAction.LIMIT_UPDATE,
                 AuditAction.TIER_APPLY_BULK: AuditAction.TIER_APPLY}
#: Nothing lasting to check upstream: settled as they are.
_NOTHING_TO_CHECK = {
    AuditAction.LINK_TOKEN_CREATE: "A link token expires by itself; nothing lasting to check.",
    AuditAction.AUDIT_EXPORT: "Read-only: nothing was changed.",
    AuditAction.AUDIT_VERIFY: "Read-only: nothing was changed.",
    AuditAction.AUDIT_READ: "Read-only: nothing was changed.",
}


class Unsettleable(Exception):
    """This request cannot be settled now; `reason` says why (shown to admins)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Unsettled:
    """A `requested` event the reconciler could not settle, and why."""

    seq: int
    ts: datetime
    correlation_id: str
    actor: str
    action: str
    target_id: str | None
    reason: str


@dataclass(frozen=True)
class ReconcileReport:
    at: datetime
    open_requests: int = 0
    settled: int = 0
    unsettled: tuple[Unsettled, ...] = ()
    journal: ReplayReport | None = None
    error: str | None = None


@dataclass(frozen=True)
class ReconcileStatus:
    last_report: ReconcileReport | None
    journal_pending: int
    journal_path: str | None


#: What pairs a `requested` event with its outcome.
Key = tuple[str, str, str | None]  # (correlation id, action, target id)
_OUTCOMES = ("succeeded", "failed", "skipped", "reconciled")
_APPROVAL_PREFIX = "approval."
INTERRUPTED = "INTERRUPTED"
NOT_TRIED = "not_tried"


def _key(ev: Any) -> Key:
    return (ev.correlation_id, str(ev.action), ev.target_id)


def _params(ev: AuditEvent) -> Mapping[str, Any]:
    return ev.params if isinstance(ev.params, Mapping) else {}


def _bulk_id(ev: AuditEvent) -> str | None:
    """The bulk run a per-grant event belongs to (a `reconciled` event: its request's)."""
    params = _params(ev)
    bid = params.get("bulk_id")
    requested = params.get("requested")
    if bid is None and isinstance(requested, Mapping):
        bid = requested.get("bulk_id")
    return bid if isinstance(bid, str) else None


@dataclass
class _Open:
    """Events of the lookback window grouped for the pass."""

    waiting: dict[Key, list[AuditEvent]] = field(default_factory=dict)  # unpaired, by key
    open_seqs: set[int] = field(default_factory=set)  # unpaired `requested` events
    by_bulk: dict[str, list[AuditEvent]] = field(default_factory=dict)  # bulk id -> events
    by_cid: dict[str, list[AuditEvent]] = field(default_factory=dict)  # approvals' events
    reconciled_now: dict[int, Mapping[str, Any]] = field(default_factory=dict)  # seq -> after

    def requested(self) -> list[AuditEvent]:
        return sorted((e for evs in self.waiting.values() for e in evs), key=lambda e: e.seq)

    def pair(self, key: Key, requested_seq: object = None) -> None:
        """An outcome arrived for `key`: it closes the `requested` event it names
        (`requested_seq`, a reconciled one), else the oldest one still open."""
        evs = self.waiting.get(key)
        if not evs:
            return
        at = next((i for i, e in enumerate(evs) if e.seq == requested_seq), 0) \
            if isinstance(requested_seq, int) else 0
        if isinstance(requested_seq, int) and evs[at].seq != requested_seq:
            return  # it names a request outside the window
        self.open_seqs.discard(evs.pop(at).seq)
        if not evs:
            del self.waiting[key]

    def settled(self, ev: AuditEvent, after: Mapping[str, Any]) -> None:
        self.pair(_key(ev), ev.seq)
        self.reconciled_now[ev.seq] = after


def expected_limit(params: Mapping[str, Any] | None) -> tuple[bool, int | None]:
    """(known, effective limit) a limit change asked for: None when the limiter goes off;
    unknown when only the limiter was switched on (the stored limit is not in the request)."""
    params = params or {}
    limit, limiter = params.get("transaction_limit"), params.get("enable_limiter")
    if limiter is False:
        return True, None
    if isinstance(limit, int):
        return True, limit
    return False, None


def _effective(values: Mapping[str, Any]) -> int | None:
    """The limit in force from recorded limit fields: None when the limiter is off."""
    if values.get("enable_limiter") is False:
        return None
    limit = values.get("transaction_limit")
    return limit if isinstance(limit, int) else None


def _grant_ids(rec: ApprovalRecord) -> list[str]:
    gids = rec.params.get("grant_ids")
    return [str(g) for g in gids] if isinstance(gids, list) else []


class Reconciler:
    """Settles `requested` events without an outcome (see the module's docstring)."""

    def __init__(self, ctx: OpsContext, *, min_age: timedelta = MIN_AGE,
                 lookback: timedelta = LOOKBACK,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.ctx = ctx
        self.min_age = min_age
        self.lookback = lookback
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_report: ReconcileReport | None = None

    def __repr__(self) -> str:
        return f"Reconciler(min_age={self.min_age}, lookback={self.lookback})"

    # --- one pass ------------------------------------------------------------------------

    def run_once(self) -> ReconcileReport:
        """Replay the journal, then settle what can be settled. Never raises for a store or
        upstream problem (the report says it)."""
        with self._lock:
            now = self._clock()
            journal = None
            if self.ctx.journal is not None:
                journal = self.ctx.journal.replay(self.ctx.audit_log)
            try:
                report = self._pass(now, journal)
            except Exception as exc:  # noqa: BLE001 - the store is down: try again next time
                log.warning("reconciler: pass failed (%s)", type(exc).__name__)
                report = ReconcileReport(now, journal=journal, error=type(exc).__name__)
            self.last_report = report
            reconciler_pass(report.error is not None, len(report.unsettled))
            return report

    @property
    def approvals(self) -> ApprovalStore:
        """The approval requests (in the audit log's database, as `Operations` keeps them)."""
        return ApprovalStore(self.ctx.audit_log.db)

    def _scan(self, now: datetime) -> _Open:
        found = _Open()
        approval_cids: set[str] = set()
        bulk_of: dict[Key, str] = {}  # a bulk item's key -> its run (outcomes carry no id)
        for ev in self.ctx.audit_log.iter_events(AuditFilter(since=now - self.lookback)):
            if ev.outcome == "requested":
                found.waiting.setdefault(_key(ev), []).append(ev)
                found.open_seqs.add(ev.seq)
            elif ev.outcome in _OUTCOMES:
                found.pair(_key(ev), _params(ev).get("requested_seq")
                           if ev.outcome == "reconciled" else None)
            bulk_id = _bulk_id(ev)
            if bulk_id is not None and ev.outcome == "requested":
                bulk_of[_key(ev)] = bulk_id
            elif bulk_id is None:
                bulk_id = bulk_of.get(_key(ev))
            if bulk_id is not None:
                found.by_bulk.setdefault(bulk_id, []).append(ev)
            if str(ev.action).startswith(_APPROVAL_PREFIX):
                approval_cids.add(ev.correlation_id)
            if ev.correlation_id in approval_cids:
                found.by_cid.setdefault(ev.correlation_id, []).append(ev)
        if self.ctx.journal is not None:  # outcomes waiting in the journal are not open
            for entry in self.ctx.journal.pending():
                pending = entry.event
                if pending.outcome in _OUTCOMES:
                    found.pair(_key(pending), (pending.params or {}).get("requested_seq")
                               if pending.outcome == "reconciled" else None)
        return found

    def _pass(self, now: datetime, journal: ReplayReport | None) -> ReconcileReport:
        found = self._scan(now)
        opened = [ev for ev in found.requested() if ev.ts <= now - self.min_age]
        grants: set[str] | None = None  # read once a pass, when a revoke needs it
        tried = False
        settled = 0
        unsettled: list[Unsettled] = []

        def order(e: AuditEvent) -> tuple[int, int]:
            # Grants first, then bulk summaries (from their grants' outcomes), then
            # approvals (from the change they ran).
            late = 2 if str(e.action).startswith(_APPROVAL_PREFIX) else int(
                e.target_type == "bulk")
            return late, e.seq

        for ev in sorted(opened, key=order):
            if ev.action == AuditAction.GRANT_REVOKE and grants is None and not tried:
                tried, grants = True, self._grants()
            try:
                after = self.settle(ev, found, grants, now)
            except Unsettleable as exc:
                unsettled.append(Unsettled(ev.seq, ev.ts, ev.correlation_id, ev.actor_username,
                                           ev.action, ev.target_id, exc.reason))
                continue
            self._record(ev, after)
            found.settled(ev, after)
            settled += 1
        settled += self._stuck_approvals(found, now, unsettled)
        return ReconcileReport(now, len(opened), settled, tuple(unsettled), journal)

    def _grants(self) -> set[str] | None:
        """The listed grant ids, or None when the list cannot be read."""
        try:
            return self.ctx.client.listed_grant_ids()
        except KryptosError as exc:
            log.info("reconciler: the grants list cannot be read (%s)", type(exc).__name__)
            return None

    def _record(self, ev: AuditEvent, after: Mapping[str, Any]) -> None:
        self.ctx.event(
            ACTOR, ROLES, ev.action, "reconciled", ev.correlation_id, durable=True,
            target_type=ev.target_type, target_id=ev.target_id,
            params={"requested_seq": ev.seq, "requested_by": ev.actor_username,
                    "requested": ev.params},
            after=dict(after),
        )

    # --- what each kind of request left behind --------------------------------------------

    def settle(self, ev: AuditEvent, found: _Open, grants: set[str] | None,
               now: datetime) -> dict[str, Any]:
        """What became of this request upstream; raises `Unsettleable`."""
        action = ev.action
        if action in _NOTHING_TO_CHECK:
            return {"note": _NOTHING_TO_CHECK[AuditAction(action)]}
        if action == AuditAction.GRANT_REVOKE:
            return self._revoke(ev, grants)
        if action in _LIMIT_ACTIONS:
            return self._limit(ev)
        if action == AuditAction.INTEGRATION_RESYNC:
            return self._resync(ev)
        if action in _BULK_ACTIONS and ev.target_type == "bulk":
            return self._bulk(ev, found, now)
        if action == AuditAction.TOKEN_EXCHANGE:
            return self._exchange(ev)
        if action == AuditAction.APPROVAL_APPROVED:
            return self._approval(ev, found, now)
        raise Unsettleable(
            "the console cannot read back what this request did; check it by hand "
            "(for an operator command: with whoever ran it).")

    def _token(self, ev: AuditEvent) -> str:
        gid = ev.target_id
        token = self.ctx.token(gid) if gid else None
        if token is None:
            raise Unsettleable(f"no access token is stored for {gid}, so its state upstream "
                               "cannot be read")
        return token

    def _revoke(self, ev: AuditEvent, grants: set[str] | None) -> dict[str, Any]:
        if grants is not None:
            listed = ev.target_id in grants
            self._show_revoked(ev, not listed)
            return {"status": "active" if listed else "revoked", "made": not listed,
                    "source": "grants list"}
        token = self._token(ev)  # the grants list is unreadable: ask the grant's session
        try:
            session = self.ctx.client.check_session(token)
        except KryptosError as exc:
            raise Unsettleable("neither the grants list nor the grant's session can be read "
                               f"({type(exc).__name__})") from None
        valid = session.has_valid_session
        self._show_revoked(ev, not valid)
        return {"status": "active" if valid else "revoked", "made": not valid,
                "source": "session", "session_reason": session.reason}

    def _show_revoked(self, ev: AuditEvent, revoked: bool) -> None:
        gid = ev.target_id
        if revoked and gid:
            self.ctx.rm_update("reconciling a revoke", lambda rm: rm.mark_revoked(gid))

    def _limit(self, ev: AuditEvent) -> dict[str, Any]:
        token = self._token(ev)
        try:
            info = self.ctx.client.get_userinfo(token)
        except KryptosError as exc:
            raise Unsettleable(f"the user info cannot be read ({type(exc).__name__})") \
                from None
        gid = ev.target_id or ""
        facts = UserFacts(info.sub, info.is_guest, info.transaction_limit)
        self.ctx.rm_update("reconciling a limit", lambda rm: rm.apply_userinfo(gid, facts))
        known, want = expected_limit(ev.params if isinstance(ev.params, Mapping) else None)
        out: dict[str, Any] = {
            "transaction_limit": info.transaction_limit,
            "enable_limiter": info.transaction_limit is not None,
            "is_guest": info.is_guest, "source": "user info",
        }
        if not info.is_guest:
            out["at_target"] = False
            out["note"] = "Linked user: limits do not apply."
        elif known:
            out["at_target"] = info.transaction_limit == want
        return out

    def _resync(self, ev: AuditEvent) -> dict[str, Any]:
        token = self._token(ev)
        params = ev.params if isinstance(ev.params, Mapping) else {}
        wid = params.get("wallet_id")
        try:
            items = self.ctx.client.list_integrations(token)
        except KryptosError as exc:
            raise Unsettleable(f"the integrations cannot be read ({type(exc).__name__})") \
                from None
        gid = ev.target_id or ""
        self.ctx.rm_update("reconciling a resync", lambda rm: rm.apply_integrations(gid, items))
        match = next((i for i in items if i.wallet_id == wid), None)
        if match is None:
            raise Unsettleable(f"integration {wid} is no longer listed for this grant")
        return {"wallet_id": wid, "status": match.status, "source": "integration status"}

    def _bulk(self, ev: AuditEvent, found: _Open, now: datetime) -> dict[str, Any]:
        events = [e for e in found.by_bulk.get(ev.target_id or "", [])
                  if e.action == _BULK_ACTIONS[AuditAction(ev.action)]]
        if events and max(e.ts for e in events) > now - self.min_age:
            raise Unsettleable("the run may still be going (a grant changed within the last "
                               "minute); next pass")
        outcomes: dict[str, str] = {}  # cid -> its outcome
        for e in sorted(events, key=lambda e: e.seq):
            if e.outcome == "requested":
                # settled just now, or its outcome waits in the journal
                outcomes.setdefault(e.correlation_id,
                                    "requested" if e.seq in found.open_seqs else "reconciled")
            else:
                outcomes[e.correlation_id] = e.outcome
        if any(o == "requested" for o in outcomes.values()):
            raise Unsettleable("some of its grants are not settled yet (next pass)")
        counts: dict[str, int] = {}
        for o in outcomes.values():
            counts[o] = counts.get(o, 0) + 1
        params = ev.params if isinstance(ev.params, Mapping) else {}
        planned = params.get("grants")
        tried = {e.target_id for e in events}
        out: dict[str, Any] = {"outcomes": counts, "grants_tried": len(tried)}
        if isinstance(planned, int):
            out["grants_not_tried"] = max(0, planned - len(tried))
        return out

    def _exchange(self, ev: AuditEvent) -> dict[str, Any]:
        params = ev.params if isinstance(ev.params, Mapping) else {}
        ref = params.get("customer_ref")
        made = ([e.grant_id for e in self.ctx.vault.stored_for_customer(
                    ref, ev.ts - timedelta(seconds=1))] if isinstance(ref, str) else [])
        if not made:
            raise Unsettleable("no grant of this customer was stored after the request; the "
                               "exchange may have failed, or its token was not kept")
        return {"grant_ids": made, "source": "vault"}

    # --- approvals: the request's state, and an execution that died --------------------

    def _approval(self, ev: AuditEvent, found: _Open, now: datetime) -> dict[str, Any]:
        """An approval whose outcome was never written: what became of its request."""
        try:
            rec = self.approvals.get(int(ev.target_id or ""))
        except ValueError:
            rec = None
        if rec is None:
            raise Unsettleable(f"there is no approval request #{ev.target_id}")
        if rec.state == "approved":
            rec = self._finish(rec, found, now)
        out: dict[str, Any] = {"state": rec.state, "source": "approval request"}
        if rec.state == "executed":
            result = rec.result or {}
            out["counts"] = dict(result.get("counts") or {})
            if result.get("error_code") == INTERRUPTED:
                out["interrupted"] = True
        else:  # the approval never took the request: nothing was executed by it
            out["made"] = False
        return out

    def _stuck_approvals(self, found: _Open, now: datetime,
                         unsettled: list[Unsettled]) -> int:
        """Requests still `approved` whose approval has no open event (its outcome was
        written, e.g. a failure, but the request's final move was lost with the store):
        finished the same way, recorded as `reconciled`."""
        n = 0
        waiting = {k[0] for k in found.waiting if k[1] == AuditAction.APPROVAL_APPROVED}
        for rec in self.approvals.newest(states=["approved"]):
            if rec.correlation_id in waiting:
                continue  # its approval event is listed with the rest
            try:
                if (rec.decided_at or rec.created_at) < now - self.lookback:
                    raise Unsettleable("approved before the reconciler's window: its "
                                       "changes cannot be read back; check them by hand")
                done = self._finish(rec, found, now)
            except Unsettleable as exc:
                unsettled.append(Unsettled(0, rec.decided_at or rec.created_at,
                                           rec.correlation_id, rec.decided_by or "",
                                           AuditAction.APPROVAL_APPROVED.value, str(rec.id),
                                           exc.reason))
                continue
            self.ctx.event(
                ACTOR, ROLES, AuditAction.APPROVAL_APPROVED, "reconciled", rec.correlation_id,
                durable=True, target_type="approval", target_id=str(rec.id),
                params={"requested_by": rec.decided_by, "note": "the request was left "
                        "approved after its approval's outcome was written"},
                after={"state": done.state,
                       "counts": dict((done.result or {}).get("counts") or {})})
            n += 1
        return n

    def _finish(self, rec: ApprovalRecord, found: _Open, now: datetime) -> ApprovalRecord:
        """An execution that died left this request `approved`: once every change it made
        is settled, move it to `executed` with each grant's real outcome."""
        events = found.by_cid.get(rec.correlation_id, [])
        bulk = rec.action in _BULK_ACTIONS
        if bulk:
            runs = {e.target_id for e in events
                    if e.action == rec.action and e.target_type == "bulk"}
            per_grant = [e for b in runs for e in found.by_bulk.get(b or "", [])
                         if e.action == _BULK_ACTIONS[AuditAction(rec.action)]]
            summaries = [e for e in events if e.action == rec.action]
        else:
            per_grant = [e for e in events if e.action == rec.action]
            summaries = []
        times = [e.ts for e in [*events, *per_grant] if e.actor_username != ACTOR]
        times.append(rec.decided_at or rec.created_at)
        if max(times) > now - self.min_age:
            raise Unsettleable("its execution may still be running (it acted within the "
                               "last minute); next pass")
        if any(e.outcome == "requested" and e.seq in found.open_seqs
               for e in [*per_grant, *summaries]):
            raise Unsettleable("some of the changes it ran are not settled yet (next pass)")
        by_grant: dict[str | None, list[AuditEvent]] = {}
        for e in sorted(per_grant, key=lambda e: e.seq):
            by_grant.setdefault(e.target_id, []).append(e)
        if any(evs[-1].outcome == "requested" and evs[-1].seq not in found.reconciled_now
               for evs in by_grant.values()):
            raise Unsettleable("a grant's outcome still waits in the journal (next pass)")
        asked = {i.get("grant_id"): i for i in rec.params.get("items", [])
                 if isinstance(i, Mapping)}
        items = [self._item(gid, by_grant.get(gid, []), found, rec.action,
                            asked.get(gid, {})) for gid in _grant_ids(rec)]
        counts: dict[str, int] = {}
        for i in items:
            counts[i["outcome"]] = counts.get(i["outcome"], 0) + 1
        result = {"items": items, "counts": counts, "error_code": INTERRUPTED,
                  "message": "The console stopped while executing this request; each "
                             "grant's outcome was read back afterwards.",
                  "settled_by": ACTOR}
        self.approvals.transition(rec.id, "approved", "executed", result=result)
        return self.approvals.get(rec.id) or rec  # another replica may have finished it

    def _item(self, gid: str, mine: list[AuditEvent], found: _Open, action: str,
              asked: Mapping[str, Any]) -> dict[str, Any]:
        """One grant's real outcome in an interrupted execution, from its newest event
        (`mine`: its events, oldest first; `asked`: its item at request time)."""
        item: dict[str, Any] = {"grant_id": gid, "customer_ref": asked.get("customer_ref"),
                                "outcome": NOT_TRIED, "before": asked.get("before"),
                                "after": asked.get("before"), "error_code": None,
                                "message": "Not tried: the console stopped first."}
        if not mine:
            return item
        last = mine[-1]
        revoke = action == AuditAction.GRANT_REVOKE
        if last.outcome == "requested":  # settled in this pass
            after, outcome = found.reconciled_now.get(last.seq), "reconciled"
        else:
            after, outcome = last.after, last.outcome
        if outcome == "reconciled":
            after = after or {}
            made = bool(after.get("made")) if revoke else bool(after.get("at_target"))
            now = after.get("status") if revoke else _effective(after)
            item.update(outcome="succeeded" if made else "failed", after=now,
                        error_code=None if made else INTERRUPTED,
                        message=("Read back from Kryptos after the console stopped: "
                                 + ("the change is in place." if made else
                                    f"not made (now {now}).")))
            return item
        item.update(outcome=outcome, error_code=last.error_code, message=last.error_message)
        if outcome == "succeeded":
            if revoke:
                item.update(before="active", after="revoked")
            elif isinstance(last.after, Mapping):
                item["after"] = _effective(last.after)
                if isinstance(last.before, Mapping):
                    item["before"] = _effective(last.before)
        return item

    # --- for the admin page -------------------------------------------------------------

    def status(self, actor: Actor) -> ReconcileStatus:
        """The last pass's report and the journal's waiting events (admin)."""
        self.ctx.check(actor, Permission.SETTLE_OUTCOMES, AuditAction.AUDIT_RECONCILE)
        journal = self.ctx.journal
        return ReconcileStatus(self.last_report, len(journal) if journal is not None else 0,
                               str(journal.path) if journal is not None else None)

    def run_now(self, actor: Actor) -> ReconcileReport:
        """A pass now (admin); its `reconciled` events are what it records."""
        self.ctx.check(actor, Permission.SETTLE_OUTCOMES, AuditAction.AUDIT_RECONCILE)
        return self.run_once()

    # --- in the background ---------------------------------------------------------------

    def start(self, interval: float) -> None:
        """Run a pass now and then every `interval` seconds in a daemon thread (0: only the
        pass at start)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,),
                                        name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self, interval: float) -> None:
        while True:
            try:
                report = self.run_once()
                if report.settled or report.unsettled:
                    log.info("reconciler: %d settled, %d unsettled", report.settled,
                             len(report.unsettled))
            except Exception:  # noqa: BLE001 - keep the timer alive
                log.exception("reconciler: unexpected error")
            if interval <= 0 or self._stop.wait(max(1.0, interval)):
                return


__all__ = ["ACTOR", "INTERRUPTED", "LOOKBACK", "MIN_AGE", "NOT_TRIED", "ReconcileReport",
           "ReconcileStatus", "Reconciler", "Unsettleable", "Unsettled", "expected_limit"]
