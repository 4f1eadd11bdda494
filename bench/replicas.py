"""Replicas behind nginx: how long a browser takes to reconnect when the console replica
serving it is killed, and how long the sync takes to move when its holder is killed.

    .venv/bin/python -m bench.replicas [--rounds 5]

Starts what tests/e2e/test_replicas.py starts (tests/e2e/replicas.py: a throwaway
PostgreSQL database, the sandbox, two backends, two consoles and Debian's nginx with
deploy/nginx.conf.template), then, `--rounds` times: a browser page (headless Chromium,
Debian's) routed through nginx to the console replica holding the sync lock, logged in;
SIGKILL that replica and time

- reconnection: until the page's connection is back through the other replica (then the
  next click must run there still logged in);
- takeover: until the other replica records itself as the sync holder (the lease,
  SYNC_LOCK_RETRY, bounds it: a standby retries the lock that often);

then start the killed replica again (its sync worker stands by from its start).

Prints each round and the median and worst of each. Needs nginx, chromium and PostgreSQL
(TEST_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.e2e import helpers as h  # noqa: E402
from tests.e2e.console_process import launch_chromium  # noqa: E402
from tests.e2e.replicas import (  # noqa: E402
    Stack,
    kill_serving_holder,
    route_to,
)
from tests.timing import wait_for  # noqa: E402


def _summary(name: str, values: list[float]) -> str:
    return (f"{name:<14} median {statistics.median(values):5.2f} s   worst {max(values):5.2f} s"
            f"   ({len(values)} rounds)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    takeovers: list[float] = []
    reconnects: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp, \
            sync_playwright() as p:
        browser = launch_chromium(p)
        stack = Stack.start(Path(tmp))
        try:
            print(f"replicas: 2 consoles, 2 backends behind nginx on PostgreSQL; "
                  f"lease (SYNC_LOCK_RETRY) {stack.lease:.0f} s", flush=True)
            for n in range(1, args.rounds + 1):
                ctx = browser.new_context()
                ctx.add_init_script(h.RUN_COUNTER_JS)
                page = ctx.new_page()
                holder = wait_for(stack.holder, timeout=60, what="a sync holder")
                route_to(stack, ctx, stack.console_of(holder))
                h.login(page, stack.console_url, "viewer")
                failover = kill_serving_holder(stack, page)
                reconnects.append(failover.reconnect_s)
                takeovers.append(failover.takeover_s)
                h.goto_page(page, "Grants")
                expect(page.get_by_test_id("stForm").filter(has_text="Log in")).to_have_count(0)
                ctx.close()
                stack.restart_console(failover.killed)
                print(f"round {n}: reconnection {reconnects[-1]:5.2f} s   "
                      f"takeover {takeovers[-1]:5.2f} s", flush=True)
        finally:
            stack.stop()
            browser.close()
    print(_summary("reconnection", reconnects))
    print(_summary("takeover", takeovers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
