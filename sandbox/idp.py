"""A small OpenID Connect provider on 127.0.0.1 for sandbox mode and tests: the console's
"Sign in with SSO" works offline against it, as it would against Okta, Entra ID or Keycloak.

    python -m sandbox.idp --port 8765 --client-id ID --client-secret SECRET \\
        --redirect-uri 'http://localhost:{port}/oauth2callback'

What it serves (the authorization code flow, as Streamlit's `st.login` / Authlib use it):

- `/.well-known/openid-configuration` (discovery), `/jwks` (its RS256 public key, made at
  start, held in memory);
- `/authorize`: checks the client and the redirect URI (registered; `{port}` stands for any
  port), keeps the request (state, nonce, PKCE challenge) and shows a sign-in page listing
  the demo people; picking one (optionally "with a second factor") redirects back with a
  one-time code;
- `/token`: the code for an ID token and an access token (client secret by HTTP Basic or in
  the form; PKCE S256 checked when a challenge was sent; a code works once, for 60 s);
- `/userinfo` (Bearer access token), `/logout` (end session: back to a registered address).

The ID token carries `iss`, `sub`, `aud`, `exp`, `iat`, `auth_time`, `nonce`, `amr`
(`["pwd"]`, or `["pwd", "mfa"]` with a second factor), `name`, `email`,
`preferred_username` and `groups`. No session is kept: every sign-in shows the page.
Nothing here is secure enough for anything but a laptop: anyone who reaches the page signs
in as anyone.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

#: The sandbox's console client (public: sandbox mode only).
SANDBOX_CLIENT_ID = "kryptos-console"
SANDBOX_CLIENT_SECRET = "sandbox-sso-secret-do-not-use-live"  # noqa: S105 (a published demo value)
#: The groups the demo people have and the console's roles for them in sandbox mode.
SANDBOX_ROLE_MAP = ("kryptos-viewers=viewer,kryptos-support=support,"
                    "kryptos-finance=finance,kryptos-admins=admin")

CODE_SECONDS = 60.0
TOKEN_SECONDS = 600


@dataclass(frozen=True)
class Person:
    username: str
    name: str
    groups: tuple[str, ...]

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"


#: The demo people: one per console role, one with two groups, one in no console group.
DEMO_PEOPLE = (
    Person("vic.viewer", "Vic Viewer", ("kryptos-viewers", "staff")),
    Person("sam.support", "Sam Support", ("kryptos-support", "staff")),
    Person("fay.finance", "Fay Finance", ("kryptos-finance", "staff")),
    Person("ada.admin", "Ada Admin", ("kryptos-admins", "staff")),
    Person("otto.ops", "Otto Ops", ("kryptos-support", "kryptos-finance", "staff")),
    Person("cora.contractor", "Cora Contractor", ("contractors",)),
)


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]

    def allows(self, uri: str) -> bool:
        """A registered redirect URI, where `{port}` stands for any port number."""
        for pattern in self.redirect_uris:
            regex = re.escape(pattern).replace(re.escape("{port}"), r"\d{1,5}")
            if re.fullmatch(regex, uri or ""):
                return True
        return False


@dataclass
class _Pending:
    client_id: str
    redirect_uri: str
    state: str | None
    nonce: str | None
    scope: str
    challenge: str | None
    created: float = field(default_factory=time.monotonic)


@dataclass
class _Code:
    request: _Pending
    person: Person
    mfa: bool
    created: float = field(default_factory=time.monotonic)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class Provider:
    """The provider's state: its key, clients, people, pending requests, codes, tokens."""

    def __init__(self, issuer: str, clients: list[Client],
                 people: tuple[Person, ...] = DEMO_PEOPLE) -> None:
        self.issuer = issuer.rstrip("/")
        self.clients = {c.client_id: c for c in clients}
        self.people = {p.username: p for p in people}
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, tuple[Person, float]] = {}

    def __repr__(self) -> str:
        return f"Provider({self.issuer!r})"

    # --- documents ------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "end_session_endpoint": f"{base}/logout",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "groups"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce",
                                 "amr", "name", "email", "preferred_username", "groups"],
        }

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                          "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}]}

    # --- the flow -------------------------------------------------------------------------

    def begin(self, params: dict[str, str]) -> tuple[str | None, str | None]:
        """An authorization request: (request id, None) or (None, the error to show)."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return None, "Unknown client_id."
        redirect_uri = params.get("redirect_uri", "")
        if not client.allows(redirect_uri):
            return None, "This redirect_uri is not registered for the client."
        if params.get("response_type") != "code":
            return None, "Only response_type=code is supported."
        if "openid" not in params.get("scope", "").split():
            return None, "The scope must include openid."
        challenge = params.get("code_challenge")
        if challenge and params.get("code_challenge_method", "plain") != "S256":
            return None, "Only the S256 code challenge method is supported."
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            self._expire()
            self._pending[request_id] = _Pending(client.client_id, redirect_uri,
                                                 params.get("state"), params.get("nonce"),
                                                 params.get("scope", ""), challenge)
        return request_id, None

    def sign_in(self, request_id: str, username: str, mfa: bool) -> str | None:
        """The person picked on the page: the redirect back with a code, or None."""
        with self._lock:
            self._expire()
            request = self._pending.pop(request_id, None)
            person = self.people.get(username)
            if request is None or person is None:
                return None
            code = secrets.token_urlsafe(32)
            self._codes[code] = _Code(request, person, mfa)
        query = {"code": code}
        if request.state is not None:
            query["state"] = request.state
        return _with_query(request.redirect_uri, query)

    def exchange(self, form: dict[str, str], basic: tuple[str, str] | None
                 ) -> tuple[int, dict[str, Any]]:
        """The token endpoint: (status, body)."""
        client_id, client_secret = basic or (form.get("client_id", ""),
                                             form.get("client_secret", ""))
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret,
                                                        client_secret or ""):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            self._expire()
            granted = self._codes.pop(form.get("code", ""), None)
        if granted is None or granted.request.client_id != client_id:
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != granted.request.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
        if granted.request.challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode("ascii", "replace")).digest()
            ).rstrip(b"=").decode("ascii")
            if not verifier or not secrets.compare_digest(digest, granted.request.challenge):
                return 400, {"error": "invalid_grant", "error_description": "code_verifier"}
        now = int(time.time())
        person = granted.person
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": f"demo-{person.username}", "aud": client_id,
            "iat": now, "exp": now + TOKEN_SECONDS, "auth_time": now,
            "amr": ["pwd", "mfa"] if granted.mfa else ["pwd"],
            **self._profile(person),
        }
        if granted.request.nonce is not None:
            claims["nonce"] = granted.request.nonce
        id_token = jwt.encode(claims, self._key, algorithm="RS256",
                              headers={"kid": self.kid})
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[access_token] = (person, time.monotonic() + TOKEN_SECONDS)
        return 200, {"access_token": access_token, "token_type": "Bearer",
                     "expires_in": TOKEN_SECONDS, "id_token": id_token,
                     "scope": granted.request.scope}

    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        with self._lock:
            held = self._tokens.get(access_token)
        if held is None or held[1] < time.monotonic():
            return None
        return {"sub": f"demo-{held[0].username}", **self._profile(held[0])}

    def logout_target(self, uri: str | None) -> str | None:
        """Where to send the browser after an end-session request: a registered address."""
        if uri and any(c.allows(uri) for c in self.clients.values()):
            return uri
        return None

    @staticmethod
    def _profile(person: Person) -> dict[str, Any]:
        return {"name": person.name, "email": person.email, "email_verified": True,
                "preferred_username": person.username, "groups": list(person.groups)}

    def _expire(self) -> None:
        now = time.monotonic()
        for request_id in [k for k, v in self._pending.items() if now - v.created > 600]:
            del self._pending[request_id]
        for code in [k for k, v in self._codes.items() if now - v.created > CODE_SECONDS]:
            del self._codes[code]
        for token in [k for k, v in self._tokens.items() if v[1] < now]:
            del self._tokens[token]


def _with_query(uri: str, query: dict[str, str]) -> str:
    parts = urlsplit(uri)
    joined = "&".join(x for x in (parts.query, urlencode(query)) if x)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))


def _basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
    except ValueError:
        return None
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        return None
    from urllib.parse import unquote_plus

    return unquote_plus(client_id), unquote_plus(client_secret)


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sandbox sign-in</title><style>
body{{font-family:sans-serif;max-width:34rem;margin:3rem auto;color:#222}}
button{{display:block;width:100%;margin:.4rem 0;padding:.6rem;font-size:1rem;text-align:left}}
small{{color:#666}}</style></head><body>
<h1>Sandbox identity provider</h1>
<p>A local stand-in for your company's single sign-on. Pick who you are.</p>
<form method="post" action="/authorize/sign-in">
<input type="hidden" name="request_id" value="{request_id}">
<label><input type="checkbox" name="mfa" value="on"> I also used a second factor
(the ID token then says <code>amr: mfa</code>)</label>
{buttons}
</form></body></html>"""


def create_app(provider: Provider) -> FastAPI:
    app = FastAPI(title="Sandbox OpenID Connect provider", docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> JSONResponse:
        return JSONResponse(provider.discovery())

    @app.get("/jwks")
    def jwks() -> JSONResponse:
        return JSONResponse(provider.jwks())

    @app.get("/authorize")
    def authorize(request: Request) -> Response:
        request_id, error = provider.begin(dict(request.query_params))
        if request_id is None:
            return HTMLResponse(f"<h1>Sign-in refused</h1><p>{html.escape(error or '')}</p>",
                                status_code=400)
        buttons = "\n".join(
            f'<button type="submit" name="username" value="{html.escape(p.username)}">'
            f"{html.escape(p.name)} <small>({html.escape(p.username)}; groups: "
            f"{html.escape(', '.join(p.groups))})</small></button>"
            for p in provider.people.values())
        return HTMLResponse(_PAGE.format(request_id=html.escape(request_id), buttons=buttons),
                            headers={"Cache-Control": "no-store"})

    @app.post("/authorize/sign-in")
    def sign_in(request_id: str = Form(...), username: str = Form(...),
                mfa: str | None = Form(None)) -> Response:
        target = provider.sign_in(request_id, username, mfa == "on")
        if target is None:
            return HTMLResponse("<h1>Sign-in expired</h1><p>Start again from the console.</p>",
                                status_code=400)
        return RedirectResponse(target, status_code=303)

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        status, body = provider.exchange(form, _basic_auth(request))
        return JSONResponse(body, status_code=status,
                            headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @app.get("/userinfo")
    def userinfo(request: Request) -> JSONResponse:
        header = request.headers.get("authorization", "")
        claims = provider.userinfo(header[7:].strip()) if header.lower().startswith(
            "bearer ") else None
        if claims is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return JSONResponse(claims)

    @app.get("/logout")
    def logout(post_logout_redirect_uri: str | None = None) -> Response:
        target = provider.logout_target(post_logout_redirect_uri)
        if target is not None:
            return RedirectResponse(target, status_code=302)
        return HTMLResponse("<h1>Signed out</h1>")

    return app


class IdpServer:
    """The provider on 127.0.0.1 in a thread of the caller (tests) or of `main`."""

    def __init__(self, port: int, clients: list[Client], host: str = "127.0.0.1") -> None:
        self.url = f"http://{host}:{port}"
        self.provider = Provider(self.url, clients)
        config = uvicorn.Config(create_app(self.provider), host=host, port=port,
                                log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"IdpServer({self.url!r})"

    def start(self, timeout: float = 20.0) -> IdpServer:
        self._thread = threading.Thread(target=self._server.run, name="sandbox-idp",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the identity provider did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> IdpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.idp", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", default=SANDBOX_CLIENT_ID)
    parser.add_argument("--client-secret", default=SANDBOX_CLIENT_SECRET)
    parser.add_argument("--redirect-uri", action="append", required=True,
                        help="a registered redirect URI; {port} stands for any port")
    args = parser.parse_args(argv)
    client = Client(args.client_id, args.client_secret, tuple(args.redirect_uri))
    config = uvicorn.Config(create_app(Provider(f"http://127.0.0.1:{args.port}", [client])),
                            host="127.0.0.1", port=args.port, log_level="warning")
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
