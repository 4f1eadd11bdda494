"""The local OpenID Connect provider (sandbox/idp.py) over real HTTP on 127.0.0.1: discovery,
the sign-in page, the code flow with PKCE and nonce, the ID token checked against its JWKS,
userinfo, end session, and what it refuses."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from sandbox.idp import Client, IdpServer
from tests.e2e.console_process import free_port

CLIENT = Client("console", "client-secret", ("http://localhost:{port}/oauth2callback",))
REDIRECT = "http://localhost:8501/oauth2callback"


@pytest.fixture(scope="module")
def idp() -> Iterator[IdpServer]:
    with IdpServer(free_port(), [CLIENT]) as server:
        yield server


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorize(idp: IdpServer, **params: str) -> requests.Response:
    query = {"client_id": "console", "redirect_uri": REDIRECT, "response_type": "code",
             "scope": "openid profile email", "state": "st-1", "nonce": "n-1", **params}
    return requests.get(idp.url + "/authorize", params=query, timeout=5)


def sign_in(idp: IdpServer, username: str, mfa: bool = False, **params: str) -> dict:
    page = authorize(idp, **params)
    assert page.status_code == 200, page.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text).group(1)
    form = {"request_id": request_id, "username": username, **({"mfa": "on"} if mfa else {})}
    back = requests.post(idp.url + "/authorize/sign-in", data=form, allow_redirects=False,
                         timeout=5)
    assert back.status_code == 303
    location = back.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def token(idp: IdpServer, code: str, verifier: str | None, secret: str = "client-secret",
          **extra: str) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            **({"code_verifier": verifier} if verifier else {}), **extra}
    return requests.post(idp.url + "/token", data=form, auth=("console", secret), timeout=5)


def test_discovery_and_keys(idp: IdpServer) -> None:
    meta = requests.get(idp.url + "/.well-known/openid-configuration", timeout=5).json()
    assert meta["issuer"] == idp.url
    assert meta["authorization_endpoint"] == idp.url + "/authorize"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    keys = requests.get(meta["jwks_uri"], timeout=5).json()["keys"]
    assert [(k["kty"], k["alg"]) for k in keys] == [("RSA", "RS256")]


def test_the_sign_in_page_lists_the_demo_people(idp: IdpServer) -> None:
    page = authorize(idp)
    for person in ("sam.support", "fay.finance", "ada.admin", "otto.ops", "vic.viewer",
                   "cora.contractor"):
        assert f'value="{person}"' in page.text
    assert page.headers["cache-control"] == "no-store"


def test_the_code_flow_gives_a_signed_id_token(idp: IdpServer) -> None:
    verifier, challenge = pkce()
    back = sign_in(idp, "otto.ops", mfa=True, code_challenge=challenge,
                   code_challenge_method="S256")
    assert back["state"] == "st-1"
    answer = token(idp, back["code"], verifier)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    signing_key = jwt.PyJWKClient(idp.url + "/jwks").get_signing_key_from_jwt(body["id_token"])
    claims = jwt.decode(body["id_token"], signing_key.key, algorithms=["RS256"],
                        audience="console", issuer=idp.url)
    assert claims["nonce"] == "n-1" and claims["sub"] == "demo-otto.ops"
    assert claims["preferred_username"] == "otto.ops"
    assert claims["groups"] == ["kryptos-support", "kryptos-finance", "staff"]
    assert claims["amr"] == ["pwd", "mfa"]
    info = requests.get(idp.url + "/userinfo", timeout=5,
                        headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.json()["groups"] == claims["groups"]
    # A code works once.
    assert token(idp, back["code"], verifier).json()["error"] == "invalid_grant"


def test_without_a_second_factor_amr_says_password(idp: IdpServer) -> None:
    back = sign_in(idp, "sam.support")
    claims = jwt.decode(token(idp, back["code"], None).json()["id_token"],
                        options={"verify_signature": False})
    assert claims["amr"] == ["pwd"]


def test_what_the_token_endpoint_refuses(idp: IdpServer) -> None:
    verifier, challenge = pkce()
    back = sign_in(idp, "sam.support", code_challenge=challenge, code_challenge_method="S256")
    assert token(idp, back["code"], verifier, secret="wrong").status_code == 401
    wrong = token(idp, back["code"], "x" * 50)
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    # The failed try used the code up: a stolen code cannot be tried again and again.
    assert token(idp, back["code"], verifier).json()["error"] == "invalid_grant"
    other = sign_in(idp, "sam.support")
    moved = token(idp, other["code"], None, redirect_uri="http://localhost:1/oauth2callback")
    assert moved.json()["error"] == "invalid_grant"
    assert requests.get(idp.url + "/userinfo", timeout=5,
                        headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.mark.parametrize(("params", "says"), [
    ({"client_id": "someone-else"}, "Unknown client_id"),
    ({"redirect_uri": "https://attacker.example/oauth2callback"}, "not registered"),
    ({"redirect_uri": "http://localhost:8501/elsewhere"}, "not registered"),
    ({"response_type": "token"}, "response_type=code"),
    ({"scope": "profile"}, "openid"),
    ({"code_challenge": "abc", "code_challenge_method": "plain"}, "S256"),
])
def test_what_the_authorize_endpoint_refuses(idp: IdpServer, params: dict, says: str) -> None:
    answer = authorize(idp, **params)
    assert answer.status_code == 400 and says in answer.text


def test_end_session_returns_only_to_a_registered_address(idp: IdpServer) -> None:
    home = requests.get(idp.url + "/logout", params={"post_logout_redirect_uri": REDIRECT},
                        allow_redirects=False, timeout=5)
    assert (home.status_code, home.headers["location"]) == (302, REDIRECT)
    away = requests.get(idp.url + "/logout", allow_redirects=False, timeout=5,
                        params={"post_logout_redirect_uri": "https://attacker.example/"})
    assert away.status_code == 200 and "Signed out" in away.text
