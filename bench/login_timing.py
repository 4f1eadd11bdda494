"""How long a failed console login takes, by kind of failure: an unknown username, a wrong
password for a user whose hash has bcrypt cost 10, and for one of cost 12. Prints the median
and p90 of `--tries` attempts each (default 30), without the failure floor and with it
(`--floor`, default the settings' CONSOLE_LOGIN_FAILURE_FLOOR).

    .venv/bin/python -m bench.login_timing [--tries 30] [--floor 1.5]

The attempts go through `dashboard.login.attempt_login` against a sandbox-mode console
built in a temporary data folder (its own SQLite database and users file, an in-process
sandbox): the lock check, the password check, the failure count and the audit write, as
the login form runs them. Limits are raised so that no attempt is refused by a lock.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

KINDS = (("unknown user", "nobody-has-this-name"), ("wrong password, cost 10", "cost10"),
         ("wrong password, cost 12", "cost12"))


def _figures(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[max(0, int(round(0.9 * len(ordered))) - 1)]
    return f"median {statistics.median(ordered) * 1000:7.0f} ms   p90 {p90 * 1000:7.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=30)
    parser.add_argument("--floor", type=float, default=None,
                        help="seconds (default: the settings' login_failure_floor)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="login-timing-") as tmp:
        os.environ.update({
            "CONSOLE_DATA_DIR": tmp, "CONSOLE_SECRETS_FILE": str(Path(tmp) / "none.toml"),
            "SYNC_ENABLED": "false", "CONSOLE_RECONCILE_INTERVAL": "0",
            "CONSOLE_LOGIN_MAX_FAILURES": "100000", "CONSOLE_LOGIN_MAX_FAILURES_WIDE": "100000",
        })
        for name in ("KRYPTOS_CLIENT_ID", "KRYPTOS_CLIENT_SECRET", "DATABASE_URL",
                     "SANDBOX_URL", "CONSOLE_AUTH_FILE"):
            os.environ.pop(name, None)
        from dashboard.login import attempt_login, failure_floor
        from dashboard.runtime import build_runtime
        from services.operations.login_policy import FailureFloor
        from services.operations.users_file import add_user

        runtime = build_runtime()
        assert runtime.ok and runtime.auth_file is not None, runtime.problems
        add_user(runtime.auth_file, "cost10", "cost10-password", ["viewer"], rounds=10)
        add_user(runtime.auth_file, "cost12", "cost12-password", ["viewer"], rounds=12)
        floor = args.floor if args.floor is not None else failure_floor(runtime).seconds
        try:
            attempt_login(runtime, "cost12", "warm-up-password", floor=FailureFloor(0))
            for label, seconds in (("without the floor", 0.0), (f"floor {floor:g} s", floor)):
                print(f"{args.tries} failed logins each, {label}:")
                for kind, username in KINDS:
                    times = []
                    for i in range(args.tries):
                        start = time.perf_counter()
                        message = attempt_login(runtime, username, f"wrong-password-{i}",
                                                floor=FailureFloor(seconds))
                        times.append(time.perf_counter() - start)
                        assert message and message.startswith("Wrong username"), message
                    print(f"  {kind:<26} {_figures(times)}")
        finally:
            runtime.stop()


if __name__ == "__main__":
    main()
