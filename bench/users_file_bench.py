"""How long reading and writing the users file takes with N users, with PyYAML's pure-Python
safe loader/dumper and with libyaml's (which `services/operations/users_file.py` uses when
PyYAML has it), plus one `UserOps.list_users` over a SQLite database (the Users page's list:
the file, the sessions grouped by user, the second-factor usernames, the locks). Prints the
median of `--tries` runs (default 5) for each size; compare the columns of one run.

    .venv/bin/python -m bench.users_file_bench [--users 100 500 2000] [--tries 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from services.operations import Actor
from services.operations.users import Body, UserOps
from services.operations.users_file import User, credentials_dict, load_users, save_users
from services.store.db import open_database
from services.store.sessions import LoginFailures, SessionStore

T = TypeVar("T")
HASH = "$2b$04$" + "a" * 53  # the shape of a bcrypt hash; never checked here


class _NoAudit:
    """A recorder for the read only (`list_users` records nothing)."""

    operator = True

    def check(self, actor: Actor, action: str, username: str | None) -> None:
        return None

    def run(self, actor: Actor, action: str, body: Body[T], *, target_id: str | None,
            params: Mapping[str, Any] | None) -> T:
        raise AssertionError("the bench makes no change")


def _median_ms(fn: Callable[[], object], tries: int) -> float:
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    print(f"{'users':>6} {'pure load':>10} {'libyaml load':>13} {'save':>8} {'list_users':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = open_database(f"sqlite:///{root / 'console.db'}")
        sessions = SessionStore(db)
        for n in args.users:
            path = root / f"users-{n}.yaml"
            users = {f"user{i}": User(f"user{i}", f"User {i}", f"user{i}@example.com", HASH,
                                      ("support",)) for i in range(n)}
            save = _median_ms(lambda: save_users(path, users), args.tries)  # noqa: B023
            text = path.read_text(encoding="utf-8")
            pure = _median_ms(lambda: yaml.safe_load(text), args.tries)  # noqa: B023
            fast = _median_ms(lambda: load_users(path), args.tries)  # noqa: B023
            for i in range(0, n, 10):  # one login in ten users
                sessions.create(f"user{i}", ("support",), HASH)
            ops = UserOps(path, _NoAudit(), sessions=sessions, throttle=LoginFailures(db))
            actor = Actor("bench", roles=frozenset({"admin"}))
            listed = _median_ms(lambda: ops.list_users(actor), args.tries)  # noqa: B023
            assert len(credentials_dict(users)["usernames"]) == n
            print(f"{n:>6} {pure:>8.1f}ms {fast:>11.1f}ms {save:>6.1f}ms {listed:>9.1f}ms")
        db.dispose()


if __name__ == "__main__":
    main()
