"""The signed-webhook receiver's logic: verify, store once, then process.

Verification is `backend.webhook_auth` (Standard Webhooks: the signature covers the id, the
timestamp and the body). Storage (the store's `WebhookEventStore`, shared with the console's
reads): one row per signed `webhook-id` in `webhook_events` (unique constraint: a
redelivery or a concurrent duplicate is answered 200 and stored once). Any event type is
stored. Processing runs after the answer (`process_event`): it finds the grant (the payload's
`grant_id`, else the vault's grant of the payload's Kryptos user `uid`), records it on the
row, calls every `on_event` hook, then sets `processed_at`.

An event that names a user the vault does not know yet (the widget's `integration.created`
comes before the exchange) is tied to the grant when the exchange stores it
(`WebhookHub.attach_user`), and the hooks see it again then.

Hooks (for the read model): `WebhookHub.on_event.append(fn)`, `fn(event: WebhookEvent)`.
A hook may run more than once for one event (a redelivery of an event whose processing
failed): make it idempotent on `event.webhook_id`. A hook that raises leaves the event
unprocessed (`processed_at` NULL) for the next delivery; the other hooks still run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from backend import jsonbody
from backend.webhook_auth import SignedDelivery
from services.store import Database, TokenVault
from services.store.webhook_events import ID_MAX, TYPE_MAX, WebhookEvent, WebhookEventStore

log = logging.getLogger("backend.webhooks")


Hook = Callable[[WebhookEvent], None]


def _text(value: Any, limit: int) -> str | None:
    if isinstance(value, str) and value.strip() and len(value.strip()) <= limit:
        return value.strip()
    return None


def _facts(payload: Any) -> tuple[str, str | None, str | None]:
    """(type, grant id, Kryptos user id) of a delivery's body."""
    body: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    inner = body.get("data")
    data: Mapping[str, Any] = inner if isinstance(inner, Mapping) else {}
    kind = (_text(body.get("event"), TYPE_MAX) or _text(body.get("type"), TYPE_MAX)
            or "unknown")
    grant = _text(data.get("grant_id"), ID_MAX) or _text(body.get("grant_id"), ID_MAX)
    user = (_text(data.get("uid"), ID_MAX) or _text(data.get("user_id"), ID_MAX)
            or _text(body.get("uid"), ID_MAX))
    return kind, grant, user


@dataclass
class WebhookHub:
    """Stores and processes webhooks; `on_event` is the subscriber list."""

    db: Database
    vault: TokenVault | None = None
    on_event: list[Hook] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.events = WebhookEventStore(self.db)

    def store(self, raw: bytes, delivery: SignedDelivery) -> tuple[int, bool]:
        """Store a verified delivery under its signed id: (row id, True) or, for a known id,
        (its row id, False). Never under an id the signature does not cover (an unsigned
        header or the body's own `id`), so a replay cannot pass as a new event."""
        payload = jsonbody.loads(raw, "webhook body")
        kind, grant, user = _facts(payload)
        return self.events.insert(delivery.webhook_id, kind, payload, grant_id=grant,
                                  kryptos_user_id=user)

    def get(self, row_id: int) -> WebhookEvent | None:
        return self.events.get(row_id)

    def process(self, row_id: int) -> WebhookEvent | None:
        return process_event(self.db, row_id, vault=self.vault, hooks=self.on_event)

    def attach_user(self, kryptos_user_id: str, grant_id: str) -> list[WebhookEvent]:
        """A grant was just stored for this Kryptos user: events of the user received before
        (the widget's `integration.created` arrives before the exchange) get its grant id,
        and the hooks see them again, now with the grant. Returns those events."""
        events = self.events.attach_user(kryptos_user_id, grant_id)
        # An event processed while the grant was being stored found it in the vault but not
        # yet in the read model: the hooks (idempotent on the webhook id) see it again too.
        tied = {e.id for e in events}
        earlier = [e for e in self.events.for_grant(grant_id)
                   if e.kryptos_user_id == kryptos_user_id and e.id not in tied]
        for event in sorted([*earlier, *events], key=lambda e: e.id):
            _run_hooks(self.on_event, event)
        return events

    def for_grant(self, grant_id: str, limit: int = 100) -> list[WebhookEvent]:
        """A grant's events, newest first."""
        return self.events.for_grant(grant_id, limit)

    def recent(self, types: tuple[str, ...] = (), limit: int = 50) -> list[WebhookEvent]:
        """The newest events (of `types` when given), newest first."""
        return self.events.recent(types, limit)


def process_event(db: Database, row_id: int, *, vault: TokenVault | None = None,
                  hooks: list[Hook] | tuple[Hook, ...] = ()) -> WebhookEvent | None:
    """Attach the event to its grant, run the hooks, mark it processed. Returns the event
    (None when the row does not exist). Already processed events are left alone."""
    store = WebhookEventStore(db)
    event = store.get(row_id)
    if event is None:
        return None
    if event.processed_at is not None:
        return event
    grant_id = event.grant_id
    if grant_id is None and event.kryptos_user_id and vault is not None:
        entry = vault.for_user(event.kryptos_user_id)
        grant_id = entry.grant_id if entry is not None else None
    if grant_id != event.grant_id:
        store.set_grant(row_id, grant_id)
        event = replace(event, grant_id=grant_id)
    if not _run_hooks(hooks, event):
        return event
    return replace(event, processed_at=store.mark_processed(row_id))


def _run_hooks(hooks: list[Hook] | tuple[Hook, ...], event: WebhookEvent) -> bool:
    """Call every hook; False when one raised (the others still run)."""
    ok = True
    for hook in list(hooks):
        try:
            hook(event)
        except Exception:  # one subscriber's failure must not stop the others
            ok = False
            log.exception("webhook hook %r failed for event %s (%s)",
                          getattr(hook, "__name__", hook), event.webhook_id, event.type)
    return ok
