"""Signed webhook deliveries from a background thread: a due-time queue, up to 3 attempts with
the same id, and the webhook faults (drop, duplicate, delay, bad_signature).

Signatures are Standard Webhooks' (the `standardwebhooks` package): headers `webhook-id`
(the event's id, the same on every attempt), `webhook-timestamp` (Unix seconds of the
attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`
keyed with the `whsec_<base64>` secret)."""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

from standardwebhooks import Webhook

DEFAULT_BACKOFF = (0.2, 1.0)
MAX_ATTEMPTS = 3
WEBHOOK_FAULTS = ("drop", "duplicate", "delay", "bad_signature")
DEFAULT_FAULT_DELAY_MS = 1000.0
LOG_SIZE = 1000  # deliveries kept for GET /sandbox/webhooks


def check_secret(secret: str) -> None:
    """ValueError unless `secret` is `whsec_` and base64 (what Standard Webhooks signs with)."""
    if not secret.startswith("whsec_"):
        raise ValueError("the webhook secret must be a Standard Webhooks secret (whsec_...)")
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("the webhook secret must be whsec_ followed by base64") from None
    if not key:
        raise ValueError("the webhook secret is empty")


def signed_headers(secret: str, delivery_id: str, body: bytes, at: float,
                   *, wrong_key: bool = False) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt made at `at` (Unix seconds);
    `wrong_key` (the bad_signature fault) signs with a key the receiver does not have."""
    check_secret(secret)
    signer = Webhook(secret)
    if wrong_key:
        signer = Webhook(base64.b64decode(secret[len("whsec_"):]) + b"-wrong")
    stamp = int(at)
    signature = signer.sign(delivery_id, datetime.fromtimestamp(stamp, tz=UTC),
                            body.decode("utf-8"))
    return {"webhook-id": delivery_id, "webhook-timestamp": str(stamp),
            "webhook-signature": signature}


@dataclass
class WebhookFault:
    id: str
    kind: str
    count: int
    delay_ms: float

    def describe(self) -> dict:
        return {"id": self.id, "webhook": self.kind, "count": self.count,
                "delay_ms": self.delay_ms}


@dataclass
class Delivery:
    id: str
    event: str
    body: bytes = field(repr=False)
    fault: str | None
    delay_ms: float
    attempts: int = 0
    status: str = "pending"  # pending | delivered | failed | dropped
    responses: list[int | str] = field(default_factory=list)
    copies_left: int = 0  # the duplicate fault: sent again after it is delivered
    generation: int = 0  # a reset forgets the deliveries of earlier generations

    def describe(self) -> dict:
        return {"id": self.id, "type": self.event, "attempts": self.attempts,
                "status": self.status, "responses": list(self.responses), "fault": self.fault}


@dataclass
class WebhookConfig:
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    backoff: tuple[float, ...] = DEFAULT_BACKOFF
    timeout: float = 10.0


class WebhookSender:
    """Queues events (never blocks the caller) and posts them from one daemon thread."""

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self.faults: list[WebhookFault] = []
        self.deliveries: list[Delivery] = []
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._generation = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    # --- configuration and faults (called under the app's control endpoints) ---------------

    def configure(self, url: str | None, secret: str | None,
                  backoff: tuple[float, ...] | None = None) -> None:
        if secret is not None:
            check_secret(secret)
        with self._cond:
            self.config.url, self.config.secret = url, secret
            if backoff is not None:
                self.config.backoff = backoff

    def describe(self) -> dict:
        with self._cond:
            return {"url": self.config.url, "has_secret": bool(self.config.secret),
                    "backoff": list(self.config.backoff),
                    "deliveries": [d.describe() for d in self.deliveries]}

    def add_fault(self, fault: WebhookFault) -> None:
        with self._cond:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self._cond:
            self.faults.clear()

    def describe_faults(self) -> list[dict]:
        with self._cond:
            return [f.describe() for f in self.faults]

    def reset(self, config: WebhookConfig) -> None:
        """Back to `config`: no faults, an empty log, queued deliveries forgotten."""
        with self._cond:
            self.config = config
            self.faults.clear()
            self.deliveries.clear()
            self._due.clear()
            self._generation += 1

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- events -----------------------------------------------------------------------------

    def emit(self, event: str, data: dict, timestamp: str) -> None:
        """Queue one event, unless no URL is configured."""
        with self._cond:
            if not self.config.url or not self.config.secret:
                return
            event_id = "whd_" + secrets.token_hex(12)
            body = json.dumps({"id": event_id, "event": event, "timestamp": timestamp,
                               "data": data}).encode()
            fault = self._take_fault()
            delivery = Delivery(event_id, event, body, fault.kind if fault else None,
                                fault.delay_ms if fault else 0.0, generation=self._generation)
            self.deliveries.append(delivery)
            del self.deliveries[:-LOG_SIZE]
            if delivery.fault == "drop":
                delivery.status = "dropped"
                return
            if delivery.fault == "duplicate":
                delivery.copies_left = 1
            self._push(time.monotonic() + delivery.delay_ms / 1000, delivery)
            self._ensure_thread()

    def _take_fault(self) -> WebhookFault | None:
        for fault in self.faults:
            if fault.count > 0:
                fault.count -= 1
                return fault
        return None

    def _push(self, due: float, delivery: Delivery) -> None:
        if delivery.generation == self._generation:
            heapq.heappush(self._due, (due, next(self._seq), delivery))
        self._cond.notify_all()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks",
                                            daemon=True)
            self._thread.start()

    # --- the worker -------------------------------------------------------------------------

    def _next(self) -> tuple[Delivery, WebhookConfig] | None:
        """Wait for the next due delivery of the current generation (None: stopped)."""
        with self._cond:
            while not self._stopped:
                if not self._due:
                    self._cond.wait()
                    continue
                due, _, delivery = self._due[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(timeout=wait)
                    continue
                heapq.heappop(self._due)
                if delivery.generation == self._generation:
                    return delivery, self.config
            return None

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            delivery, config = item
            outcome = self._post(delivery, config)
            self._after(delivery, outcome, config)

    def _post(self, delivery: Delivery, config: WebhookConfig) -> int | str:
        try:
            # Inside the try: with the URL or the secret turned off meanwhile (`{url: null}`)
            # signing or the Request itself raises ValueError, which must fail this attempt,
            # not kill the thread.
            headers = signed_headers(config.secret or "", delivery.id, delivery.body,
                                     time.time(), wrong_key=delivery.fault == "bad_signature")
            request = urllib.request.Request(
                config.url or "", data=delivery.body, method="POST",
                headers={"Content-Type": "application/json", **headers})
            with urllib.request.urlopen(request, timeout=config.timeout) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except (OSError, ValueError) as err:
            return type(err).__name__

    def _after(self, delivery: Delivery, outcome: int | str, config: WebhookConfig) -> None:
        with self._cond:
            delivery.attempts += 1
            delivery.responses.append(outcome)
            if isinstance(outcome, int) and 200 <= outcome < 300:
                delivery.status = "delivered"
                if delivery.copies_left > 0:
                    delivery.copies_left -= 1
                    self._push(time.monotonic(), delivery)
                return
            if delivery.status == "delivered":
                return  # a duplicate copy that failed: the event itself was delivered
            retries = len(delivery.responses) - 1
            if retries < min(MAX_ATTEMPTS - 1, len(config.backoff)):
                self._push(time.monotonic() + config.backoff[retries], delivery)
            else:
                delivery.status = "failed"
