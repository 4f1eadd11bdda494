"""`POST /api/kryptos/webhooks`: Kryptos' signed deliveries. The body stays raw bytes: the
signature (backend/webhook_auth.py) covers them exactly; `WebhookHub.store` then parses them
through `backend.jsonbody`."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request

from backend import metrics
from backend.deps import BackendDep, RawBody, body_schema, errors
from backend.errors import ApiError
from backend.models import WebhookAnswer, WebhookDelivery

router = APIRouter(tags=["webhooks"])


@router.post("/api/kryptos/webhooks", response_model=WebhookAnswer,
             responses=errors(400, 401, 500), openapi_extra=body_schema(WebhookDelivery))
def receive(request: Request, tasks: BackgroundTasks, raw: RawBody,
            b: BackendDep) -> WebhookAnswer:
    """Verify (webhook-id, webhook-timestamp, webhook-signature), store once, then process
    after the answer. A known webhook id answers `duplicate: true`."""
    if b.webhook_verifier is None:
        raise ApiError(401, "UNAUTHENTICATED", "Webhooks are not configured on this backend.")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        delivery = b.webhook_verifier.verify(raw, headers)
        row_id, new = b.hub.store(raw, delivery)
    except ApiError as exc:
        if exc.status < 500:  # signature, timestamp or body refused
            metrics.webhook("refused")
        raise
    metrics.webhook("verified" if new else "duplicate")
    event = None if new else b.hub.get(row_id)
    if new or (event is not None and event.processed_at is None):
        tasks.add_task(b.hub.process, row_id)  # after the answer is sent
    return WebhookAnswer(duplicate=not new)
