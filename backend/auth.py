"""Customers sign in with the company's own login: `Authorization: Bearer <JWT>`.

HS256 with `BACKEND_JWT_SECRET` and/or RS256 with `BACKEND_JWT_PUBLIC_KEY` (PEM); `exp` and
`sub` (the customer reference) are required; `aud` / `iss` are checked when configured; a
token whose lifetime (`exp - iat`, or `exp - now` without `iat`) is over the configured
maximum (BACKEND_JWT_MAX_LIFETIME, 24 h) is refused. Anything else (alg none, another
algorithm, bad signature, expired, wrong audience or issuer, missing or malformed sub) is 401
UNAUTHENTICATED, with one plain message (a too long lifetime says so)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from backend.errors import ApiError, unauthenticated
from services.operations.validation import CUSTOMER_REF_HELP, is_customer_ref
from services.secret_file import secret_file
from services.settings import Settings

LEEWAY_S = 30
DEMO_KEY_FILE = "backend-jwt.key"
DEMO_TOKEN_LIFETIME_S = 3600


@dataclass(frozen=True)
class JwtConfig:
    hs256_secret: str | None
    rs256_public_key: str | None
    audience: str | None
    issuer: str | None
    #: The longest lifetime accepted (seconds): `exp - iat`, or `exp - now` without `iat`.
    max_lifetime: float = 24 * 3600.0

    @property
    def complete(self) -> bool:
        return bool(self.hs256_secret or self.rs256_public_key)

    def __repr__(self) -> str:
        return (f"JwtConfig(hs256={bool(self.hs256_secret)}, rs256={bool(self.rs256_public_key)},"
                f" audience={self.audience!r}, issuer={self.issuer!r})")


def jwt_config(settings: Settings) -> JwtConfig:
    secret = settings.backend_jwt_secret
    if (not secret and not settings.backend_jwt_public_key and settings.sandbox_mode
            and settings.backend_demo):
        secret = secret_file(Path(settings.data_dir) / DEMO_KEY_FILE)
    return JwtConfig(secret, settings.backend_jwt_public_key,
                     settings.backend_jwt_audience, settings.backend_jwt_issuer,
                     settings.jwt_max_lifetime)


def valid_customer_ref(value: object) -> str | None:
    """The customer reference in `value` (stripped) when it follows the console's rule
    (`services.operations.validation.customer_ref`: one rule for both); None otherwise."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if is_customer_ref(value) else None


#: What a refused customer reference is told (the demo's `customer` parameter).
CUSTOMER_REF_RULE = CUSTOMER_REF_HELP


def customer_from_token(token: str | None, config: JwtConfig) -> str:
    """The customer reference of a valid bearer token (the JWT after `Bearer `); `ApiError`
    401 otherwise, also without a token."""
    if not config.complete:
        raise unauthenticated("Customer sign-in is not configured on this backend.")
    token = (token or "").strip()
    if not token:
        raise unauthenticated()
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except (jwt.PyJWTError, RecursionError):  # RecursionError: a deeply nested header
        raise unauthenticated() from None
    key = {"HS256": config.hs256_secret, "RS256": config.rs256_public_key}.get(str(alg))
    if not key:  # "none", another algorithm, or one this backend has no key for
        raise unauthenticated()
    try:
        claims = jwt.decode(
            token, key, algorithms=[str(alg)], audience=config.audience,
            issuer=config.issuer, leeway=LEEWAY_S,
            options={"require": ["exp", "sub"], "verify_aud": bool(config.audience)},
        )
    except (jwt.PyJWTError, ValueError, TypeError, ArithmeticError, RecursionError):
        raise unauthenticated() from None
    ref = valid_customer_ref(claims.get("sub"))
    if ref is None:
        raise unauthenticated()
    if _lifetime(claims) > config.max_lifetime:
        # A token that lives for months cannot be taken back once it leaks.
        raise unauthenticated("Sign in again: the bearer token lives longer than this backend "
                              "accepts.")
    return ref


def _lifetime(claims: dict[str, Any]) -> float:
    """`exp - iat`, or `exp - now` when the token has no `iat` (seconds)."""
    try:
        exp = float(claims["exp"])
        start = float(claims["iat"]) if claims.get("iat") is not None else time.time()
    except (TypeError, ValueError, OverflowError):
        raise unauthenticated() from None
    lifetime = exp - start
    if lifetime != lifetime:  # NaN
        raise unauthenticated()
    return lifetime


def mint_demo_token(config: JwtConfig, customer_ref: str,
                    lifetime: int = DEMO_TOKEN_LIFETIME_S) -> str:
    """Sandbox mode only (the caller checks): an HS256 token for `customer_ref`."""
    if not config.hs256_secret:
        raise ApiError(409, "NO_DEMO_KEY", "Demo tokens need an HS256 secret.")
    now = int(time.time())
    claims: dict[str, object] = {"sub": customer_ref, "iat": now, "exp": now + lifetime}
    if config.audience:
        claims["aud"] = config.audience
    if config.issuer:
        claims["iss"] = config.issuer
    return jwt.encode(claims, config.hs256_secret, algorithm="HS256")
