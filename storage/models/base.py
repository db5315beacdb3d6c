"""Shared column helpers for every table."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlmodel import Field, SQLModel

# Named constraints so Alembic batch mode on SQLite can alter them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata



def json_type() -> Any:
    """JSON on SQLite, JSONB on PostgreSQL (a fresh instance: mutable wrappers bind to the instance)."""
    return JSON().with_variant(JSONB(), "postgresql")


JSONDict = MutableDict.as_mutable(json_type())
JSONList = MutableList.as_mutable(json_type())
TZDateTime = DateTime(timezone=True)


def utcnow() -> datetime:
    """The current time in UTC, timezone-aware."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random identifier (UUID4 hex)."""
    return uuid.uuid4().hex


def new_ids(n: int) -> list[str]:
    """``n`` new identifiers in ascending order (32 hex digits: milliseconds, sequence, 64 random bits).

    Time-ordered like UUIDv7, so a large batch appends to the right edge of every index keyed by record id
    instead of landing on random pages; 64 random bits keep them unguessable and unique across processes.
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    raw = os.urandom(8 * n).hex()
    return [f"{stamp}{i & 0xFFFF:04x}{raw[16 * i:16 * i + 16]}" for i in range(n)]


def json_dict() -> Any:
    """A mutable JSON object column."""
    return Field(default_factory=dict, sa_type=JSONDict)


def json_list() -> Any:
    """A mutable JSON array column."""
    return Field(default_factory=list, sa_type=JSONList)


def now_column() -> Any:
    """A creation timestamp column."""
    return Field(default_factory=utcnow, sa_type=TZDateTime)


def optional_time(index: bool = False) -> Any:
    """A nullable timestamp column."""
    return Field(default=None, sa_type=TZDateTime, index=index)
