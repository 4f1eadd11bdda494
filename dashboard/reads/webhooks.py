"""What Kryptos reported by webhook (a local database read each: never cached, they
arrive at any time).
"""

from __future__ import annotations

from datetime import datetime

from dashboard.timeline import TimelineItem, merge
from services.operations import Actor, Operations, Permission, can
from services.operations.timeline import IntegrationNews, RecentFailure


def timeline(ops: Operations, actor: Actor, grant_id: str) -> tuple[TimelineItem, ...]:
    """The grant's webhooks and recorded actions in plain words, newest first (the actions
    only for those who may read the grant's history)."""
    return tuple(merge(ops.timeline.grant_timeline(actor, grant_id)))


def timeline_shows_actions(actor: Actor) -> bool:
    """Whether `timeline` includes the recorded actions for this actor."""
    return can(actor, Permission.VIEW_GRANT_HISTORY)


def recent_failures(ops: Operations, actor: Actor) -> tuple[RecentFailure, ...]:
    """Integration failures reported by webhook in the last 24 hours, newest first (10 at
    most), each with its grant when known."""
    return ops.timeline.recent_failures(actor)


def integration_news(ops: Operations, actor: Actor, grant_id: str, wallet_id: str,
                     since: datetime) -> IntegrationNews | None:
    """The newest webhook about this integration received after `since`, or None."""
    return ops.timeline.integration_news(actor, grant_id, wallet_id, since)
