"""The sandbox's signed webhooks, received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from sandbox import SandboxControlError, SandboxHandle, start_sandbox
from tests.sandbox.helpers import connect, data, new_grant

SECRET = "whsec_" + base64.b64encode(b"sandbox-webhook-test-secret-0123456789").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-webhook-test-secret-987654321").decode()
FAST = [0.05, 0.1]


@dataclass
class Received:
    headers: dict[str, str]
    raw: bytes
    at: float

    @property
    def body(self) -> dict:
        return dict(json.loads(self.raw))

    def signed_with(self, secret: str, **changed: str) -> bool:
        """Standard Webhooks' check (the package), with `changed` headers swapped in."""
        try:
            Webhook(secret).verify(self.raw, {**self.headers, **changed}, json_parse=False)
        except WebhookVerificationError:
            return False
        return True


class Receiver:
    """Records every POST; the n-th request with one webhook-id gets `script[n]` (then
    `default`); 401 to a bad signature when `check_signature`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[int] = []
        self.default = 200
        self.check_signature = False
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Quiet."""

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got = Received({k.lower(): v for k, v in self.headers.items()}, raw,
                               time.monotonic())
                with receiver.lock:
                    seen = sum(r.headers.get("webhook-id") == got.headers.get("webhook-id")
                               for r in receiver.received)
                    receiver.received.append(got)
                    script = receiver.script
                    status = script[seen] if seen < len(script) else receiver.default
                if receiver.check_signature and not got.signed_with(SECRET):
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"{len(self.received)} webhooks received, expected {count}: "
                                 f"{[r.body['event'] for r in self.received]}")

    def events(self, kind: str) -> list[dict]:
        with self.lock:
            return [r.body for r in self.received if r.body["event"] == kind]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.stop()


@pytest.fixture
def hooked(sandbox: SandboxHandle, receiver: Receiver) -> SandboxHandle:
    sandbox.set_webhooks(receiver.url, SECRET, backoff=FAST)
    return sandbox


def wait_deliveries(sb: SandboxHandle, done: Callable[[list[dict]], bool],
                    timeout: float = 5.0) -> list[dict]:
    end = time.monotonic() + timeout
    while True:
        log = sb.webhook_deliveries()
        if done(log) or time.monotonic() > end:
            return log
        time.sleep(0.02)


def settled(log: list[dict]) -> bool:
    return bool(log) and all(d["status"] != "pending" for d in log)


def resync(sb: SandboxHandle, user_id: str, wallet_id: str) -> None:
    answer = connect(sb, "POST", f"/developer/integrations/{wallet_id}/resync",
                     {"user_id": user_id, "mode": "from_start"})
    assert answer.status_code == 202, answer.text


def api_integrations(sb: SandboxHandle, token: str) -> list[dict]:
    answer = data(sb, "/v1/integrations", token, {"pageSize": 200})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


# --- signature, headers and event shapes ------------------------------------------------------

def test_widget_run_sends_signed_integration_created(hooked: SandboxHandle,
                                                     receiver: Receiver) -> None:
    public = hooked.create_public_token(kind="guest")
    got = receiver.wait_for(4)  # a new user gets four integrations
    grant = connect(hooked, "POST", "/token/exchange",
                    {"public_token": public["public_token"]}).json()["data"]
    listed = {i["walletId"]: i for i in api_integrations(hooked, grant["access_token"])}
    now = datetime.now(UTC)
    for item in got:
        body = item.body
        assert item.signed_with(SECRET)
        assert not item.signed_with(OTHER_SECRET)
        # The signature covers the id and the time too: neither can be swapped.
        assert not item.signed_with(SECRET, **{"webhook-id": "whd_fresh"})
        stamp = int(item.headers["webhook-timestamp"])
        assert not item.signed_with(SECRET, **{"webhook-timestamp": str(stamp + 1)})
        version, _, signature = item.headers["webhook-signature"].partition(",")
        assert version == "v1" and len(base64.b64decode(signature, validate=True)) == 32
        assert item.headers["content-type"] == "application/json"
        assert set(body) == {"id", "event", "timestamp", "data"}
        assert body["id"].startswith("whd_") and item.headers["webhook-id"] == body["id"]
        assert body["event"] == "integration.created"
        sent = datetime.fromtimestamp(stamp, tz=UTC)
        assert abs(sent - now) < timedelta(seconds=30)
        datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        event_data = dict(body["data"])
        assert event_data.pop("uid") == public["user_id"]
        assert event_data == listed[event_data["walletId"]]  # the /v1/integrations object
    assert len({r.body["id"] for r in got}) == 4
    log = wait_deliveries(hooked, lambda d: len(d) == 4 and settled(d))
    assert [(d["type"], d["attempts"], d["status"]) for d in log] == [
        ("integration.created", 1, "delivered")] * 4
    assert {d["id"] for d in log} == {r.body["id"] for r in got}


def test_returning_user_widget_run_sends_one_created(hooked: SandboxHandle,
                                                     receiver: Receiver) -> None:
    grant = new_grant(hooked)
    receiver.wait_for(4)
    link = connect(hooked, "POST", "/link-token",
                   {"access_token": grant["access_token"]}).json()["data"]["link_token"]
    resumed = hooked.create_public_token(link_token=link)
    assert resumed["public_token"] is None
    got = receiver.wait_for(5)
    assert len(got) == 5
    last = got[-1].body
    assert last["event"] == "integration.created"
    assert last["data"]["walletId"] == resumed["wallet_id"]
    assert last["data"]["uid"] == grant["user_id"]


def test_no_url_no_webhooks_and_config_never_shows_the_secret(sandbox: SandboxHandle,
                                                              receiver: Receiver) -> None:
    sandbox.create_public_token()
    assert sandbox.webhook_config() == {"url": None, "has_secret": False,
                                        "backoff": [0.2, 1.0], "deliveries": []}
    sandbox.set_webhooks(receiver.url, SECRET, backoff=FAST)
    config = sandbox.webhook_config()
    assert config["url"] == receiver.url and config["has_secret"] is True
    assert SECRET not in json.dumps(config)
    assert config["backoff"] == FAST
    sandbox.set_webhooks(None)
    sandbox.create_public_token()
    assert sandbox.webhook_config()["deliveries"] == []  # nothing queued: nothing to send
    assert receiver.received == []
    assert sandbox.webhook_config()["has_secret"] is False


@pytest.mark.parametrize("body", [
    {"url": "ftp://x", "secret": SECRET}, {"url": "http://127.0.0.1:9/x"},
    {"url": "http://127.0.0.1:9/x", "secret": ""}, {"url": 5, "secret": SECRET},
    {"url": "http://127.0.0.1:9/x", "secret": SECRET, "backoff": [-1]},
    {"url": "http://127.0.0.1:9/x", "secret": SECRET, "backoff": "fast"},
    {"url": "http://127.0.0.1:9/x", "secret": "plain-text-secret"},  # not whsec_
    {"url": "http://127.0.0.1:9/x", "secret": "whsec_not base64!"},
])
def test_bad_webhook_config_is_refused(sandbox: SandboxHandle, body: dict) -> None:
    with pytest.raises(SandboxControlError, match="HTTP 400"):
        sandbox._call("POST", "/sandbox/webhooks", body)


def test_reset_restores_the_start_config_and_clears_the_log(hooked: SandboxHandle,
                                                            receiver: Receiver) -> None:
    hooked.set_webhook_fault("drop", count=5)
    hooked.create_public_token()
    assert len(hooked.webhook_deliveries()) == 4
    hooked.reset()
    assert hooked.webhook_config() == {"url": None, "has_secret": False,
                                       "backoff": [0.2, 1.0], "deliveries": []}
    assert hooked._call("GET", "/sandbox/faults") == {"faults": []}


# --- resync lifecycle -------------------------------------------------------------------------

def test_resync_start_and_completion_on_the_clock(hooked: SandboxHandle,
                                                  receiver: Receiver) -> None:
    grant = new_grant(hooked)
    wallet = api_integrations(hooked, grant["access_token"])[0]["walletId"]
    receiver.wait_for(4)
    resync(hooked, grant["user_id"], wallet)
    started = receiver.wait_for(5)[-1].body
    assert started["event"] == "integration.updated"
    assert started["data"]["walletId"] == wallet and started["data"]["status"] == "ONGOING"
    assert started["data"]["uid"] == grant["user_id"]
    hooked.advance_clock(3)  # past the shared sandbox's 2 s resync: completes, no read needed
    done = receiver.wait_for(6)[-1].body
    assert done["event"] == "integration.updated"
    assert done["data"]["status"] == "COMPLETED"
    assert done["data"]["lastSyncLog"] == {"Balances": "COMPLETED", "Transactions": "COMPLETED"}
    queued = len(hooked.webhook_deliveries())
    listed = {i["walletId"]: i for i in api_integrations(hooked, grant["access_token"])}
    assert {**listed[wallet], "uid": grant["user_id"]} == done["data"]
    # The read queued nothing more (an event is queued before the request answers).
    assert len(hooked.webhook_deliveries()) == queued
    assert len(receiver.received) == 6


def test_completion_fires_in_real_time_without_a_read(receiver: Receiver) -> None:
    with start_sandbox(port=0, grants=5, resync_delay=0.3, webhook_url=receiver.url,
                       webhook_secret=SECRET, webhook_backoff=(0.05, 0.1)) as sb:
        grant = new_grant(sb)
        receiver.wait_for(4)
        wallet = api_integrations(sb, grant["access_token"])[0]["walletId"]
        before = time.monotonic()
        resync(sb, grant["user_id"], wallet)
        got = receiver.wait_for(6, timeout=3)
        assert [r.body["data"]["status"] for r in got[4:]] == ["ONGOING", "COMPLETED"]
        assert got[5].at - before >= 0.28
        assert all(r.signed_with(SECRET) for r in got)


def test_failed_resync_sends_integration_failed(hooked: SandboxHandle,
                                                receiver: Receiver) -> None:
    grant = new_grant(hooked)
    wallet = api_integrations(hooked, grant["access_token"])[1]["walletId"]
    receiver.wait_for(4)
    fault = hooked.fail_next_resync(wallet_id=wallet)
    assert {"id": fault, "resync": "fail", "wallet_id": wallet, "count": 1} in \
        hooked._call("GET", "/sandbox/faults")["faults"]
    resync(hooked, grant["user_id"], wallet)
    hooked.advance_clock(3)
    failed = receiver.wait_for(6)[-1].body
    assert failed["event"] == "integration.failed"
    assert failed["data"]["status"] == "FAILED" and failed["data"]["walletId"] == wallet
    assert failed["data"]["message"].startswith("Injected failure")
    listed = {i["walletId"]: i for i in api_integrations(hooked, grant["access_token"])}
    assert listed[wallet]["status"] == "FAILED"
    resync(hooked, grant["user_id"], wallet)  # the fault was used up: this one completes
    hooked.advance_clock(3)
    assert receiver.wait_for(8)[-1].body["data"]["status"] == "COMPLETED"


def test_limit_change_resync_events_with_newer_api(receiver: Receiver) -> None:
    with start_sandbox(port=0, seed=42, grants=40, resync_delay=2.0, newer_api=True,
                       webhook_url=receiver.url, webhook_secret=SECRET) as sb:
        capped = sb.scenarios()["limit_exceeded"]
        answer = connect(sb, "PATCH", f"/developer/grants/{capped['grant_id']}/transaction-limit",
                         {"enableLimiter": False})
        triggered = answer.json()["data"]["resync"]["triggered"]
        assert capped["wallet_id"] in triggered
        got = receiver.wait_for(len(triggered))
        assert {r.body["data"]["walletId"] for r in got} == set(triggered)
        assert {(r.body["event"], r.body["data"]["status"]) for r in got} == {
            ("integration.updated", "ONGOING")}


# --- delivery: retries and faults -------------------------------------------------------------

def test_retry_after_500_keeps_the_id(hooked: SandboxHandle, receiver: Receiver) -> None:
    receiver.script = [500, 503]
    hooked.create_public_token()
    got = receiver.wait_for(12)
    first_id = got[0].headers["webhook-id"]
    tries = [r for r in got if r.headers["webhook-id"] == first_id]
    assert len(tries) == 3
    assert len({r.raw for r in tries}) == 1 and all(r.signed_with(SECRET) for r in tries)
    assert tries[1].at - tries[0].at >= 0.04  # the backoff
    log = wait_deliveries(hooked, lambda d: len(d) == 4 and settled(d))
    assert {d["id"] for d in log} == {r.headers["webhook-id"] for r in got}
    assert [(d["attempts"], d["status"], d["responses"]) for d in log] == [
        (3, "delivered", [500, 503, 200])] * 4


def test_three_failures_give_up(hooked: SandboxHandle, receiver: Receiver) -> None:
    receiver.default = 500
    hooked.create_public_token()
    log = wait_deliveries(hooked, lambda d: len(d) == 4 and settled(d))
    assert [(d["attempts"], d["status"]) for d in log] == [(3, "failed")] * 4
    assert len(receiver.received) == 12  # each attempt is logged after its answer


def test_unreachable_receiver_is_retried_then_failed(sandbox: SandboxHandle,
                                                     receiver: Receiver) -> None:
    url = receiver.url
    receiver.stop()
    sandbox.set_webhooks(url, SECRET, backoff=FAST)
    sandbox.create_public_token()
    log = wait_deliveries(sandbox, lambda d: len(d) == 4 and settled(d))
    assert all(d["attempts"] == 3 and d["status"] == "failed" for d in log)
    assert all(isinstance(r, str) for d in log for r in d["responses"])  # no HTTP status


def test_duplicate_fault_sends_the_same_event_twice(hooked: SandboxHandle,
                                                    receiver: Receiver) -> None:
    hooked.set_webhook_fault("duplicate")
    hooked.create_public_token()
    got = receiver.wait_for(5)
    # Every attempt made (the copy is sent after the event is marked delivered).
    log = wait_deliveries(hooked, lambda d: settled(d) and sum(x["attempts"] for x in d) == 5)
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 5 and len(set(ids)) == 4
    twice = [r for r in got if ids.count(r.headers["webhook-id"]) == 2]
    assert twice[0].raw == twice[1].raw and all(r.signed_with(SECRET) for r in twice)
    assert sorted(d["attempts"] for d in log) == [1, 1, 1, 2]
    assert [d["fault"] for d in log].count("duplicate") == 1


def test_drop_fault_sends_nothing_for_that_event(hooked: SandboxHandle,
                                                 receiver: Receiver) -> None:
    hooked.set_webhook_fault("drop", count=2)
    hooked.create_public_token()
    log = wait_deliveries(hooked, lambda d: len(d) == 4 and settled(d))
    assert len(receiver.received) == 2
    assert [(d["status"], d["attempts"]) for d in log[:2]] == [("dropped", 0)] * 2
    assert {r.headers["webhook-id"] for r in receiver.received} == {d["id"] for d in log[2:]}


def test_bad_signature_fault(hooked: SandboxHandle, receiver: Receiver) -> None:
    receiver.check_signature = True
    hooked.set_webhook_fault("bad_signature")
    hooked.create_public_token()
    log = wait_deliveries(hooked, lambda d: len(d) == 4 and settled(d))
    assert log[0]["fault"] == "bad_signature"
    assert (log[0]["attempts"], log[0]["status"], log[0]["responses"]) == (3, "failed",
                                                                            [401, 401, 401])
    assert [(d["attempts"], d["status"]) for d in log[1:]] == [(1, "delivered")] * 3
    bad = [r for r in receiver.received if r.headers["webhook-id"] == log[0]["id"]]
    assert len(bad) == 3 and not any(r.signed_with(SECRET) for r in bad)
    assert bad[0].headers["webhook-signature"].startswith("v1,")


def test_delay_fault_and_the_api_never_waits(hooked: SandboxHandle,
                                             receiver: Receiver) -> None:
    hooked.set_webhook_fault("delay", delay_ms=2000)
    started = time.monotonic()
    hooked.create_public_token()
    # The request does not wait for its webhooks: the delayed one is not attempted yet
    # when it answers (it would have been, had the API waited for it).
    first = hooked.webhook_deliveries()[0]
    assert (first["fault"], first["attempts"]) == ("delay", 0)
    got = receiver.wait_for(4)
    delayed = next(r for r in got if r.headers["webhook-id"] == first["id"])
    assert delayed.at - started >= 1.95  # sent no sooner than its delay
    assert got[-1] is delayed  # the others went first


def test_slow_receiver_does_not_slow_the_api(hooked: SandboxHandle, receiver: Receiver) -> None:
    """The receiver holds the first delivery unanswered until the test lets it go; the API
    answers meanwhile. Had the API waited on its webhooks, no answer would come before the
    sender's attempt ended (answered or timed out), and that attempt would be in the log."""
    entered, release = threading.Event(), threading.Event()
    original = receiver.server.RequestHandlerClass.do_POST

    def slow(handler: BaseHTTPRequestHandler) -> None:
        entered.set()
        release.wait(60)  # bounds a failing run only: the test releases it
        original(handler)  # type: ignore[arg-type]

    receiver.server.RequestHandlerClass.do_POST = slow  # type: ignore[method-assign]
    try:
        grant = new_grant(hooked)
        assert entered.wait(30), "no webhook reached the receiver"
        assert data(hooked, "/v1/userinfo", grant["access_token"]).status_code == 200
        log = hooked.webhook_deliveries()
        assert log and all(d["attempts"] == 0 for d in log), log  # none answered yet
    finally:
        release.set()
    receiver.wait_for(4, timeout=30)


def test_bad_webhook_faults_are_refused(sandbox: SandboxHandle) -> None:
    for spec in ({"webhook": "explode"}, {"webhook": "drop", "count": 0},
                 {"webhook": "delay", "delay_ms": -5}, {"resync": "succeed"},
                 {"resync": "fail", "wallet_id": 7}):
        with pytest.raises(SandboxControlError, match="HTTP 400"):
            sandbox.set_fault(**spec)
    sandbox.set_webhook_fault("delay", count=2, delay_ms=50)
    listed = sandbox._call("GET", "/sandbox/faults")["faults"]
    assert listed[-1] == {"id": listed[-1]["id"], "webhook": "delay", "count": 2,
                          "delay_ms": 50.0}
    sandbox.clear_faults()
    assert sandbox._call("GET", "/sandbox/faults") == {"faults": []}


def test_turning_the_url_off_with_deliveries_queued_keeps_the_sender_alive(
        sandbox: SandboxHandle, receiver: Receiver) -> None:
    receiver.default = 500  # every delivery waits for a retry...
    sandbox.set_webhooks(receiver.url, SECRET, backoff=[0.3, 0.3])
    sandbox.create_public_token(kind="guest")
    receiver.wait_for(1)
    sandbox.set_webhooks(None)  # ...when the URL is turned off: those attempts fail
    log = wait_deliveries(sandbox, settled)
    assert log and {d["status"] for d in log} == {"failed"}
    receiver.default = 200
    sandbox.set_webhooks(receiver.url, SECRET, backoff=FAST)
    sandbox.create_public_token(kind="guest")  # the sender still sends
    log = wait_deliveries(sandbox, lambda ds: any(d["status"] == "delivered" for d in ds))
    assert any(d["status"] == "delivered" for d in log)
