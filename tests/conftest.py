"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when CAREHUB_TEST_DATABASE_URL is set),
a real Redis database, and the application context wired to both.

Each pytest process gets its own PostgreSQL database and Redis db number, so several suites can run
on one machine at once. Tables are emptied after every test that used the database.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

_TMP = Path(tempfile.mkdtemp(prefix="carehub-test-"))
_PG_BASE = os.environ.get("CAREHUB_TEST_DATABASE_URL", "")
_PG_NAME = f"carehub_test_{uuid.uuid4().hex[:10]}"
_REDIS_BASE = os.environ.get("CAREHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DB = 1 + (os.getpid() % 15)
TEST_KEY = Fernet.generate_key().decode()


def _pg_admin_url() -> str:
    base, _, _ = _PG_BASE.rpartition("/")
    return f"{base}/postgres"


def _database_url() -> str:
    if _PG_BASE:
        base, _, _ = _PG_BASE.rpartition("/")
        return f"{base}/{_PG_NAME}"
    return f"sqlite:///{_TMP / 'carehub.db'}"


def pytest_configure(config: pytest.Config) -> None:
    """Point CareHub at the test database and Redis before anything imports the settings."""
    os.environ.update(
        CAREHUB_ENV="local",
        CAREHUB_DATA_DIR=str(_TMP / "data"),
        CAREHUB_DATABASE_URL=_database_url(),
        CAREHUB_REDIS_URL=f"{_REDIS_BASE}/{REDIS_DB}",
        CAREHUB_SECRET_KEYS=TEST_KEY,
        CAREHUB_SESSION_SECRET="test-session-secret-" + uuid.uuid4().hex,
        CAREHUB_ADMIN_PASSWORD="admin-password-for-tests",
    )
    # Grouped commits make ordinary test pages large enough for the store writer process; only the tests
    # written for it use it (test_store_writer, and the crash tests' workers, which set their own minimum).
    os.environ.setdefault("CAREHUB_STORE_WRITER_MIN_PAGE", "0")
    if _PG_BASE and not hasattr(config, "workerinput"):
        engine = create_engine(_pg_admin_url().replace("postgresql://", "postgresql+psycopg://"),
                               isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{_PG_NAME}"'))
        engine.dispose()
    from storage.migrate import upgrade

    upgrade(_database_url())


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop this run's PostgreSQL database."""
    if _PG_BASE:
        from app.context import get_context

        get_context().db.dispose()
        engine = create_engine(_pg_admin_url().replace("postgresql://", "postgresql+psycopg://"),
                               isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{_PG_NAME}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def ctx() -> Iterator[object]:
    """The application context on the test database; every table is emptied afterwards."""
    from app.context import get_context

    context = get_context()
    yield context
    _empty_tables(context.db)


@pytest.fixture
def db(ctx: object) -> object:
    """The test :class:`storage.db.Database`."""
    return ctx.db  # type: ignore[attr-defined]


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis database, flushed before and after the test."""
    import redis

    url = f"{_REDIS_BASE}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def _empty_tables(database: object) -> None:
    from storage.models import metadata

    engine = database.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
