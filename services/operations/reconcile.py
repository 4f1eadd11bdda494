"""The reconciler: what became of changes whose outcome was never written.

A `requested` event with no outcome under its correlation id (the console was killed, or the
store failed and no journal took the outcome) says nothing about whether Kryptos acted. The
reconciler replays the journal first, then reads the real state upstream for each such event
older than `min_age` and records a `reconciled` outcome with what it found: a limit change
(limit and limiter from the user info), a revoke (the grants list), a resync (the
integration's status), a bulk run (its grants' settled outcomes). What it cannot settle is
listed (`ReconcileReport.unsettled`) for an admin. See docs/architecture.md, "Reconciler"."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.kryptos.errors import KryptosError
from services.operations.context import OpsContext
from services.operations.permissions import Actor, Permission
from services.store.actions import AuditAction
from services.store.audit import AuditEvent, AuditFilter
from services.store.journal import ReplayReport

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


@dataclass
class _Open:
    """Events of the lookback window grouped for the pass."""

    requested: dict[str, AuditEvent] = field(default_factory=dict)  # cid -> requested
    closed: set[str] = field(default_factory=set)  # cids with an outcome
    by_bulk: dict[str, list[AuditEvent]] = field(default_factory=dict)  # bulk id -> events


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
            return report

    def _scan(self, now: datetime) -> _Open:
        found = _Open()
        for ev in self.ctx.audit_log.iter_events(AuditFilter(since=now - self.lookback)):
            if ev.outcome == "requested":
                found.requested[ev.correlation_id] = ev
            elif ev.outcome != "denied":
                found.closed.add(ev.correlation_id)
            bulk_id = ev.params.get("bulk_id") if isinstance(ev.params, Mapping) else None
            if isinstance(bulk_id, str):
                found.by_bulk.setdefault(bulk_id, []).append(ev)
        if self.ctx.journal is not None:  # outcomes waiting in the journal are not open
            found.closed |= self.ctx.journal.pending_correlation_ids()
        return found

    def _pass(self, now: datetime, journal: ReplayReport | None) -> ReconcileReport:
        found = self._scan(now)
        opened = [ev for cid, ev in found.requested.items()
                  if cid not in found.closed and ev.ts <= now - self.min_age]
        grants: set[str] | None = None  # read once a pass, when a revoke needs it
        tried = False
        settled = 0
        unsettled: list[Unsettled] = []
        # Bulk summaries last: they settle from their grants' outcomes.
        for ev in sorted(opened, key=lambda e: (e.target_type == "bulk", e.seq)):
            if ev.action == AuditAction.GRANT_REVOKE and grants is None and not tried:
                tried, grants = True, self._grants()
            try:
                after = self.settle(ev, found, grants, now)
            except Unsettleable as exc:
                unsettled.append(Unsettled(ev.seq, ev.ts, ev.correlation_id, ev.actor_username,
                                           ev.action, ev.target_id, exc.reason))
                continue
            self._record(ev, after)
            found.closed.add(ev.correlation_id)
            settled += 1
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
            return {"status": "active" if listed else "revoked", "made": not listed,
                    "source": "grants list"}
        token = self._token(ev)  # the grants list is unreadable: ask the grant's session
        try:
            session = self.ctx.client.check_session(token)
        except KryptosError as exc:
            raise Unsettleable("neither the grants list nor the grant's session can be read "
                               f"({type(exc).__name__})") from None
        valid = session.has_valid_session
        return {"status": "active" if valid else "revoked", "made": not valid,
                "source": "session", "session_reason": session.reason}

    def _limit(self, ev: AuditEvent) -> dict[str, Any]:
        token = self._token(ev)
        try:
            info = self.ctx.client.get_userinfo(token)
        except KryptosError as exc:
            raise Unsettleable(f"the user info cannot be read ({type(exc).__name__})") \
                from None
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
            if e.outcome != "requested" or e.correlation_id not in outcomes:
                outcomes[e.correlation_id] = e.outcome
        for cid, outcome in outcomes.items():
            if outcome == "requested" and cid in found.closed:
                outcomes[cid] = "reconciled"  # just now, or waiting in the journal
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


__all__ = ["ACTOR", "LOOKBACK", "MIN_AGE", "ReconcileReport", "ReconcileStatus", "Reconciler",
           "Unsettleable", "Unsettled", "expected_limit"]
