"""The sandbox's fault controls: HTTP faults by path prefix, webhook faults, resync failures.

`POST /sandbox/faults` takes one of three bodies: `{"webhook": ...}` (a webhook fault),
`{"resync": "fail", ...}` (the next resyncs end FAILED), else an HTTP fault `{"path": ...}`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from sandbox.webhooks import DEFAULT_FAULT_DELAY_MS, WEBHOOK_FAULTS, WebhookFault


@dataclass
class Fault:
    id: str
    path: str
    method: str | None
    status: int | None
    code: str | None
    message: str | None
    count: int | None
    fraction: float | None
    latency_ms: float
    malformed: bool
    drop: bool
    retry_after: float | None
    phase: str
    rng: random.Random
    hold_after_ms: float = 0.0
    holding: int = 0  # requests applied and held now (under the app's lock)
    held: int = 0  # requests applied and held so far
    release: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> dict:
        out: dict = {"id": self.id, "path": self.path, "count": self.count}
        if self.hold_after_ms:
            out.update(hold_after_ms=self.hold_after_ms, holding=self.holding, held=self.held)
        return out

    @property
    def acts(self) -> bool:
        """Whether it replaces the answer (else it only adds latency)."""
        return self.drop or self.malformed or self.status is not None


class BadControl(ValueError):
    """A /sandbox/* control request with wrong arguments (answered 400)."""


def parse_fault(spec: dict, fault_id: str, seed: int) -> Fault:
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadControl("path (a prefix starting with '/') is required")
    phase = spec.get("phase", "before")
    if phase not in ("before", "after"):
        raise BadControl("phase must be 'before' or 'after'")
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise BadControl("status must be an HTTP status code")
    count = _count(spec, None)
    fraction = spec.get("fraction")
    if fraction is not None and (not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1):
        raise BadControl("fraction must be between 0 and 1")
    method = spec.get("method")
    hold = spec.get("hold_after_ms") or 0
    if isinstance(hold, bool) or not isinstance(hold, (int, float)) or hold < 0:
        raise BadControl("hold_after_ms must be a number >= 0")
    if hold and (spec.get("drop") or spec.get("malformed") or status is not None):
        raise BadControl("hold_after_ms answers the real answer: not with status, drop or "
                         "malformed")
    return Fault(
        id=fault_id, path=path, method=method.upper() if isinstance(method, str) else None,
        status=status, code=spec.get("code"), message=spec.get("message"), count=count,
        fraction=float(fraction) if fraction is not None else None,
        latency_ms=float(spec.get("latency_ms") or 0), malformed=bool(spec.get("malformed")),
        drop=bool(spec.get("drop")), retry_after=spec.get("retry_after"), phase=phase,
        rng=random.Random(f"{seed}:fault:{fault_id}"), hold_after_ms=float(hold),
    )


def _count(spec: dict, default: int | None) -> int | None:
    count = spec.get("count", default)
    if count is not None and (not isinstance(count, int) or count < 1):
        raise BadControl("count must be a positive integer")
    return count


def parse_webhook_fault(spec: dict, fault_id: str) -> WebhookFault:
    kind = spec.get("webhook")
    if kind not in WEBHOOK_FAULTS:
        raise BadControl(f"webhook must be one of {', '.join(WEBHOOK_FAULTS)}")
    delay = spec.get("delay_ms", DEFAULT_FAULT_DELAY_MS)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise BadControl("delay_ms must be a number >= 0")
    return WebhookFault(fault_id, kind, _count(spec, 1) or 1,
                        float(delay) if kind == "delay" else 0.0)


@dataclass
class ResyncFault:
    """The next `count` resyncs (of `wallet_id`, when given) end FAILED with `message`."""

    id: str
    wallet_id: str | None
    message: str
    count: int

    def describe(self) -> dict:
        return {"id": self.id, "resync": "fail", "wallet_id": self.wallet_id,
                "count": self.count}


def parse_resync_fault(spec: dict, fault_id: str) -> ResyncFault:
    if spec.get("resync") != "fail":
        raise BadControl("resync must be 'fail'")
    wallet_id = spec.get("wallet_id")
    if wallet_id is not None and not isinstance(wallet_id, str):
        raise BadControl("wallet_id must be a string")
    message = spec.get("message") or "Injected failure: the resync could not complete"
    return ResyncFault(fault_id, wallet_id, str(message), _count(spec, 1) or 1)
