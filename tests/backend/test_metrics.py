"""The backend's `/metrics` (Prometheus text format): scraped over HTTP, the figures move
when customers call, are refused by the rate limit, and when webhooks arrive (new,
duplicate, badly signed). The metrics are per process, so each test reads differences."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from tests.backend.helpers import auth, get, post, signed

LINK = "/api/kryptos/create-link-token"
HOOK = "/api/kryptos/webhooks"


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    answer = get(url, "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_latency_and_rate_limited_calls_are_counted(start_backend):
    b = start_backend(link_token_rate_limit=2)
    before = scrape(b.url)
    for _ in range(3):
        post(b.url, LINK, {}, headers=auth("cust-m"))
    post(b.url, LINK, {}, headers={"Authorization": "Bearer nonsense"})
    after = scrape(b.url)
    ok = dict(endpoint=LINK, method="POST", status="200")
    assert value(after, "kryptos_backend_requests_total", **ok) - value(
        before, "kryptos_backend_requests_total", **ok) == 2
    limited = dict(endpoint=LINK, method="POST", status="429")
    assert value(after, "kryptos_backend_requests_total", **limited) - value(
        before, "kryptos_backend_requests_total", **limited) == 1
    assert value(after, "kryptos_backend_rate_limited_total", endpoint=LINK) - value(
        before, "kryptos_backend_rate_limited_total", endpoint=LINK) == 1
    refused = dict(endpoint=LINK, method="POST", status="401")
    assert value(after, "kryptos_backend_requests_total", **refused) - value(
        before, "kryptos_backend_requests_total", **refused) == 1
    assert value(after, "kryptos_backend_request_seconds_count", endpoint=LINK) - value(
        before, "kryptos_backend_request_seconds_count", endpoint=LINK) == 4
    # An unknown path is one series, not one per URL.
    get(b.url, "/no/such/thing-1")
    get(b.url, "/no/such/thing-2")
    later = scrape(b.url)
    other = dict(endpoint="other", method="GET", status="404")
    assert value(later, "kryptos_backend_requests_total", **other) - value(
        after, "kryptos_backend_requests_total", **other) == 2
    assert not any("thing" in str(key) for key in later)


def test_webhooks_verified_duplicate_and_refused_are_counted(backend):
    before = scrape(backend.url)
    body = {"id": "whm_1", "event": "integration.updated",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {"walletId": "wallet_m", "status": "COMPLETED"}}
    raw, headers = signed(body, webhook_id="whm_1")
    assert post(backend.url, HOOK, raw=raw, headers=headers).status_code == 200
    assert post(backend.url, HOOK, raw=raw, headers=headers).json()["duplicate"] is True
    bad = dict(headers, **{"webhook-signature": "v1,AAAA"})
    assert post(backend.url, HOOK, raw=raw, headers=bad).status_code == 401
    after = scrape(backend.url)
    for result in ("verified", "duplicate", "refused"):
        assert value(after, "kryptos_backend_webhooks_total", result=result) - value(
            before, "kryptos_backend_webhooks_total", result=result) == 1, result
