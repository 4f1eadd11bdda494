"""The signed-webhook receiver's logic: verify, store once, then process.

Verification: `X-Webhook-Signature` is the lowercase hex HMAC-SHA256 of the raw body keyed
with KRYPTOS_WEBHOOK_SECRET, compared with `hmac.compare_digest`; `X-Webhook-Timestamp`
(Unix seconds, or ISO 8601 as in the API notes) must be within the max age of now, either
way. Storage (the store's `WebhookEventStore`, shared with the console's reads): one row
per `X-Webhook-Id` in `webhook_events` (unique constraint: a redelivery or a concurrent
duplicate is answered 200 and stored once). Any event type is
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

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from backend import jsonbody
from backend.errors import ApiError, invalid
from services.store import Database, TokenVault
from services.store.webhook_events import ID_MAX, TYPE_MAX, WebhookEvent, WebhookEventStore

log = logging.getLogger("backend.webhooks")


Hook = Callable[[WebhookEvent], None]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHENTICATED", message)


def parse_timestamp(value: str) -> float | None:
    """Unix seconds (or milliseconds when huge), or ISO 8601; None when neither."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(number):
        return None
    return number / 1000 if number > 1e11 else number


def sign(secret: str, raw: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


def verify(raw: bytes, headers: Mapping[str, str], secret: str | None, max_age: float,
           now: float | None = None) -> None:
    """Raise 401 unless the signature and the timestamp are good."""
    if not secret:
        raise _unauthorized("Webhooks are not configured on this backend.")
    given = headers.get("x-webhook-signature") or ""
    if not given:
        raise _unauthorized("The webhook signature is missing.")
    if not hmac.compare_digest(sign(secret, raw).encode(), given.strip().lower().encode()):
        raise _unauthorized("The webhook signature does not match.")
    stamp = parse_timestamp(headers.get("x-webhook-timestamp") or "")
    if stamp is None:
        raise _unauthorized("The webhook timestamp is missing or unreadable.")
    now = time.time() if now is None else now
    if abs(now - stamp) > max_age:
        raise _unauthorized("The webhook timestamp is outside the allowed window.")


def _text(value: Any, limit: int) -> str | None:
    if isinstance(value, str) and value.strip() and len(value.strip()) <= limit:
        return value.strip()
    return None


def _facts(payload: Any, headers: Mapping[str, str]) -> tuple[str, str, str | None, str | None]:
    """(webhook id, type, grant id, Kryptos user id) of a delivery."""
    body = payload if isinstance(payload, Mapping) else {}
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    webhook_id = _text(headers.get("x-webhook-id"), ID_MAX) or _text(body.get("id"), ID_MAX)
    if webhook_id is None:
        raise invalid("The webhook has no X-Webhook-Id.")
    kind = (_text(body.get("event"), TYPE_MAX) or _text(body.get("type"), TYPE_MAX)
            or _text(headers.get("x-webhook-event"), TYPE_MAX) or "unknown")
    grant = _text(data.get("grant_id"), ID_MAX) or _text(body.get("grant_id"), ID_MAX)
    user = (_text(data.get("uid"), ID_MAX) or _text(data.get("user_id"), ID_MAX)
            or _text(body.get("uid"), ID_MAX))
    return webhook_id, kind, grant, user


@dataclass
class WebhookHub:
    """Stores and processes webhooks; `on_event` is the subscriber list."""

    db: Database
    vault: TokenVault | None = None
    on_event: list[Hook] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.events = WebhookEventStore(self.db)

    def store(self, raw: bytes, headers: Mapping[str, str]) -> tuple[int, bool]:
        """Store a verified delivery: (row id, True) or, for a known id, (its row id, False)."""
        payload = jsonbody.loads(raw, "webhook body")
        webhook_id, kind, grant, user = _facts(payload, headers)
        return self.events.insert(webhook_id, kind, payload, grant_id=grant,
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
