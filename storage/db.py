"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL for scale."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine


def make_engine(url: str, *, echo: bool = False, foreign_keys: bool = True) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL, a busy timeout and (unless told otherwise) foreign keys."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    is_sqlite = url.startswith("sqlite")
    if is_sqlite and url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"echo": echo}
    if is_sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas if foreign_keys else _sqlite_pragmas_unchecked)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, foreign_keys: bool = True) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_pragmas_unchecked(dbapi_conn: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_conn, record, foreign_keys=False)


class Database:
    """Owns one engine and hands out short-lived sessions (one per unit of work).

    ``foreign_keys=False`` (SQLite only) is for a writer whose every transaction checks its parent rows
    itself (the care store's writer process): per-row checks were a sixth of the cost of a large page.
    """

    def __init__(self, url: str, *, foreign_keys: bool = True) -> None:
        self.url = url
        self.foreign_keys = foreign_keys
        self.engine = make_engine(url, foreign_keys=foreign_keys)

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite database."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
