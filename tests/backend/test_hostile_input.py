"""Bodies and tokens built to break the parser: every endpoint answers with the error
envelope, and no client error leaves a traceback (or any error record) in the log."""

from __future__ import annotations

import base64
import json

import pytest

from tests.backend.helpers import assert_error, auth, get, post, signed

DEEP = 5000
NESTED = [
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b'{"public_token": null, "x": ' + b"[" * 33 + b"1" + b"]" * 33 + b"}",  # 34 levels
]
CUSTOMER_POSTS = ["/api/kryptos/create-link-token", "/api/kryptos/exchange-token",
                  "/api/kryptos/disconnect"]


@pytest.mark.parametrize("body", NESTED, ids=["array", "object", "34-levels"])
@pytest.mark.parametrize("path", CUSTOMER_POSTS)
def test_deeply_nested_json_is_400_without_traceback(backend, log_of, path, body):
    log = log_of(backend)
    answer = post(backend.url, path, raw=body,
                  headers={**auth("deep"), "Content-Type": "application/json"})
    assert_error(answer, 400, "INVALID_REQUEST")
    assert log.problems() == []


@pytest.mark.parametrize("body", NESTED[:2], ids=["array", "object"])
def test_deeply_nested_signed_webhook_is_400_and_not_stored(backend, log_of, body):
    log = log_of(backend)
    raw, headers = signed(body, webhook_id="whd_deep")
    assert_error(post(backend.url, "/api/kryptos/webhooks", raw=raw, headers=headers), 400,
                 "INVALID_REQUEST")
    assert backend.backend.hub.recent() == []
    assert log.problems() == []


def test_deeply_nested_demo_widget_body_is_400(start_backend, sandbox, log_of):
    b = start_backend(sandbox_url=sandbox.base_url, client_id=None, client_secret=None,
                      backend_jwt_secret=None, webhook_secret=None, backend_demo=True)
    log = log_of(b)
    assert_error(post(b.url, "/demo/widget", raw=NESTED[1]), 400, "INVALID_REQUEST")
    assert log.problems() == []


def test_nan_and_infinity_are_not_json(backend, log_of):
    log = log_of(backend)
    for raw in (b'{"public_token": NaN}', b'{"public_token": Infinity}'):
        assert_error(post(backend.url, CUSTOMER_POSTS[1], raw=raw, headers=auth("nan")), 400,
                     "INVALID_REQUEST")
    raw, headers = signed(b'{"id": "whd_nan", "event": "x", "data": {"v": NaN}}',
                          webhook_id="whd_nan")
    assert_error(post(backend.url, "/api/kryptos/webhooks", raw=raw, headers=headers), 400,
                 "INVALID_REQUEST")
    assert log.problems() == []


def test_a_token_with_a_deeply_nested_header_is_401(backend, log_of):
    log = log_of(backend)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    forged = f"{b64(b'[' * 2000 + b']' * 2000)}.{b64(b'{}')}.c2ln"
    answer = get(backend.url, "/api/kryptos/session",
                 headers={"Authorization": f"Bearer {forged}"})
    assert_error(answer, 401, "UNAUTHENTICATED")
    assert log.problems() == []


def test_not_utf8_and_not_an_object_are_400(backend, log_of):
    log = log_of(backend)
    for raw in (b"\xff\xfe{", b"[]", b'"text"', b"1"):
        assert_error(post(backend.url, CUSTOMER_POSTS[1], raw=raw, headers=auth("bytes")), 400,
                     "INVALID_REQUEST")
    assert log.problems() == []


def _signed_token(claims: dict) -> str:
    """An HS256 token with the backend's own secret over claims PyJWT would not write."""
    import hashlib
    import hmac

    from tests.backend.helpers import JWT_SECRET

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(json.dumps(claims).encode().replace(b'"INF"', b"1e400"))
    mac = hmac.new(JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


@pytest.mark.parametrize("claims", [
    {"sub": "a", "exp": "INF"},  # 1e400: infinity once parsed
    {"sub": "a", "exp": "soon"},
    {"sub": "a", "exp": 4102444800, "iat": "INF"},
    {"sub": ["a"], "exp": 4102444800},
])
def test_validly_signed_tokens_with_absurd_claims_are_401(backend, log_of, claims):
    log = log_of(backend)
    answer = get(backend.url, "/api/kryptos/session",
                 headers={"Authorization": f"Bearer {_signed_token(claims)}"})
    assert_error(answer, 401, "UNAUTHENTICATED")
    assert log.problems() == []


def test_assorted_malformed_requests_are_client_errors(backend, log_of):
    log = log_of(backend)
    link = "/api/kryptos/create-link-token"
    exchange = "/api/kryptos/exchange-token"
    cases = [
        post(backend.url, exchange, {"public_token": 5}, headers=auth("m")),
        post(backend.url, exchange, {"public_token": "public_" + "a" * 600}, headers=auth("m")),
        post(backend.url, exchange, {"other": 1}, headers=auth("m")),
        post(backend.url, link, raw=b"\x00\x01", headers=auth("m")),
        get(backend.url, "/api/kryptos/session", headers={"Authorization": "Bearer a.b.c"}),
    ]
    raw, headers = signed({"id": "whd_many", "event": "x", "data": {}}, webhook_id="whd_many")
    cases.append(post(backend.url, "/api/kryptos/webhooks", raw=raw, headers={
        **headers, "webhook-signature": " ".join(["v1,AAAA"] * 500)}))
    cases.append(post(backend.url, "/api/kryptos/webhooks", raw=b"\xff" * 10, headers={
        **headers}))
    cases.append(post(backend.url, "/api/kryptos/webhooks", raw=raw, headers={
        **headers, "webhook-id": "a b"}))
    assert all(400 <= c.status_code < 500 for c in cases), [(c.status_code, c.text)
                                                           for c in cases]
    for c in cases:
        assert c.json()["success"] is False and "Traceback" not in c.text
    assert log.problems() == []
