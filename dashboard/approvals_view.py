"""The Approvals page's tables (pages/approvals.py): requests, their grants and the results
of deciding several at once, as rows with column names and outcomes in words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dashboard.formats import fmt_minute
from services.operations import GuestLimit
from services.operations.approval_policy import ApprovalRequest


def _value(v: Any) -> str:
    return v if isinstance(v, str) else GuestLimit.from_json(v).label()


def counts_words(request: ApprovalRequest) -> str:
    """What an executed request did, in words ("3 changed, 1 skipped"); "" when nothing yet."""
    counts = (request.record.result or {}).get("counts") or {}
    return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())


def item_rows(items: Iterable[Mapping[str, Any]],
              now: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """One row per grant; `now`: each grant's before as it is now, beside the recorded one."""
    rows = []
    for i in items:
        # Column names and outcomes in words ("would change", not `would_change`).
        row = {"grant id": str(i.get("grant_id")),
               "customer reference": str(i.get("customer_ref") or ""),
               "outcome": str(i.get("outcome") or "").replace("_", " "),
               "before": _value(i.get("before"))}
        if now is not None:
            row["before now"] = _value(now.get(str(i.get("grant_id")), "unknown"))
        row.update({"after": _value(i.get("after")),
                    "error code": str(i.get("error_code") or ""),
                    "message": str(i.get("message") or "")})
        rows.append(row)
    return rows


def summary_rows(requests: Iterable[ApprovalRequest]) -> list[dict[str, str]]:
    """One row per request: the change, its state, who asked and decided, and the result."""
    return [{
        "id": f"#{r.id}", "change": r.describe(), "state": r.outcome(),
        "requested by": r.record.requester_username, "reason": r.record.reason,
        "ticket": r.record.ticket or "", "requested": fmt_minute(r.record.created_at),
        "expires": fmt_minute(r.record.expires_at), "decided by": r.record.decided_by or "",
        "decision reason": r.record.decision_reason or "", "result": counts_words(r),
    } for r in requests]


def many_results(results: Iterable[tuple[int, ApprovalRequest | None, Any]], decision: str
                 ) -> tuple[str, list[dict[str, str]]]:
    """Several requests decided at once: the summary line and one row per request (refused
    ones with the reason and its code)."""
    done = "approved and executed" if decision == "approve" else "rejected"
    rows = []
    for rid, req, err in results:
        if err is not None or req is None:
            rows.append({"request": f"#{rid}", "result": "refused",
                         "why": getattr(err, "user_message", ""),
                         "code": getattr(err, "code", "")})
        else:
            rows.append({"request": f"#{rid}", "result": done, "why": counts_words(req),
                         "code": ""})
    ok = sum(1 for r in rows if r["result"] != "refused")
    return f"{ok} of {len(rows)} request(s) {done}; {len(rows) - ok} refused.", rows


__all__ = ["counts_words", "item_rows", "many_results", "summary_rows"]
