"""Customers' bearer JWTs: HS256 / RS256, exp and sub required, aud / iss when configured."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.backend.helpers import JWT_SECRET, assert_error, auth, get, token

SESSION = "/api/kryptos/session"


def _unsigned(claims: dict) -> str:
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def _session(url: str, bearer: str | None) -> object:
    headers = {} if bearer is None else {"Authorization": bearer}
    return get(url, SESSION, headers=headers)


def test_valid_hs256_token_is_accepted(backend):
    answer = get(backend.url, SESSION, headers=auth("alice"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"has_valid_session": False, "reason": "no_token"}


@pytest.mark.parametrize("bearer", [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Bearer not-a-jwt",
])
def test_missing_or_malformed_header_is_401(backend, bearer):
    answer = _session(backend.url, bearer)
    assert_error(answer, 401, "UNAUTHENTICATED")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_alg_none_is_401(backend):
    bearer = "Bearer " + _unsigned({"sub": "alice", "exp": int(time.time()) + 600})
    assert_error(_session(backend.url, bearer), 401, "UNAUTHENTICATED")


def test_bad_signature_is_401(backend):
    bearer = "Bearer " + token("alice", secret="another-secret-" + "z" * 32)
    assert_error(_session(backend.url, bearer), 401, "UNAUTHENTICATED")


def test_tampered_payload_is_401(backend):
    header, _, sig = token("alice").split(".")
    forged = base64.urlsafe_b64encode(json.dumps(
        {"sub": "mallory", "exp": int(time.time()) + 600}).encode()).rstrip(b"=").decode()
    assert_error(_session(backend.url, f"Bearer {header}.{forged}.{sig}"), 401,
                 "UNAUTHENTICATED")


def test_expired_is_401(backend):
    assert_error(_session(backend.url, "Bearer " + token("alice", exp_in=-120)), 401,
                 "UNAUTHENTICATED")


def test_missing_exp_is_401(backend):
    bearer = "Bearer " + jwt.encode({"sub": "alice"}, JWT_SECRET, algorithm="HS256")
    assert_error(_session(backend.url, bearer), 401, "UNAUTHENTICATED")


# (iat, exp) in seconds from the moment the test runs (None: no iat), so the claims are as
# fresh when the request is sent however long after collection that is.
@pytest.mark.parametrize(("iat_in", "exp_in"), [
    (0, 24 * 3600 + 60),
    (None, 24 * 3600 + 60),  # no iat: counted from now
    (-24 * 3600, 3600),  # 25 h
    (0, 10 * 365 * 86400),
])
def test_a_token_living_longer_than_allowed_is_401(backend, iat_in, exp_in):
    now = int(time.time())
    claims = {"sub": "alice", "exp": now + exp_in}
    if iat_in is not None:
        claims["iat"] = now + iat_in
    bearer = "Bearer " + jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    body = assert_error(_session(backend.url, bearer), 401, "UNAUTHENTICATED")
    assert "lives longer" in body["error"]


def test_lifetime_limit_is_a_setting(start_backend):
    b = start_backend(jwt_max_lifetime=600)
    now = int(time.time())
    ok = jwt.encode({"sub": "a", "iat": now - 60, "exp": now + 500}, JWT_SECRET,
                    algorithm="HS256")
    too_long = jwt.encode({"sub": "a", "iat": now, "exp": now + 700}, JWT_SECRET,
                          algorithm="HS256")
    assert _session(b.url, "Bearer " + ok).status_code == 200
    assert_error(_session(b.url, "Bearer " + too_long), 401, "UNAUTHENTICATED")
    assert_error(_session(b.url, "Bearer " + token("a", exp_in=700)), 401, "UNAUTHENTICATED")


def test_a_day_long_token_is_accepted(backend):
    now = int(time.time())
    bearer = "Bearer " + jwt.encode({"sub": "alice", "iat": now, "exp": now + 24 * 3600},
                                    JWT_SECRET, algorithm="HS256")
    assert _session(backend.url, bearer).status_code == 200


@pytest.mark.parametrize("sub", [None, "", "   ", "a\nb", "x" * 201, "bad ref!", "=cmd",
                                 "-lead"])
def test_missing_or_bad_sub_is_401(backend, sub):
    if sub is None:
        bearer = "Bearer " + token(None)
    else:
        bearer = "Bearer " + token(sub)
    assert_error(_session(backend.url, bearer), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize("sub", ["crm-1001", "jane.doe+vip@example.com", "auth0:abc_123"])
def test_a_sub_the_console_accepts_is_a_customer(backend, sub):
    """One customer reference rule (services/operations/validation.py) for both."""
    from services.operations.validation import customer_ref

    assert customer_ref(sub) == sub
    assert _session(backend.url, "Bearer " + token(sub)).status_code == 200


def test_other_algorithm_is_401(backend):
    bearer = "Bearer " + token("alice", alg="HS512", secret=JWT_SECRET * 2)
    assert_error(_session(backend.url, bearer), 401, "UNAUTHENTICATED")


def test_audience_and_issuer_when_configured(start_backend):
    b = start_backend(backend_jwt_audience="kryptos-backend", backend_jwt_issuer="https://login")
    good = auth("alice", aud="kryptos-backend", iss="https://login")
    assert get(b.url, SESSION, headers=good).status_code == 200
    for headers in (auth("alice", aud="someone-else", iss="https://login"),
                    auth("alice", iss="https://login"),
                    auth("alice", aud="kryptos-backend", iss="https://evil"),
                    auth("alice", aud="kryptos-backend")):
        assert_error(get(b.url, SESSION, headers=headers), 401, "UNAUTHENTICATED")


def test_audience_ignored_when_not_configured(backend):
    assert get(backend.url, SESSION, headers=auth("alice", aud="anything")).status_code == 200


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_rs256_with_public_key(start_backend, rsa_keys):
    private, public = rsa_keys
    b = start_backend(backend_jwt_secret=None, backend_jwt_public_key=public)
    good = "Bearer " + token("alice", alg="RS256", key=private)
    assert _session(b.url, good).status_code == 200
    # HS256 is not configured here: an HMAC token (even keyed with the public key) is refused.
    confused = "Bearer " + jwt.encode({"sub": "alice", "exp": int(time.time()) + 600},
                                      b"other-hmac-key-" + b"q" * 32, algorithm="HS256")
    assert_error(_session(b.url, confused), 401, "UNAUTHENTICATED")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = "Bearer " + token("alice", alg="RS256", key=other)
    assert_error(_session(b.url, wrong), 401, "UNAUTHENTICATED")


def test_no_key_configured_refuses_everyone(start_backend):
    b = start_backend(backend_jwt_secret=None)
    body = assert_error(get(b.url, SESSION, headers=auth("alice")), 401, "UNAUTHENTICATED")
    assert "not configured" in body["error"]
    ready = get(b.url, "/readyz")
    assert ready.status_code == 503
    assert any("BACKEND_JWT_SECRET" in p for p in ready.json()["problems"])
