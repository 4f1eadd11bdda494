"""Validation of each field: a bad input names the field, says why, and sends nothing."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.operations import ValidationError
from services.operations import validation as v

from .conftest import Env, actor

ADMIN = actor("admin")
SAFE = string.ascii_letters + string.digits + "_-"
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- pure validators, property-based ---------------------------------------------------------

@given(st.text(alphabet=SAFE, min_size=1, max_size=128))
def test_grant_id_accepts_safe_suffix(suffix: str) -> None:
    assert v.grant_id("cgrant_" + suffix) == "cgrant_" + suffix


@given(st.text(max_size=60))
def test_grant_id_rejects_anything_else(text: str) -> None:
    ok = re.fullmatch(r"cgrant_[A-Za-z0-9_-]{1,128}", text.strip()) is not None
    if ok:
        assert v.grant_id(text) == text.strip()
    else:
        with pytest.raises(ValidationError) as info:
            v.grant_id(text)
        assert info.value.field == "grant_id" and info.value.reason


@given(st.text(max_size=40))
def test_wallet_id_safe_or_refused(text: str) -> None:
    try:
        out = v.wallet_id(text)
    except ValidationError as exc:
        assert exc.field == "wallet_id"
        return
    assert out and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", out)
    assert "/" not in out and "?" not in out and " " not in out


@given(st.integers())
def test_limit_range(n: int) -> None:
    if 1 <= n <= 10**9:
        assert v.transaction_limit(n) == n
    else:
        with pytest.raises(ValidationError) as info:
            v.transaction_limit(n)
        assert info.value.field == "transaction_limit"


@given(st.one_of(st.floats(), st.text(), st.booleans(), st.none()))
def test_limit_must_be_an_int(value: object) -> None:
    with pytest.raises(ValidationError):
        v.transaction_limit(value)


@given(st.text(max_size=600))
def test_reason_length(text: str) -> None:
    n = len(text.strip())
    if 5 <= n <= 500:
        assert v.reason(text) == text.strip()
    else:
        with pytest.raises(ValidationError) as info:
            v.reason(text)
        assert info.value.field == "reason"


@given(st.text(max_size=20))
def test_mode(text: str) -> None:
    if text in ("latest", "from_start"):
        assert v.mode(text) == text
    else:
        with pytest.raises(ValidationError) as info:
            v.mode(text)
        assert info.value.field == "mode" and "latest" in info.value.user_message


def test_messages_say_field_and_why() -> None:
    with pytest.raises(ValidationError) as info:
        v.transaction_limit(0)
    assert info.value.field == "transaction_limit"
    assert info.value.user_message.startswith("The limit must be at least 1 (you gave 0)")
    with pytest.raises(ValidationError) as info:
        v.grant_id("grant_1")
    assert "cgrant_" in info.value.user_message
    assert v.reason("   ", required=False) is None
    with pytest.raises(ValidationError):
        v.grant_ids("cgrant_abc")
    assert v.grant_ids(["cgrant_a", "cgrant_a", "cgrant_b"]) == ("cgrant_a", "cgrant_b")


# --- operations: nothing is sent upstream on a bad input -------------------------------------

BAD_CALLS = {
    "grant_id": lambda ops: ops.grants.revoke_grant(ADMIN, "cgrant_../x", reason="valid reason"),
    "reason": lambda ops: ops.grants.revoke_grant(ADMIN, "cgrant_abc", reason="no"),
    "ticket": lambda ops: ops.grants.revoke_grant(ADMIN, "cgrant_abc", "valid reason",
                                                  ticket="a\nb"),
    "wallet_id": lambda ops: ops.grants.resync_integration(
        ADMIN, "cgrant_abc", "wal let", "latest"),
    "mode": lambda ops: ops.grants.resync_integration(ADMIN, "cgrant_abc", "wallet_1", "full"),
    "reason ": lambda ops: ops.grants.resync_integration(
        ADMIN, "cgrant_abc", "wallet_1", "from_start"),
    "transaction_limit": lambda ops: ops.limits.set_guest_limit(
        ADMIN, "cgrant_abc", 10**9 + 1, reason="valid reason", confirmed=True),
    "transaction_limit ": lambda ops: ops.limits.set_guest_limit(
        ADMIN, "cgrant_abc", reason="valid", confirmed=True),
    "enable_limiter": lambda ops: ops.limits.set_guest_limit(
        ADMIN, "cgrant_abc", enable_limiter="yes", reason="valid reason", confirmed=True),
    "tier": lambda ops: ops.limits.apply_tier(ADMIN, ["cgrant_abc"], "Gold", reason="valid reason"),
    "grant_ids": lambda ops: ops.limits.apply_tier(ADMIN, [], "Free", reason="valid reason"),
    "grant_ids[1]": lambda ops: ops.limits.apply_tier(
        ADMIN, ["cgrant_a", "x"], "Free", "valid reason"),
    "customer_ref": lambda ops: ops.connect.create_link_token(ADMIN, "  "),
    "public_token": lambda ops: ops.connect.exchange_public_token(ADMIN, "c-1", "cat_secret"),
}


@pytest.mark.parametrize("field", sorted(BAD_CALLS))
def test_bad_input_sends_nothing(env: Env, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        BAD_CALLS[field](env.ops)
    assert info.value.field == field.strip()
    msg = info.value.user_message
    # A sentence a person reads: no "field_name:" prefix, no "is required" fragment.
    assert msg[0].isupper() or msg[0] == "“", msg
    assert not msg.startswith(field.strip() + ":") and ": is required" not in msg
    assert env.upstream() == []
    assert env.events() == []  # validation failures are not audited: nothing was attempted


@FAST
@given(limit=st.integers(min_value=-(10**12), max_value=10**12))
def test_set_limit_property(env: Env, limit: int) -> None:
    """Any out-of-range limit is refused before a call; never a PATCH with it."""
    if 1 <= limit <= 10**9:
        return
    env.sandbox.clear_requests_log()
    with pytest.raises(ValidationError):
        env.ops.limits.set_guest_limit(ADMIN, "cgrant_abc", limit, reason="valid reason",
                                       confirmed=True)
    assert env.upstream() == []


@FAST
@given(gid=st.text(max_size=30).filter(lambda s: not re.fullmatch(r"\s*cgrant_[\w-]+\s*", s)))
def test_revoke_bad_grant_property(env: Env, gid: str) -> None:
    env.sandbox.clear_requests_log()
    with pytest.raises(ValidationError) as info:
        env.ops.grants.revoke_grant(ADMIN, gid, reason="valid reason")
    assert info.value.field == "grant_id"
    assert env.upstream() == []


@pytest.mark.parametrize(("typed", "words"), [
    ("12.5", "has a fraction"),
    ("1e3", "power of ten"),
    ("-5", "at least 1"),
    ("0", "at least 1"),
    ("99999999999999999999", "at most 1,000,000,000"),
    ("", "Please type a limit"),
    ("ten", "not a whole number"),
    ("7,5", "has a fraction"),
])
def test_parse_limit_refuses_with_a_reason(typed: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        v.parse_limit(typed)
    assert info.value.field == "transaction_limit"
    assert words in info.value.user_message


@pytest.mark.parametrize(("typed", "value"), [
    ("7500", 7500), (" 7,500 ", 7500), ("1 000 000", 1_000_000), ("+12", 12), (3000, 3000),
])
def test_parse_limit_takes_whole_numbers(typed: object, value: int) -> None:
    assert v.parse_limit(typed) == value


def test_plain_words_for_required_fields() -> None:
    with pytest.raises(ValidationError) as info:
        v.reason("")
    assert info.value.user_message.startswith("Please give a reason")
    with pytest.raises(ValidationError) as info:
        v.customer_ref(" ")
    assert "customer_ref" not in info.value.user_message
    assert "customer reference" in info.value.user_message
