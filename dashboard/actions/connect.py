"""Connect page changes: link tokens, the public token exchange, the sandbox widget run and
the token CSV import.
"""

from __future__ import annotations

import io

from dashboard import reads
from dashboard.runtime import NotInSandbox, Runtime, play_widget
from sandbox import SandboxControlError
from services.operations import (
    Actor,
    GrantRow,
    LinkTokenIssued,
    OperationError,
    Operations,
    ValidationError,
)
from services.store import ImportReport


def create_link_token(ops: Operations, actor: Actor, customer_ref: str,
                      returning_grant_id: str | None = None) -> LinkTokenIssued:
    """A link token for a new customer, or one resuming `returning_grant_id`'s session.
    Nothing cached changes (the grant is changed only when the widget completes)."""
    returning = (returning_grant_id or "").strip() or None
    return ops.connect.create_link_token(actor, customer_ref, returning)


def exchange_public_token(ops: Operations, actor: Actor, customer_ref: str,
                          public_token: str) -> GrantRow:
    """Exchange the widget's public token for the customer's grant (its token goes to the
    vault). On failure a grant may still have been created upstream: the lists are dropped."""
    try:
        row = ops.connect.exchange_public_token(actor, customer_ref, public_token)
    except BaseException:
        reads.invalidate_lists()
        raise
    reads.invalidate_grant(row.grant_id)
    return row


def complete_widget(runtime: Runtime, issued: LinkTokenIssued, kind: str) -> dict:
    """Sandbox mode: play the customer's part of the widget opened with `issued`'s link
    token. A returning customer's run adds an integration to their grant (`resumed`), which
    is dropped from the cache; a new customer's gives a public token to exchange."""
    try:
        answer = play_widget(runtime, kind, issued.link_token)
    except (OSError, SandboxControlError, NotInSandbox) as exc:
        raise OperationError(
            "The sandbox did not complete the widget run "
            f"({type(exc).__name__}). If the link token has expired, create a new one; "
            "otherwise restart the console.",
            code="SANDBOX_WIDGET_FAILED",
        ) from None
    if answer.get("resumed"):
        reads.invalidate_grant(str(answer.get("grant_id")))
    return answer


def import_tokens_csv(ops: Operations, actor: Actor, content: bytes) -> ImportReport:
    """Import an uploaded CSV of `grant_id, access_token, customer_ref` into the vault (the
    same as `python -m services.store import-tokens`).
    Every cached read is dropped (any grant may have got a token)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("file", "This file is not UTF-8 text: save the CSV as UTF-8 "
                                      "(in Excel: \"CSV UTF-8\") and upload it again.") from None
    try:
        return ops.connect.import_tokens(actor, io.StringIO(text, newline=""))
    finally:
        reads.invalidate_all()
