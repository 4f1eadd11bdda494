"""A console process for the crash tests: builds the operations over the test's database and
sandbox, prints "start", runs one change and prints "finished". The tests kill it with
SIGKILL while the sandbox holds the change's answer.

    python -m tests.services.operations.crash_driver SPEC_JSON

SPEC: {database_url, vault_key, sandbox_url, case, args, approvals}. `approvals`: the
four-eyes policy on (default) or off (a bulk run of 50 then runs without a request). The
use-case calls are all in `run_case` (one place to adapt when the use cases change)."""

from __future__ import annotations

import json
import sys
from typing import Any

from sandbox import SandboxClient
from services.kryptos.client import KryptosClient
from services.operations import Actor, Operations
from services.operations.approval_policy import ApprovalPolicy
from services.settings import parse_tiers
from services.store import AuditLog, TokenVault, open_database
from services.store.readmodel import ReadModel

TIERS = parse_tiers("Free=1000,Plus=10000,Pro=100000,Unlimited=off")


def person(name: str, role: str) -> Actor:
    return Actor(name, name.title(), frozenset({role}))


def run_case(ops: Operations, case: str, args: dict[str, Any]) -> object:
    """The change under test, as the console would run it."""
    if case == "limit":  # a direct change of one Guest's limit
        return ops.limits.set_guest_limit(person(args["by"], "finance"), args["grant_id"],
                                          args["limit"], True, args["reason"])
    if case == "approve":  # an approval runs the change it was asked for
        return ops.approvals.approve(person(args["by"], args["role"]), args["request_id"])
    if case == "bulk":  # a tier on many grants, no approval
        return ops.limits.apply_tier(person(args["by"], "finance"), args["grant_ids"],
                                     args["tier"], args["reason"])
    raise SystemExit(f"unknown case {case!r}")


def main(spec: dict[str, Any]) -> None:
    db = open_database(spec["database_url"])
    sb = SandboxClient(spec["sandbox_url"])
    # A read timeout well beyond any hold in the tests: the process is killed while waiting.
    client = KryptosClient(sb.client_id, sb.client_secret, sb.connect_url, sb.data_url,
                           connect_timeout=2.0, read_timeout=120.0, max_retries=0)
    ops = Operations(client, AuditLog(db), TokenVault(db, spec["vault_key"].encode()), TIERS,
                     max_workers=4,
                     approval_policy=ApprovalPolicy(enabled=spec.get("approvals", True)),
                     readmodel=ReadModel(db, TIERS))
    print("start", flush=True)
    run_case(ops, spec["case"], spec["args"])
    print("finished", flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
