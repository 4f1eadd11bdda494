"""What the Grant detail sections share: the flash message keys, the two-column facts
table, a part's value (or its error or note), the grant's pending approval requests and the approval
caption of the change forms.
"""

from __future__ import annotations

from typing import TypeVar

import pandas as pd
import streamlit as st

from dashboard import actions, reads
from dashboard.context import PageContext
from dashboard.csv_io import screen_frame
from dashboard.formats import fmt_minute
from dashboard.ui import escape_markdown, show_error
from services.operations import GrantDetail, OperationError
from services.operations.approvals import ApprovalRequest
from services.operations.models import Part

FLASH_KEY = "grant_flash"  # the last change's message, shown once after the rerun
PENDING_KEY = "grant_record_pending"  # the last change's audit record waits in the journal
APPROVALS_LINK = "/approvals"

T = TypeVar("T")


def kv_table(rows: list[tuple[str, str]]) -> None:
    """A two-column table of labels and (possibly upstream) values, rendered as cells."""
    st.dataframe(
        screen_frame(pd.DataFrame(rows, columns=["Field", "Value"])), hide_index=True,
        width="stretch",
    )


def is_revoked(detail: GrantDetail) -> bool:
    """The grant is revoked (its parts cannot be read: not an error)."""
    return detail.grant.status == "revoked"


def part_value(detail: GrantDetail, part: Part[T]) -> T | None:
    """A part's value to render, or None after showing its error or note."""
    if part.error is not None and is_revoked(detail) and getattr(
            part.error, "status", None) in (401, 403):
        # Expected once the grant is revoked (the banner above says why): not an error.
        st.caption("Not available: the grant is revoked.")
        return None
    if part.error is not None:
        show_error(part.error)
        return None
    if part.value is None:
        st.text(part.note or "Not available.")
    return part.value


def wallet_names(detail: GrantDetail) -> dict[str, str]:
    """Each integration's name by wallet id (for charts and resync lines)."""
    return {i.wallet_id: i.display_name for i in detail.integrations.value or ()}


def pending_requests(ctx: PageContext, gid: str) -> list[ApprovalRequest]:
    """The pending approval requests on this grant (one indexed query, never cached:
    another replica's request must show); none when they cannot be read (the banner at the
    top of the page says why)."""
    try:
        return reads.pending_requests(ctx.ops, ctx.actor, gid)
    except OperationError:
        return []


def request_words(r: ApprovalRequest) -> str:
    """A pending request in words: number, change, who and when."""
    rec = r.record
    return (f"Request #{r.id} ({r.describe()}) by {rec.requester_username} at "
            f"{fmt_minute(rec.created_at)}")


def approval_caption(ctx: PageContext, form: str, gid: str | None = None) -> None:
    note = actions.approval_note(ctx.ops, form, ctx.actor)
    if note:
        st.caption(note)
    kind = "revoke" if form == "revoke" else "limit"
    for r in pending_requests(ctx, gid) if gid is not None else ():
        if r.change.kind == kind:
            st.caption(escape_markdown(f"{request_words(r)} already waits for approval: "
                                       "another request for this grant would be refused "
                                       "until it is decided."))
