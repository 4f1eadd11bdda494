"""What the grant pages' dialogs and forms do, as plain functions a test can call.

AppTest does not run buttons inside `st.dialog`, so a dialog only collects and confirms and
then calls one of these. Each one calls an operation (which checks permission, validates and
audits) and then drops the cached reads the change affects, whatever the outcome: a call that
failed may still have changed something upstream.

No Streamlit import here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard import data
from services.csv_safe import csv_safe
from services.operations import (
    CUSTOM_LIMIT,
    Actor,
    BulkItem,
    BulkResult,
    LimitChange,
    OperationError,
    Operations,
    Permission,
    PermissionDenied,
    ResyncOutcome,
    ValidationError,
)
from services.operations.validation import GRANT_ID_RE
from services.store.actions import AuditAction
from services.store.vault import ImportReport

LIMITER_KEEP = "keep"
LIMITER_ON = "on"
LIMITER_OFF = "off"
LIMITER_CHOICES = (LIMITER_KEEP, LIMITER_ON, LIMITER_OFF)


def confirm_revoke(
    ops: Operations,
    actor: Actor,
    grant_id: str,
    typed_grant_id: str,
    reason: str,
    ticket: str | None = None,
) -> str:
    """Revoke `grant_id` once the user typed the same id again. Returns the API's message.

    Refuses (ValidationError, nothing sent, nothing audited) when the typed id does not match.
    """
    if (typed_grant_id or "").strip() != grant_id:
        raise ValidationError(
            "grant id", "the id typed does not match this grant; type it again exactly."
        )
    try:
        return str(ops.grants.revoke_grant(actor, grant_id, reason, ticket=ticket or None))
    finally:
        data.invalidate_grant(grant_id)


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
        return ops.grants.resync_integration(actor, grant_id, wallet_id, mode,
                                             reason=reason or None)
    finally:
        data.invalidate_grant(grant_id)


def limiter_value(choice: str) -> bool | None:
    """The limiter select of the form -> the operation's `enable_limiter` argument."""
    if choice == LIMITER_KEEP:
        return None
    if choice == LIMITER_ON:
        return True
    if choice == LIMITER_OFF:
        return False
    raise ValidationError("limiter", f"must be one of {', '.join(LIMITER_CHOICES)}.")


@dataclass(frozen=True)
class LimitFormResult:
    """What the Guest limit form did: a direct change, or a tier applied to this one grant."""

    change: LimitChange | None = None
    tier_item: BulkItem | None = None

    def summary(self) -> str:
        if self.change is not None:
            c = self.change
            return (
                f"Limit {_fmt_limit(c.before_limit)} -> {_fmt_limit(c.after_limit)}, "
                f"limiter {_fmt_bool(c.before_limiter)} -> {_fmt_bool(c.after_limiter)}."
            )
        if self.tier_item is not None:
            i = self.tier_item
            return f"Tier applied: limit {_fmt_limit(i.before)} -> {_fmt_limit(i.after)}."
        return "Nothing changed."


def submit_limit(
    ops: Operations,
    actor: Actor,
    grant_id: str,
    *,
    limit: int | None,
    limiter: str,
    tier: str | None,
    reason: str,
    ticket: str | None = None,
) -> LimitFormResult:
    """The Guest limit form: either apply a tier, or set a limit and/or switch the limiter.

    A new limit with the limiter left on "keep" also switches the limiter on: a limit on a
    Guest whose limiter is off would be stored and never enforced, which is not what someone
    typing a limit means (and when the limiter is already on, switching it on changes
    nothing). Choosing "off" explicitly still stores a limit without enforcing it.
    """
    try:
        if tier:
            if limit is not None or limiter != LIMITER_KEEP:
                raise ValidationError(
                    "tier", "choose a tier, or a limit and limiter, not both."
                )
            result = ops.limits.apply_tier(actor, [grant_id], tier, reason, ticket=ticket or None)
            item = _only_item(result, grant_id)
            if item.outcome in ("failed", "skipped"):
                raise OperationError(
                    item.message or "Applying the tier failed.", code=item.error_code
                )
            return LimitFormResult(tier_item=item)
        change = ops.limits.set_guest_limit(
            actor,
            grant_id,
            transaction_limit=limit,
            enable_limiter=(
                True if limit is not None and limiter == LIMITER_KEEP else limiter_value(limiter)
            ),
            reason=reason,
            ticket=ticket or None,
        )
        return LimitFormResult(change=change)
    finally:
        data.invalidate_grant(grant_id)


def _only_item(result: BulkResult, grant_id: str) -> BulkItem:
    for item in result.items:
        if item.grant_id == grant_id:
            return item
    raise OperationError(f"The tier run returned no result for {grant_id}.")


# --- bulk (Guest limits page) -------------------------------------------------------------


@dataclass(frozen=True)
class RejectedLine:
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class ParsedIds:
    grant_ids: tuple[str, ...]
    rejected: tuple[RejectedLine, ...]


def parse_grant_id_csv(content: bytes | str, max_rows: int = 10_000) -> ParsedIds:
    """Read grant ids from an uploaded CSV: the first column, or a column named `grant_id`.

    A header row is skipped. Lines that are not a grant id are reported, duplicates dropped.
    """
    if isinstance(content, bytes):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            return ParsedIds((), (RejectedLine(0, "", "the file is not UTF-8 text"),))
    else:
        text = content
    rows = list(csv.reader(io.StringIO(text)))
    column = 0
    start = 0
    if rows:
        header = [c.strip().lower() for c in rows[0]]
        if "grant_id" in header:
            column = header.index("grant_id")
            start = 1
        elif header and header[0] and not header[0].startswith("cgrant_"):
            start = 1  # some other header, e.g. "id"
    ids: list[str] = []
    seen: set[str] = set()
    rejected: list[RejectedLine] = []
    for n, row in enumerate(rows[start:], start=start + 1):
        if not row or not any(c.strip() for c in row):
            continue
        value = row[column].strip() if column < len(row) else ""
        shown = value[:80]
        if not value:
            rejected.append(RejectedLine(n, ",".join(row)[:80], "no grant id in this line"))
        elif not GRANT_ID_RE.match(value):
            rejected.append(RejectedLine(n, shown, "not a grant id (cgrant_...)"))
        elif value in seen:
            rejected.append(RejectedLine(n, shown, "duplicate"))
        elif len(ids) >= max_rows:
            rejected.append(RejectedLine(n, shown, f"more than {max_rows:,} grant ids"))
        else:
            seen.add(value)
            ids.append(value)
    return ParsedIds(tuple(ids), tuple(rejected))


ProgressFn = Callable[[int, int], None]


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
) -> BulkResult:
    """Apply a configured tier to many grants (or preview it with `dry_run`)."""
    return _bulk(dry_run, lambda: ops.limits.apply_tier(
        actor, list(grant_ids), tier, reason, dry_run=dry_run, ticket=ticket or None,
        progress=progress,
    ))


def _bulk(dry_run: bool, run: Callable[[], BulkResult]) -> BulkResult:
    """Run a bulk change; after a real one (whatever its outcome) every cached read goes."""
    try:
        return run()
    finally:
        if not dry_run:
            data.invalidate_all()


CUSTOM = CUSTOM_LIMIT


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
) -> BulkResult:
    """Set one custom limit (limiter on) on many grants (or preview it with `dry_run`).

    One bulk operation, like a tier: bounded concurrency, per-grant outcome, and a dry run
    that reads each grant's current limit.
    """
    return _bulk(dry_run, lambda: ops.limits.apply_limit(
        actor, list(grant_ids), transaction_limit=limit, enable_limiter=True, reason=reason,
        dry_run=dry_run, ticket=ticket or None, progress=progress,
    ))


BULK_COLUMNS = ("grant_id", "customer_ref", "outcome", "before", "after", "error_code", "message")


def bulk_rows(items: Iterable[BulkItem]) -> list[dict[str, Any]]:
    """One plain dict per item (limits as text: "no limit", "unknown" or the number)."""
    return [
        {
            "grant_id": i.grant_id,
            "customer_ref": i.customer_ref or "",
            "outcome": i.outcome,
            "before": _fmt_limit(i.before),
            "after": _fmt_limit(i.after) if i.outcome != "failed" else "",
            "error_code": i.error_code or "",
            "message": i.message or "",
        }
        for i in items
    ]


def bulk_csv(result: BulkResult) -> str:
    """The per-grant results as CSV text, for download."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(BULK_COLUMNS))
    writer.writeheader()
    for row in bulk_rows(result.items):
        writer.writerow({k: csv_safe(str(v)) for k, v in row.items()})
    return out.getvalue()


def _fmt_limit(value: int | str | None) -> str:
    if value is None:
        return "no limit"
    if isinstance(value, str):
        return value
    return f"{value:,}"


def _fmt_bool(value: bool | None) -> str:
    return "unknown" if value is None else ("on" if value else "off")


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells cannot be read as spreadsheet formulas."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda x: csv_safe(x) if isinstance(x, str) else x)
    return out


GUEST_LIMITS_PAGE = ("page", "guest_limits")


def refuse_unless_allowed(ops: Operations, actor: Actor) -> PermissionDenied | None:
    """For the Guest limits page reached without the permission to manage limits: let the
    operations refuse (one `denied` event, action `guest.tier.apply`, target the page) and
    return the refusal to show. None when the actor is in fact allowed.
    """
    try:
        ops.require(actor, Permission.MANAGE_LIMITS, AuditAction.TIER_APPLY, *GUEST_LIMITS_PAGE)
    except PermissionDenied as exc:
        return exc
    return None


def import_tokens_csv(ops: Operations, actor: Actor, content: bytes) -> ImportReport:
    """Import an uploaded CSV of `grant_id, access_token, customer_ref` into the vault (the
    same as `python -m services.store import-tokens`); returns the store's `ImportReport`.
    The operation checks the permission and audits the counts; the grant lists are dropped
    from the cache so the new tokens show at once."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("file", "is not UTF-8 text; save the CSV as UTF-8.") from None
    try:
        return ops.connect.import_tokens(actor, io.StringIO(text, newline=""))
    finally:
        data.invalidate_all()
