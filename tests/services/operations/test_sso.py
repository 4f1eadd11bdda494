"""`ops.sso.admit`: an OpenID Connect identity's claims become a console user with roles, or a
refusal with its reason, audited in the real store (SQLite in tmp_path); "used" is read from
the real session table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.operations.sso import (
    BAD_USERNAME,
    IDENTITY_USED,
    LOCAL_ACCOUNT,
    MAX_IDENTITY_AGE,
    NO_MAPPED_GROUP,
    STALE_IDENTITY,
    SsoIdentity,
    SsoPolicy,
    SsoRefusal,
    multi_factor,
)
from services.settings import parse_role_map
from services.store.sessions import SessionStore
from tests.services.operations.conftest import actor

POLICY = SsoPolicy(role_map=parse_role_map(
    "kryptos-support=support,kryptos-finance=finance,kryptos-ops=support,"
    "kryptos-ops=finance,kryptos-admins=admin"))
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def claims(**extra: Any) -> dict[str, Any]:
    base = {"iss": "https://idp.example", "sub": "00u1", "iat": int(NOW.timestamp()) - 5,
            "preferred_username": "Sam.Support@corp.example", "name": "Sam Support",
            "email": "sam.support@corp.example", "groups": ["kryptos-support", "staff"],
            "amr": ["pwd"], "is_logged_in": True}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def sso_events(env: Any) -> list[Any]:
    return env.events(action="auth.sso_login")


def test_a_mapped_group_gives_its_roles(env) -> None:
    identity = env.ops.sso.admit(POLICY, claims(), NOW)
    assert isinstance(identity, SsoIdentity)
    # The address's local part, in the console's one form of a username.
    assert identity.username == "sam.support"
    assert identity.roles == ("support",)
    assert identity.name == "Sam Support" and identity.email == "sam.support@corp.example"
    assert identity.mfa is False
    assert sso_events(env) == []  # audited once the session exists, not here


def test_several_groups_give_the_union_in_the_consoles_order(env) -> None:
    identity = env.ops.sso.admit(POLICY, claims(groups=["kryptos-admins", "kryptos-ops"]),
                                 NOW)
    assert isinstance(identity, SsoIdentity)
    assert identity.roles == ("support", "finance", "admin")


def test_no_mapped_group_is_refused_and_audited(env) -> None:
    refusal = env.ops.sso.admit(POLICY, claims(groups=["contractors", "Kryptos-Support"]), NOW)
    assert isinstance(refusal, SsoRefusal)
    assert refusal.code == NO_MAPPED_GROUP
    assert "none of your groups" in refusal.message
    [event] = sso_events(env)
    assert (event.actor_username, event.outcome, event.error_code) == (
        "anonymous", "denied", NO_MAPPED_GROUP)
    assert event.params["sso_username"] == "sam.support"
    assert event.params["groups"] == ["contractors", "Kryptos-Support"]
    assert event.params["subject"] == "00u1"


def test_a_group_sent_as_one_string_counts(env) -> None:
    identity = env.ops.sso.admit(POLICY, claims(groups="kryptos-finance"), NOW)
    assert isinstance(identity, SsoIdentity) and identity.roles == ("finance",)


def test_the_claim_and_the_username_claim_are_settings(env) -> None:
    policy = SsoPolicy(claim="roles", role_map=POLICY.role_map, username_claim="upn")
    identity = env.ops.sso.admit(policy, claims(roles=["kryptos-admins"], upn="ada"), NOW)
    assert isinstance(identity, SsoIdentity)
    assert (identity.username, identity.roles) == ("ada", ("admin",))
    # Without the username claim, the e-mail address's local part.
    identity = env.ops.sso.admit(policy, claims(roles=["kryptos-admins"]), NOW)
    assert isinstance(identity, SsoIdentity) and identity.username == "sam.support"


def test_an_unusable_username_is_refused(env) -> None:
    refusal = env.ops.sso.admit(POLICY, claims(preferred_username="../etc", email=None), NOW)
    assert isinstance(refusal, SsoRefusal) and refusal.code == BAD_USERNAME
    assert [e.error_code for e in sso_events(env)] == [BAD_USERNAME]


def test_an_old_identity_asks_for_a_new_sign_in_without_an_audit(env) -> None:
    old = int(NOW.timestamp() - MAX_IDENTITY_AGE - 1)
    refusal = env.ops.sso.admit(POLICY, claims(iat=old), NOW)
    assert isinstance(refusal, SsoRefusal) and refusal.code == STALE_IDENTITY
    missing = env.ops.sso.admit(POLICY, claims(iat=None), NOW)
    assert isinstance(missing, SsoRefusal) and missing.code == STALE_IDENTITY
    assert sso_events(env) == []


def test_an_identity_opens_one_session(env) -> None:
    """A session of the user opened after the identity was issued means it was used: the
    30-day identity cookie must not reopen a session ended by a logout."""
    sessions = SessionStore(env.audit.db, clock=lambda: NOW)
    first = env.ops.sso.admit(POLICY, claims(), NOW, session_opened_since=sessions.opened_since)
    assert isinstance(first, SsoIdentity)
    sessions.create(first.username, first.roles, "")
    again = env.ops.sso.admit(POLICY, claims(), NOW, session_opened_since=sessions.opened_since)
    assert isinstance(again, SsoRefusal) and again.code == IDENTITY_USED
    # A new sign-in at the provider is a new identity, issued after that session.
    later = NOW + timedelta(seconds=30)
    fresh = env.ops.sso.admit(POLICY, claims(iat=int(later.timestamp())), later,
                              session_opened_since=sessions.opened_since)
    assert isinstance(fresh, SsoIdentity)
    assert sso_events(env) == []


def test_a_password_account_of_the_same_name_is_not_taken_over(env) -> None:
    refusal = env.ops.sso.admit(POLICY, claims(), NOW,
                                local_password_user=lambda name: name == "sam.support")
    assert isinstance(refusal, SsoRefusal) and refusal.code == LOCAL_ACCOUNT
    assert [e.error_code for e in sso_events(env)] == [LOCAL_ACCOUNT]


@pytest.mark.parametrize(("amr", "mfa"), [
    (["pwd"], False), (["pwd", "mfa"], True), (["otp"], True), (["hwk", "pin"], True),
    ("mfa", True), ([], False), (None, False), (["PWD", "OTP"], True), ([{"x": 1}], False),
])
def test_the_providers_amr_says_whether_a_second_factor_was_used(amr, mfa) -> None:
    assert multi_factor(claims(amr=amr)) is mfa


def test_the_accepted_sign_in_is_audited_with_the_identity(env) -> None:
    identity = env.ops.sso.admit(POLICY, claims(amr=["pwd", "mfa"]), NOW)
    assert isinstance(identity, SsoIdentity)
    who = actor(*identity.roles, name=identity.username)
    env.ops.sso.record_sso_login(who, identity)
    [event] = sso_events(env)
    assert (event.actor_username, event.outcome, event.target_id) == (
        "sam.support", "succeeded", "sam.support")
    assert event.params == {"issuer": "https://idp.example", "subject": "00u1", "mfa": True,
                            "groups": ["kryptos-support", "staff"], "roles": ["support"]}
