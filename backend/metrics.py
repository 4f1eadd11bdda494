"""The backend's Prometheus metrics (`GET /metrics`, text format, prometheus-client).

- `kryptos_backend_requests_total{endpoint, method, status}`: every answer, by route
  template (an unknown path is `other`, so a scan of random URLs cannot grow the series);
- `kryptos_backend_request_seconds{endpoint}`: latency histogram, first byte of the request
  to the answer's start;
- `kryptos_backend_rate_limited_total{endpoint}`: answers 429 RATE_LIMITED;
- `kryptos_backend_webhooks_total{result}`: deliveries `verified` (signature good, new),
  `duplicate` (a known webhook id) and `refused` (signature, timestamp or body refused).

Several worker processes (BACKEND_WORKERS > 1): `python -m backend` points
PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, each worker writes its
counters there and `/metrics` sums the folder (prometheus-client's multiprocess mode), so any
worker answers the scrape with the whole process's figures. Replicas are separate targets:
Prometheus sums them (`sum by (endpoint) (...)`)."""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: One registry per process: the metrics are module-level (prometheus-client's idiom), so
#: several apps in one process (tests) share them; tests read differences.
REQUESTS = Counter("kryptos_backend_requests", "Answers of the backend by endpoint and status.",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("kryptos_backend_request_seconds", "Time to answer, by endpoint.",
                    ["endpoint"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                                           2.5, 5.0, 10.0))
RATE_LIMITED = Counter("kryptos_backend_rate_limited", "Calls refused 429 RATE_LIMITED.",
                       ["endpoint"])
WEBHOOKS = Counter("kryptos_backend_webhooks", "Webhook deliveries: verified (new), "
                   "duplicate, refused.", ["result"])


def webhook(result: str) -> None:
    WEBHOOKS.labels(result=result).inc()


def _endpoint(scope: Scope) -> str:
    """The matched route's template (the router records the route in the scope), or
    `other` for a path no route matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "other"


class Metrics:
    """ASGI middleware counting every HTTP answer and timing it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/metrics":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            endpoint = _endpoint(scope)
            REQUESTS.labels(endpoint=endpoint, method=scope.get("method", ""),
                            status=str(status[0])).inc()
            LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - start)
            if status[0] == 429:
                RATE_LIMITED.labels(endpoint=endpoint).inc()


def exposition() -> tuple[bytes, str]:
    """The scrape's body and content type: this process's metrics, or every worker's in
    multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # no annotations
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
