"""`python -m sandbox [--host 127.0.0.1] [--port 8765] [--seed 42] [--grants 40] ...`"""

from __future__ import annotations

import argparse
import signal
import threading

from sandbox.handle import start_sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox",
                                     description="Local stand-in for the Kryptos API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--grants", type=int, default=40)
    parser.add_argument("--resync-delay", type=float, default=5.0)
    parser.add_argument("--newer-api", action="store_true",
                        help="answer with the newer guide's extra fields and 409 codes")
    parser.add_argument("--webhook-url", help="send signed webhooks (integration.*) here")
    parser.add_argument("--webhook-secret",
                        help="their Standard Webhooks signing secret (whsec_<base64>)")
    args = parser.parse_args(argv)
    if args.webhook_url and not args.webhook_secret:
        parser.error("--webhook-url needs --webhook-secret")
    handle = start_sandbox(port=args.port, seed=args.seed, grants=args.grants,
                           resync_delay=args.resync_delay, newer_api=args.newer_api,
                           host=args.host, webhook_url=args.webhook_url,
                           webhook_secret=args.webhook_secret)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"Kryptos sandbox on {handle.base_url} (data API {handle.data_url}); "
          f"client {handle.client_id} / {handle.client_secret}"
          + (f"; webhooks to {args.webhook_url}" if args.webhook_url else ""), flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        print("stopping", flush=True)
    handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
