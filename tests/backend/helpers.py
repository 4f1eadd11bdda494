"""Plain-HTTP helpers for the backend tests (requests, not the project's client)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import requests

TIMEOUT = 20
JWT_SECRET = "test-jwt-secret-" + "x" * 32
WEBHOOK_SECRET = "whsec_test_" + "y" * 24


def token(sub: Any = "cust-1", *, secret: str = JWT_SECRET, exp_in: int = 600,
          alg: str = "HS256", key: Any = None, **claims: Any) -> str:
    body: dict[str, Any] = {"exp": int(time.time()) + exp_in, **claims}
    if sub is not None:
        body["sub"] = sub
    return jwt.encode(body, key if key is not None else secret, algorithm=alg)


def auth(sub: str = "cust-1", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **kw)}"}


def post(url: str, path: str, body: Any = None, *, headers: dict | None = None,
         raw: bytes | None = None) -> requests.Response:
    h = dict(headers or {})
    data = raw
    if raw is None and body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    return requests.post(url + path, data=data, headers=h, timeout=TIMEOUT)


def get(url: str, path: str, *, headers: dict | None = None, **kw: Any) -> requests.Response:
    return requests.get(url + path, headers=headers or {}, timeout=TIMEOUT, **kw)


def assert_error(answer: requests.Response, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in answer.text
    return body


def connect(url: str, sb: Any, sub: str = "cust-1", kind: str = "guest") -> dict:
    """The widget flow through the backend: link token, public token, exchange."""
    link = post(url, "/api/kryptos/create-link-token", {}, headers=auth(sub))
    assert link.status_code == 200, link.text
    public = sb.create_public_token(kind=kind, link_token=link.json()["link_token"])
    answer = post(url, "/api/kryptos/exchange-token",
                  {"public_token": public["public_token"]}, headers=auth(sub))
    assert answer.status_code == 200, answer.text
    return {"link": link.json(), "public": public}


def signed(body: dict | bytes, *, secret: str = WEBHOOK_SECRET, webhook_id: str | None = None,
           ts: float | str | None = None, event: str | None = None) -> tuple[bytes, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Signature": hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
        "X-Webhook-Timestamp": str(int(time.time()) if ts is None else ts),
    }
    if webhook_id is not None:
        headers["X-Webhook-Id"] = webhook_id
    if event is not None:
        headers["X-Webhook-Event"] = event
    return raw, headers
