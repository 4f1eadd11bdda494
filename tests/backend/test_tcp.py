"""Nagle's algorithm is off on every connection the backend serves (backend/tcp.py), also
when the listening socket is the one uvicorn binds for several workers (protocol number 0,
which asyncio's own TCP_NODELAY skips)."""

from __future__ import annotations

import asyncio
import http.client
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn

from backend.launch import ROOT, free_port, stop, wait_until_up
from backend.tcp import HTTP_PROTOCOL
from tests.backend.helpers import backend_env


async def _ok(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _served_nodelay(http_protocol: str) -> int:
    """Serve on a socket bound as uvicorn binds it for workers; the TCP_NODELAY of the
    server's side of one kept-alive connection."""
    config = uvicorn.Config(_ok, host="127.0.0.1", port=0, http=http_protocol,
                            log_level="warning", lifespan="off")
    sock = config.bind_socket()
    assert sock.proto == 0  # what makes asyncio leave Nagle on
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        conn = http.client.HTTPConnection(*sock.getsockname()[:2], timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
        (protocol,) = server.server_state.connections
        served = protocol.transport.get_extra_info("socket")  # type: ignore[attr-defined]
        value = served.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        conn.close()
        return int(value)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def test_the_backends_protocol_turns_nagle_off_on_a_workers_socket():
    assert _served_nodelay(HTTP_PROTOCOL) == 1
    # The check can fail: uvicorn's own protocol leaves Nagle on for the same socket.
    assert _served_nodelay("h11") == 0


def test_two_workers_answer_a_kept_alive_connection_without_a_delayed_ack(tmp_path: Path,
                                                                          sandbox):
    """With Nagle on, every answer on a kept-alive connection waited for the client's
    delayed acknowledgement (40 ms or more on Linux): all but the connection's first one
    or two of 20 calls took over 40 ms; about a millisecond each now."""
    port = free_port()
    env = backend_env(tmp_path, sandbox.base_url, BACKEND_WORKERS="2")
    child = subprocess.Popen([sys.executable, "-m", "backend", "--port", str(port)],
                             cwd=ROOT, env=env)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", child)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            answer.read()
            times.append(time.perf_counter() - t0)
            assert answer.status == 200
        conn.close()
        # A new connection's first answers are acknowledged at once (quick-ack): look at
        # the fifth quickest.
        assert sorted(times)[4] < 0.030, [round(t * 1000, 1) for t in times]
    finally:
        stop([child])
