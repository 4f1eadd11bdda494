"""The one place that reads configuration.

Values come from the environment first, then from `.streamlit/secrets.toml`:
the `[kryptos]` table (lower-case keys: client_id, client_secret, connect_url, data_url,
connect_timeout, read_timeout, max_retries, retry_budget) and the `[console]` table
(lower-case keys: database_url, vault_key, cookie_key, cookie_name,
auth_file, audit_anchor_file, audit_journal_file, reconcile_interval, data_dir, tiers,
sandbox_port, sandbox_resync_delay, sandbox_url, idle_timeout, session_lifetime,
totp_required_roles, login_max_failures, login_max_failures_wide, login_lock_seconds,
login_failure_floor, password_rounds, trusted_proxies, sync_grants_interval, sync_rate,
sync_enabled, sync_lock_retry, approvals, approval_bulk_over, approval_bulk_window,
approval_limit_over, approval_ttl_hours, password_login, sso_issuer, sso_metadata_url,
sso_client_id, sso_client_secret, sso_redirect_uri, sso_scopes, sso_claim, sso_role_map,
sso_username_claim, admin_grant_second_admin) and the `[backend]` table (lower-case keys:
jwt_secret, jwt_public_key, jwt_audience, jwt_issuer, webhook_secret, webhook_secret_previous,
webhook_max_age, link_token_rate_limit, customer_rate_limit, jwt_max_lifetime, demo, port).

Nothing else in the project reads `os.environ` or the secrets file.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SECRETS_PATH = PROJECT_ROOT / ".streamlit" / "secrets.toml"

DEFAULT_CONNECT_URL = "https://connect-api.kryptos.io"
DEFAULT_DATA_URL = "https://connect.kryptos.io/api"

# The sandbox's well-known demo client (see sandbox/): used in sandbox mode only.
SANDBOX_CLIENT_ID = "sandbox_client"
SANDBOX_CLIENT_SECRET = "sandbox_secret_do_not_use_live"

DEFAULT_TIERS = "Free=1000,Plus=10000,Pro=100000,Unlimited=off"

#: Sandbox mode only, when KRYPTOS_WEBHOOK_SECRET is not set: the secret the sandbox's
#: webhook sender signs with and the backend verifies with (a Standard Webhooks secret: the
#: base64 of b"sandbox-webhook-secret-do-not-use-live"). Refused in live mode.
SANDBOX_WEBHOOK_SECRET = "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldC1kby1ub3QtdXNlLWxpdmU="
#: Standard Webhooks secrets: `whsec_` and the base64 of at least this many random bytes.
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_MIN_BYTES = 24
DEFAULT_WEBHOOK_MAX_AGE = 300.0
DEFAULT_LINK_TOKEN_RATE_LIMIT = 10
DEFAULT_CUSTOMER_RATE_LIMIT = 60
DEFAULT_JWT_MAX_LIFETIME = 24 * 3600.0


#: Streamlit fills in its own port for `{port}` (st.login's redirect_uri).
DEFAULT_SSO_REDIRECT_URI = "http://localhost:{port}/oauth2callback"
DEFAULT_SSO_SCOPES = "openid profile email"
DEFAULT_SSO_CLAIM = "groups"
DEFAULT_SSO_USERNAME_CLAIM = "preferred_username"


class ConfigError(Exception):
    """The configuration is missing or wrong; `user_message` says what to set."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


@dataclass(frozen=True)
class Tier:
    """A named transaction-limit preset. `limit=None` means the limiter is switched off."""

    name: str
    limit: int | None

    @property
    def enable_limiter(self) -> bool:
        return self.limit is not None

    def describe(self) -> str:
        if self.limit is None:
            return f"{self.name} (no cap)"
        return f"{self.name} ({self.limit:,})"


def _cookie_name(name: str) -> str:
    """The login cookie's name: letters, digits and `. _ ~ -` (the page's cookie script
    writes it as it is)."""
    if not all(c.isascii() and (c.isalnum() or c in "._~-") for c in name):
        raise ConfigError(f"CONSOLE_COOKIE_NAME {name!r} may hold only letters, digits and "
                          ". _ ~ -.")
    return name


def parse_tiers(text: str) -> tuple[Tier, ...]:
    """Parse `Free=1000,Plus=10000,Unlimited=off` into tiers, in the given order."""
    tiers: list[Tier] = []
    seen: set[str] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip().lower()
        if not sep or not name:
            raise ConfigError(f"Tier '{part}' must look like Name=1000 or Name=off.")
        if name.lower() in seen:
            raise ConfigError(f"Tier '{name}' is defined twice.")
        seen.add(name.lower())
        if value in ("off", "none", "unlimited"):
            tiers.append(Tier(name, None))
            continue
        try:
            limit = int(value.replace("_", ""))
        except ValueError:
            raise ConfigError(
                f"Tier '{name}' needs a whole number or 'off', not '{value}'."
            ) from None
        if not 1 <= limit <= 10**9:
            raise ConfigError(f"Tier '{name}' limit must be between 1 and 1,000,000,000.")
        tiers.append(Tier(name, limit))
    if not tiers:
        raise ConfigError("At least one tier must be configured (CONSOLE_TIERS).")
    return tuple(tiers)


@dataclass(frozen=True)
class Settings:
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    connect_url: str = DEFAULT_CONNECT_URL
    data_url: str = DEFAULT_DATA_URL
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 3
    retry_budget: float = 20.0
    data_dir: Path = PROJECT_ROOT / "data"
    database_url: str | None = field(default=None, repr=False)  # may hold a password
    vault_key: str | None = field(default=None, repr=False)
    cookie_key: str | None = field(default=None, repr=False)
    cookie_name: str = "kryptos_console"
    auth_file: Path | None = None
    #: Where the audit log's newest head is kept outside the database (see
    #: services/store/audit.py, AuditAnchor); default `<data_dir>/audit-anchor.json`.
    audit_anchor_file: Path | None = None
    #: Audit events the store could not take wait here (services/store/journal.py);
    #: default `<data_dir>/audit-journal.jsonl`.
    audit_journal_file: Path | None = None
    #: Seconds between reconciler passes (and journal replays) in the console process.
    reconcile_interval: float = 60.0
    tiers: tuple[Tier, ...] = field(default_factory=lambda: parse_tiers(DEFAULT_TIERS))
    sandbox_port: int = 0
    sandbox_resync_delay: float = 5.0
    #: Sandbox mode only: use an already running sandbox at this URL instead of starting one.
    sandbox_url: str | None = None
    #: Console logins (dashboard/session_cookie.py): a session ends after this many seconds
    #: without a page run (CONSOLE_IDLE_TIMEOUT) or this long after its login
    #: (CONSOLE_SESSION_LIFETIME).
    idle_timeout: float = 20 * 60
    session_lifetime: float = 8 * 3600
    #: Roles whose users must log in with a TOTP code (CONSOLE_TOTP_REQUIRED_ROLES,
    #: comma-separated; "none" for none). None: the mode's default (see totp_roles).
    totp_required_roles: tuple[str, ...] | None = None
    #: Failed logins: `login_max_failures` for one username (from any address), or
    #: `login_max_failures_wide` from one address (for all usernames), within
    #: `login_lock_seconds`, lock that username or address for `login_lock_seconds`.
    login_max_failures: int = 5
    login_max_failures_wide: int = 20
    login_lock_seconds: float = 15 * 60
    #: Every failed login answers after at least this many seconds, whatever the username
    #: (CONSOLE_LOGIN_FAILURE_FLOOR): above the slowest password check, so that the time
    #: does not tell which usernames exist. 0 turns it off (tests only).
    login_failure_floor: float = 1.5
    #: The bcrypt cost of new hashes (CONSOLE_PASSWORD_ROUNDS); a user whose hash has a
    #: lower cost is rehashed at this cost at their next login.
    password_rounds: int = 12
    #: Reverse proxies in front of the console that append to X-Forwarded-For
    #: (CONSOLE_TRUSTED_PROXIES): the client's address is the entry the outermost of them
    #: added (the N-th from the right), and their X-Forwarded-Proto says whether the browser
    #: used https. 0: no proxy, the connection's own address; the headers are ignored.
    trusted_proxies: int = 0
    #: The customer backend (`backend/`): how customers' JWTs are checked (HS256 secret or
    #: RS256 public key in PEM), the webhook signing secret, the webhook max age (seconds)
    #: link tokens allowed per customer per minute, calls to all customer endpoints allowed
    #: per customer per minute, and the longest customer token lifetime accepted (seconds).
    backend_jwt_secret: str | None = field(default=None, repr=False)
    backend_jwt_public_key: str | None = field(default=None, repr=False)
    backend_jwt_audience: str | None = None
    backend_jwt_issuer: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    #: While a secret rotation runs: the previous secret, still accepted beside the new one.
    webhook_secret_previous: str | None = field(default=None, repr=False)
    webhook_max_age: float = DEFAULT_WEBHOOK_MAX_AGE
    link_token_rate_limit: int = DEFAULT_LINK_TOKEN_RATE_LIMIT
    customer_rate_limit: int = DEFAULT_CUSTOMER_RATE_LIMIT
    jwt_max_lifetime: float = DEFAULT_JWT_MAX_LIFETIME
    #: Sandbox mode: the port `bin/console` starts the backend on (0: any free port).
    backend_port: int = 0
    #: Worker processes of `python -m backend` (BACKEND_WORKERS, default 1).
    backend_workers: int = 1
    #: The console's Prometheus port (CONSOLE_METRICS_PORT); 0: no metrics server.
    console_metrics_port: int = 0
    #: The backend's demo customer app (`/demo`, `/demo/token`: customer tokens without
    #: sign-in): served only when asked for (BACKEND_DEMO=on), and only in sandbox mode.
    backend_demo: bool = False
    #: The read model's sync worker (services/sync): seconds between full grants lists,
    #: upstream calls a second, and whether this process runs it (standing by for the lock).
    sync_grants_interval: float = 300.0
    sync_rate: float = 10.0
    sync_enabled: bool = True
    #: How often a standby process tries the sync lock (SYNC_LOCK_RETRY, seconds): the lease
    #: after which a replica takes over from a holder that died.
    sync_lock_retry: float = 5.0
    #: Four-eyes approval (services/operations/approval_policy.py): on/off, a bulk change of more
    #: than `approval_bulk_over` grants, a limit above `approval_limit_over`, and how long
    #: a request waits before it expires. A revoke and a limiter switched off always need one.
    #: `approval_bulk_window` (seconds): the grants a person changed directly in this window
    #: count towards `approval_bulk_over` with the change at hand (a split run is still held).
    approvals_enabled: bool = True
    approval_bulk_over: int = 10
    approval_bulk_window: float = 3600.0
    approval_limit_over: int = 100_000
    approval_ttl_hours: float = 24.0
    #: Granting the admin role waits for a second admin (services/operations/users.py).
    admin_grant_second_admin: bool = False
    #: The username/password form (CONSOLE_PASSWORD_LOGIN); off leaves single sign-on only.
    password_login: bool = True
    #: Single sign-on with OpenID Connect through Streamlit's `st.login`
    #: (dashboard/login.py, services/operations/sso.py): the provider's discovery document
    #: (`sso_metadata_url`, else `<sso_issuer>/.well-known/openid-configuration`), the
    #: console's client at the provider, the redirect URI registered there, the scopes
    #: asked for, the claim that lists the person's groups, the groups' roles
    #: (`group=role` pairs; a group may give several roles), and the claim that names the
    #: console user (falling back to `email`).
    sso_issuer: str | None = None
    sso_metadata_url: str | None = None
    sso_client_id: str | None = None
    sso_client_secret: str | None = field(default=None, repr=False)
    sso_redirect_uri: str = DEFAULT_SSO_REDIRECT_URI
    sso_scopes: str = DEFAULT_SSO_SCOPES
    sso_claim: str = DEFAULT_SSO_CLAIM
    sso_role_map: tuple[tuple[str, str], ...] = ()
    sso_username_claim: str = DEFAULT_SSO_USERNAME_CLAIM

    @property
    def sso_enabled(self) -> bool:
        """Single sign-on is configured (a provider and a client)."""
        return bool((self.sso_issuer or self.sso_metadata_url) and self.sso_client_id)

    @property
    def effective_sso_metadata_url(self) -> str | None:
        if self.sso_metadata_url:
            return self.sso_metadata_url
        if self.sso_issuer:
            return self.sso_issuer.rstrip("/") + "/.well-known/openid-configuration"
        return None

    @property
    def effective_webhook_secret(self) -> str | None:
        """The webhook secret; in sandbox mode without one, the sandbox's well-known one."""
        if self.webhook_secret:
            return self.webhook_secret
        return SANDBOX_WEBHOOK_SECRET if self.sandbox_mode else None

    @property
    def sandbox_mode(self) -> bool:
        """No Kryptos credentials configured: the console runs against its own sandbox."""
        return not (self.client_id and self.client_secret)

    @property
    def totp_roles(self) -> frozenset[str]:
        """Roles that must use a second factor: the setting, else admin and finance in live
        mode and none in sandbox mode."""
        if self.totp_required_roles is not None:
            return frozenset(self.totp_required_roles)
        return frozenset() if self.sandbox_mode else frozenset({"admin", "finance"})

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'console.db'}"

    @property
    def effective_auth_file(self) -> Path:
        return self.auth_file or (self.data_dir / "users.yaml")

    @property
    def effective_audit_anchor_file(self) -> Path:
        return self.audit_anchor_file or (self.data_dir / "audit-anchor.json")

    @property
    def effective_audit_journal_file(self) -> Path:
        return self.audit_journal_file or (self.data_dir / "audit-journal.jsonl")


# One table of the secrets file ([kryptos], [console], [backend]): TOML values by key.
_Table = dict[str, Any]
# get(env_name, table, key): the environment's value, else the table's, as text (or None).
_Get = Callable[[str, _Table, str], str | None]
# number(env_name, table, key, default, kind): that value parsed by kind (int or float).
_Number = Callable[[str, _Table, str, float, Callable[[str], float]], float]


class _SyncSettings(TypedDict):
    sync_grants_interval: float
    sync_rate: float
    sync_enabled: bool
    sync_lock_retry: float


class _SsoSettings(TypedDict):
    password_login: bool
    sso_issuer: str | None
    sso_metadata_url: str | None
    sso_client_id: str | None
    sso_client_secret: str | None
    sso_redirect_uri: str
    sso_scopes: str
    sso_claim: str
    sso_role_map: tuple[tuple[str, str], ...]
    sso_username_claim: str


def _read_secrets(path: Path) -> _Table:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _sync_settings(get: _Get, number: _Number, console: _Table) -> _SyncSettings:
    """SYNC_GRANTS_INTERVAL (s, >= 1), SYNC_RATE (calls/s, > 0), SYNC_ENABLED (bool),
    SYNC_LOCK_RETRY (s, > 0)."""
    interval = number("SYNC_GRANTS_INTERVAL", console, "sync_grants_interval", 300.0, float)
    lock_retry = number("SYNC_LOCK_RETRY", console, "sync_lock_retry", 5.0, float)
    if lock_retry <= 0:
        raise ConfigError("SYNC_LOCK_RETRY must be a positive number of seconds.")
    rate = number("SYNC_RATE", console, "sync_rate", 10.0, float)
    if interval < 1:
        raise ConfigError("SYNC_GRANTS_INTERVAL must be at least 1 second.")
    if rate <= 0:
        raise ConfigError("SYNC_RATE must be a positive number of calls a second.")
    raw = get("SYNC_ENABLED", console, "sync_enabled")
    enabled = True
    if raw is not None:
        value = raw.strip().lower()
        if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ConfigError(f"SYNC_ENABLED must be true or false, not '{raw}'.")
        enabled = value in ("1", "true", "yes", "on")
    return {"sync_grants_interval": interval, "sync_rate": rate, "sync_enabled": enabled,
            "sync_lock_retry": lock_retry}


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(raw: str | None, env_name: str, default: bool) -> bool:
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{env_name} must be on or off, not '{raw}'.")


@dataclass(frozen=True)
class LogSettings:
    """LOG_FORMAT (`text` or `json`: one JSON object a line) and LOG_LEVEL (a `logging`
    level name), read apart from the other settings: logging is set up before them, and a
    process whose settings are wrong still logs why."""

    format: str = "text"
    level: str = "INFO"


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_settings(env: Mapping[str, str] | None = None) -> LogSettings:
    """LOG_FORMAT and LOG_LEVEL from the environment (defaults: text, INFO)."""
    env = os.environ if env is None else env
    fmt = (env.get("LOG_FORMAT") or "text").strip().lower()
    level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be text or json, not '{env.get('LOG_FORMAT')}'.")
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
                          f"not '{env.get('LOG_LEVEL')}'.")
    return LogSettings(fmt, level)


def load_settings(
    env: Mapping[str, str] | None = None, secrets_path: Path | None = None
) -> Settings:
    """Build the settings from the environment and the secrets file."""
    env = os.environ if env is None else env
    path = Path(env.get("CONSOLE_SECRETS_FILE") or secrets_path or DEFAULT_SECRETS_PATH)
    secrets = _read_secrets(path)
    kryptos = {str(k).lower(): v for k, v in dict(secrets.get("kryptos", {})).items()}
    console = {str(k).lower(): v for k, v in dict(secrets.get("console", {})).items()}
    backend = {str(k).lower(): v for k, v in dict(secrets.get("backend", {})).items()}

    def get(env_name: str, table: _Table, key: str) -> str | None:
        value = env.get(env_name)
        if value not in (None, ""):
            return str(value)
        value = table.get(key)
        return None if value in (None, "") else str(value)

    def number(env_name: str, table: _Table, key: str, default: float,
               kind: Callable[[str], float]) -> float:
        raw = get(env_name, table, key)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{env_name} must be a number, not '{raw}'.") from None
        if value < 0:
            raise ConfigError(f"{env_name} must not be negative.")
        return value

    sync = _sync_settings(get, number, console)

    client_id = get("KRYPTOS_CLIENT_ID", kryptos, "client_id")
    client_secret = get("KRYPTOS_CLIENT_SECRET", kryptos, "client_secret")
    if bool(client_id) != bool(client_secret):
        # Half a pair must not quietly mean "sandbox mode" (nor send anything to Kryptos).
        missing = "KRYPTOS_CLIENT_SECRET" if client_id else "KRYPTOS_CLIENT_ID"
        raise ConfigError(
            f"{missing} is not set, but its partner is: set both for live mode, or neither "
            "for sandbox mode (environment, or [kryptos] in .streamlit/secrets.toml)."
        )
    data_dir = Path(get("CONSOLE_DATA_DIR", console, "data_dir") or PROJECT_ROOT / "data")
    auth_file = get("CONSOLE_AUTH_FILE", console, "auth_file")
    anchor_file = get("CONSOLE_AUDIT_ANCHOR_FILE", console, "audit_anchor_file")
    journal_file = get("CONSOLE_AUDIT_JOURNAL_FILE", console, "audit_journal_file")
    return Settings(
        client_id=client_id,
        client_secret=client_secret,
        connect_url=(
            get("KRYPTOS_CONNECT_URL", kryptos, "connect_url") or DEFAULT_CONNECT_URL
        ).rstrip("/"),
        data_url=(get("KRYPTOS_DATA_URL", kryptos, "data_url") or DEFAULT_DATA_URL).rstrip("/"),
        connect_timeout=number("KRYPTOS_CONNECT_TIMEOUT", kryptos, "connect_timeout", 5.0, float),
        read_timeout=number("KRYPTOS_READ_TIMEOUT", kryptos, "read_timeout", 30.0, float),
        max_retries=int(number("KRYPTOS_MAX_RETRIES", kryptos, "max_retries", 3, int)),
        retry_budget=number("KRYPTOS_RETRY_BUDGET", kryptos, "retry_budget", 20.0, float),
        data_dir=data_dir,
        database_url=get("DATABASE_URL", console, "database_url"),
        vault_key=get("KRYPTOS_VAULT_KEY", console, "vault_key"),
        cookie_key=get("CONSOLE_COOKIE_KEY", console, "cookie_key"),
        cookie_name=_cookie_name(get("CONSOLE_COOKIE_NAME", console, "cookie_name")
                                 or "kryptos_console"),
        auth_file=Path(auth_file) if auth_file else None,
        audit_anchor_file=Path(anchor_file) if anchor_file else None,
        audit_journal_file=Path(journal_file) if journal_file else None,
        reconcile_interval=number("CONSOLE_RECONCILE_INTERVAL", console, "reconcile_interval",
                                  60.0, float),
        tiers=parse_tiers(get("CONSOLE_TIERS", console, "tiers") or DEFAULT_TIERS),
        sandbox_port=int(number("SANDBOX_PORT", console, "sandbox_port", 0, int)),
        sandbox_resync_delay=number(
            "SANDBOX_RESYNC_DELAY", console, "sandbox_resync_delay", 5.0, float
        ),
        sandbox_url=(get("SANDBOX_URL", console, "sandbox_url") or "").rstrip("/") or None,
        backend_jwt_secret=get("BACKEND_JWT_SECRET", backend, "jwt_secret"),
        backend_jwt_public_key=get("BACKEND_JWT_PUBLIC_KEY", backend, "jwt_public_key"),
        backend_jwt_audience=get("BACKEND_JWT_AUDIENCE", backend, "jwt_audience"),
        backend_jwt_issuer=get("BACKEND_JWT_ISSUER", backend, "jwt_issuer"),
        webhook_secret=_webhook_secret(get("KRYPTOS_WEBHOOK_SECRET", backend,
                                           "webhook_secret"), "KRYPTOS_WEBHOOK_SECRET",
                                       live=bool(client_id)),
        webhook_secret_previous=_webhook_secret(
            get("KRYPTOS_WEBHOOK_SECRET_PREVIOUS", backend, "webhook_secret_previous"),
            "KRYPTOS_WEBHOOK_SECRET_PREVIOUS", live=bool(client_id)),
        webhook_max_age=number("BACKEND_WEBHOOK_MAX_AGE", backend, "webhook_max_age",
                               DEFAULT_WEBHOOK_MAX_AGE, float),
        link_token_rate_limit=int(number(
            "BACKEND_LINK_TOKEN_RATE_LIMIT", backend, "link_token_rate_limit",
            DEFAULT_LINK_TOKEN_RATE_LIMIT, int)),
        customer_rate_limit=int(number(
            "BACKEND_CUSTOMER_RATE_LIMIT", backend, "customer_rate_limit",
            DEFAULT_CUSTOMER_RATE_LIMIT, int)),
        jwt_max_lifetime=_positive(number("BACKEND_JWT_MAX_LIFETIME", backend,
                                          "jwt_max_lifetime", DEFAULT_JWT_MAX_LIFETIME, float),
                                   "BACKEND_JWT_MAX_LIFETIME"),
        backend_port=int(number("BACKEND_PORT", backend, "port", 0, int)),
        backend_workers=max(1, int(number("BACKEND_WORKERS", backend, "workers", 1, int))),
        console_metrics_port=int(number("CONSOLE_METRICS_PORT", console, "metrics_port", 0,
                                        int)),
        backend_demo=_flag(get("BACKEND_DEMO", backend, "demo"), "BACKEND_DEMO", False),
        idle_timeout=_idle_timeout(number("CONSOLE_IDLE_TIMEOUT", console, "idle_timeout",
                                          20 * 60, float)),
        session_lifetime=_positive(number("CONSOLE_SESSION_LIFETIME", console,
                                          "session_lifetime", 8 * 3600, float),
                                   "CONSOLE_SESSION_LIFETIME"),
        totp_required_roles=_roles(get("CONSOLE_TOTP_REQUIRED_ROLES", console,
                                       "totp_required_roles")),
        login_max_failures=int(_positive(number("CONSOLE_LOGIN_MAX_FAILURES", console,
                                                "login_max_failures", 5, int),
                                         "CONSOLE_LOGIN_MAX_FAILURES")),
        login_max_failures_wide=int(_positive(number(
            "CONSOLE_LOGIN_MAX_FAILURES_WIDE", console, "login_max_failures_wide", 20, int),
            "CONSOLE_LOGIN_MAX_FAILURES_WIDE")),
        login_lock_seconds=_positive(number("CONSOLE_LOGIN_LOCK_SECONDS", console,
                                            "login_lock_seconds", 15 * 60, float),
                                     "CONSOLE_LOGIN_LOCK_SECONDS"),
        login_failure_floor=number("CONSOLE_LOGIN_FAILURE_FLOOR", console,
                                   "login_failure_floor", 1.5, float),
        password_rounds=_rounds(int(number("CONSOLE_PASSWORD_ROUNDS", console,
                                           "password_rounds", 12, int))),
        trusted_proxies=_trusted_proxies(get, console, number),
        **sync,
        approvals_enabled=_flag(get("CONSOLE_APPROVALS", console, "approvals"),
                                "CONSOLE_APPROVALS", True),
        admin_grant_second_admin=_flag(
            get("CONSOLE_ADMIN_GRANT_SECOND_ADMIN", console, "admin_grant_second_admin"),
            "CONSOLE_ADMIN_GRANT_SECOND_ADMIN", False),
        approval_bulk_over=int(number("CONSOLE_APPROVAL_BULK_OVER", console,
                                      "approval_bulk_over", 10, int)),
        approval_bulk_window=_positive(number("CONSOLE_APPROVAL_BULK_WINDOW", console,
                                              "approval_bulk_window", 3600.0, float),
                                       "CONSOLE_APPROVAL_BULK_WINDOW"),
        approval_limit_over=int(number("CONSOLE_APPROVAL_LIMIT_OVER", console,
                                       "approval_limit_over", 100_000, int)),
        approval_ttl_hours=number("CONSOLE_APPROVAL_TTL_HOURS", console, "approval_ttl_hours",
                                  24.0, float),
        **_sso_settings(get, console),
    )


def _sso_settings(get: _Get, console: _Table) -> _SsoSettings:
    """CONSOLE_PASSWORD_LOGIN and the CONSOLE_SSO_* settings (environment, else the
    [console] table). Half a client (an id without a provider, or the reverse) and password
    login off without single sign-on are refused: either would lock everyone out."""
    def value(name: str) -> str | None:
        raw = get(f"CONSOLE_SSO_{name.upper()}", console, f"sso_{name}")
        return raw.strip() if raw is not None and raw.strip() else None

    issuer, metadata_url = value("issuer"), value("metadata_url")
    client_id, client_secret = value("client_id"), value("client_secret")
    provider = bool(issuer or metadata_url)
    if provider != bool(client_id):
        missing = ("CONSOLE_SSO_CLIENT_ID" if provider
                   else "CONSOLE_SSO_ISSUER (or CONSOLE_SSO_METADATA_URL)")
        raise ConfigError(f"Single sign-on needs {missing} too: set the provider and the "
                          "client, or neither.")
    if client_id and not client_secret:
        raise ConfigError("CONSOLE_SSO_CLIENT_SECRET is not set (the console's client secret "
                          "at the identity provider).")
    for name, url in (("CONSOLE_SSO_ISSUER", issuer), ("CONSOLE_SSO_METADATA_URL", metadata_url)):
        if url and not url.lower().startswith(("https://", "http://")):
            raise ConfigError(f"{name} must be an http(s) address, not '{url}'.")
    redirect = value("redirect_uri") or DEFAULT_SSO_REDIRECT_URI
    if not redirect.endswith("/oauth2callback"):
        raise ConfigError("CONSOLE_SSO_REDIRECT_URI must end with /oauth2callback (Streamlit's "
                          f"sign-in callback), not '{redirect}'.")
    password_login = _flag(get("CONSOLE_PASSWORD_LOGIN", console, "password_login"),
                           "CONSOLE_PASSWORD_LOGIN", True)
    if not password_login and not client_id:
        raise ConfigError("CONSOLE_PASSWORD_LOGIN is off but single sign-on is not configured "
                          "(CONSOLE_SSO_ISSUER, CONSOLE_SSO_CLIENT_ID, CONSOLE_SSO_CLIENT_SECRET): "
                          "nobody could log in.")
    role_map = parse_role_map(value("role_map") or "")
    if client_id and not role_map:
        raise ConfigError("CONSOLE_SSO_ROLE_MAP is empty: with single sign-on on, map at least "
                          "one group to a role, e.g. kryptos-support=support.")
    return {
        "password_login": password_login,
        "sso_issuer": issuer.rstrip("/") if issuer else None,
        "sso_metadata_url": metadata_url,
        "sso_client_id": client_id,
        "sso_client_secret": client_secret,
        "sso_redirect_uri": redirect,
        "sso_scopes": value("scopes") or DEFAULT_SSO_SCOPES,
        "sso_claim": value("claim") or DEFAULT_SSO_CLAIM,
        "sso_role_map": role_map,
        "sso_username_claim": value("username_claim") or DEFAULT_SSO_USERNAME_CLAIM,
    }


def parse_role_map(text: str) -> tuple[tuple[str, str], ...]:
    """`kryptos-support=support,kryptos-ops=support,kryptos-ops=finance` into (group, role)
    pairs, in the given order; groups are compared as written (providers' group names are
    case-sensitive), roles must be the console's."""
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        group, sep, role = part.rpartition("=")
        group, role = group.strip(), role.strip().lower()
        if not sep or not group or not role:
            raise ConfigError(f"CONSOLE_SSO_ROLE_MAP: '{part}' must look like group=role.")
        if role not in _KNOWN_ROLES:
            raise ConfigError(f"CONSOLE_SSO_ROLE_MAP: unknown role '{role}' in '{part}'; roles: "
                              f"{', '.join(_KNOWN_ROLES)}.")
        if (group, role) not in pairs:
            pairs.append((group, role))
    return tuple(pairs)


def webhook_secret_problem(value: str) -> str | None:
    """Why `value` is not a Standard Webhooks secret (`whsec_<base64>`), or None."""
    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        return f"must start with {WEBHOOK_SECRET_PREFIX} (a Standard Webhooks secret)"
    try:
        key = base64.b64decode(value[len(WEBHOOK_SECRET_PREFIX):], validate=True)
    except (ValueError, binascii.Error):
        return f"must be {WEBHOOK_SECRET_PREFIX} followed by base64"
    if len(key) < WEBHOOK_SECRET_MIN_BYTES:
        return f"must hold at least {WEBHOOK_SECRET_MIN_BYTES} random bytes"
    return None


def _webhook_secret(value: str | None, env_name: str, *, live: bool) -> str | None:
    if value is None:
        return None
    value = value.strip()
    problem = webhook_secret_problem(value)
    if problem:
        raise ConfigError(f"{env_name} {problem}; make one with: python -c \"import base64, "
                          "secrets; print('whsec_' + base64.b64encode(secrets.token_bytes(32))"
                          ".decode())\"")
    if live and value == SANDBOX_WEBHOOK_SECRET:
        raise ConfigError(f"{env_name} is the sandbox's published secret: set your own.")
    return value


def _rounds(value: int) -> int:
    if not 10 <= value <= 16:
        raise ConfigError("CONSOLE_PASSWORD_ROUNDS (the bcrypt cost) must be between 10 and 16.")
    return value


def _trusted_proxies(get: _Get, console: _Table, number: _Number) -> int:
    """CONSOLE_TRUSTED_PROXIES. CONSOLE_CLIENT_ADDRESS_HEADER (a header's left-most entry,
    which the client writes) is refused rather than ignored: a deployment that sets it must
    count its proxies instead, not silently lose its per-address limit."""
    if get("CONSOLE_CLIENT_ADDRESS_HEADER", console, "client_address_header") is not None:
        raise ConfigError(
            "CONSOLE_CLIENT_ADDRESS_HEADER is not supported: set CONSOLE_TRUSTED_PROXIES to "
            "the number of reverse proxies in front of the console that append to "
            "X-Forwarded-For (1 for the README's nginx), and remove the old setting.")
    value = int(number("CONSOLE_TRUSTED_PROXIES", console, "trusted_proxies", 0, int))
    if value > 10:
        raise ConfigError("CONSOLE_TRUSTED_PROXIES must be between 0 and 10.")
    return value


#: The shortest idle timeout accepted (seconds). A session's last use is recorded at most
#: every 30 s and at least every half of the timeout; a shorter timeout would end the
#: sessions of people reading a page.
MIN_IDLE_TIMEOUT = 60.0


def _idle_timeout(value: float) -> float:
    if value < MIN_IDLE_TIMEOUT:
        raise ConfigError(
            f"CONSOLE_IDLE_TIMEOUT (idle_timeout in the [console] table) is {value:g} s; it "
            f"must be at least {MIN_IDLE_TIMEOUT:.0f} s (the default is 1200, 20 minutes).")
    return value


def _positive(value: float, name: str) -> float:
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0.")
    return value


#: The console's roles (services/operations/permissions.py ROLES; settings import nothing).
_KNOWN_ROLES = ("viewer", "support", "finance", "admin")


def _roles(text: str | None) -> tuple[str, ...] | None:
    """CONSOLE_TOTP_REQUIRED_ROLES: comma-separated roles, "none" for none, unset: None."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    roles = tuple(dict.fromkeys(r.strip().lower() for r in text.split(",") if r.strip()))
    unknown = [r for r in roles if r not in _KNOWN_ROLES]
    if unknown:
        raise ConfigError(f"CONSOLE_TOTP_REQUIRED_ROLES: unknown role(s) {', '.join(unknown)}; "
                          f"roles: {', '.join(_KNOWN_ROLES)} (or 'none').")
    return roles
