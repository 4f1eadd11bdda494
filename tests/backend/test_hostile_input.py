"""Bodies and tokens built to break the parser: every endpoint answers with the error
envelope, and no client error leaves a traceback (or any error record) in the log."""

from __future__ import annotations

import base64

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
