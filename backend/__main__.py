"""`python -m backend [--host 127.0.0.1] [--port 8000]`: the backend on uvicorn."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import uvicorn

from backend.tcp import HTTP_PROTOCOL
from services.logs import setup as setup_logging
from services.settings import ConfigError, load_settings
from services.store.errors import StoreError


def worker_app() -> object:
    """One worker's application (BACKEND_WORKERS > 1): the same logging and settings."""
    setup_logging("backend", load_settings())
    from backend.app import create_app

    return create_app()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend",
                                     description="The Kryptos Connect customer backend.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--proxy-headers", action="store_true",
                        help="trust X-Forwarded-* from --forwarded-allow-ips (behind a proxy)")
    parser.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    args = parser.parse_args(argv)
    setup_logging("backend")
    from backend.app import create_app

    try:
        settings = load_settings()
        setup_logging("backend", settings)
        app = create_app(settings)
    except (ConfigError, StoreError) as exc:
        print(f"backend: {exc.user_message}", file=sys.stderr)
        return 2
    mode = "sandbox" if settings.sandbox_mode else "live"
    workers = settings.backend_workers
    common = dict(host=args.host, port=args.port, log_config=None,
                  proxy_headers=args.proxy_headers,
                  forwarded_allow_ips=args.forwarded_allow_ips, server_header=False,
                  # Nagle off on every connection (backend/tcp.py: without it a worker's
                  # kept-alive connection waited ~40 ms for each answer).
                  http=HTTP_PROTOCOL)
    if workers > 1:
        # Each worker builds its own app (engine, client) from the same settings. Their
        # metrics meet in one folder (prometheus-client's multiprocess mode), made fresh
        # here before any worker starts.
        app.state.backend.close()
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                              tempfile.mkdtemp(prefix="kryptos-backend-metrics-"))
        print(f"Kryptos backend ({mode} mode, {workers} workers) starting on "
              f"http://{args.host}:{args.port}", flush=True)
        uvicorn.run("backend.__main__:worker_app", factory=True, workers=workers, **common)
        return 0
    # log_config=None: uvicorn's loggers go through the process's one setup (services/logs).
    config = uvicorn.Config(app, **common)
    server = uvicorn.Server(config)
    print(f"Kryptos backend ({mode} mode) starting on http://{args.host}:{args.port}",
          flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
