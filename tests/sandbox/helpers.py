"""Small `requests` helpers for the sandbox tests (plain HTTP, not the project's client)."""

from __future__ import annotations

from typing import Any

import requests

from sandbox import SandboxHandle

TIMEOUT = 10


def creds(sb: SandboxHandle, client_id: str | None = None, secret: str | None = None) -> dict:
    return {"X-Client-Id": client_id or sb.client_id, "X-Client-Secret": secret or sb.client_secret}


def connect(sb: SandboxHandle, method: str, path: str, body: Any = None,
            headers: dict | None = None) -> requests.Response:
    return requests.request(method, sb.connect_url + path, json=body,
                            headers=headers if headers is not None else creds(sb),
                            timeout=TIMEOUT)


def data(sb: SandboxHandle, path: str, token: str, params: dict | None = None,
         headers: dict | None = None) -> requests.Response:
    h = headers if headers is not None else {**creds(sb), "Authorization": f"Bearer {token}"}
    return requests.get(sb.data_url + path, params=params, headers=h, timeout=TIMEOUT)


def active_tokens(sb: SandboxHandle, kind: str | None = None) -> list[dict]:
    special = {v["grant_id"] for v in sb.scenarios().values() if isinstance(v, dict)
               and "grant_id" in v}
    return [t for t in sb.tokens() if not t["revoked"] and t["grant_id"] not in special
            and (kind is None or t["kind"] == kind)]


def new_grant(sb: SandboxHandle, kind: str = "guest") -> dict:
    """A fresh grant through the widget flow: public token, then exchange."""
    public = sb.create_public_token(kind=kind)
    answer = connect(sb, "POST", "/token/exchange", {"public_token": public["public_token"]})
    assert answer.status_code == 200, answer.text
    return {**answer.json()["data"], "user_id": public["user_id"]}


def assert_connect_error(answer: requests.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert answer.headers["X-Request-Id"].startswith("req_")


def assert_data_error(answer: requests.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["details"] == [] or isinstance(body["details"], list)
    assert answer.headers["X-Request-Id"].startswith("req_")
