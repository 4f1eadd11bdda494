"""The audit log as a use case: read a page, export, verify the chain."""

from __future__ import annotations

import io
from typing import Any

from services.operations import validation as v
from services.operations.context import OpsContext
from services.operations.errors import OperationError, ValidationError
from services.operations.permissions import Actor, Permission
from services.store.actions import AuditAction
from services.store.audit import AuditFilter, AuditPage, ChainReport
from services.store.errors import StoreError


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
        flt = v.audit_filter(filters)
        try:
            return self.ctx.audit_log.query(flt, page=page, page_size=page_size)
        except StoreError as exc:  # a filter the store still refuses: the person's input
            raise ValidationError("filters", exc.user_message) from None

    def export_audit(self, actor: Actor, filters: AuditFilter | None = None,
                     fmt: str = "csv") -> str:
        """The filtered audit log as CSV or JSON lines text. Audited (counts only)."""
        self.ctx.check(actor, Permission.READ_AUDIT, AuditAction.AUDIT_EXPORT)
        if fmt not in ("csv", "jsonl"):
            raise ValidationError("fmt", "Please choose CSV or JSON lines.")
        flt = v.audit_filter(filters)
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
    out = {}
    for k in ("since", "until", "actor", "action", "target_id", "outcome"):
        val = getattr(flt, k, None)
        if val is not None:
            out[k] = val.isoformat() if hasattr(val, "isoformat") else str(val)
    return out
