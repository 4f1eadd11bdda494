"""Sandbox control: faults, latency, request log, clock, reset, tokens export, scale, CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sandbox import SandboxControlError, SandboxHandle, start_sandbox
from tests.sandbox.helpers import active_tokens, connect, creds, data, new_grant


def grants_status(sb: SandboxHandle) -> int:
    return connect(sb, "GET", "/token/grants").status_code


def test_fault_count_then_normal(sandbox: SandboxHandle) -> None:
    fid = sandbox.set_fault(path="/token/grants", status=503, count=2, retry_after=3)
    assert fid
    first = connect(sandbox, "GET", "/token/grants")
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "3"
    assert first.headers["X-Request-Id"].startswith("req_")
    assert first.json() == {"success": False, "error": "Injected 503",
                            "code": "SERVICE_UNAVAILABLE"}
    assert grants_status(sandbox) == 503
    assert grants_status(sandbox) == 200


def test_fault_code_message_method_and_data_shape(sandbox: SandboxHandle) -> None:
    token = active_tokens(sandbox)[0]["access_token"]
    sandbox.set_fault(path="/api/v1/", status=429, code="rate_limit_exceeded",
                      message="Slow down", method="GET")
    answer = data(sandbox, "/v1/holdings", token)
    assert answer.status_code == 429
    assert answer.json() == {"error": "rate_limit_exceeded", "message": "Slow down",
                             "details": []}
    sandbox.clear_faults()
    sandbox.set_fault(path="/token", method="POST", status=500)
    assert grants_status(sandbox) == 200  # GET is not matched
    answer = connect(sandbox, "POST", "/token/revoke", {"grant_id": "cgrant_x"})
    assert answer.status_code == 500 and answer.json()["code"] == "INTERNAL_ERROR"


def test_fault_fraction_is_deterministic(sandbox: SandboxHandle) -> None:
    def run() -> list[int]:
        sandbox.reset()
        sandbox.set_fault(path="/token/grants", status=502, fraction=0.5)
        return [grants_status(sandbox) for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert 5 <= first.count(502) <= 25 and set(first) == {200, 502}


def test_fault_drop_closes_without_answer(sandbox: SandboxHandle) -> None:
    sandbox.set_fault(path="/token/grants", drop=True, count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        connect(sandbox, "GET", "/token/grants")
    assert grants_status(sandbox) == 200
    log = sandbox.requests_log()
    assert [e["status"] for e in log] == [None, 200]


def test_fault_malformed(sandbox: SandboxHandle) -> None:
    sandbox.set_fault(path="/token/grants", malformed=True)
    answer = connect(sandbox, "GET", "/token/grants")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        answer.json()


def test_fault_phase_after_acts_then_fails(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    sandbox.set_fault(path="/token/revoke", status=504, phase="after", count=1)
    answer = connect(sandbox, "POST", "/token/revoke", {"grant_id": grant["grant_id"]})
    assert answer.status_code == 504
    assert data(sandbox, "/v1/userinfo", grant["access_token"]).status_code == 401
    again = connect(sandbox, "POST", "/token/revoke", {"grant_id": grant["grant_id"]})
    assert again.json()["code"] == "INVALID_GRANT"


def test_fault_phase_after_drop(sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    sandbox.set_fault(path="/developer/grants/", drop=True, phase="after")
    with pytest.raises(requests.exceptions.ConnectionError):
        connect(sandbox, "PATCH", f"/developer/grants/{grant['grant_id']}/transaction-limit",
                {"transactionLimit": 321})
    info = data(sandbox, "/v1/userinfo", grant["access_token"]).json()
    assert info["userInfo"]["transaction_limit"] == 321


def test_hold_after_apply_makes_the_change_then_holds_the_answer(
        sandbox: SandboxHandle) -> None:
    grant = new_grant(sandbox)
    fid = sandbox.hold_after_apply("/developer/grants/", method="PATCH", ms=20_000, count=1)
    path = f"/developer/grants/{grant['grant_id']}/transaction-limit"
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(connect, sandbox, "PATCH", path, {"transactionLimit": 4321})
        deadline = time.monotonic() + 5
        while sandbox.holding(fid) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sandbox.holding(fid) == 1 and not answer.done()  # made, not yet answered
        info = data(sandbox, "/v1/userinfo", grant["access_token"]).json()
        assert info["userInfo"]["transaction_limit"] == 4321
        start = time.monotonic()
        sandbox.clear_faults()  # lets the held answer go
        assert answer.result(5).status_code == 200 and time.monotonic() - start < 2
    assert sandbox.faults() == []
    # the counterpart: latency_ms holds before acting
    sandbox.set_fault(path="/developer/grants/", method="PATCH", latency_ms=1500, count=1)
    with ThreadPoolExecutor(1) as pool:
        late = pool.submit(connect, sandbox, "PATCH", path, {"transactionLimit": 777})
        time.sleep(0.3)
        info = data(sandbox, "/v1/userinfo", grant["access_token"]).json()
        assert info["userInfo"]["transaction_limit"] == 4321  # not applied yet
        assert late.result(5).status_code == 200


def test_hold_after_apply_refuses_a_replaced_answer(sandbox: SandboxHandle) -> None:
    for spec in ({"path": "/x", "hold_after_ms": 100, "status": 500},
                 {"path": "/x", "hold_after_ms": -1}, {"path": "/x", "hold_after_ms": "1"}):
        with pytest.raises(SandboxControlError):
            sandbox.set_fault(**spec)


def test_fault_latency_only(sandbox: SandboxHandle) -> None:
    sandbox.set_fault(path="/token/grants", latency_ms=150, count=1)
    start = time.monotonic()
    assert grants_status(sandbox) == 200
    assert time.monotonic() - start >= 0.15


def test_faults_never_touch_sandbox_paths(sandbox: SandboxHandle) -> None:
    sandbox.set_fault(path="/", status=500)
    assert sandbox.tokens()  # still answers
    assert grants_status(sandbox) == 500
    sandbox.clear_faults()
    assert grants_status(sandbox) == 200


def test_bad_fault_specs_are_refused(sandbox: SandboxHandle) -> None:
    for spec in ({}, {"path": "token"}, {"path": "/x", "phase": "during"},
                 {"path": "/x", "count": 0}, {"path": "/x", "fraction": 2}):
        with pytest.raises(SandboxControlError):
            sandbox.set_fault(**spec)


def test_global_latency_and_concurrency(sandbox: SandboxHandle) -> None:
    sandbox.set_latency(100)
    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: grants_status(sandbox), range(4)))
    elapsed = time.monotonic() - start
    assert statuses == [200] * 4
    assert elapsed < 0.35, elapsed
    log = sandbox.requests_log()
    assert len(log) == 4
    assert all(e["ended"] - e["started"] >= 0.1 for e in log)
    assert max(e["started"] for e in log) < min(e["ended"] for e in log)  # they overlapped
    sandbox.set_latency(0)


def test_requests_log(sandbox: SandboxHandle) -> None:
    sandbox.clear_requests_log()
    token = active_tokens(sandbox)[0]["access_token"]  # /sandbox/* calls are not logged
    data(sandbox, "/v1/integrations", token, {"pageSize": 5})
    connect(sandbox, "GET", "/token/grants", headers=creds(sandbox, secret="bad"))
    log = sandbox.requests_log()
    assert [(e["method"], e["path"], e["status"], e["client_id"]) for e in log] == [
        ("GET", "/api/v1/integrations", 200, "sandbox_client"),
        ("GET", "/token/grants", 401, "sandbox_client"),
    ]
    assert log[0]["query"] == "pageSize=5"
    for e in log:
        assert isinstance(e["started"], float) and e["ended"] >= e["started"]
        assert abs(e["started"] - time.time()) < 60
    sandbox.clear_requests_log()
    assert sandbox.requests_log() == []


def test_reset_restores_seeded_state(sandbox: SandboxHandle) -> None:
    before = sandbox.tokens()
    victim = next(t for t in before if not t["revoked"])
    connect(sandbox, "POST", "/token/revoke", {"grant_id": victim["grant_id"]})
    new_grant(sandbox)
    sandbox.set_latency(50)
    sandbox.set_fault(path="/", status=500)
    sandbox.advance_clock(3600)
    sandbox.reset()
    assert sandbox.tokens() == before
    assert sandbox.requests_log() == []
    start = time.monotonic()
    assert grants_status(sandbox) == 200
    assert time.monotonic() - start < 0.05
    sandbox.reset(seed=7, grants=12)
    assert len(connect(sandbox, "GET", "/token/grants").json()["data"]["grants"]) <= 12
    assert sandbox.tokens() != before
    sandbox.reset()  # back to the seed and size the server started with
    assert sandbox.tokens() == before


def test_tokens_export(sandbox: SandboxHandle) -> None:
    tokens = sandbox.tokens()
    grants = connect(sandbox, "GET", "/token/grants").json()["data"]["grants"]
    exported = {t["grant_id"] for t in tokens}
    missing = [g["grant_id"] for g in grants if g["grant_id"] not in exported]
    assert len(missing) == 3
    assert sorted(missing) == sorted(sandbox.scenarios()["not_exported"])
    assert sum(t["revoked"] for t in tokens) >= 3
    for t in tokens:
        assert set(t) == {"grant_id", "access_token", "user_id", "kind", "customer_ref",
                          "workspace_id", "revoked"}
        assert t["kind"] in ("guest", "linked")
        assert t["user_id"].startswith("anon_") == (t["kind"] == "guest")
        assert t["customer_ref"].startswith("cust-") or "@" in t["customer_ref"]
    guests = sum(t["kind"] == "guest" for t in tokens)
    assert 0.4 <= guests / len(tokens) <= 0.8
    other = sandbox.tokens(client_id="other_client")
    assert len(other) == 3 and not exported & {t["grant_id"] for t in other}


def test_tokens_export_in_pages(sandbox: SandboxHandle) -> None:
    whole = sandbox.tokens()
    for size in (1, 4, len(whole) - 1, len(whole), len(whole) + 5):
        pages = list(sandbox.token_pages(size=size))
        assert all(1 <= len(p) <= size for p in pages)
        assert [t for p in pages for t in p] == whole  # each once, in order
    other = [t for p in sandbox.token_pages(client_id="other_client", size=2) for t in p]
    assert other == sandbox.tokens(client_id="other_client")
    for query in ("limit=0", "limit=x", "after=-2", "after=1.5"):
        with pytest.raises(SandboxControlError):
            sandbox._call("GET", "/sandbox/tokens?" + query)


def test_determinism_across_starts() -> None:
    with start_sandbox(port=0, seed=1234, grants=15) as one, \
            start_sandbox(port=0, seed=1234, grants=15) as two:
        assert one.port != two.port
        assert one.tokens() == two.tokens()
        g1 = connect(one, "GET", "/token/grants").json()["data"]
        g2 = connect(two, "GET", "/token/grants").json()["data"]
        assert g1 == g2
        token = active_tokens(one)[0]["access_token"]
        i1 = data(one, "/v1/integrations", token).json()
        i2 = data(two, "/v1/integrations", token).json()
        assert i1["data"] == i2["data"]
        assert one.create_public_token() == two.create_public_token()
        seeded = one.tokens()
    with start_sandbox(port=0, seed=99, grants=15) as three:
        assert three.tokens() != seeded


def test_clock_advance_is_refused_when_negative(sandbox: SandboxHandle) -> None:
    with pytest.raises(SandboxControlError):
        sandbox.advance_clock(-5)


@pytest.mark.slow
def test_large_seed_starts_and_lists() -> None:
    with start_sandbox(port=0, grants=100000) as big:
        body = connect(big, "GET", "/token/grants").json()["data"]
        assert 85000 <= body["count"] <= 95000
        assert len({g["grant_id"] for g in body["grants"]}) == body["count"]
        token = big.scenarios()["xss"]["access_token"]
        assert data(big, "/v1/integrations", token).status_code == 200


def test_cli_serves(tmp_path: object) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--seed", "3", "--grants", "5",
         "--resync-delay", "1", "--newer-api"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        assert requests.get(url + "/api/health", timeout=5).json()["status"] == "OK"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
