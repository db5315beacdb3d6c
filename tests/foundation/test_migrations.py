"""Alembic owns the schema: empty to head (and back) on SQLite and PostgreSQL, matching the models."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import storage.models  # noqa: F401
from storage.db import make_engine
from storage.migrate import downgrade, upgrade
from storage.models import metadata

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def _assert_schema_matches(url: str) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert diff == [], f"models and migrations differ: {diff}"


def test_sqlite_empty_to_head_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    _assert_schema_matches(url)
    downgrade(url, "base")
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(url)
    _assert_schema_matches(url)


@pytest.mark.skipif(not _pg_available(), reason="PostgreSQL is not reachable on 127.0.0.1:5432")
def test_postgresql_empty_to_head_and_back() -> None:
    name = f"carehub_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        _assert_schema_matches(url)
        downgrade(url, "base")
        upgrade(url)
        _assert_schema_matches(url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
