"""Audit events of the operator's command-line tools (`python -m dashboard.users ...`,
`python -m services.store import-tokens | rotate-key`), written through `AuditTrail` with
`require_record=True`: a change that cannot be recorded is not made. The actor is
`cli:<OS user>` with the single role `cli`; no permission check (see docs/architecture.md,
"Decisions and why")."""

from __future__ import annotations

import getpass
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from services.private_files import private_dir
from services.settings import ConfigError, Settings
from services.store.audit import AuditLog
from services.store.db import Database, open_database
from services.store.errors import StoreError
from services.store.journal import AuditJournal
from services.store.trail import (
    AuditSink,
    AuditTrail,
    AuditUnavailable,
    Outcome,
    scrub,
    watch_pending,
    why_unusable,
)

T = TypeVar("T")

#: The one role of an operator acting through a command-line tool (grants nothing in the
#: console).
CLI_ROLE = "cli"

_NOT_MADE = "so nothing was changed: a change that cannot be recorded is not made."
_NAME_RE = re.compile(r"[^A-Za-z0-9._@-]+")
_log = logging.getLogger(__name__)


def cli_actor_username() -> str:
    """`cli:<OS user>` (`getpass.getuser()`), else `cli:uid-<uid>` when there is none."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError, ImportError):  # no login name and no passwd entry
        name = ""
    name = _NAME_RE.sub("_", name.strip())[:64].strip("_")
    if not name:
        name = f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{name}"


def audit_anchor_file(settings: Settings) -> Path:
    """The settings' audit anchor file; the default one's folder (the console's data folder)
    is created if missing. Shared by `Operations.from_settings` and `CliAudit.open`."""
    anchor = settings.effective_audit_anchor_file
    if settings.audit_anchor_file is None:  # the default, in the console's own folder
        try:
            private_dir(anchor.parent)
        except OSError as exc:  # appends still work; the log warns (once a minute)
            _log.warning("cannot create %s for the audit anchor: %s", anchor.parent, exc)
    return anchor


def _host() -> str | None:
    try:
        return socket.gethostname()[:200] or None
    except OSError:
        return None


def _password_of(url: str) -> tuple[str, ...]:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - an unparsable URL: open_database says so, in its words
        return ()
    return (str(password),) if password else ()


class CliAuditLog(AuditSink, Protocol):
    """An audit log whose anchor file can be written now (`AuditLog`, or a test's wrapper)."""

    def flush_anchor(self) -> None: ...


class CliAudit:
    """The operator at the shell writing a change's audit events.

    `CliAudit.open(settings, database_url=None)` opens the console's database (migrations
    applied) and its audit log with the settings' anchor file; `db` is that database, for a
    command that also changes it (the vault). Use as a context manager, or call `close()`."""

    def __init__(self, audit: CliAuditLog, db: Database | None = None, *,
                 actor_username: str | None = None, secrets: tuple[str, ...] = (),
                 journal: AuditJournal | None = None) -> None:
        self.audit = audit
        self._db = db
        self.trail = AuditTrail(audit, secrets=secrets, journal=journal)
        self.actor_username = actor_username or cli_actor_username()
        self.actor_roles: tuple[str, ...] = (CLI_ROLE,)

    def __repr__(self) -> str:
        return f"CliAudit({self.actor_username!r}, {self.audit!r})"

    @property
    def db(self) -> Database:
        """The database `open()` opened, for a command that also changes it."""
        if self._db is None:
            raise StoreError("This audited change was set up without the console's database.")
        return self._db

    @classmethod
    def open(cls, settings: Settings | None = None,
             database_url: str | None = None) -> CliAudit:
        """Raises `AuditUnavailable` when the settings or the database cannot be used."""
        secrets: tuple[str, ...] = ()
        try:
            if settings is None:
                from services.settings import load_settings

                settings = load_settings()
            url = database_url or settings.effective_database_url
            secrets = _password_of(url)
            db = open_database(url)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the change must not be made
            why = scrub(why_unusable(exc), secrets)
            if not isinstance(exc, (StoreError, ConfigError)):
                why = f"the database URL or the database cannot be used: {why}"
            raise AuditUnavailable(f"The audit log cannot be opened ({why}), {_NOT_MADE}") \
                from None
        try:
            audit = AuditLog(db, anchor_file=audit_anchor_file(settings))
        except Exception:
            db.dispose()
            raise
        journal = AuditJournal(settings.effective_audit_journal_file)
        return cls(audit, db, secrets=secrets, journal=journal)

    def close(self) -> None:
        """Write the newest head to the anchor file now and close the database."""
        try:
            self.audit.flush_anchor()
        finally:
            if self._db is not None:
                self._db.dispose()

    def __enter__(self) -> CliAudit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(
        self,
        action: str,
        body: Callable[[], Outcome[T]],
        *,
        target_type: str | None = None,
        target_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> T:
        """`AuditTrail.run` as the operator, the host name added to the request's params;
        raises `AuditUnavailable` when the change cannot be recorded."""
        host = _host()
        requested = {**(params or {}), **({"host": host} if host else {})}
        with watch_pending() as pending:
            value = self.trail.run(
                self.actor_username, self.actor_roles, action, body, target_type=target_type,
                target_id=target_id, params=requested or None, require_record=True,
            )
        journal = self.trail.journal
        if pending and journal is not None:  # made; its outcome waits in the journal
            print(f"Done. Its audit record is pending: the audit store is unavailable, so the "
                  f"record was kept in {journal.path}; the console writes it to the audit "
                  "log when the store is back.", file=sys.stderr)
        return value


__all__ = ["CLI_ROLE", "AuditUnavailable", "CliAudit", "audit_anchor_file",
           "cli_actor_username"]
