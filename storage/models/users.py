"""Users, API tokens and the audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Field, SQLModel

from storage.models.base import TZDateTime, json_dict, now_column, optional_time, utcnow


class Role(StrEnum):
    """What a user may do: managers design, onboarding migrates, admins do everything."""

    MANAGER = "manager"
    ONBOARDING = "onboarding"
    ADMIN = "admin"


class User(SQLModel, table=True):
    """A person who signs in to CareHub."""

    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)
    name: str = Field(default="", max_length=200)
    role: str = Field(default=Role.MANAGER.value, max_length=20)
    password_hash: str
    is_active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = optional_time()
    last_login_at: datetime | None = optional_time()
    created_at: datetime = now_column()


class ApiToken(SQLModel, table=True):
    """A bearer token for /api/v1; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    name: str = Field(default="", max_length=200)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    prefix: str = Field(max_length=12)
    revoked: bool = False
    last_used_at: datetime | None = optional_time()
    created_at: datetime = now_column()


class AuditLog(SQLModel, table=True):
    """Who did what to which record, when, and with what outcome."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime, index=True)
    actor: str = Field(default="system", max_length=320, index=True)
    action: str = Field(max_length=100, index=True)
    entity_type: str = Field(default="", max_length=100)
    entity_id: str = Field(default="", max_length=100)
    outcome: str = Field(default="ok", max_length=20)
    detail: dict[str, Any] = json_dict()
