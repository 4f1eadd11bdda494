"""Webhooks into the read model: a hook for the customer backend's `WebhookHub`
(backend/webhooks.py) that applies integration events to `rm_integrations` / `rm_grants`
at once, so the console shows a failure or a finished resync before the worker's next read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from services.kryptos.errors import MalformedResponseError
from services.kryptos.models import Integration
from services.store.readmodel import ReadModel

log = logging.getLogger("services.sync")

INTEGRATION_EVENTS = frozenset({"integration.created", "integration.updated",
                                "integration.failed", "integration.deleted"})


def readmodel_hook(readmodel: ReadModel) -> Callable[[Any], None]:
    """`fn(event)` for `WebhookHub.on_event`: every event of a known grant marks it for the
    worker's next read (`ReadModel.mark_changed`); an integration event also updates the
    read model at once (idempotent on the webhook id). Events not tied to a grant yet (the
    hub runs the hooks again once the exchange names it) are left alone, and so are
    payloads that are not an integration, but for the mark."""

    def apply_to_readmodel(event: Any) -> None:
        if not event.grant_id:
            return
        # Any news about a grant moves it up the worker's queue (after the failing ones),
        # so a change the payload does not fully say is read from Kryptos soon.
        readmodel.mark_changed(event.grant_id)
        if event.type not in INTEGRATION_EVENTS:
            return
        try:
            item = Integration.from_api(event.data)
        except (MalformedResponseError, AttributeError, TypeError, ValueError):
            log.warning("webhook %s (%s): not an integration; read model unchanged",
                        event.webhook_id, event.type)
            return
        readmodel.apply_webhook_integration(
            event.grant_id, item, webhook_id=event.webhook_id, received_at=event.received_at,
            deleted=event.type == "integration.deleted")

    return apply_to_readmodel


__all__ = ["INTEGRATION_EVENTS", "readmodel_hook"]
