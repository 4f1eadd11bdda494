"""Plain-HTTP helpers for the backend tests (requests, not the project's client)."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import requests
from standardwebhooks import Webhook

TIMEOUT = 20
JWT_SECRET = "test-jwt-secret-" + "x" * 32
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"backend-webhook-test-secret-0123456789").decode()


def launcher_env(tmp_path: Path) -> dict[str, str]:
    """The environment for a launcher child process (`python -m backend`, `bin/console`'s
    sandbox stack): the caller's, less every setting of the console, the backend and the
    sandbox, with a data directory and a secrets file (absent) under `tmp_path`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KRYPTOS_", "BACKEND_", "CONSOLE_", "SANDBOX_", "DATABASE_",
                                "PROMETHEUS_"))}
    env.update(CONSOLE_SECRETS_FILE=str(tmp_path / "none.toml"),
               CONSOLE_DATA_DIR=str(tmp_path / "data"),
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return env


def backend_env(tmp_path: Path, sandbox_url: str, **more: str) -> dict[str, str]:
    """`launcher_env` for `python -m backend` in sandbox mode against `sandbox_url`: its own
    SQLite database and vault key under `tmp_path`, the test secrets; `more` on top."""
    from cryptography.fernet import Fernet

    env = launcher_env(tmp_path)
    env.update(SANDBOX_URL=sandbox_url, DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}",
               KRYPTOS_VAULT_KEY=Fernet.generate_key().decode(),
               BACKEND_JWT_SECRET=JWT_SECRET, KRYPTOS_WEBHOOK_SECRET=WEBHOOK_SECRET, **more)
    return env


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


def signature(secret: str, webhook_id: str, ts: int, raw: bytes) -> str:
    """One Standard Webhooks signature (`v1,<base64>`), made by the package."""
    return Webhook(secret).sign(webhook_id, datetime.fromtimestamp(ts, tz=UTC), raw.decode())


def signed(body: dict | bytes, *, secret: str | list[str] = WEBHOOK_SECRET,
           webhook_id: str = "whd_test", ts: int | None = None) -> tuple[bytes, dict]:
    """A delivery as a Standard Webhooks sender makes it: the raw body and its headers
    (`webhook-id`, `webhook-timestamp`, `webhook-signature`; one signature per secret,
    space-separated, as during a rotation). `ts` defaults to now."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = int(time.time()) if ts is None else ts
    keys = [secret] if isinstance(secret, str) else secret
    headers = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": " ".join(signature(k, webhook_id, stamp, raw) for k in keys),
    }
    return raw, headers
