"""Changes to one grant from the Grant detail page: revoke (typed id confirmed) and resync.
"""

from __future__ import annotations

from dashboard import reads
from services.operations import Actor, Operations, ResyncOutcome
from services.operations.four_eyes import Held


def confirm_revoke(
    ops: Operations,
    actor: Actor,
    grant_id: str,
    typed_grant_id: str,
    reason: str,
    ticket: str | None = None,
) -> str | Held:
    """Revoke `grant_id` once the user typed the same id again. Returns the API's message,
    or the request the use case made instead (`Held`: the change waits for approval).

    The use case checks the reason, the ticket and then the typed id (ValidationError,
    nothing sent, nothing audited).
    """
    try:
        # The page offers Revoke only on an active grant: refused (STALE) if it no longer is.
        done = ops.grants.revoke_grant(actor, grant_id, reason, ticket=ticket or None,
                                       expected_status="active",
                                       typed_id=typed_grant_id or "")
        return done if isinstance(done, Held) else str(done)
    finally:
        reads.invalidate_grant(grant_id)


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
        return ops.grants.resync_integration(
            actor, grant_id, wallet_id, mode, reason=reason or None)
    finally:
        reads.invalidate_grant(grant_id)
