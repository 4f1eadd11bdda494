"""Two console replicas as two real processes on one database (PostgreSQL, and SQLite with
its file lock): each sees the other's change within 2 s by polling `ReadModel.version()`,
only one runs the sync worker, and when the holder is killed (-9) the other takes over."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from sandbox import SandboxHandle
from services.store import TokenVault, open_database

ROOT = Path(__file__).resolve().parents[3]


class Replica:
    def __init__(self, args: list[str], name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.services.sync.replica", *args, name],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.lines: queue.Queue[dict] = queue.Queue()
        self.last: dict = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait(self, predicate: Callable[[dict], bool], timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if "holder" in msg:
                self.last = msg
            if predicate(msg):
                return msg
        err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr \
            else ""
        raise AssertionError(f"timed out waiting for {what}; last {self.last}; {err[-2000:]}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def replicas(sandbox: SandboxHandle, db_url: str) -> Iterator[Callable[[str], Replica]]:
    key = Fernet.generate_key().decode()
    db = open_database(db_url)
    vault = TokenVault(db, key)
    for t in sandbox.tokens():
        vault.put(t["grant_id"], t["access_token"], customer_ref=t["customer_ref"])
    db.dispose()
    args = [db_url, key, sandbox.client_id, sandbox.client_secret, sandbox.connect_url,
            sandbox.data_url]
    started: list[Replica] = []

    def start(name: str) -> Replica:
        started.append(Replica(args, name))
        return started[-1]

    yield start
    for r in started:
        r.stop()


def test_two_replicas_see_each_other_and_one_worker_runs(
        replicas: Callable[[str], Replica], sandbox: SandboxHandle) -> None:
    a = replicas("a")
    a.wait(lambda m: m.get("holder") is True, 30, "a to hold the sync lock")
    a.wait(lambda m: m.get("version", 0) > 0, 30, "a's first full sync")
    b = replicas("b")
    b.wait(lambda m: "holder" in m, 30, "b to start")
    # Only one runs: b stands by for a while (several of its lock retries).
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert b.wait(lambda m: "holder" in m, 5, "b's state").get("holder") is False

    grants = [t["grant_id"] for t in sandbox.tokens() if not t["revoked"]]
    for writer, reader, gid in ((a, b, grants[0]), (b, a, grants[1])):
        writer.send(f"revoke {gid}")
        done = writer.wait(lambda m, g=gid: m.get("revoked") == g, 10, "the change")
        # The version only grows: a reading at least the writer's (taken after its commit)
        # was made after the change and includes it.
        seen = reader.wait(lambda m, v=done["version"]: "holder" in m and m["version"] >= v,
                           5, "the change in the other replica")
        assert seen["t"] - done["t"] < 2.0

    # The holder dies the hard way: the other replica takes over.
    os.kill(a.proc.pid, signal.SIGKILL)
    a.proc.wait(10)
    killed = time.time()
    took = b.wait(lambda m: m.get("holder") is True, 20, "b to take over")
    assert took["t"] - killed < 10.0
