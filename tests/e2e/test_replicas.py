"""Replicas behind a real load balancer: Debian's nginx, configured by
`deploy/nginx.conf.template`, in front of two console and two backend processes on one
PostgreSQL database (tests/e2e/replicas.py starts them as compose.yaml does).

- A webhook delivered through nginx is stored and processed once, whichever backend
  replica each delivery reaches.
- A person logged in through nginx changes a limit; SIGKILL the console replica serving
  the browser, which also holds the sync lock: the page reconnects to the other replica
  and its next run finds the person still logged in; the other replica, never opened by a
  browser, records itself as the sync holder within two leases (SYNC_LOCK_RETRY); the
  change is in the audit log once.
- Every console and backend log record is a JSON line with its ids, and no secret.

Skipped when nginx is not installed (.ci/run installs it); PostgreSQL is required.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import jwt
import pytest
import requests
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.exc import OperationalError

from sandbox import SandboxClient
from tests.backend.helpers import signed
from tests.e2e import helpers as h
from tests.e2e.replicas import NGINX, Stack, kill_serving_holder, route_to
from tests.timing import wait_for

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")

HOOK = "/api/kryptos/webhooks"
LIMIT_TOAST = re.compile(r"Limit .+ (->|→) |Limit set to ")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        running = Stack.start(tmp_path_factory.mktemp("replicas"), fast_logins=True)
    except OperationalError as exc:  # no PostgreSQL to make the replicas' database in
        reason = f"PostgreSQL not reachable: {str(exc.orig).strip().splitlines()[0]}"
        if os.environ.get("TEST_REQUIRE_POSTGRES"):  # set by .ci/run: there it must run
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def guests(stack: Stack) -> list[dict]:
    """The sandbox's active Guest grants, once the consoles stored their tokens."""
    tokens = [t for t in SandboxClient(stack.sandbox_url).tokens()
              if t["kind"] == "guest" and not t["revoked"] and t.get("user_id")]
    wait_for(lambda: stack.sql("SELECT count(*) FROM vault_tokens")[0][0] >= len(tokens),
             timeout=30, what="the sandbox's tokens in the vault")
    return tokens


def test_a_webhook_through_nginx_is_processed_once_whichever_backend_gets_it(
        stack: Stack, guests: list[dict]) -> None:
    grant = guests[0]
    webhook_id = f"whd_lb_{int(time.time() * 1000)}"
    body = {"id": webhook_id, "event": "integration.updated",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {"walletId": "wallet_lb_test", "status": "COMPLETED",
                     "uid": grant["user_id"]}}
    raw, headers = signed(body, secret=stack.secrets["KRYPTOS_WEBHOOK_SECRET"],
                          webhook_id=webhook_id)
    answers: list[requests.Response] = []

    def deliver() -> None:
        answers.append(requests.post(stack.backend_url + HOOK, data=raw, headers=headers,
                                     timeout=10))

    # Two one after the other (round robin: one to each replica), then three at once.
    deliver()
    deliver()
    at_once = [threading.Thread(target=deliver) for _ in range(3)]
    for t in at_once:
        t.start()
    for t in at_once:
        t.join()
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True, True]
    ports = {int(u.rsplit(":", 1)[1]) for u in stack.upstreams(path=HOOK)}
    assert set(stack.backend_ports) <= ports, "both backend replicas got a delivery"

    def stored() -> list:
        rows = stack.sql("SELECT grant_id, processed_at FROM webhook_events "
                         "WHERE webhook_id = :w", w=webhook_id)
        return rows if rows and rows[0].processed_at is not None else []

    rows = wait_for(stored, timeout=15, what="the webhook processed")
    assert len(rows) == 1 and rows[0].grant_id == grant["grant_id"]


def _set_limit(page: Page, value: int) -> None:
    form = h.main(page).get_by_test_id("stForm").filter(has_text="Apply limit")
    form.get_by_label("New limit", exact=True).fill(str(value))
    form.get_by_label("Reason", exact=True).fill("replicas: plan change")
    h.submit(page, form.get_by_role("button", name="Apply limit"))
    confirm = h.main(page).get_by_role("button", name="Yes, apply this change")
    toast = page.get_by_test_id("stToast").filter(has_text=LIMIT_TOAST)
    expect(toast.or_(confirm).first).to_be_visible(timeout=h.TIMEOUT)
    if confirm.count():
        h.submit(page, confirm)
    expect(toast.first).to_be_visible(timeout=h.TIMEOUT)


def test_the_replica_serving_a_browser_and_holding_the_sync_is_killed(
        stack: Stack, browser: Browser, guests: list[dict]) -> None:
    """A person logged in through nginx changes a limit on the replica that also holds the
    sync lock; SIGKILL it. The page reconnects to the other replica, whose next run finds
    the person still logged in; the other replica, which no browser had opened (it built
    its runtime, and its sync worker's standby, at process start), takes the sync over
    within two leases; the change is in the audit log once. (The killed replica is not
    started again.)"""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.add_init_script(h.RUN_COUNTER_JS)
    page = ctx.new_page()
    try:
        holder = wait_for(stack.holder, timeout=60, what="a sync holder")
        route_to(stack, ctx, stack.console_of(holder))
        gid = guests[1]["grant_id"]
        h.login(page, stack.console_url, "finance")
        h.open_grant(page, stack.console_url, gid)
        _set_limit(page, 23_456)
        h.quiet(page)
        # nginx passed the standby only health probes (route_to's): no page, no script.
        standby = 1 - stack.console_of(holder)
        served = [stack.console_at(u) for u in stack.upstreams()]
        probed = [stack.console_at(u) for u in stack.upstreams(path="/_stcore/health")]
        assert served.count(standby) == probed.count(standby)
        assert served.count(1 - standby) > probed.count(1 - standby)

        failover = kill_serving_holder(stack, page)
        print(f"reconnection: {failover.reconnect_s:.2f} s; sync takeover: "
              f"{failover.takeover_s:.2f} s (lease {stack.lease:.0f} s)")
        assert failover.serving_now != failover.killed
        assert failover.takeover_s <= 2 * stack.lease
        new_holder = stack.holder()
        assert new_holder is not None and stack.console_of(new_holder) == failover.serving_now
        # The next click runs on the other replica, still logged in: it found the session
        # in PostgreSQL through the login cookie.
        h.goto_page(page, "Grants")
        expect(page.get_by_test_id("stForm").filter(has_text="Log in")).to_have_count(0)
        events = stack.sql("SELECT outcome FROM audit_log WHERE action = "
                           "'guest.limit.update' AND target_id = :g ORDER BY seq", g=gid)
        assert [e.outcome for e in events] == ["requested", "succeeded"]
    finally:
        ctx.close()


def test_the_logs_are_json_lines_with_request_ids_and_never_a_secret(
        stack: Stack, browser: Browser, guests: list[dict]) -> None:
    """LOG_FORMAT=json: every record of every console and backend replica is one JSON
    object with its request and correlation ids, and none holds a secret in play: the
    deployment's keys, the customers' access tokens, a customer's JWT, a password typed at
    the login form, a token in a query string."""
    wrong_password = "Wr0ng-Passw0rd-in-play"
    ctx = browser.new_context()
    ctx.add_init_script(h.RUN_COUNTER_JS)
    try:
        page = ctx.new_page()
        page.goto(stack.console_url + "/")
        h.fill_login(page, "support", wrong_password)
        expect(page.get_by_test_id("stForm").filter(has_text="Log in")).to_have_count(1)
    finally:
        ctx.close()
    customer = jwt.encode({"sub": "cust-logs", "exp": int(time.time()) + 600},
                          stack.secrets["BACKEND_JWT_SECRET"], algorithm="HS256")
    answer = requests.post(stack.backend_url + "/api/kryptos/create-link-token",
                           headers={"Authorization": f"Bearer {customer}"}, json={},
                           timeout=10)
    assert answer.status_code < 500, answer.text
    request_id = answer.headers["X-Request-Id"]
    token = guests[0]["access_token"]
    requests.get(stack.backend_url + f"/healthz?token={token}", timeout=10)

    secrets = [*stack.secrets.values(), customer, wrong_password, h.PASSWORDS["support"],
               h.PASSWORDS["finance"], *(g["access_token"] for g in guests)]
    logs = {name: text for name, text in stack.logs().items()
            if name.startswith(("console-", "backend-"))}
    records: list[dict] = []
    for name, text in logs.items():
        for secret in secrets:
            assert secret not in text, f"a secret in {name}"
        for line in text.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                assert {"ts", "level", "logger", "message", "service", "pid", "request_id",
                        "correlation_id"} <= set(record), line
                records.append(record)
            else:  # only what Streamlit and uvicorn print at start, never a log record
                assert not re.search(r"\b(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b", line), line
    services = {r["service"] for r in records}
    assert services == {"console", "backend"}
    # nginx's request id reached the backend: its lines about the call carry it.
    assert any(r["request_id"] == request_id for r in records)
    assert any("/healthz?token=***" in r["message"] for r in records)
