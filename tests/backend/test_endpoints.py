"""The customer endpoints against the sandbox over real HTTP: success and every error."""

from __future__ import annotations

import json
import threading

import pytest

from tests.backend.helpers import assert_error, auth, connect, get, post
from tests.sandbox.helpers import connect as kryptos

LINK = "/api/kryptos/create-link-token"
EXCHANGE = "/api/kryptos/exchange-token"
SESSION = "/api/kryptos/session"
DISCONNECT = "/api/kryptos/disconnect"
HOLDINGS = "/api/kryptos/holdings"


def _audit(backend, action=None):
    return [e for e in backend.backend.audit.query(page_size=500).events
            if action is None or e.action == action]


def _all_text(backend) -> str:
    return json.dumps([e.__dict__ for e in _audit(backend)], default=str)


# --- create-link-token ----------------------------------------------------------------------

def test_link_token_new_customer(backend):
    answer = post(backend.url, LINK, headers=auth("new-1"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["link_token"].startswith("link_") and body["isAuthorized"] is False
    events = _audit(backend, "link_token.create")
    assert [e.outcome for e in reversed(events)] == ["requested", "succeeded"]
    assert all(e.actor_username == "customer:new-1" and e.actor_roles == ("customer",)
               for e in events)
    assert body["link_token"] not in _all_text(backend)


def test_link_token_resumes_a_stored_session(backend, sandbox):
    connect(backend.url, sandbox, "cust-r")
    entry = backend.backend.vault.for_customer("cust-r")
    sandbox.clear_requests_log()
    answer = post(backend.url, LINK, {}, headers=auth("cust-r"))
    assert answer.status_code == 200 and answer.json()["isAuthorized"] is True
    assert [r["path"] for r in sandbox.requests_log()] == ["/link-token"]
    # The sandbox plays a returning user's widget run: no new grant, a null public token.
    played = sandbox.create_public_token(link_token=answer.json()["link_token"])
    assert played["public_token"] is None and played["grant_id"] == entry.grant_id
    again = post(backend.url, EXCHANGE, {"public_token": None}, headers=auth("cust-r"))
    assert again.status_code == 200 and again.json() == {"success": True}
    assert backend.backend.vault.for_customer("cust-r").grant_id == entry.grant_id


def test_link_token_after_revocation_elsewhere_starts_fresh(backend, sandbox):
    connect(backend.url, sandbox, "cust-x")
    gid = backend.backend.vault.for_customer("cust-x").grant_id
    assert kryptos(sandbox, "POST", "/token/revoke", {"grant_id": gid}).status_code == 200
    answer = post(backend.url, LINK, headers=auth("cust-x"))
    assert answer.status_code == 200 and answer.json()["isAuthorized"] is False
    assert backend.backend.vault.get(gid).revoked_at is not None
    assert backend.backend.vault.for_customer("cust-x") is None


def test_link_token_rate_limited_per_customer(start_backend):
    b = start_backend(link_token_rate_limit=2)
    for _ in range(2):
        assert post(b.url, LINK, headers=auth("busy")).status_code == 200
    answer = post(b.url, LINK, headers=auth("busy"))
    assert_error(answer, 429, "RATE_LIMITED")
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert post(b.url, LINK, headers=auth("someone-else")).status_code == 200
    assert _audit(b, "link_token.create")[0].outcome == "succeeded"
    assert any(e.outcome == "denied" and e.error_code == "RATE_LIMITED"
               for e in _audit(b, "link_token.create"))


def test_link_token_limit_counts_a_customer_whatever_the_case(start_backend):
    b = start_backend(link_token_rate_limit=2)
    assert post(b.url, LINK, headers=auth("Busy-Co")).status_code == 200
    assert post(b.url, LINK, headers=auth("busy-co")).status_code == 200
    assert_error(post(b.url, LINK, headers=auth("BUSY-CO")), 429, "RATE_LIMITED")


@pytest.mark.parametrize("path", [SESSION, HOLDINGS])
def test_every_customer_endpoint_is_limited_per_customer(start_backend, path):
    b = start_backend(customer_rate_limit=10)
    answers = [get(b.url, path, headers=auth("reader" if i % 2 else "READER"))
               for i in range(12)]
    assert [a.status_code for a in answers[:10]] == [200 if path == SESSION else 404] * 10
    for late in answers[10:]:
        assert_error(late, 429, "RATE_LIMITED")
        assert 1 <= int(late.headers["Retry-After"]) <= 60
    # The limit is the customer's: another customer, and the other endpoints' shared count.
    assert get(b.url, path, headers=auth("someone-else")).status_code in (200, 404)
    assert_error(post(b.url, LINK, headers=auth("Reader")), 429, "RATE_LIMITED")
    assert_error(post(b.url, DISCONNECT, headers=auth("reader")), 429, "RATE_LIMITED")


def test_default_customer_limit_refuses_a_flood(start_backend):
    b = start_backend()
    statuses = [get(b.url, SESSION, headers=auth("flood")).status_code for _ in range(61)]
    assert statuses[:60] == [200] * 60 and statuses[60] == 429


def test_customer_limit_setting():
    from pathlib import Path

    from services.settings import ConfigError, load_settings

    none = Path("/nonexistent")
    s = load_settings({}, secrets_path=none)
    assert s.customer_rate_limit == 60 and s.jwt_max_lifetime == 24 * 3600
    s = load_settings({"BACKEND_CUSTOMER_RATE_LIMIT": "5", "BACKEND_JWT_MAX_LIFETIME": "900"},
                      secrets_path=none)
    assert s.customer_rate_limit == 5 and s.jwt_max_lifetime == 900
    with pytest.raises(ConfigError, match="BACKEND_JWT_MAX_LIFETIME"):
        load_settings({"BACKEND_JWT_MAX_LIFETIME": "0"}, secrets_path=none)


def test_rate_limit_table_holds_one_window_whatever_the_customers(backend):
    from sqlalchemy import func, select

    from backend.ratelimit import RateLimiter
    from services.store.schema import backend_rate_hits

    now = [1_000_000.0]
    limiter = RateLimiter(backend.db, 5, window_s=60, clock=lambda: now[0])
    for i in range(50):  # customers seen once, never again
        assert limiter.hit(f"t:{i}") == 0.0
    now[0] += 61
    assert limiter.hit("t:last") == 0.0
    with backend.db.read() as conn:
        buckets = conn.execute(select(func.count()).select_from(backend_rate_hits)
                               .where(backend_rate_hits.c.bucket.like("t:%"))).scalar()
    assert buckets == 1


@pytest.mark.parametrize("fault,status,code,upstream", [
    ({"status": 503}, 503, "UPSTREAM_UNAVAILABLE", None),
    ({"drop": True}, 503, "UPSTREAM_UNAVAILABLE", None),
    ({"status": 500, "code": "BOOM"}, 502, "UPSTREAM_ERROR", "BOOM"),
    ({"status": 401, "code": "INVALID_CLIENT"}, 502, "UPSTREAM_ERROR", "INVALID_CLIENT"),
    ({"status": 400, "code": "INVALID_SCOPE"}, 502, "UPSTREAM_ERROR", "INVALID_SCOPE"),
])
def test_link_token_upstream_errors(backend, sandbox, fault, status, code, upstream):
    sandbox.set_fault(path="/link-token", count=1, **fault)
    answer = post(backend.url, LINK, headers=auth("u"))
    body = assert_error(answer, status, code)
    if upstream:
        assert body["upstream_code"] == upstream
    assert sandbox.client_secret not in answer.text
    assert _audit(backend, "link_token.create")[0].outcome == "failed"


def test_link_token_bad_body(backend):
    assert_error(post(backend.url, LINK, raw=b"{not json", headers=auth()), 400,
                 "INVALID_REQUEST")
    assert_error(post(backend.url, LINK, [1, 2], headers=auth()), 400, "INVALID_REQUEST")


def test_body_over_64_kb_is_400(backend):
    big = {"public_token": "public_x", "pad": "a" * (64 * 1024)}
    body = assert_error(post(backend.url, EXCHANGE, big, headers=auth()), 400,
                        "INVALID_REQUEST")
    assert "64 KB" in body["error"]

    def chunks():
        for _ in range(80):
            yield b"a" * 1024

    import requests

    streamed = requests.post(backend.url + EXCHANGE, data=chunks(), headers=auth(),
                             timeout=20)
    assert_error(streamed, 400, "INVALID_REQUEST")


# --- exchange-token -------------------------------------------------------------------------

def test_exchange_stores_the_grant_under_the_customer(backend, sandbox):
    flow = connect(backend.url, sandbox, "cust-e")
    entry = backend.backend.vault.for_customer("cust-e")
    exported = {t["grant_id"]: t for t in sandbox.tokens()}
    assert entry is not None and entry.grant_id in exported
    assert entry.customer_ref == "cust-e"
    assert entry.workspace_id == exported[entry.grant_id]["workspace_id"]
    assert entry.kryptos_user_id == flow["public"]["user_id"]
    assert entry.user_kind == "guest"
    assert backend.backend.vault.reveal(entry.grant_id) == \
        exported[entry.grant_id]["access_token"]
    text = _all_text(backend)
    assert exported[entry.grant_id]["access_token"] not in text
    assert flow["public"]["public_token"] not in text


def test_exchange_null_public_token_exchanges_nothing(backend, sandbox):
    sandbox.clear_requests_log()
    answer = post(backend.url, EXCHANGE, {"public_token": None}, headers=auth("r"))
    assert answer.status_code == 200 and answer.json() == {"success": True}
    assert not [r for r in sandbox.requests_log() if r["path"] == "/token/exchange"]
    assert backend.backend.vault.for_customer("r") is None


@pytest.mark.parametrize("body", [{}, {"public_token": 5}, {"public_token": ""},
                                  {"public_token": "link_abc"}, {"token": "public_x"}])
def test_exchange_invalid_bodies(backend, body):
    assert_error(post(backend.url, EXCHANGE, body, headers=auth()), 400, "INVALID_REQUEST")


def test_exchange_used_token_is_409(backend, sandbox):
    public = sandbox.create_public_token()["public_token"]
    assert kryptos(sandbox, "POST", "/token/exchange",
                   {"public_token": public}).status_code == 200
    answer = post(backend.url, EXCHANGE, {"public_token": public}, headers=auth())
    assert_error(answer, 409, "TOKEN_ALREADY_USED")
    assert public not in answer.text


def test_exchange_expired_token_is_409(backend, sandbox):
    public = sandbox.create_public_token()["public_token"]
    sandbox.advance_clock(31 * 60)
    assert_error(post(backend.url, EXCHANGE, {"public_token": public}, headers=auth()), 409,
                 "TOKEN_EXPIRED")


def test_exchange_unknown_token_is_409(backend):
    assert_error(post(backend.url, EXCHANGE, {"public_token": "public_nope"}, headers=auth()),
                 409, "INVALID_TOKEN")


def test_exchange_upstream_down_then_retry_works(backend, sandbox):
    public = sandbox.create_public_token()["public_token"]
    sandbox.set_fault(path="/token/exchange", status=503, count=1)
    assert_error(post(backend.url, EXCHANGE, {"public_token": public}, headers=auth()), 503,
                 "UPSTREAM_UNAVAILABLE")
    # Nothing was exchanged: the same token may be sent again.
    assert post(backend.url, EXCHANGE, {"public_token": public},
                headers=auth()).status_code == 200


def test_same_public_token_sent_twice_at_once_is_exchanged_once(backend, sandbox):
    public = sandbox.create_public_token()["public_token"]
    sandbox.set_latency(300)  # both requests arrive while the first exchange is in flight
    sandbox.clear_requests_log()
    answers: list = [None] * 6
    barrier = threading.Barrier(len(answers))

    def send(i: int) -> None:
        barrier.wait()
        answers[i] = post(backend.url, EXCHANGE, {"public_token": public}, headers=auth("dup"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sandbox.set_latency(0)
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers]
    assert len([r for r in sandbox.requests_log() if r["path"] == "/token/exchange"]) == 1
    assert len([e for e in backend.backend.vault.list() if e.customer_ref == "dup"]) == 1


def test_same_public_token_from_another_customer_is_409(backend, sandbox):
    public = sandbox.create_public_token()["public_token"]
    assert post(backend.url, EXCHANGE, {"public_token": public},
                headers=auth("owner")).status_code == 200
    assert post(backend.url, EXCHANGE, {"public_token": public},
                headers=auth("owner")).status_code == 200
    assert_error(post(backend.url, EXCHANGE, {"public_token": public}, headers=auth("thief")),
                 409, "TOKEN_ALREADY_USED")
    assert backend.backend.vault.for_customer("thief") is None


# --- session --------------------------------------------------------------------------------

def test_session_without_token(backend):
    answer = get(backend.url, SESSION, headers=auth("nobody"))
    assert answer.json() == {"has_valid_session": False, "reason": "no_token"}


def test_session_valid_and_after_revocation(backend, sandbox):
    connect(backend.url, sandbox, "cust-s")
    gid = backend.backend.vault.for_customer("cust-s").grant_id
    body = get(backend.url, SESSION, headers=auth("cust-s")).json()
    assert body["has_valid_session"] is True and body["grant_id"] == gid
    assert "access_token" not in body
    kryptos(sandbox, "POST", "/token/revoke", {"grant_id": gid})
    body = get(backend.url, SESSION, headers=auth("cust-s")).json()
    assert body == {"has_valid_session": False, "reason": "grant_revoked"}
    events = _audit(backend, "session.check")
    assert [e.outcome for e in events] == ["succeeded"] * 2


def test_session_upstream_unavailable(backend, sandbox):
    connect(backend.url, sandbox, "cust-s2")
    sandbox.set_fault(path="/link-token/check-session", status=503, count=1)
    assert_error(get(backend.url, SESSION, headers=auth("cust-s2")), 503,
                 "UPSTREAM_UNAVAILABLE")
    assert _audit(backend, "session.check")[0].outcome == "failed"


# --- disconnect -----------------------------------------------------------------------------

def test_disconnect_revokes_and_marks_the_token(backend, sandbox):
    connect(backend.url, sandbox, "cust-d")
    gid = backend.backend.vault.for_customer("cust-d").grant_id
    answer = post(backend.url, DISCONNECT, headers=auth("cust-d"))
    assert answer.status_code == 200 and answer.json() == {"success": True}
    assert {t["grant_id"]: t["revoked"] for t in sandbox.tokens()}[gid] is True
    assert backend.backend.vault.get(gid).revoked_at is not None
    assert backend.backend.vault.for_customer("cust-d") is None
    events = _audit(backend, "grant.disconnect")
    assert [e.outcome for e in reversed(events)] == ["requested", "succeeded"]
    assert events[0].target_type == "grant" and events[0].target_id == gid
    assert_error(post(backend.url, DISCONNECT, headers=auth("cust-d")), 404, "NO_GRANT")


def test_disconnect_without_grant_is_404(backend):
    assert_error(post(backend.url, DISCONNECT, headers=auth("none")), 404, "NO_GRANT")
    assert _audit(backend, "grant.disconnect")[0].error_code == "NO_GRANT"


def test_disconnect_of_a_grant_already_revoked_at_kryptos(backend, sandbox):
    connect(backend.url, sandbox, "cust-d2")
    gid = backend.backend.vault.for_customer("cust-d2").grant_id
    kryptos(sandbox, "POST", "/token/revoke", {"grant_id": gid})
    assert post(backend.url, DISCONNECT, headers=auth("cust-d2")).status_code == 200
    assert backend.backend.vault.get(gid).revoked_at is not None
    assert _audit(backend, "grant.disconnect")[0].after["already_revoked"] is True


def test_disconnect_upstream_failure_keeps_the_token(backend, sandbox):
    connect(backend.url, sandbox, "cust-d3")
    gid = backend.backend.vault.for_customer("cust-d3").grant_id
    sandbox.set_fault(path="/token/revoke", status=500, code="BOOM", count=1)
    body = assert_error(post(backend.url, DISCONNECT, headers=auth("cust-d3")), 502,
                        "UPSTREAM_ERROR")
    assert body["upstream_code"] == "BOOM"
    assert backend.backend.vault.get(gid).revoked_at is None


# --- holdings -------------------------------------------------------------------------------

def test_holdings_in_the_data_api_shape(backend, sandbox):
    connect(backend.url, sandbox, "cust-h")
    gid = backend.backend.vault.for_customer("cust-h").grant_id
    token = backend.backend.vault.reveal(gid)
    ours = get(backend.url, HOLDINGS, headers=auth("cust-h"))
    assert ours.status_code == 200
    theirs = __import__("tests.sandbox.helpers", fromlist=["data"]).data(
        sandbox, "/v1/holdings", token).json()
    mine = ours.json()
    assert [h["asset"]["symbol"] for h in mine["holdings"]] == \
        [h["asset"]["symbol"] for h in theirs["holdings"]]
    assert mine["summary"] == theirs["summary"]
    assert mine["user_id"] == theirs["user_id"]
    assert token not in ours.text


def test_holdings_without_grant_is_404(backend):
    assert_error(get(backend.url, HOLDINGS, headers=auth("none")), 404, "NO_GRANT")


def test_holdings_with_a_revoked_token_is_409(backend, sandbox):
    connect(backend.url, sandbox, "cust-h2")
    gid = backend.backend.vault.for_customer("cust-h2").grant_id
    kryptos(sandbox, "POST", "/token/revoke", {"grant_id": gid})
    assert_error(get(backend.url, HOLDINGS, headers=auth("cust-h2")), 409, "unauthorized")


def test_holdings_upstream_errors(backend, sandbox):
    connect(backend.url, sandbox, "cust-h3")
    sandbox.set_fault(path="/api/v1/holdings", status=503, count=1)
    assert_error(get(backend.url, HOLDINGS, headers=auth("cust-h3")), 503,
                 "UPSTREAM_UNAVAILABLE")
    sandbox.set_fault(path="/api/v1/holdings", malformed=True, count=1)
    assert_error(get(backend.url, HOLDINGS, headers=auth("cust-h3")), 502, "UPSTREAM_ERROR")


# --- plumbing -------------------------------------------------------------------------------

def test_unknown_path_and_method(backend):
    assert_error(get(backend.url, "/api/kryptos/nothing"), 404, "NOT_FOUND")
    assert_error(get(backend.url, LINK, headers=auth()), 405, "METHOD_NOT_ALLOWED")


def test_health_and_ready(backend):
    assert get(backend.url, "/healthz").json() == {"status": "ok"}
    ready = get(backend.url, "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_ready_reports_a_missing_webhook_secret(start_backend):
    b = start_backend(webhook_secret=None)
    ready = get(b.url, "/readyz")
    assert ready.status_code == 503
    assert any("KRYPTOS_WEBHOOK_SECRET" in p for p in ready.json()["problems"])


def test_request_id_on_every_answer_and_in_the_audit(backend):
    mine = post(backend.url, LINK, headers={**auth("rid"), "X-Request-Id": "req-abc-123"})
    assert mine.headers["X-Request-Id"] == "req-abc-123"
    requested = [e for e in _audit(backend, "link_token.create") if e.outcome == "requested"]
    assert requested[0].params["request_id"] == "req-abc-123"
    refused = post(backend.url, DISCONNECT, headers={**auth("rid"), "X-Request-Id": "r-2"})
    assert refused.status_code == 404
    assert _audit(backend, "grant.disconnect")[0].request_id == "r-2"
    fresh = get(backend.url, SESSION, headers=auth("rid"))
    assert fresh.headers["X-Request-Id"].startswith("bk_")
    assert _audit(backend, "session.check")[0].request_id == fresh.headers["X-Request-Id"]
    weird = get(backend.url, "/healthz", headers={"X-Request-Id": "bad id\twith tab"})
    assert weird.headers["X-Request-Id"].startswith("bk_")
    refused = post(backend.url, EXCHANGE, raw=b"x" * (70 * 1024), headers=auth())
    assert refused.status_code == 400 and refused.headers["X-Request-Id"].startswith("bk_")


def test_kryptos_rate_limit_is_503_with_its_retry_after(backend, sandbox):
    sandbox.set_fault(path="/link-token", status=429, code="rate_limit_exceeded",
                      retry_after=7, count=1)
    answer = post(backend.url, LINK, headers=auth("rl"))
    assert_error(answer, 503, "UPSTREAM_UNAVAILABLE")
    assert answer.headers["Retry-After"] == "7"
