"""The control endpoints (`/sandbox/*`): one handler each, on a `(method, path) -> handler`
table. No auth, never faulted, never logged; a wrong argument raises (answered 400)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.data import MAIN_CLIENT
from sandbox.faults import BadControl, parse_fault, parse_resync_fault, parse_webhook_fault
from sandbox.routes import Call, Router
from sandbox.webhooks import check_secret

if TYPE_CHECKING:
    from sandbox.server import SandboxApp

ControlHandler = Callable[["SandboxApp", Call], tuple[int, dict]]


def _number(body: dict, name: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BadControl(f"{name} must be a number >= 0")
    return float(value)


def reset(app: SandboxApp, call: Call) -> tuple[int, dict]:
    seed, grants = call.body.get("seed"), call.body.get("grants")
    app.reset(app.start_seed if seed is None else int(seed),
              app.start_grants if grants is None else int(grants))
    return 200, {"ok": True, "seed": app.seed, "grants": app.grants}


def public_token(app: SandboxApp, call: Call) -> tuple[int, dict]:
    return 200, app.current.create_public_token(call.body)


def _cursor(call: Call, name: str, default: int | None) -> int | None:
    raw = call.one(name)
    if raw is None:
        return default
    if not raw.lstrip("-").isdigit() or int(raw) < -1:
        raise BadControl(f"{name} must be a whole number >= -1")
    return int(raw)


def tokens(app: SandboxApp, call: Call) -> tuple[int, dict]:
    """The exported tokens; with `limit`, a page of them and the `next` cursor (pass it as
    `after`; null on the last page)."""
    limit = _cursor(call, "limit", None)
    if limit is not None and limit < 1:
        raise BadControl("limit must be a whole number >= 1")
    after = _cursor(call, "after", -1)
    page, nxt = app.current.export_token_page(call.one("client_id") or MAIN_CLIENT,
                                              after=-1 if after is None else after,
                                              limit=limit)
    return 200, {"tokens": page, "next": nxt}


def scenarios(app: SandboxApp, call: Call) -> tuple[int, dict]:
    return 200, app.current.scenarios()


def add_fault(app: SandboxApp, call: Call) -> tuple[int, dict]:
    """An HTTP fault, a webhook fault (`webhook`) or a resync failure (`resync`)."""
    fault_id = app.next_fault_id()
    if "webhook" in call.body:
        app.webhooks.add_fault(parse_webhook_fault(call.body, fault_id))
    elif "resync" in call.body:
        fault = parse_resync_fault(call.body, fault_id)
        with app.current.lock:
            app.current.resync_faults.append(fault)
    else:
        http_fault = parse_fault(call.body, fault_id, app.seed)
        with app.lock:
            app.faults.append(http_fault)
    return 200, {"id": fault_id}


def clear_faults(app: SandboxApp, call: Call) -> tuple[int, dict]:
    app.clear_faults()
    with app.current.lock:
        app.current.resync_faults.clear()
    app.webhooks.clear_faults()
    return 200, {"ok": True}


def list_faults(app: SandboxApp, call: Call) -> tuple[int, dict]:
    with app.lock:
        faults = [f.describe() for f in app.faults]
    with app.current.lock:
        faults += [f.describe() for f in app.current.resync_faults]
    faults += app.webhooks.describe_faults()
    return 200, {"faults": faults}


def latency(app: SandboxApp, call: Call) -> tuple[int, dict]:
    app.latency_ms = _number(call.body, "ms")
    return 200, {"ok": True, "ms": app.latency_ms}


def requests_log(app: SandboxApp, call: Call) -> tuple[int, dict]:
    with app.lock:
        return 200, {"requests": list(app.log)}


def clear_requests_log(app: SandboxApp, call: Call) -> tuple[int, dict]:
    app.clear_log()
    return 200, {"ok": True}


def clock(app: SandboxApp, call: Call) -> tuple[int, dict]:
    app.clock.advance(_number(call.body, "advance_seconds"))
    app.current.complete_due()  # resyncs now past their end finish (and send their events)
    app.current.timer.poke()
    return 200, {"ok": True, "now": app.clock.now(), "offset": app.clock.offset}


def set_webhooks(app: SandboxApp, call: Call) -> tuple[int, dict]:
    """`{url, secret, backoff?}`; `{"url": null}` turns webhooks off."""
    url, secret, backoff = call.body.get("url"), call.body.get("secret"), call.body.get("backoff")
    if url is not None and (not isinstance(url, str)
                            or not url.startswith(("http://", "https://"))):
        raise BadControl("url must be an http(s) URL or null")
    if url is not None:
        if not isinstance(secret, str) or not secret:
            raise BadControl("secret (a whsec_... string) is required with a url")
        try:
            check_secret(secret)
        except ValueError as exc:
            raise BadControl(str(exc)) from None
    if backoff is not None and (not isinstance(backoff, list) or any(
            isinstance(b, bool) or not isinstance(b, (int, float)) or b < 0 for b in backoff)):
        raise BadControl("backoff must be a list of seconds >= 0")
    app.webhooks.configure(url, secret if url is not None else None,
                           tuple(float(b) for b in backoff) if backoff is not None else None)
    return 200, {"ok": True, "url": url}


def webhooks(app: SandboxApp, call: Call) -> tuple[int, dict]:
    """The configuration (never the secret) and the deliveries so far."""
    return 200, app.webhooks.describe()


CONTROL: Router[ControlHandler] = Router()
for _method, _path, _handler in (
    ("POST", "/sandbox/reset", reset),
    ("POST", "/sandbox/public-token", public_token),
    ("GET", "/sandbox/tokens", tokens),
    ("GET", "/sandbox/scenarios", scenarios),
    ("POST", "/sandbox/faults", add_fault),
    ("DELETE", "/sandbox/faults", clear_faults),
    ("GET", "/sandbox/faults", list_faults),
    ("POST", "/sandbox/latency", latency),
    ("GET", "/sandbox/requests", requests_log),
    ("DELETE", "/sandbox/requests", clear_requests_log),
    ("POST", "/sandbox/clock", clock),
    ("POST", "/sandbox/webhooks", set_webhooks),
    ("GET", "/sandbox/webhooks", webhooks),
):
    CONTROL.add(_method, _path, _handler)
