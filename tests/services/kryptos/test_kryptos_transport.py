"""The transport's two kinds of answer, over real HTTP on 127.0.0.1.

`request_json` hands back the decoded body; `request_stream` an open answer that the grants
list is read from. A stream that breaks after its headers (the server hangs up or stalls in
the middle of the list) must surface as the client's `KryptosConnectionError`, after the
grants that did arrive, never as a `requests` exception. The sandbox always finishes its
answers, so these tests serve a cut one themselves.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.kryptos import Grant, KryptosClient, KryptosConnectionError
from services.kryptos import stream as stream_module
from services.kryptos.transport import Call, StreamedResponse, Transport

from .conftest import make

GRANT = {"grant_id": "cgrant_first", "scopes": "holdings:read", "created_at": None}
HEAD = b'{"success": true, "data": {"grants": [' + json.dumps(GRANT).encode()


class _CutAnswer(BaseHTTPRequestHandler):
    """Announces a long JSON answer, sends one grant and part of the next, then hangs up
    (`/cut`) or goes quiet past the client's read timeout (`/stall`)."""

    protocol_version = "HTTP/1.1"
    mode = "cut"

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(HEAD + b', {"grant_id": "cgr')
        self.wfile.flush()
        if self.server.mode == "stall":  # type: ignore[attr-defined]
            time.sleep(1.5)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the test reads the client's errors, not the server's log."""


@pytest.fixture
def cut_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CutAnswer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client_for(server: ThreadingHTTPServer) -> KryptosClient:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return KryptosClient("id", "secret", url, url + "/api", connect_timeout=1.0,
                         read_timeout=0.5, max_retries=0, retry_budget=2.0)


@pytest.mark.parametrize("mode", ["cut", "stall"])
def test_a_grants_list_broken_mid_answer_is_a_connection_error(
    cut_server: ThreadingHTTPServer, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut_server.mode = mode  # type: ignore[attr-defined]
    monkeypatch.setattr(stream_module, "_STREAM_CHUNK", 16)  # the first grant arrives whole
    with _client_for(cut_server) as client:
        batches = client.iter_grants(batch_size=1)
        assert [g.grant_id for g in next(batches)] == ["cgrant_first"]
        with pytest.raises(KryptosConnectionError) as info:
            next(batches)
    assert (info.value.method, info.value.path) == ("GET", "/token/grants")


def test_iter_grants_is_a_generator_that_closes_its_answer(sandbox) -> None:
    with make(sandbox) as client:
        batches = client.iter_grants(batch_size=1)
        first = next(batches)
        batches.close()  # the rest of the answer is never read
        with pytest.raises(StopIteration):
            next(batches)
        assert isinstance(first[0], Grant)
        assert client.is_listed(first[0].grant_id)  # the client still answers


def test_json_and_stream_answers_are_two_calls(sandbox) -> None:
    transport = Transport(sandbox.client_id, sandbox.client_secret, connect_timeout=1.0,
                          read_timeout=1.0, max_retries=0, retry_budget=2.0, backoff_base=0.01,
                          backoff_max=0.05, user_agent="test")
    try:
        grants = Call("GET", sandbox.connect_url, "/token/grants", "connect", idempotent=True)
        body = transport.request_json(grants)
        assert isinstance(body, dict) and body["success"] is True
        with transport.request_stream(grants) as answer:
            assert isinstance(answer, StreamedResponse) and answer.status == 200
            streamed = b"".join(answer.iter_bytes(4096))
        assert json.loads(streamed) == body
    finally:
        transport.close()


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy that answers every request itself with a link token, noting the
    absolute URLs it was asked for."""

    protocol_version = "HTTP/1.1"
    asked: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.asked.append(self.path)
        body = json.dumps({"success": True, "data": {"link_token": "lt_from_proxy"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("no_proxy", [None, "127.0.0.1,localhost"])
def test_the_environments_proxy_and_no_proxy_are_followed(sandbox, monkeypatch,
                                                          no_proxy) -> None:
    """The environment is read once per server (not per request): still as requests reads
    it, HTTP_PROXY used unless NO_PROXY names the host."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Proxy.asked = []
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    if no_proxy:
        monkeypatch.setenv("NO_PROXY", no_proxy)
    client = make(sandbox)
    try:
        tokens = [client.create_link_token().link_token for _ in range(2)]
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    if no_proxy:
        assert _Proxy.asked == [] and all(t != "lt_from_proxy" for t in tokens)
    else:
        assert tokens == ["lt_from_proxy"] * 2
        assert all(url.startswith(sandbox.base_url) and url.endswith("/link-token")
                   for url in _Proxy.asked) and len(_Proxy.asked) == 2
