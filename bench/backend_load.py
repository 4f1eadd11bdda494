"""The customer backend under load: `python -m bench.backend_load [--database sqlite,postgresql]
[--calls 300] [--concurrent 16] [--seconds 5] [--workers 1] [--upstream stand-in|sandbox]`.

Starts an upstream in its own process: the stand-in (a minimal asyncio HTTP server that
answers every POST with a link token, in well under a millisecond) or, with `--upstream
sandbox`, the sandbox of the Kryptos API (`python -m sandbox`: the real routes, client
checks and state, a few hundred answers a second); then the backend in front of it
(`python -m backend`, uvicorn, real HTTP on 127.0.0.1, sandbox mode pointed at the stand-in),
then times create-link-token calls with a load client (keep-alive connections, one per
customer):

- one customer at a time: p50 of a call through the backend, p50 of the same call straight
  to the upstream, and their difference (the backend's own time per call);
- sixteen customers at once: answers/s and p50 through the backend, answers/s straight to
  the upstream in the same run, and the ratio.

Every answer must be a 200: errors are counted and printed, and so is the machine's load
average (wall figures on a busy machine are mostly the scheduler's). The rate limits stay on (set
high enough not to refuse), so their database work is part of every call, as in production.
`BACKEND_WORKERS` (or `--workers`) runs the backend with several worker processes.
PostgreSQL: a fresh database on TEST_POSTGRES_URL's server (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), dropped afterwards."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
JWT_SECRET = "bench-" + "j" * 40
WEBHOOK_SECRET = "whsec_" + "QmVuY2hXZWJob29rU2VjcmV0MTIzNDU2Nzg5MA=="
LINK_ANSWER = json.dumps({"success": True, "data": {
    "link_token": "lt_bench_0123456789abcdef", "expires_at": None}}).encode()


# --- the stand-in upstream --------------------------------------------------------------

async def _serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(LINK_ANSWER)).encode() + b"\r\n\r\n"
                         + LINK_ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _upstream_main(port_file: str) -> None:
    server = await asyncio.start_server(_serve_client, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    Path(port_file).write_text(str(port))
    async with server:
        await server.serve_forever()


def start_sandbox_upstream(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(tmp / "sandbox.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the sandbox did not start")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/sandbox/faults")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.2)


#: What a direct call to the sandbox needs: the client's credentials, as the backend sends.
SANDBOX_HEADERS = {"X-Client-Id": "sandbox_client",
                   "X-Client-Secret": "sandbox_secret_do_not_use_live"}


def start_upstream(tmp: Path) -> tuple[subprocess.Popen, int]:
    port_file = tmp / "upstream.port"
    proc = subprocess.Popen([sys.executable, "-m", "bench.backend_load", "--serve-upstream",
                             str(port_file)], cwd=ROOT)
    deadline = time.monotonic() + 15
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the stand-in upstream did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


# --- the backend --------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_backend(tmp: Path, db_url: str, upstream: int, workers: int
                  ) -> tuple[subprocess.Popen, int]:
    from cryptography.fernet import Fernet

    port = free_port()
    keep = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({
        "SANDBOX_URL": f"http://127.0.0.1:{upstream}",
        "DATABASE_URL": db_url,
        "CONSOLE_DATA_DIR": str(tmp / "data"),
        "KRYPTOS_VAULT_KEY": Fernet.generate_key().decode(),
        "BACKEND_JWT_SECRET": JWT_SECRET,
        "KRYPTOS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "BACKEND_LINK_TOKEN_RATE_LIMIT": "1000000",
        "BACKEND_CUSTOMER_RATE_LIMIT": "1000000",
        "KRYPTOS_MAX_RETRIES": "0",
        "BACKEND_WORKERS": str(workers),
        "LOG_LEVEL": "WARNING",
    })
    log = open(tmp / "backend.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen([sys.executable, "-m", "backend", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the backend did not start: "
                               + (tmp / "backend.log").read_text()[-2000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.2)


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'backend.db'}"
        return
    from sqlalchemy import create_engine, make_url, text

    admin = make_url(os.environ.get("TEST_POSTGRES_URL") or DEFAULT_PG_URL)
    if admin.get_driver_name() in ("", "psycopg2"):
        admin = admin.set(drivername="postgresql+psycopg")
    name = f"kc_backend_load_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT",
                           connect_args={"connect_timeout": 3})
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


# --- the load client ----------------------------------------------------------------------

def customer_token(ref: str) -> str:
    import jwt

    now = int(time.time())
    return jwt.encode({"sub": ref, "iat": now, "exp": now + 3600}, JWT_SECRET,
                      algorithm="HS256")


class Caller:
    """One customer's keep-alive connection to one server."""

    def __init__(self, port: int, path: str, token: str | None,
                 headers: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.path = path
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self) -> int:
        self.conn.request("POST", self.path, body=b"{}", headers=self.headers)
        answer = self.conn.getresponse()
        answer.read()
        return answer.status

    def close(self) -> None:
        self.conn.close()


def one_at_a_time(caller: Caller, calls: int) -> tuple[list[float], int]:
    times, errors = [], 0
    for _ in range(calls):
        t0 = time.perf_counter()
        status = caller.call()
        times.append(time.perf_counter() - t0)
        errors += status != 200
    return times, errors


def at_once(callers: list[Caller], seconds: float) -> tuple[float, list[float], int]:
    """Every caller in its own thread, calling back to back for `seconds`."""
    times: list[list[float]] = [[] for _ in callers]
    errors = [0] * len(callers)
    start = threading.Barrier(len(callers) + 1)
    stop_at = [0.0]

    def run(i: int) -> None:
        start.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                status = callers[i].call()
            except OSError:
                status = 0
            times[i].append(time.perf_counter() - t0)
            errors[i] += status != 200

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(callers))]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    flat = [x for ts in times for x in ts]
    return len(flat) / elapsed, flat, sum(errors)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid` and its children so far (the worker processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


def p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def measure(kind: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="backend-load-") as name:
        tmp = Path(name)
        sandbox = args.upstream == "sandbox"
        upstream, up_port = (start_sandbox_upstream if sandbox else start_upstream)(tmp)
        up_headers = SANDBOX_HEADERS if sandbox else None
        procs = [upstream]
        try:
            with database(kind, tmp) as url:
                backend, port = start_backend(tmp, url, up_port, args.workers)
                procs.append(backend)
                path = "/api/kryptos/create-link-token"
                direct = Caller(up_port, "/link-token", None, up_headers)
                one = Caller(port, path, customer_token("bench-solo"))
                for _ in range(20):  # warm both (connections, the backend's first calls)
                    direct.call()
                    one.call()
                up_solo, up_err = one_at_a_time(direct, args.calls)
                cpu0 = cpu_seconds(backend.pid)
                be_solo, be_err = one_at_a_time(one, args.calls)
                cpu_per_call = (cpu_seconds(backend.pid) - cpu0) / args.calls
                direct.close()
                one.close()
                ups = [Caller(up_port, "/link-token", None, up_headers)
                       for _ in range(args.concurrent)]
                bes = [Caller(port, path, customer_token(f"bench-{i}"))
                       for i in range(args.concurrent)]
                up_rate, _, up_err2 = at_once(ups, args.seconds)
                be_rate, be_times, be_err2 = at_once(bes, args.seconds)
                for c in ups + bes:
                    c.close()
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in reversed(procs):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return {"upstream_p50": p50_ms(up_solo), "backend_p50": p50_ms(be_solo),
            "own_p50": p50_ms(be_solo) - p50_ms(up_solo), "upstream_rate": up_rate,
            "backend_rate": be_rate, "backend_p50_at_once": p50_ms(be_times),
            "cpu_per_call": cpu_per_call * 1000, "errors": be_err + be_err2,
            "upstream_errors": up_err + up_err2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backend_load")
    parser.add_argument("--database", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--calls", type=int, default=300, help="calls one at a time")
    parser.add_argument("--concurrent", type=int, default=16, help="customers at once")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the burst")
    parser.add_argument("--workers", type=int,
                        default=int(os.environ.get("BACKEND_WORKERS") or 1))
    parser.add_argument("--upstream", choices=("stand-in", "sandbox"), default="stand-in",
                        help="what the backend calls: the stand-in or the sandbox")
    parser.add_argument("--serve-upstream", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        asyncio.run(_upstream_main(args.serve_upstream))
        return 0
    print(f"create-link-token through the backend ({args.workers} worker(s)) vs the "
          f"{args.upstream} upstream alone; {args.calls} calls one at a time, "
          f"{args.concurrent} customers at once for {args.seconds:.0f} s")
    failed = False
    for kind in [k.strip() for k in args.database.split(",") if k.strip()]:
        r = measure(kind, args)
        ratio = r["backend_rate"] / r["upstream_rate"]
        print(f"{kind:10s} one at a time: backend p50 {r['backend_p50']:.2f} ms, upstream "
              f"alone p50 {r['upstream_p50']:.2f} ms, backend's own time p50 "
              f"{r['own_p50']:.2f} ms (goal <= 10); backend CPU {r['cpu_per_call']:.2f} ms a call")
        print(f"{kind:10s} {args.concurrent} at once: backend {r['backend_rate']:.0f} answers/s "
              f"(p50 {r['backend_p50_at_once']:.1f} ms), upstream alone "
              f"{r['upstream_rate']:.0f}/s, ratio {ratio:.0%} (goal >= 40%); errors "
              f"{r['errors']:.0f} (upstream alone {r['upstream_errors']:.0f}); load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        failed |= r["errors"] > 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
