"""Fixtures for the store tests: every database test runs on SQLite and on PostgreSQL.

PostgreSQL: URL from TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
A throwaway database is created for the session and dropped at the end; each test gets its
own schema in it.

Without a reachable server the PostgreSQL variants are skipped with a message saying why,
or fail when TEST_REQUIRE_POSTGRES is set (CI sets it).

`db_url` is an empty database (the migrations' own tests start there); `db` is one at the
newest migration, copied from a template the session migrated once (tests/databases.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.store import Database, open_database
from tests.databases import at_head, schema_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_PG_SKIP_REASON: dict[str, str] = {}


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str | None]:
    """URL of a throwaway PostgreSQL database for this session, or None (with the reason
    recorded) when no server is reachable."""
    admin_url = make_url(os.environ.get("TEST_POSTGRES_URL") or DEFAULT_PG_URL)
    if admin_url.get_driver_name() in ("", "psycopg2"):
        admin_url = admin_url.set(drivername="postgresql+psycopg")
    shown = admin_url.render_as_string(hide_password=True)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 3})
    name = f"kc_store_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable server"
        admin.dispose()
        _PG_SKIP_REASON["reason"] = (
            f"PostgreSQL not reachable at {shown}: {exc.__class__.__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
        yield None
        return
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _pg_schema_url(base: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema_url(base, schema)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'console.db'}"
        return
    base = request.getfixturevalue("pg_base_url")
    if base is None:
        reason = _PG_SKIP_REASON.get("reason", "PostgreSQL not reachable")
        if os.environ.get("TEST_REQUIRE_POSTGRES"):  # set by .ci/run: there it must run
            pytest.fail(f"{reason} (TEST_REQUIRE_POSTGRES is set)")
        pytest.skip(reason)
    yield from _pg_schema_url(base)


@pytest.fixture
def db(db_url: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    """An open database at the newest migration (SQLite or PostgreSQL, as `db_url`)."""
    at_head(db_url, request.getfixturevalue("sqlite_template"))
    database = open_database(db_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def vault_key() -> bytes:
    return Fernet.generate_key()
