"""The soak bench's checks (bench/soak.py): what the sessions claimed against what the
sandbox holds and what the audit log and the approval store say.

Kept apart from the browser driving so that a unit test can run them against a sandbox and
a real store without a browser (tests/bench/test_soak_checks.py).

- `Action`: one thing a browser session did, as the UI reported it: `done`, `held` (a
  request made instead), `failed`, `interrupted` (a kill of the console fell in it) or
  `none` (nothing to do, e.g. no request waiting).
- `Claim`: a change the UI said was made: a limit (effective: None = no cap), a revoke, a
  resync. An approval's claims are its request's executed items as the console stored them
  (what the Approvals page showed).
- `lost`: a request the page said it made (held) that the approval store does not have;
  a claim whose change is not in the sandbox (and was not changed again later, as a
  later `requested` event on the grant shows), or whose `succeeded` audit event is missing.
- `unsettled`: `requested` audit events without their own outcome (same correlation id,
  action and target, later in the log), and approval requests still `approved`.
- `mismatches`: grants whose status, or (Guests) effective limit, in the read model differ
  from the sandbox's. A limit the read model does not know yet is counted apart
  (`unknown_limits`), not as a mismatch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.kryptos.client import KryptosClient
from services.kryptos.errors import KryptosError
from services.operations import Operations
from services.store.approvals import ApprovalStore
from services.store.audit import AuditEvent, AuditFilter

OUTCOMES = ("done", "held", "failed", "interrupted", "none")
#: Audit outcomes that close a `requested` event.
CLOSING = ("succeeded", "failed", "skipped", "reconciled", "denied")
LIMIT_ACTIONS = ("guest.limit.update", "guest.tier.apply")
REVOKE_ACTIONS = ("grant.revoke",)
RESYNC_ACTIONS = ("integration.resync",)
#: How far (s) an audit event may lie outside the action's own start..end (clock reads).
SLACK = 2.0

Effective = int | None


@dataclass(frozen=True)
class Claim:
    """A change the UI said was made (`kind` "limit", "revoke" or "resync")."""

    kind: str
    grant_id: str
    value: Any = None  # limit: effective limit (None: no cap); resync: the wallet id
    #: The value is not known (an approval item whose after is "unknown"): audit check only.
    value_known: bool = True


@dataclass
class Action:
    """One step of a session and what the UI said of it."""

    session: str
    kind: str
    started: float  # epoch seconds
    ended: float = 0.0
    outcome: str = "none"
    grants: tuple[str, ...] = ()
    value: Any = None
    request_id: int | None = None
    detail: str = ""
    claims: list[Claim] = field(default_factory=list)

    def window(self) -> tuple[datetime, datetime]:
        return (datetime.fromtimestamp(self.started - SLACK, UTC),
                datetime.fromtimestamp((self.ended or self.started) + SLACK, UTC))


@dataclass(frozen=True)
class SandboxState:
    """What the sandbox holds: listed (active) grants, Guest effective limits (grants with a
    readable user info), and the wallets a resync was asked for."""

    listed: frozenset[str]
    limits: Mapping[str, Effective]
    linked: frozenset[str]
    resynced_wallets: frozenset[str]


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    stuck_requests: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    unknown_limits: int = 0
    checked_grants: int = 0
    audit_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    claims_checked: int = 0

    @property
    def unsettled_total(self) -> int:
        return len(self.unsettled) + len(self.stuck_requests)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unsettled_total or self.mismatches)


def effective(after: Mapping[str, Any] | None) -> tuple[bool, Effective]:
    """(known, effective limit) of a limit event's `after` fields."""
    after = after or {}
    if after.get("enable_limiter") is False:
        return True, None
    limit = after.get("transaction_limit")
    return (True, limit) if isinstance(limit, int) else (False, None)


# --- the sandbox ----------------------------------------------------------------------------

def read_sandbox(sandbox: Any, client: KryptosClient) -> SandboxState:
    """The sandbox's state through its API (grants list, user info with the stored tokens)
    and its control endpoints (the tokens handed out, the request log)."""
    listed = frozenset(client.listed_grant_ids())
    limits: dict[str, Effective] = {}
    linked: set[str] = set()
    for t in sandbox.tokens():
        if t["revoked"] or t["grant_id"] not in listed:
            continue
        try:
            info = client.get_userinfo(t["access_token"])
        except KryptosError:
            continue
        if info.is_guest:
            limits[t["grant_id"]] = info.transaction_limit
        else:
            linked.add(t["grant_id"])
    wallets = {r["path"].split("/")[3] for r in sandbox.requests_log()
               if r["method"] == "POST" and r["path"].startswith("/developer/integrations/")
               and r["path"].endswith("/resync") and int(r.get("status") or 0) < 300}
    return SandboxState(listed, limits, frozenset(linked), frozenset(wallets))


# --- claims ---------------------------------------------------------------------------------

def approval_claims(store: ApprovalStore, action: Action) -> tuple[list[Claim], str | None]:
    """The claims of an approval the UI reported done: its request's executed items that
    succeeded, as stored (what the page showed). Second: a problem with the record itself
    (missing, not executed, or a count that differs from what the page said)."""
    if action.request_id is None:
        return [], "the page named no request"
    rec = store.get(action.request_id)
    if rec is None:
        return [], f"request #{action.request_id} is not in the approval store"
    if rec.state != "executed":
        return [], f"request #{rec.id} is {rec.state!r}, the page said executed"
    items = (rec.result or {}).get("items") or []
    claims: list[Claim] = []
    for item in items:
        if item.get("outcome") != "succeeded":
            continue
        gid = str(item.get("grant_id"))
        if rec.action == "grant.revoke":
            claims.append(Claim("revoke", gid))
        else:
            after = item.get("after")
            claims.append(Claim("limit", gid, after if after != "unknown" else None,
                                value_known=after != "unknown"))
    said = action.value if isinstance(action.value, int) else None
    if said is not None and said != len(claims):
        return claims, (f"request #{rec.id}: the page said {said} succeeded, the record "
                        f"has {len(claims)}")
    return claims, None


def held_request_problem(store: ApprovalStore, action: Action) -> str | None:
    """What is wrong with a request the page said it made instead of the change: none
    stored under its number, or one for other grants than the page had (a bulk request
    holds the grants the dry run said would change: some of those selected)."""
    if action.request_id is None:
        return "the page named no request"
    rec = store.get(action.request_id)
    if rec is None:
        return f"request #{action.request_id} is not in the approval store"
    asked = set((rec.params or {}).get("grant_ids") or ())
    if not asked or not asked <= set(action.grants):
        other = ", ".join(sorted(asked - set(action.grants))) or "no grant"
        return f"request #{rec.id} is for {other}, not a grant the page had"
    return None


def _matching(events: Sequence[AuditEvent], actions: Iterable[str], grant_id: str,
              start: datetime, end: datetime) -> list[AuditEvent]:
    wanted = set(actions)
    return [e for e in events if e.action in wanted and e.target_id == grant_id
            and e.outcome == "succeeded" and start <= e.ts <= end]


def _changed_later(events: Sequence[AuditEvent], grant_id: str, seq: int) -> bool:
    """A later change of this grant's limit or status was asked for (so its value may have
    moved on)."""
    return any(e.target_id == grant_id and e.seq > seq and e.outcome == "requested"
               and e.action in LIMIT_ACTIONS + REVOKE_ACTIONS for e in events)


def check_claim(claim: Claim, action: Action, events: Sequence[AuditEvent],
                state: SandboxState) -> str | None:
    """Why this claim is lost, or None when the sandbox and the audit log both have it."""
    start, end = action.window()
    where = f"{action.session} {action.kind} ({claim.kind} {claim.grant_id})"
    if claim.kind == "revoke":
        if not _matching(events, REVOKE_ACTIONS, claim.grant_id, start, end):
            return f"{where}: no succeeded grant.revoke event"
        if claim.grant_id in state.listed:
            return f"{where}: the sandbox still lists the grant"
        return None
    if claim.kind == "resync":
        if not _matching(events, RESYNC_ACTIONS, claim.grant_id, start, end):
            return f"{where}: no succeeded integration.resync event"
        if claim.value not in state.resynced_wallets:
            return f"{where}: the sandbox received no resync of wallet {claim.value}"
        return None
    found = [e for e in _matching(events, LIMIT_ACTIONS, claim.grant_id, start, end)
             if not claim.value_known or effective(e.after) == (True, claim.value)]
    if not found:
        return f"{where}: no succeeded limit event setting {claim.value!r}"
    last = max(found, key=lambda e: e.seq)
    if not claim.value_known or _changed_later(events, claim.grant_id, last.seq):
        return None
    if claim.grant_id not in state.listed:
        return f"{where}: the grant is no longer listed and no revoke was asked for"
    if claim.grant_id not in state.limits:
        return None  # Linked or no readable user info: nothing to compare with
    have = state.limits[claim.grant_id]
    if have != claim.value:
        return f"{where}: the sandbox has {have!r}, the page said {claim.value!r}"
    return None


# --- the audit log and the approval store -----------------------------------------------------

def unsettled_events(events: Sequence[AuditEvent]) -> list[AuditEvent]:
    """`requested` events with no outcome of their own: the same correlation id, action and
    target, later in the log (each outcome closes one request)."""
    waiting: dict[tuple[Any, ...], list[AuditEvent]] = {}
    for e in sorted(events, key=lambda e: e.seq):
        key = (e.correlation_id, e.action, e.target_id)
        if e.outcome == "requested":
            waiting.setdefault(key, []).append(e)
        elif e.outcome in CLOSING and waiting.get(key):
            waiting[key].pop(0)
    return sorted((e for es in waiting.values() for e in es), key=lambda e: e.seq)


def all_events(ops: Operations) -> list[AuditEvent]:
    return list(ops.ctx.audit_log.iter_events(AuditFilter()))


# --- the read model -----------------------------------------------------------------------------

def read_model_mismatches(ops: Operations, state: SandboxState,
                          grant_ids: Iterable[str]) -> tuple[list[str], int]:
    """Grants whose status or effective limit in the read model differ from the sandbox's;
    second: Guests whose limit the read model does not know yet."""
    out: list[str] = []
    unknown = 0
    for gid in sorted(set(grant_ids)):
        row = ops.readmodel.grant(gid)
        if row is None:
            if gid in state.listed:
                out.append(f"{gid}: listed by the sandbox, not in the read model")
            continue
        g = row.grant
        status = "active" if gid in state.listed else "revoked"
        if g.status != status:
            out.append(f"{gid}: status {g.status!r} in the read model, {status!r} upstream")
            continue
        if gid not in state.limits:
            continue
        if g.limit_source is None:
            unknown += 1
            continue
        if g.effective_limit != state.limits[gid]:
            out.append(f"{gid}: limit {g.effective_limit!r} in the read model, "
                       f"{state.limits[gid]!r} upstream")
    return out, unknown


def check_all(ops: Operations, sandbox: Any, client: KryptosClient,
              actions: Sequence[Action], grant_ids: Iterable[str]) -> Findings:
    """Every check, from the sandbox, the audit log, the approval store and the read model
    (`grant_ids`: the grants to compare, e.g. every grant the sandbox was seeded with)."""
    f = Findings()
    state = read_sandbox(sandbox, client)
    events = all_events(ops)
    f.audit_counts = Counter((e.action, e.outcome) for e in events)
    store = ApprovalStore(ops.ctx.audit_log.db)
    for action in actions:
        if action.outcome == "held":
            problem = held_request_problem(store, action)
            if problem:
                f.lost.append(f"{action.session} {action.kind}: {problem}")
            continue
        if action.outcome != "done":
            continue
        claims = list(action.claims)
        if action.kind == "approve":
            more, problem = approval_claims(store, action)
            claims += more
            if problem:
                f.lost.append(f"{action.session} approve: {problem}")
        for claim in claims:
            f.claims_checked += 1
            why = check_claim(claim, action, events, state)
            if why:
                f.lost.append(why)
    for e in unsettled_events(events):
        f.unsettled.append(f"#{e.seq} {e.ts:%H:%M:%S} {e.actor_username} {e.action} "
                           f"{e.target_id or ''} (correlation {e.correlation_id[:8]})")
    for rec in store.newest(states=["approved"], limit=10_000):
        f.stuck_requests.append(f"request #{rec.id} {rec.action} by {rec.requester_username} "
                                f"still approved (decided by {rec.decided_by})")
    ids = set(grant_ids)
    f.checked_grants = len(ids)
    f.mismatches, f.unknown_limits = read_model_mismatches(ops, state, ids)
    return f


__all__ = ["Action", "Claim", "Findings", "SandboxState", "approval_claims", "check_all",
           "check_claim", "effective", "read_model_mismatches", "read_sandbox",
           "unsettled_events"]
