"""Audit events for the operator's command-line tools.

`python -m dashboard.users add | set-roles | remove` and `python -m services.store
import-tokens | rotate-key` change security-relevant state outside the console: who may log
in and with which roles, which access tokens are stored, which key encrypts them. Each of
these commands records its change in the console's audit log the way the console records its
own actions: a `requested` event before the change, then `succeeded` (with `before` and
`after`) or `failed` (error code and message), the pair sharing one correlation id.

The actor is the operator at the shell: `cli:<OS user>` (`getpass.getuser()`, else
`uid-<uid>`) with the single role `cli`, and the `requested` event's params carry the host
name. There is no permission check, on purpose: whoever can run these commands against the
console's users file, database and vault key already controls them (they could edit the file
or the database directly), so a check here would protect nothing. What the console owes its
auditors is the record, to answer "who gave admin to whom, and when".

A change that cannot be recorded is not made: when the audit log cannot be opened (bad
`DATABASE_URL`, database unreachable) or its `requested` event cannot be written,
`AuditUnavailable` is raised before the change and the commands exit 2. When the change was
made but its outcome could not be recorded, `AuditUnavailable.change_made` is True and the
message says so.

Nothing secret goes into an event: callers pass user names, roles, file names and counts
(never a password, hash, token or key), failures are described by their `user_message` (never
by an arbitrary exception's text), and the store masks values under token-like keys anyway.
The database URL's password never appears in a message.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from services.operations.service import A_IMPORT, audit_anchor_file
from services.settings import ConfigError
from services.store.errors import StoreError

T = TypeVar("T")

#: The one role of an operator acting through a command-line tool (not a console role: it
#: grants nothing in the console).
CLI_ROLE = "cli"

# Audit actions of the command-line tools. Importing tokens is the Connect page's action too.
A_USER_ADD = "user.add"
A_USER_SET_ROLES = "user.set_roles"
A_USER_REMOVE = "user.remove"
A_TOKEN_IMPORT = A_IMPORT
A_VAULT_ROTATE_KEY = "vault.rotate_key"

_NOT_MADE = "so nothing was changed: a change that cannot be recorded is not made."
_NAME_RE = re.compile(r"[^A-Za-z0-9._@-]+")


class AuditUnavailable(Exception):
    """The audit log cannot record a command-line change; `user_message` says why and whether
    the change was made (`change_made`). Never holds a secret."""

    def __init__(self, user_message: str, *, change_made: bool = False) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.change_made = change_made


def cli_actor_username() -> str:
    """`cli:<OS user>` for the operator running the command.

    The login name from `getpass.getuser()` (LOGNAME, USER, ... then the password database);
    when there is none (a container running under an arbitrary uid), `uid-<uid>`."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError, ImportError):  # no login name and no passwd entry
        name = ""
    name = _NAME_RE.sub("_", name.strip())[:64].strip("_")
    if not name:
        name = f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{name}"


def _host() -> str | None:
    try:
        return socket.gethostname()[:200] or None
    except OSError:
        return None


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _why(exc: BaseException) -> str:
    """A short, secret-free description of why the audit log could not be used."""
    if isinstance(exc, (StoreError, ConfigError)):
        return exc.user_message.rstrip(".")
    orig = getattr(exc, "orig", None)  # a SQLAlchemy DBAPIError: the driver's own error
    if orig is not None:
        lines = str(orig).strip().splitlines()
        return f"{type(orig).__name__}: {lines[0]}" if lines else type(orig).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__  # its text might hold the database URL


def _failure(exc: BaseException) -> tuple[str, str]:
    """(error_code, error_message) for a change that raised `exc`."""
    if isinstance(exc, KeyboardInterrupt):
        return "INTERRUPTED", "Interrupted before it finished; part of it may have been done."
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        if isinstance(exc, StoreError):
            code = "STORE_ERROR"
        elif isinstance(exc, ConfigError):
            code = "CONFIG_ERROR"
        else:
            code = "INTERNAL"
    message = getattr(exc, "user_message", None)
    if not isinstance(message, str) or not message:
        message = f"An unexpected error ({type(exc).__name__}); see the command's output."
    return code, message


def _password_of(url: str) -> tuple[str, ...]:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - an unparsable URL: open_database says so, in its words
        return ()
    return (str(password),) if password else ()


class CliAudit:
    """Writes a command-line change's audit events as the operator at the shell.

    `CliAudit.open(settings, database_url=None)` opens the console's database (the settings'
    `DATABASE_URL`, else the SQLite file under the data folder; migrations applied) and its
    audit log with the settings' anchor file. `db` is that database, for a command that also
    changes it (the vault). Use as a context manager, or call `close()`."""

    def __init__(self, audit: Any, db: Any = None, *, actor_username: str | None = None,
                 secrets: tuple[str, ...] = ()) -> None:
        self.audit = audit
        self.db = db
        self.actor_username = actor_username or cli_actor_username()
        self.actor_roles: tuple[str, ...] = (CLI_ROLE,)
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"CliAudit({self.actor_username!r}, {self.audit!r})"

    @classmethod
    def open(cls, settings: Any = None, database_url: str | None = None) -> CliAudit:
        """Raises `AuditUnavailable` when the settings or the database cannot be used."""
        import services.store as store

        secrets: tuple[str, ...] = ()
        try:
            if settings is None:
                from services.settings import load_settings

                settings = load_settings()
            url = database_url or settings.effective_database_url
            secrets = _password_of(url)
            db = store.open_database(url)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the change must not be made
            why = _scrub(_why(exc), secrets)
            if not isinstance(exc, (StoreError, ConfigError)):
                why = f"the database URL or the database cannot be used: {why}"
            raise AuditUnavailable(f"The audit log cannot be opened ({why}), {_NOT_MADE}") \
                from None
        try:
            audit = store.AuditLog(db, anchor_file=audit_anchor_file(settings))
        except Exception:
            db.dispose()
            raise
        return cls(audit, db, secrets=secrets)

    def close(self) -> None:
        """Write the newest head to the anchor file now (not on a timer) and close the
        database."""
        try:
            self.audit.flush_anchor()
        finally:
            if self.db is not None:
                self.db.dispose()

    def __enter__(self) -> CliAudit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _append(self, action: str, outcome: str, cid: str, **fields: Any) -> None:
        from services.store import NewAuditEvent

        self.audit.append(NewAuditEvent(
            actor_username=self.actor_username, actor_roles=self.actor_roles, action=action,
            outcome=outcome, correlation_id=cid, **fields))

    def run(
        self,
        action: str,
        body: Callable[[], tuple[T, Mapping[str, Any] | None, Mapping[str, Any] | None]],
        *,
        target_type: str | None = None,
        target_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> T:
        """`requested` -> body() -> `succeeded`(before, after) | `failed`(code, message).

        `body` makes the change and returns (value, before, after); its exception is re-raised
        after the `failed` event (code from its `code`, else STORE_ERROR / CONFIG_ERROR /
        INTERNAL; message from its `user_message`). Raises `AuditUnavailable` when the
        `requested` event cannot be written (then `body` is not called) or the outcome
        cannot be."""
        cid = str(uuid.uuid4())
        common: dict[str, Any] = {"target_type": target_type, "target_id": target_id}
        host = _host()
        requested = {**(params or {}), **({"host": host} if host else {})}
        try:
            self._append(action, "requested", cid, params=requested or None, **common)
        except Exception as exc:  # noqa: BLE001 - any failure to record refuses the change
            raise AuditUnavailable(
                f"The audit log cannot be written ({self._reason(exc)}), {_NOT_MADE}"
            ) from None
        try:
            value, before, after = body()
        except BaseException as exc:
            code, message = _failure(exc)
            try:
                self._append(action, "failed", cid, error_code=code, error_message=message,
                             **common)
            except Exception as audit_exc:  # noqa: BLE001
                raise AuditUnavailable(
                    f"{message} The audit log could not record this failure "
                    f"({self._reason(audit_exc)}): it holds the request (correlation id "
                    f"{cid}) without an outcome."
                ) from None
            raise
        try:
            self._append(action, "succeeded", cid,
                         before=dict(before) if before is not None else None,
                         after=dict(after) if after is not None else None, **common)
        except Exception as exc:  # noqa: BLE001
            raise AuditUnavailable(
                f"The change WAS made, but the audit log could not record its outcome "
                f"({self._reason(exc)}): it holds the request (correlation id {cid}) without "
                "an outcome. Tell whoever audits the console.",
                change_made=True,
            ) from None
        return value

    def _reason(self, exc: BaseException) -> str:
        return _scrub(_why(exc), self._secrets)


__all__ = [
    "A_TOKEN_IMPORT",
    "A_USER_ADD",
    "A_USER_REMOVE",
    "A_USER_SET_ROLES",
    "A_VAULT_ROTATE_KEY",
    "CLI_ROLE",
    "AuditUnavailable",
    "CliAudit",
    "cli_actor_username",
]
