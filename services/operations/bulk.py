"""The bulk engine behind `LimitOps.apply_tier` and `LimitOps.apply_limit`: many grants, a
bounded thread pool, shared pacing after a 429, one audited pair per grant plus a summary
pair. How a run goes is in docs/architecture.md, "Bulk runs"."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from services.kryptos.errors import KryptosError, RateLimitedError
from services.operations.context import OpsContext
from services.operations.errors import (
    OperationError,
    RecordUnavailable,
    StaleChange,
    UpstreamError,
)
from services.operations.limit_change import GrantLimitChange, after_fields, before_fields
from services.operations.limit_value import UNKNOWN, GuestLimit
from services.operations.models import BulkItem, BulkResult, LimitChange
from services.operations.permissions import Actor
from services.store.actions import AuditAction
from services.store.trail import RECORD_PENDING, watch_pending
from services.store.vault import VaultEntry

log = logging.getLogger(__name__)

CUSTOM_LIMIT = "custom limit"  # BulkResult.tier of an apply_limit run
Progress = Callable[[int, int], None]


@dataclass
class Pace:
    """Shared state of one run's workers: the pause after a 429 that survived the client's
    retries, and whether PATCH answers carry the `previous_*` values."""

    until: float = 0.0
    api_reports_previous: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self) -> None:
        with self.lock:
            delay = self.until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.until = max(self.until, time.monotonic() + seconds)


@dataclass(frozen=True)
class BulkPlan:
    """What one bulk run sends to every grant and how it is audited."""

    label: str  # BulkResult.tier: the tier's name or CUSTOM_LIMIT
    limit: int | None
    limiter: bool | None
    action: AuditAction  # per-grant audit action
    bulk_action: AuditAction  # summary audit action
    what: str  # for error messages
    params: Mapping[str, Any]


def item_dict(i: BulkItem) -> dict[str, Any]:
    """A bulk item as stored with an approval request (its dry run, its result); the
    limits in their JSON form (`GuestLimit.to_json`)."""
    return {"grant_id": i.grant_id, "customer_ref": i.customer_ref, "outcome": i.outcome,
            "before": i.before.to_json(), "after": i.after.to_json(),
            "error_code": i.error_code,
            "message": i.message}


class BulkRun:
    """One run of a plan over grants (inputs already checked)."""

    def __init__(self, ctx: OpsContext, actor: Actor, plan: BulkPlan, why: str | None,
                 tkt: str | None, seen: Mapping[str, GuestLimit] | None = None) -> None:
        self.ctx = ctx
        self.grant = GrantLimitChange(ctx)
        self.actor, self.plan, self.why, self.tkt = actor, plan, why, tkt
        self.seen: Mapping[str, GuestLimit] = seen or {}
        self.entries: dict[str, VaultEntry] = {}  # the run's grants, read when it starts
        self.listed: set[str] = set()  # the API's active grants, read once per run
        self.bulk_id = str(uuid.uuid4())
        self.pace = Pace()
        self.extra_params: dict[str, Any] = {}  # e.g. {"resumes": bulk_id}
        # On every event of the run (an approval's execution: approver, request number).
        self.approval_params: dict[str, Any] = {}
        self.skip_at_target = False  # resume: leave grants already at the target alone

    def _ref(self, gid: str) -> str | None:
        return getattr(self.entries.get(gid), "customer_ref", None)

    def precheck(self, gid: str) -> BulkItem | None:
        """A "skipped" item when this grant cannot take the change (no such grant, revoked,
        a Linked user), else None. A limit change needs only the grant id (the API call is
        made with the console's credentials), so no token or user id is required."""
        entry = self.entries.get(gid)
        why = None
        if gid not in self.listed:
            if entry is None:
                code, why = "GRANT_NOT_FOUND", "No such grant: Kryptos does not list it."
            else:
                code, why = "GRANT_REVOKED", "Revoked: Kryptos no longer lists this grant."
        elif getattr(entry, "user_kind", None) == "linked":
            code, why = "NOT_ANON_USER", "Linked user: limits do not apply."
        if why is None:
            return None
        return BulkItem(gid, self._ref(gid), "skipped", UNKNOWN, UNKNOWN, code, why)

    def dry(self, gid: str) -> BulkItem:
        """What a real run would do to this grant; nothing is written."""
        skipped = self.precheck(gid)
        if skipped is not None:
            return skipped
        self.pace.wait()
        entry = self.entries.get(gid)
        b = self.grant.read(gid, entry)
        before = b.value
        after = before.after(self.plan.limit, self.plan.limiter)
        base: dict[str, Any] = dict(grant_id=gid, customer_ref=self._ref(gid), after=after,
                                    before=before)
        if b.is_guest is False:
            return BulkItem(**base, outcome="skipped", error_code="NOT_ANON_USER",
                            message="Linked user: limits do not apply.")
        if not before.known:
            return BulkItem(**base, outcome="would_change",
                            message="Current limit unknown (no token stored, no history).")
        if not after.known:
            return BulkItem(**base, outcome="would_change",
                            message="The resulting limit depends on a stored limit that "
                                    "the user info does not show (limiter off).")
        return BulkItem(**base, outcome="unchanged" if before.same_limit(after)
                        else "would_change")

    def real(self, gid: str) -> BulkItem:
        """Send the plan's values to this grant, audited as one pair; a grant whose limit
        is no longer what the person saw (`seen`) is refused as `STALE` (shown skipped)."""
        skipped = self.precheck(gid)
        if skipped is not None:
            return skipped
        self.pace.wait()
        entry: VaultEntry | None = self.entries.get(gid)
        read_before = not self.pace.api_reports_previous
        plan = self.plan
        if self.skip_at_target:
            done = self._at_target(gid, entry)
            if done is not None:
                return done
        seen = self.seen.get(gid, UNKNOWN)

        def body() -> tuple[LimitChange, dict[str, Any], dict[str, Any]]:
            change = self.grant.change(gid, plan.limit, plan.limiter, entry,
                                       read_before=read_before, seen=seen)
            return change, before_fields(change), after_fields(change)

        try:
            with watch_pending() as pending:
                change = self.ctx.run(
                    self.actor, plan.action, body, what=plan.what, target_type="grant",
                    target_id=gid, reason=self.why, ticket=self.tkt,
                    params={**plan.params, "bulk_id": self.bulk_id, **self.approval_params},
                    skippable=True,
                )
        except RecordUnavailable as err:
            if not err.change_made:  # nothing was sent
                return BulkItem(gid, self._ref(gid), "failed", UNKNOWN, UNKNOWN,
                                "AUDIT_UNAVAILABLE", err.user_message)
            # Made upstream; the record could not be kept anywhere: never "failed".
            return BulkItem(gid, self._ref(gid), "succeeded", UNKNOWN, UNKNOWN,
                            "RECORD_LOST",
                            err.user_message, record_pending=True)
        except OperationError as err:
            if isinstance(err, UpstreamError) and err.kind == RateLimitedError.__name__:
                self.pace.pause(err.retry_after if err.retry_after is not None else 1.0)
            skip = err.code == "NOT_ANON_USER" or isinstance(err, StaleChange)
            now = (err.now_value if isinstance(err, StaleChange)
                   and isinstance(err.now_value, GuestLimit) else UNKNOWN)
            return BulkItem(gid, self._ref(gid), "skipped" if skip else "failed", now, UNKNOWN,
                            err.code, err.user_message)
        if change.before_reported and not self.pace.api_reports_previous:
            self.pace.api_reports_previous = True  # later grants skip the user-info pre-read
        before = (GuestLimit.of(change.before_limit, change.before_limiter)
                  if change.before_known else UNKNOWN)
        return BulkItem(gid, self._ref(gid), "succeeded", before,
                        GuestLimit.of(change.after_limit, change.after_limiter),
                        message=RECORD_PENDING if pending else None,
                        record_pending=bool(pending))

    def _at_target(self, gid: str, entry: VaultEntry | None) -> BulkItem | None:
        """A resumed run's check: the grant already has the target (read upstream)."""
        b = self.grant.read(gid, entry)
        if not b.known or b.is_guest is False:
            return None
        before = b.value
        if not before.after(self.plan.limit, self.plan.limiter).same_limit(before):
            return None
        return BulkItem(gid, self._ref(gid), "unchanged", before, before,
                        message="Already at the target: left as it is.")

    def run(self, gids: tuple[str, ...], *, dry_run: bool,
            progress: Progress | None, correlation_id: str | None = None) -> BulkResult:
        """`correlation_id`: the summary pair's (an approval's), else a fresh one."""
        self.entries = self.ctx.vault.get_many(gids)
        try:
            self.listed = self.ctx.client.listed_grant_ids()
        except KryptosError as exc:  # nothing checked, nothing done
            raise UpstreamError.from_kryptos(exc, "Listing grants") from None
        summary_cid = correlation_id or uuid.uuid4().hex
        if not dry_run:
            self._summary("requested", summary_cid, params={
                **self.plan.params, "grants": len(gids), **self.extra_params,
                **self.approval_params,
                "grant_ids": list(gids)})
        work = self.dry if dry_run else self.real
        results: dict[str, BulkItem] = {}
        total = len(gids)
        workers = min(self.ctx.max_workers, total)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bulk-limit") as pool:
            futs = {pool.submit(work, gid): gid for gid in gids}
            for done, fut in enumerate(as_completed(futs), start=1):
                gid = futs[fut]
                try:
                    results[gid] = fut.result()
                except Exception:  # one grant's surprise must not lose the others' report
                    log.exception("bulk %s: grant %s failed unexpectedly", self.bulk_id, gid)
                    results[gid] = BulkItem(
                        gid, self._ref(gid), "failed", UNKNOWN, UNKNOWN,
                        "INTERNAL", "An unexpected error in the console (see its log).")
                if progress is not None:
                    progress(done, total)
        result = BulkResult(items=tuple(results[g] for g in gids), dry_run=dry_run,
                            tier=self.plan.label, bulk_id=None if dry_run else self.bulk_id)
        if not dry_run:
            counts = dict(result.counts)
            self._summary(
                "failed" if counts["failed"] else "succeeded", summary_cid,
                after={k: n for k, n in counts.items() if n},
                error_code="PARTIAL_FAILURE" if counts["failed"] else None,
            )
        return result

    def _summary(self, outcome: str, cid: str, **fields: Any) -> None:
        """One event of the summary pair (the outcome is durable: the run happened)."""
        self.ctx.event(
            self.actor.username, self.actor.roles, self.plan.bulk_action, outcome, cid,
            durable=outcome != "requested", target_type="bulk", target_id=self.bulk_id,
            reason=self.why, ticket=self.tkt, **fields,
        )


__all__ = ["CUSTOM_LIMIT", "BulkPlan", "BulkRun", "Pace", "after_fields", "before_fields",
           "item_dict"]
