"""Engine setup for SQLite and PostgreSQL, and Alembic migrations applied programmatically.

SQLite connections run with WAL, a busy timeout and foreign keys on. Writers that must be
serialised open their transaction with `BEGIN IMMEDIATE` (`Database.write()`); in PostgreSQL
the caller takes a table lock inside the transaction it gets from `write()`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, CursorResult, Engine, RowMapping, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from services.private_files import create_private_file
from services.store.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
_IMMEDIATE = "kryptos_sqlite_immediate"
_RELAXED = "kryptos_not_durable"
_READ = "kryptos_read_only"
# pg_advisory_xact_lock key serialising concurrent migrations of one database.
_MIGRATION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"kryptos-console-migrate").digest()[:7], "big")

# A stored row by column name: what `.mappings()` yields, or a plain dict of the same columns.
RowLike = RowMapping | Mapping[str, Any]


def _normalise_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError("DATABASE_URL is not a valid database URL.") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # Only psycopg 3 is installed: postgresql:// means postgresql+psycopg://.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"Unsupported database '{backend}': use sqlite:///path or postgresql+psycopg://..."
        )
    return parsed


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key that a single-row INSERT created."""
    key = result.inserted_primary_key
    if key is None:  # SQLAlchemy gives None only for an executemany or a non-INSERT
        raise StoreError("The database returned no key for the new row.")
    return int(key[0])


def _set_wal(cursor: Any) -> None:
    """Switch the file to WAL. Two processes opening a new file at once both try; SQLite
    answers the loser "database is locked" at once, without its busy handler, so wait for
    the winner here (bounded by the busy timeout)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Database:
    """One engine over the console's database. `url` is a SQLAlchemy URL."""

    def __init__(self, url: str | URL) -> None:
        self.url = _normalise_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine()
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    def _sqlite_engine(self) -> Engine:
        database = self.url.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        kwargs: dict[str, Any] = {
            "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        }
        if in_memory:
            kwargs["poolclass"] = StaticPool
        else:
            # Created here (0600, its folder 0700) rather than by SQLite (0644 less the
            # umask); SQLite gives the -wal and -shm files the database file's mode.
            create_private_file(Path(database).expanduser().resolve())
        engine = create_engine(self.url, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite's own
            # transaction handling cannot do BEGIN IMMEDIATE).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
                _set_wal(cursor)
                cursor.execute("PRAGMA foreign_keys=ON")
                # FULL: a committed audit event survives a power cut too (NORMAL in WAL mode
                # only survives a crash of the process). Measured cost here: about 20 %
                # of the append rate (1,182 vs 1,453 appends/s on this machine's disk).
                cursor.execute("PRAGMA synchronous=FULL")
                _record.info[_RELAXED] = "FULL"
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            # The commit's sync level is the connection's: set it before BEGIN, and only
            # when it changes (most transactions keep FULL). A read (`read()`, rolled back,
            # nothing to commit) keeps whatever level the connection has.
            if not options.get(_READ, False):
                level = "NORMAL" if options.get(_RELAXED, False) else "FULL"
                info = conn.connection.info
                if info.get(_RELAXED) != level:
                    conn.exec_driver_sql(f"PRAGMA synchronous={level}")
                    info[_RELAXED] = level
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_IMMEDIATE, False)
                                 else "BEGIN")

        return engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a (deferred) transaction, rolled back at the end."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(**{_READ: True})
            with conn.begin():
                yield conn

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Connection]:
        """A write transaction, committed on success. SQLite: BEGIN IMMEDIATE.

        `durable=False`: the commit does not wait for the disk (SQLite: synchronous=NORMAL,
        no fsync of the WAL; PostgreSQL: synchronous_commit off). A crash of the machine
        may lose the newest such transactions, never corrupt the database; for bookkeeping
        that can be lost (rate-limit hits), never for audit events or tokens."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(**{_IMMEDIATE: True, _RELAXED: not durable})
            with conn.begin():
                if not durable and not self.is_sqlite:
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                yield conn

    def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision (serialised across processes)."""
        try:
            with self.write() as conn:
                if not self.is_sqlite:
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise StoreError(
                f"Cannot open the database {self.url.render_as_string(hide_password=True)}: "
                f"{exc.orig.__class__.__name__}: {str(exc.orig).strip().splitlines()[0]}"
            ) from None

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str | URL) -> Database:
    """Open the database at `url` and apply the migrations up to head."""
    db = Database(url)
    db.migrate()
    return db
