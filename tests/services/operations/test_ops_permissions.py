"""The whole role-by-operation table: allowed and denied, every denial audited."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from services.operations import (
    PERMISSIONS,
    Actor,
    OperationError,
    Permission,
    PermissionDenied,
    Role,
    can,
)

from .conftest import Env, actor

P = Permission
# The issue's table, written out independently of the code's.
EXPECTED = {
    "viewer": {P.VIEW_GRANTS},
    "support": {P.VIEW_GRANTS, P.RESYNC_LATEST, P.RESYNC_FROM_START, P.REVOKE_GRANT,
                P.MANAGE_TOKENS, P.VIEW_GRANT_HISTORY},
    "finance": {P.VIEW_GRANTS, P.MANAGE_LIMITS, P.READ_AUDIT, P.VIEW_GRANT_HISTORY},
    "admin": set(P),
}


def test_permission_table_matches_issue() -> None:
    assert {r.value: set(p) for r, p in PERMISSIONS.items()} == EXPECTED


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("perm", list(P))
def test_can_single_role(role: str, perm: Permission) -> None:
    assert can(actor(role), perm) is (perm in EXPECTED[role])


def test_several_roles_have_the_union() -> None:
    a = actor("support", "finance")
    assert {p for p in P if can(a, p)} == EXPECTED["support"] | EXPECTED["finance"]
    assert not can(Actor("x", "X", frozenset()), P.VIEW_GRANTS)
    assert not can(Actor("x", "X", frozenset({"root"})), P.VIEW_GRANTS)
    assert Role("admin") is Role.ADMIN


# --- each operation, as each role, against the sandbox --------------------------------------

def _guest(env: Env) -> str:
    return env.stored(kind="guest")[0]["grant_id"]


def _api_wallet(env: Env) -> tuple[str, str]:
    row, integ = env.find_integration(lambda i: not i.is_csv)
    return row["grant_id"], integ.wallet_id


def _csv_wallet(env: Env) -> tuple[str, str]:
    row, integ = env.find_integration(lambda i: i.is_csv)
    return row["grant_id"], integ.wallet_id


def op_page(env: Env, a: Actor) -> Any:
    return env.ops.grants.page(a)


def op_detail(env: Env, a: Actor) -> Any:
    return env.ops.grants.grant_detail(a, _guest(env))


def op_history(env: Env, a: Actor) -> Any:
    return env.ops.grants.grant_history(a, _guest(env))


def op_overview(env: Env, a: Actor) -> Any:
    return env.ops.grants.overview(a)


def op_resync_latest(env: Env, a: Actor) -> Any:
    gid, wid = _api_wallet(env)
    return env.ops.grants.resync_integration(a, gid, wid, "latest")


def op_resync_from_start(env: Env, a: Actor) -> Any:
    gid, wid = _csv_wallet(env)
    return env.ops.grants.resync_integration(a, gid, wid, "from_start", reason="customer re-upload")


def op_revoke(env: Env, a: Actor) -> Any:
    return env.ops.grants.revoke_grant(a, _guest(env), reason="customer asked to disconnect")


def op_set_limit(env: Env, a: Actor) -> Any:
    return env.ops.limits.set_guest_limit(a, _guest(env), 5000, reason="upgrade to paid plan",
                                          confirmed=True)


def op_apply_tier(env: Env, a: Actor) -> Any:
    return env.ops.limits.apply_tier(a, [_guest(env)], "Plus", reason="bulk upgrade of trial users",
                                     confirmed=True)


def op_link_token(env: Env, a: Actor) -> Any:
    return env.ops.connect.create_link_token(a, "customer-42")


def op_exchange(env: Env, a: Actor) -> Any:
    pub = env.sandbox.create_public_token(kind="guest")["public_token"]
    return env.ops.connect.exchange_public_token(a, "customer-43", pub)


def op_import(env: Env, a: Actor) -> Any:
    t = env.stored()[0]
    text = "grant_id,access_token,customer_ref\n" f"{t['grant_id']},{t['access_token']},c-1\n"
    return env.ops.connect.import_tokens(a, io.StringIO(text))


def op_audit_page(env: Env, a: Actor) -> Any:
    return env.ops.audit.audit_page(a)


def op_export(env: Env, a: Actor) -> Any:
    return env.ops.audit.export_audit(a, fmt="csv")


def op_verify(env: Env, a: Actor) -> Any:
    return env.ops.audit.verify_audit(a)


OPERATIONS: dict[str, tuple[Callable[[Env, Actor], Any], Permission, str]] = {
    "grant_page": (op_page, P.VIEW_GRANTS, "grant.view"),
    "grant_detail": (op_detail, P.VIEW_GRANTS, "grant.view"),
    "grant_history": (op_history, P.VIEW_GRANT_HISTORY, "audit.read"),
    "overview": (op_overview, P.VIEW_GRANTS, "grant.view"),
    "resync_latest": (op_resync_latest, P.RESYNC_LATEST, "integration.resync"),
    "resync_from_start": (op_resync_from_start, P.RESYNC_FROM_START, "integration.resync"),
    "revoke_grant": (op_revoke, P.REVOKE_GRANT, "grant.revoke"),
    "set_guest_limit": (op_set_limit, P.MANAGE_LIMITS, "guest.limit.update"),
    "apply_tier": (op_apply_tier, P.MANAGE_LIMITS, "guest.tier.apply"),
    "create_link_token": (op_link_token, P.MANAGE_TOKENS, "link_token.create"),
    "exchange_public_token": (op_exchange, P.MANAGE_TOKENS, "token.exchange"),
    "import_tokens": (op_import, P.MANAGE_TOKENS, "token.import"),
    "audit_page": (op_audit_page, P.READ_AUDIT, "audit.read"),
    "export_audit": (op_export, P.READ_AUDIT, "audit.export"),
    "verify_audit": (op_verify, P.READ_AUDIT, "audit.verify"),
}


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_role_by_operation(env: Env, role: str, name: str) -> None:
    run, perm, action = OPERATIONS[name]
    a = actor(role)
    allowed = perm in EXPECTED[role]
    if allowed:
        try:
            run(env, a)
        except PermissionDenied:
            pytest.fail(f"{role} should be allowed to {name}")
        except OperationError as exc:  # allowed but failed upstream: still not a denial
            pytest.fail(f"{role} {name} failed: {exc.user_message}")
        assert not env.events(outcome="denied")
        return
    env.sandbox.clear_requests_log()
    before = len(env.events())
    with pytest.raises(PermissionDenied) as info:
        run(env, a)
    assert role in info.value.user_message or a.username in info.value.user_message
    denied = env.events(outcome="denied")
    assert len(denied) == 1 and len(env.events()) == before + 1
    ev = denied[0]
    assert ev.action == action and ev.actor_username == a.username
    assert ev.actor_roles == (role,) and ev.error_code == "PERMISSION_DENIED"
    # Nothing that changes state was sent upstream (finding test fixtures may read).
    assert not [r for r in env.upstream() if r["method"] in ("POST", "PATCH", "DELETE")
                and not r["path"].startswith("/link-token/check-session")]


def test_denied_before_validation(env: Env) -> None:
    """A refusal for permissions comes first, even for invalid input, and is audited."""
    with pytest.raises(PermissionDenied):
        env.ops.grants.revoke_grant(actor("viewer"), "not-a-grant", reason="")
    assert [e.outcome for e in env.events()] == ["denied"]
    assert env.upstream() == []


def test_a_refusal_never_records_a_pasted_token_as_its_target(env: Env) -> None:
    token = env.stored()[0]["access_token"]
    with pytest.raises(PermissionDenied):
        env.ops.grants.revoke_grant(actor("viewer"), token, "pasted the wrong thing")
    (event,) = env.events(action="grant.revoke")
    assert event.outcome == "denied" and event.target_id is None
    assert token not in repr(event)
