"""The console's process-wide runtime: settings, mode, operations, users, sandbox.

`get_runtime()` builds one `Runtime` per process (`st.cache_resource`). It never raises: what
stops the console from working (missing cookie key, vault key or auth file, bad settings,
an unreachable database) is collected in `Runtime.problems`, and the entrypoint then shows
only the setup page.

Sandbox mode (no Kryptos credentials): the console uses the sandbox at `SANDBOX_URL` when set,
else starts one in a background thread; it points the client at it with the sandbox's demo
client, loads the sandbox's stored tokens into the vault once, generates a vault key and a
cookie key in the data directory when none is configured, and writes demo users (one per
role, plus `ops` with support+finance) to `<data_dir>/sandbox-users.yaml`.

Each runtime runs the read model's sync worker (`Runtime.sync`, services/sync/) in a thread
when SYNC_ENABLED (the default): one process of all replicas holds its lock and syncs, the
others stand by. Start never waits on it: the first full sync runs in the worker's thread,
and pages say so until the read model has rows. `Runtime.stop()` (called when Streamlit
releases the cached runtime) stops the worker and an in-process sandbox.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import streamlit as st

from services.kryptos.client import SYNC_USER_AGENT, KryptosClient
from services.logs import setup as setup_logging
from services.metrics import start_console_metrics
from services.operations import Operations
from services.operations.health import LiveChecker
from services.operations.sync_worker import SyncWorkerHandle
from services.operations.users import ConsoleRecorder, UserOps
from services.operations.users_file import User, UsersError, hash_password, load_users, save_users
from services.private_files import prepare_data_dir
from services.secret_file import secret_file
from services.settings import ConfigError, Settings, load_settings
from services.store import NewVaultEntry
from services.store.db import open_database
from services.store.errors import StoreError
from services.store.sessions import LoginFailures, SessionStore
from services.store.totp import TotpStore
from services.store.vault import load_vault_key
from services.sync import SyncWorker, worker_from_settings

if TYPE_CHECKING:
    from sandbox import ExportedToken, PublicTokenAnswer

logger = logging.getLogger(__name__)

Mode = Literal["sandbox", "live"]

#: Demo users of sandbox mode: (username, password, roles). Shown on the login page in
#: sandbox mode only; they never exist in live mode.
DEMO_USERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("viewer", "viewer-demo", ("viewer",)),
    ("support", "support-demo", ("support",)),
    ("finance", "finance-demo", ("finance",)),
    ("admin", "admin-demo", ("admin",)),
    ("ops", "ops-demo-pass", ("support", "finance")),
)
DEMO_HASH_ROUNDS = 10  # demo accounts only: fast to create on every start
DEMO_USERS_FILE = "sandbox-users.yaml"
COOKIE_KEY_FILE = "cookie.key"

_AUTH_LOCK = threading.Lock()


class NotConfigured(RuntimeError):
    """The use cases were asked for while the runtime has problems (no `ops`)."""


class SandboxControl(Protocol):
    """What the console uses of the sandbox's control helpers (`sandbox.SandboxClient`, and
    the `SandboxHandle` of `sandbox.start_sandbox`): play the widget, export the tokens."""

    def create_public_token(self, kind: str = "guest", client_id: str | None = None,
                            name: str | None = None, email: str | None = None,
                            link_token: str | None = None) -> PublicTokenAnswer: ...

    def token_pages(self, client_id: str | None = None,
                    size: int = 5000) -> Iterator[list[ExportedToken]]: ...


@dataclass(frozen=True)
class AuthStores:
    """Console logins in the database (services/store/sessions.py, totp.py): shared by all
    replicas, kept across restarts."""

    sessions: SessionStore
    throttle: LoginFailures
    totp: TotpStore


def build_auth_stores(settings: Settings) -> AuthStores:
    """Open the console's database (migrations applied) for the login stores."""
    db = open_database(settings.effective_database_url)
    throttle = LoginFailures(db, max_failures=settings.login_max_failures,
                             max_failures_wide=settings.login_max_failures_wide,
                             lock_seconds=settings.login_lock_seconds)
    return AuthStores(SessionStore(db), throttle,
                      TotpStore(db, load_vault_key(settings)))


@dataclass
class Runtime:
    """Everything the pages share in one process. `ops` is None when `problems` is not empty."""

    settings: Settings | None
    mode: Mode
    ops: Operations | None = None
    client_id: str | None = None
    sandbox: SandboxControl | None = None
    problems: tuple[str, ...] = ()
    auth_file: Path | None = None
    cookie_key: str | None = field(default=None, repr=False)
    demo_users: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    _auth: AuthStores | None = field(default=None, repr=False)
    _user_ops: UserOps | None = field(default=None, repr=False)
    #: Kryptos hosts and credentials, checked in the background at start.
    live_check: LiveChecker | None = None
    _users_cache: tuple[float, dict[str, User]] | None = field(default=None, repr=False)
    _stop: Callable[[], None] | None = field(default=None, repr=False)
    #: The read model's sync worker of this process (None: SYNC_ENABLED off, or no ops).
    sync: SyncWorkerHandle | None = field(default=None, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)
    #: Files and folders of the console's private data that group or others may use, found
    #: at start (services/private_files.py); shown to admins.
    loose_modes: tuple[str, ...] = ()

    def stop(self) -> None:
        """Stop the sync worker (giving its lock up) and an in-process sandbox."""
        self._stopped.set()
        if self.sync is not None:
            self.sync.stop()
            self.sync.client.close()
        if self._stop is not None:
            self._stop()
            self._stop = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.ops is not None

    @property
    def operations(self) -> Operations:
        """`ops` of a runtime that is `ok`: what a page uses once the console is set up."""
        if self.ops is None:
            raise NotConfigured("The console is not configured; open the start page.")
        return self.ops

    @property
    def is_sandbox(self) -> bool:
        return self.mode == "sandbox"

    @property
    def auth(self) -> AuthStores:
        """The login stores (opened on first use; only for a runtime that is `ok`)."""
        if self._auth is None:
            with _AUTH_LOCK:
                if self._auth is None:
                    assert self.settings is not None
                    self._auth = build_auth_stores(self.settings)
        return self._auth

    @property
    def user_ops(self) -> UserOps:
        """The users use cases over this console's users file and login stores (the Users
        page; services/operations/users.py). Built on first use, like the login stores."""
        if self._user_ops is None:
            stores = self.auth  # takes the same lock itself
            with _AUTH_LOCK:
                if self._user_ops is None:
                    assert self.settings is not None and self.ops is not None
                    assert self.auth_file is not None
                    self._user_ops = UserOps(
                        self.auth_file, ConsoleRecorder(self.ops.ctx),
                        sessions=stores.sessions, throttle=stores.throttle, totp=stores.totp,
                        admin_grant_second_admin=self.settings.admin_grant_second_admin,
                        rounds=self.settings.password_rounds,
                        idle_timeout=self.settings.idle_timeout,
                        session_lifetime=self.settings.session_lifetime,
                        sso_enabled=self.settings.sso_enabled)
        return self._user_ops

    @property
    def throttle(self) -> LoginFailures:
        """Failed logins and locks (services.store.sessions.LoginFailures)."""
        return self.auth.throttle

    def users(self) -> dict[str, User]:
        """The users file, re-read when it changed (a CLI change applies at the next rerun)."""
        if self.auth_file is None:
            return {}
        try:
            mtime = self.auth_file.stat().st_mtime
        except OSError:
            return {}
        cached = self._users_cache
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            users = load_users(self.auth_file)
        except UsersError:
            logger.warning("users file %s cannot be read; nobody can log in", self.auth_file)
            users = {}
        self._users_cache = (mtime, users)
        return users


def write_demo_users(path: Path) -> None:
    """Write the demo users (bcrypt hashes) unless the file already holds them all."""
    try:
        existing = load_users(path)
    except UsersError:
        existing = {}
    wanted = {u for u, _, _ in DEMO_USERS}
    if set(existing) == wanted and all(
        existing[u].roles == roles for u, _, roles in DEMO_USERS
    ):
        return
    users = {
        name: User(name, f"Demo {name}", f"{name}@example.invalid",
                   hash_password(password, rounds=DEMO_HASH_ROUNDS), roles)
        for name, password, roles in DEMO_USERS
    }
    save_users(path, users)


def _build_ops(settings: Settings, client: KryptosClient) -> Operations:
    """Operations over the settings' database and vault, with the given client."""
    return Operations.from_settings(settings, client=client)


def start_background(ops: Operations | None, client: KryptosClient | None,
                     settings: Settings) -> LiveChecker | None:
    """Start, without waiting: the Kryptos check, and the reconciler (a pass now, then
    every `reconcile_interval` seconds; it replays the audit journal first)."""
    checker = None
    if client is not None:
        checker = LiveChecker(client)
        checker.start()
    if ops is not None:
        ops.reconciler.start(settings.reconcile_interval)
    return checker


def make_sync(settings: Settings, ops: Operations, **client_urls: str) -> SyncWorker | None:
    """The process's sync worker, attached to the operations, not started (None when
    SYNC_ENABLED is off). Its own client makes no retries: a 429 reaches the worker's rate
    limiter instead (docs/architecture.md, "Decisions and why")."""
    client = KryptosClient.from_settings(settings, max_retries=0,
                                         user_agent=SYNC_USER_AGENT, **client_urls)
    worker = worker_from_settings(settings, client, ops.ctx.vault, ops.readmodel)
    if worker is None:
        client.close()
        return None
    ops.attach_sync_worker(worker)
    return worker


def start_sync(settings: Settings, ops: Operations, **client_urls: str) -> SyncWorker | None:
    """`make_sync`, started."""
    worker = make_sync(settings, ops, **client_urls)
    if worker is not None:
        worker.start()
    return worker


def _load_tokens(ops: Operations, control: SandboxControl) -> None:
    from services.settings import SANDBOX_CLIENT_ID

    loaded = load_sandbox_tokens(ops, control, SANDBOX_CLIENT_ID)
    logger.info("sandbox mode: %d stored tokens loaded into the vault", loaded)


def _load_then_sync(ops: Operations, control: SandboxControl, worker: SyncWorker,
                    stopped: threading.Event) -> None:
    """Sandbox mode's background start: the sandbox's tokens into the vault (a page a
    transaction, each shown in the read model at once), then the sync worker (whose first
    full sync joins them)."""
    try:
        _load_tokens(ops, control)
    except (OSError, StoreError, ValueError) as exc:
        logger.error("sandbox mode: the stored tokens could not be loaded (%s)",
                     type(exc).__name__)
    if not stopped.is_set():  # the runtime was not stopped meanwhile
        worker.start()
        # A stop between the check and the start found no thread to stop: stop it here.
        # (`Runtime.stop` sets `stopped` before stopping the worker, so one of the two does.)
        if stopped.is_set():
            worker.stop()


#: Tokens fetched, stored and shown per transaction when sandbox mode loads them: short
#: write transactions, so that a login's own writes meanwhile wait little for SQLite's lock.
TOKEN_PAGE = 1000


def load_sandbox_tokens(ops: Operations, sandbox: SandboxControl, client_id: str) -> int:
    """Store the sandbox's exported tokens in the vault (what the backend kept at exchange),
    a page at a time: each page is one vault transaction and shows in the read model at
    once (`ReadModel.apply_stored_tokens`), so the Overview fills while the rest loads and
    memory holds one page (the whole list at once took 280 MB at 100,000 grants)."""
    loaded = 0
    for page in sandbox.token_pages(client_id=client_id, size=TOKEN_PAGE):
        entries = [NewVaultEntry(row["grant_id"], row["access_token"],
                                 workspace_id=row.get("workspace_id"),
                                 kryptos_user_id=row.get("user_id"),
                                 customer_ref=row.get("customer_ref"),
                                 user_kind=row.get("kind"))
                   for row in page]
        ops.ctx.vault.put_many(entries)
        ops.readmodel.apply_stored_tokens([e.grant_id for e in entries],
                                          [row["grant_id"] for row in page
                                           if row.get("revoked")])
        loaded += len(entries)
    return loaded


def build_runtime(settings: Settings | None = None) -> Runtime:
    """Build the runtime for the settings (read from the environment when None)."""
    try:
        settings = settings or load_settings()
    except ConfigError as exc:
        setup_logging("console")
        return Runtime(settings=None, mode="live", problems=(exc.user_message,))
    setup_logging("console", settings)
    try:
        loose = prepare_data_dir(settings)
    except OSError as exc:
        return Runtime(settings=settings, mode="sandbox" if settings.sandbox_mode else "live",
                       problems=(f"Cannot create the data folder {settings.data_dir} "
                                 f"({type(exc).__name__}: {exc.strerror or exc}).",))
    runtime = _build_sandbox(settings) if settings.sandbox_mode else _build_live(settings)
    runtime.loose_modes = loose
    if runtime.ops is not None:
        wire_approvals(runtime)
        start_console_metrics(settings.console_metrics_port, runtime.ops.ctx.audit_log.db,
                              runtime.ops.readmodel)
    return runtime


APPROVAL_EXPIRY_INTERVAL = 60.0


def wire_approvals(runtime: Runtime) -> None:
    """Approvals check the requester's roles as the users file has them now, and expire
    due requests on a timer (as well as on every read)."""
    def roles_of(username: str) -> tuple[str, ...] | None:
        user = runtime.users().get(username)
        return None if user is None else tuple(user.roles)

    if runtime.ops is None:  # a runtime with problems has no use cases to wire
        return
    runtime.ops.approvals.roles_of = roles_of
    runtime.ops.approvals.start_expiry_timer(APPROVAL_EXPIRY_INTERVAL)


def _build_sandbox(settings: Settings) -> Runtime:
    from services.settings import SANDBOX_CLIENT_ID

    stop = None
    if settings.sandbox_url:
        from sandbox import SandboxClient

        control: SandboxControl = SandboxClient(settings.sandbox_url)
        base_url = settings.sandbox_url
    else:
        from sandbox import start_sandbox

        handle = start_sandbox(port=settings.sandbox_port,
                               resync_delay=settings.sandbox_resync_delay)
        control, base_url, stop = handle, handle.base_url, handle.stop
    stopped = threading.Event()
    try:
        client = KryptosClient.from_settings(
            settings, connect_url=base_url, data_url=base_url + "/api"
        )
        ops = _build_ops(settings, client)
        sync = make_sync(settings, ops, connect_url=base_url, data_url=base_url + "/api")
        if sync is None:  # no worker (tests): the tokens are in the vault before the start ends
            _load_tokens(ops, control)
        cookie_key = settings.cookie_key or secret_file(settings.data_dir / COOKIE_KEY_FILE)
        # CONSOLE_AUTH_FILE, when set, is where the demo users go: replicas that share one
        # file share the password hashes their logins are stamped with (a session opened
        # on one replica is then valid on the others).
        auth_file = settings.auth_file or settings.data_dir / DEMO_USERS_FILE
        write_demo_users(auth_file)
        if sync is not None:
            # The start never waits on data: the tokens, then the first full sync, load in
            # the background while the login page shows.
            threading.Thread(target=_load_then_sync, args=(ops, control, sync, stopped),
                             daemon=True, name="sandbox-tokens").start()
    except (ConfigError, OSError, UsersError, StoreError) as exc:
        message = getattr(exc, "user_message", None) or f"{type(exc).__name__}: {exc}"
        return Runtime(settings=settings, mode="sandbox", problems=(message,), _stop=stop)
    return Runtime(
        settings=settings,
        mode="sandbox",
        ops=ops,
        live_check=start_background(ops, client, settings),
        client_id=SANDBOX_CLIENT_ID,
        sandbox=control,
        auth_file=auth_file,
        cookie_key=cookie_key,
        demo_users=DEMO_USERS,
        _stop=stop,
        sync=sync,
        _stopped=stopped,
    )


def _build_live(settings: Settings) -> Runtime:
    problems: list[str] = []
    if not settings.cookie_key:
        problems.append(
            "Cookie key: set CONSOLE_COOKIE_KEY (or `cookie_key` in the [console] table of "
            ".streamlit/secrets.toml) to a long random string, e.g. the output of "
            "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`."
        )
    if not settings.vault_key:
        problems.append(
            "Vault key: set KRYPTOS_VAULT_KEY (or `vault_key` in the [console] table of "
            ".streamlit/secrets.toml); it encrypts the stored customer tokens."
        )
    auth_file = settings.effective_auth_file
    if not auth_file.is_file():
        problems.append(
            f"Auth file: {auth_file} does not exist. Create the first user with "
            "`python -m dashboard.users add NAME --role admin`, or set CONSOLE_AUTH_FILE."
        )
    else:
        try:
            if not load_users(auth_file):
                problems.append(
                    f"Auth file: {auth_file} has no users. Add one with "
                    "`python -m dashboard.users add NAME --role admin`."
                )
        except UsersError as exc:
            problems.append(f"Auth file: {exc.user_message}")
    ops = None
    client = KryptosClient.from_settings(settings)  # for the check, whatever else is missing
    sync = None
    if not problems:
        try:
            ops = _build_ops(settings, client)
            sync = start_sync(settings, ops)
        except ConfigError as exc:
            problems.append(exc.user_message)
        except Exception as exc:  # the database or vault could not be opened
            logger.exception("live mode: cannot build the operations")
            problems.append(
                f"Cannot open the console's database or vault ({type(exc).__name__}); check "
                "DATABASE_URL and KRYPTOS_VAULT_KEY, and the server log."
            )
    return Runtime(
        settings=settings,
        mode="live",
        ops=ops,
        client_id=settings.client_id,
        problems=tuple(problems),
        auth_file=auth_file,
        cookie_key=settings.cookie_key,
        live_check=start_background(ops, client, settings),
        sync=sync,
    )


def _release(runtime: Runtime) -> None:
    runtime.stop()


# No spinner: `python -m dashboard.serve` builds it in a thread of its own at process start,
# where Streamlit has no page to draw one on (and warns when asked to).
@st.cache_resource(show_spinner=False, on_release=_release)
def get_runtime() -> Runtime:
    """The process-wide runtime (built once; `st.cache_resource.clear()` rebuilds it). The
    console process builds it at start (dashboard/serve.py); a page run gets that object,
    or waits for it while it is being built."""
    return build_runtime()


class NotInSandbox(Exception):
    """A sandbox-only helper was called in live mode."""


def play_widget(runtime: Runtime, kind: str = "guest",
                link_token: str | None = None) -> PublicTokenAnswer:
    """Sandbox mode only: act as a user finishing the Connect widget opened with
    `link_token`. A new user's run returns `{public_token, user_id, kind}` (the token is for
    the exchange only); a returning user's (link token made with their access token) adds an
    integration to their grant and returns `{public_token: None, resumed: True, grant_id,
    wallet_id, user_id, kind}`."""
    if runtime.sandbox is None or not runtime.is_sandbox:
        raise NotInSandbox("Playing the widget's part is only possible in sandbox mode.")
    if kind not in ("guest", "linked"):
        raise ValueError(f"kind must be 'guest' or 'linked', not {kind!r}")
    return runtime.sandbox.create_public_token(kind=kind, link_token=link_token)
