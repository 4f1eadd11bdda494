"""The audit log as a use case: read a page, export, verify the chain."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from services.operations import validation as v
from services.operations.context import OpsContext
from services.operations.errors import OperationError, ValidationError
from services.operations.four_eyes import APPROVAL_REQUEST
from services.operations.permissions import Actor, Permission, canonical_username
from services.store.actions import AuditAction
from services.store.audit import AuditFilter, AuditPage, ChainReport
from services.store.errors import StoreError

#: Every action the log records, for the action filter's words.
KNOWN_ACTIONS = tuple(sorted(str(a) for a in AuditAction))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CUSTOMER_GRANTS_MAX = 100  # a customer's grants a target filter takes, oldest first


def event_links(event: Any, approval_of: Any = None) -> tuple[str | None, int | None]:
    """Where an audit event leads: (its grant's id, its approval request's number), each
    None when it has none. A grant event names the grant; an approval event names the
    request; a change executed on approval carries its request's number in its params, or
    (its other outcomes) `approval_of(event)` finds it among its correlation's events."""
    target_type, target = getattr(event, "target_type", None), getattr(event, "target_id", None)
    grant = str(target) if target_type == "grant" and target else None
    request: Any = target if target_type == "approval" else None
    if request is None and isinstance(getattr(event, "params", None), dict):
        request = event.params.get(APPROVAL_REQUEST)
    if request is None and grant is not None and approval_of is not None:
        request = approval_of(event)
    try:
        number = int(str(request)) if request is not None else None
    except ValueError:
        number = None
    return grant, number


class AuditOps:
    """Use cases of the audit log page."""

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"AuditOps({self.ctx!r})"

    def audit_page(
        self, actor: Actor, filters: AuditFilter | None = None, page: int = 1,
        page_size: int = 50,
    ) -> AuditPage:
        """One page of the audit log (newest first)."""
        self.ctx.check(actor, Permission.READ_AUDIT, AuditAction.AUDIT_READ)
        if not isinstance(page, int) or page < 1:
            raise ValidationError("page", "The page number is a whole number of at least 1.")
        if not isinstance(page_size, int) or not 1 <= page_size <= 1000:
            raise ValidationError("page_size", "A page shows 1 to 1,000 events.")
        flt = self._resolve(v.audit_filter(filters))
        try:
            return self.ctx.audit_log.query(flt, page=page, page_size=page_size)
        except StoreError as exc:  # a filter the store still refuses: the person's input
            raise ValidationError("filters", exc.user_message) from None

    def filter_choices(self, actor: Actor) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The values the audit page's pickers offer: every action of the catalogue, and
        the console's actors with an event (at most `ACTORS_MAX`, by the actor index)."""
        self.ctx.check(actor, Permission.READ_AUDIT, AuditAction.AUDIT_READ)
        try:
            actors = tuple(self.ctx.audit_log.distinct_actors())
        except StoreError as exc:
            raise OperationError(exc.user_message, code="STORE_ERROR") from None
        return KNOWN_ACTIONS, actors

    def links(self, actor: Actor, event: Any) -> tuple[str | None, int | None]:
        """An event's grant and approval request (`event_links`), the request of a grant
        event looked up by its correlation id (an indexed read of that change's events)."""
        self.ctx.check(actor, Permission.READ_AUDIT, AuditAction.AUDIT_READ)
        corr = getattr(event, "correlation_id", None)

        def approval_of(_: Any) -> Any:
            if not corr:
                return None
            try:
                return self.ctx.audit_log.param_of_correlation(corr, APPROVAL_REQUEST)
            except StoreError as exc:
                raise OperationError(exc.user_message, code="STORE_ERROR") from None

        return event_links(event, approval_of)

    def _resolve(self, flt: AuditFilter) -> AuditFilter:
        """What a person typed, as the events are recorded: an actor in any case (usernames
        are recorded in their canonical form), an action by a word of its name ("revoke":
        every action with "revoke" in it), a target by a customer reference (its grants,
        and the customer itself for the backend's events). Indexed equality, nothing else."""
        actor: str | tuple[str, ...] | None = flt.actor
        if isinstance(actor, str):
            forms = tuple(dict.fromkeys([actor, canonical_username(actor)]))
            actor = forms if len(forms) > 1 else actor
        return replace(flt, actor=actor, action=self._actions(flt.action),
                       target_id=self._targets(flt.target_id))

    @staticmethod
    def _actions(typed: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if not isinstance(typed, str) or typed.endswith("*") or typed in KNOWN_ACTIONS:
            return typed
        words = [w for w in re.split(r"[\s._]+", typed) if w]
        found = tuple(a for a in KNOWN_ACTIONS if all(w in a for w in words))
        if not found:
            raise ValidationError(
                "action", f"No action has “{typed}” in its name; actions are named like "
                          "grant.revoke, guest.limit.update or auth.login.")
        return found[0] if len(found) == 1 else found

    def _targets(self, typed: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if not isinstance(typed, str) or typed.startswith("cgrant_") \
                or not v.is_customer_ref(typed):
            return typed
        try:
            grants = self.ctx.vault.stored_for_customer(typed, EPOCH)
        except StoreError as exc:
            raise OperationError(exc.user_message, code="STORE_ERROR") from None
        found = [e.grant_id for e in grants[:CUSTOMER_GRANTS_MAX]]
        return (typed, *found) if found else typed

    def export_audit(self, actor: Actor, filters: AuditFilter | None = None,
                     fmt: str = "csv") -> str:
        """The filtered audit log as CSV or JSON lines text. Audited (counts only)."""
        self.ctx.check(actor, Permission.READ_AUDIT, AuditAction.AUDIT_EXPORT)
        if fmt not in ("csv", "jsonl"):
            raise ValidationError("fmt", "Please choose CSV or JSON lines.")
        flt = self._resolve(v.audit_filter(filters))
        log = self.ctx.audit_log

        def body() -> tuple[str, None, dict[str, Any]]:
            out = io.StringIO()
            try:
                n = log.export_csv(flt, out) if fmt == "csv" else log.export_jsonl(flt, out)
            except StoreError as exc:
                raise OperationError(exc.user_message, code="STORE_ERROR") from None
            return out.getvalue(), None, {"rows": n, "format": fmt}

        return self.ctx.run(
            actor, AuditAction.AUDIT_EXPORT, body, what="Exporting the audit log",
            target_type="audit", params={"format": fmt, "filters": _filter_params(flt)},
        )

    def verify_audit(self, actor: Actor,
                     expected_head: tuple[Any, Any] | None = None) -> ChainReport:
        """Check the hash chain, the anchor file, and optionally a head an auditor noted
        earlier (`expected_head=(row number, hash)`); the result is audited."""
        self.ctx.check(actor, Permission.READ_AUDIT, AuditAction.AUDIT_VERIFY)
        expected = v.audit_head(expected_head) if expected_head is not None else None

        def body() -> tuple[ChainReport, None, dict[str, Any]]:
            report = self.ctx.audit_log.verify_chain(expected_head=expected)
            return report, None, {
                "ok": report.ok, "checked": report.checked, "first_bad_seq": report.first_bad_seq,
                "head_seq": report.head_seq, "head_hash": report.head_hash,
                "anchor_checked": report.anchor_checked, "anchor_seq": report.anchor_seq,
                "expected_checked": report.expected_checked,
            }

        params = None
        if expected is not None:
            params = {"expected_head": {"seq": expected[0], "hash": expected[1]}}
        return self.ctx.run(
            actor, AuditAction.AUDIT_VERIFY, body, what="Verifying the audit log",
            target_type="audit", params=params,
        )


def _filter_params(flt: AuditFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("since", "until", "actor", "action", "target_id", "outcome"):
        val = getattr(flt, k, None)
        if isinstance(val, tuple):
            out[k] = list(val)
        elif val is not None:
            out[k] = val.isoformat() if hasattr(val, "isoformat") else str(val)
    return out
