"""Databases at the newest migration for tests, without running the migrations each time.

Applying the Alembic migrations to a new database costs about half a second (several seconds
on a loaded machine), and most tests only need a database at head. So each test process
migrates one database of each kind once and copies it:

- SQLite (`SqliteTemplate`): a file migrated by `open_database` and checkpointed into one
  file; `copy_to(path)` writes a private (0600) copy, the way the console creates its own.
- PostgreSQL (`PgTemplate`): a schema migrated by `open_database`; `fill(schema)` creates
  its tables, indexes, functions and triggers in an empty schema from `pg_dump
  --schema-only` of that template (one round trip), then copies the rows the migrations
  wrote (the Alembic version, the read model's version row) and the sequences' positions.
  Without a `pg_dump` of the server's major version it migrates the schema instead.

Opening a copy with `open_database` still runs `migrate()`, which finds the database at
head. Tests of the migrations themselves start from an empty database (the store's
`db_url` fixture); the templates are themselves made by the migrations, so a new migration
is in every copy at once."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
import warnings
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from services.private_files import create_private_file
from services.store import open_database


def schema_url(base: str, schema: str) -> str:
    """`base` (a PostgreSQL URL) with `schema` as the connections' search path."""
    return make_url(base).update_query_dict(
        {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


class SqliteTemplate:
    """A SQLite database at head, made once; `copy_to` gives each test its own copy."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "template.db"
        database = open_database(f"sqlite:///{self.path}")
        database.dispose()
        # Everything in the database file itself (WAL mode is kept in its header), so a
        # copy of that one file is the whole database.
        conn = sqlite3.connect(self.path)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
        assert busy == 0, "the SQLite template could not be checkpointed"

    def copy_to(self, path: Path) -> str:
        """Write a copy at `path` (which must not exist; 0600, its folder 0700 when new) and
        return its URL."""
        assert create_private_file(path), f"{path} exists already"
        with open(self.path, "rb") as src, open(path, "r+b") as dst:
            shutil.copyfileobj(src, dst)
        return f"sqlite:///{path}"


class PgTemplate:
    """A PostgreSQL schema at head in the session's database, made once; `fill(schema)`
    brings an empty schema of the same database to the same state."""

    _made: dict[str, PgTemplate] = {}

    @classmethod
    def of(cls, base_url: str) -> PgTemplate:
        """The template in the database at `base_url`, made at the first call."""
        if base_url not in cls._made:
            cls._made[base_url] = cls(base_url)
        return cls._made[base_url]

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.schema = f"kc_template_{uuid.uuid4().hex[:12]}"
        engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            open_database(schema_url(base_url, self.schema)).dispose()
            with engine.connect() as conn:
                tables = conn.execute(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"
                ), {"s": self.schema}).scalars().all()
                self.tables_with_rows = [
                    t for t in tables
                    if conn.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{self.schema}"."{t}")'))
                    .scalar()
                ]
                self.sequences = conn.execute(text(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = :s"
                ), {"s": self.schema}).scalars().all()
        finally:
            engine.dispose()
        self.ddl = self._dump()

    def _dump(self) -> str | None:
        """The template schema's DDL with its name as a placeholder, or None when this
        machine's pg_dump cannot dump this server (missing, or another major version)."""
        if shutil.which("pg_dump") is None:
            return None
        url = make_url(self.base_url)
        command = ["pg_dump", "--schema-only", "--no-owner", "--no-privileges",
                   f"--schema={self.schema}", "-h", url.host or "127.0.0.1",
                   "-p", str(url.port or 5432), "-U", url.username or "postgres",
                   url.database or ""]
        env = {"PGPASSWORD": url.password} if url.password else {}
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env={**_base_env(), **env}, check=False)
        if done.returncode != 0:
            return None
        lines = [
            line for line in done.stdout.splitlines()
            # psql meta-commands, and the schema itself (the test's exists already)
            if not line.startswith("\\") and line.strip() != f"CREATE SCHEMA {self.schema};"
        ]
        return "\n".join(lines).replace(self.schema, "{schema}")

    def fill(self, schema: str) -> None:
        """Bring the empty `schema` to head: the template's DDL, rows and sequences."""
        if self.ddl is None:
            open_database(schema_url(self.base_url, schema)).dispose()
            return
        statements = [self.ddl.replace("{schema}", schema)]
        statements += [f'INSERT INTO "{schema}"."{table}" SELECT * FROM "{self.schema}"."{table}"'
                       for table in self.tables_with_rows]
        statements += [f"SELECT setval('\"{schema}\".\"{seq}\"', last_value, is_called) "
                       f'FROM "{self.schema}"."{seq}"' for seq in self.sequences]
        try:
            self._apply(statements)
        except psycopg.Error as exc:
            # E.g. a pg_dump newer than the server wrote a setting this server does not know.
            # The transaction rolled back (the schema is still empty): migrate it instead, and
            # every later one too, and say so.
            warnings.warn(f"the PostgreSQL template's DDL was refused ({exc.__class__.__name__}:"
                          f" {exc}); tests migrate each schema instead", stacklevel=2)
            self.ddl = None
            open_database(schema_url(self.base_url, schema)).dispose()

    def _apply(self, statements: list[str]) -> None:
        engine = create_engine(self.base_url, poolclass=NullPool)
        try:
            # The driver's own connection: a script without parameters goes as it is (psycopg
            # reads no placeholders in it), many statements in one round trip.
            raw = engine.raw_connection()
            try:
                with raw.cursor() as cur:
                    for statement in statements:
                        cur.execute(statement)
                raw.commit()
            finally:
                raw.close()
        finally:
            engine.dispose()


def at_head(url: str, sqlite_template: SqliteTemplate) -> None:
    """Bring the empty database at `url` (a SQLite file not yet made, or an empty PostgreSQL
    schema named by the URL's search path, as the store's `db_url` fixture gives) to the
    newest migration from a template."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        sqlite_template.copy_to(Path(parsed.database or ""))
        return
    base = parsed.difference_update_query(["options"]).render_as_string(hide_password=False)
    PgTemplate.of(base).fill(str(parsed.query["options"]).removeprefix("-csearch_path="))


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
