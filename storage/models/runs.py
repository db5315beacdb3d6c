"""Sync runs, their events, per-record outcomes, checkpoints and integration errors."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Field, SQLModel

from storage.models.base import TZDateTime, json_dict, new_id, now_column, optional_time, utcnow


class RunStatus(StrEnum):
    """Lifecycle of a sync run."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"  # waiting for approval (safety valve)
    WAITING = "waiting"  # rescheduled after a long rate-limit wait
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"


class RunTrigger(StrEnum):
    """What started a run."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"
    WEBHOOK = "webhook"
    RETRY = "retry"
    MIGRATION = "migration"


class SyncRun(SQLModel, table=True):
    """One execution of an integration; arq carries only its id."""

    __tablename__ = "sync_runs"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    integration_id: str = Field(foreign_key="integrations.id", index=True, max_length=32)
    trigger: str = Field(default=RunTrigger.MANUAL.value, max_length=20)
    status: str = Field(default=RunStatus.QUEUED.value, max_length=20, index=True)
    direction: str = Field(default="inbound", max_length=20)
    params: dict[str, Any] = json_dict()
    counts: dict[str, Any] = json_dict()  # read, created, updated, unchanged, skipped, failed, written
    error: str = Field(default="")
    attempt: int = 0
    worker_id: str = Field(default="", max_length=100)
    lease_until: datetime | None = optional_time(index=True)
    heartbeat_at: datetime | None = optional_time()
    queued_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime, index=True)
    started_at: datetime | None = optional_time(index=True)
    finished_at: datetime | None = optional_time()
    requested_by: str = Field(default="", max_length=320)


class SyncRunEvent(SQLModel, table=True):
    """Something that happened during a run: started, page read, batch written, retry, paused, finished."""

    __tablename__ = "sync_run_events"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="sync_runs.id", index=True, max_length=32)
    at: datetime = now_column()
    kind: str = Field(max_length=40)
    message: str = Field(default="")
    data: dict[str, Any] = json_dict()


class RecordOutcome(SQLModel, table=True):
    """How one record ended in a run: written, unchanged, skipped with a reason, or failed."""

    __tablename__ = "record_outcomes"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="sync_runs.id", index=True, max_length=32)
    stream: str = Field(default="", max_length=100)
    care_type: str = Field(default="", max_length=50)
    external_id: str = Field(default="", max_length=200)
    record_id: str = Field(default="", max_length=32, index=True)
    outcome: str = Field(max_length=20)
    reason: str = Field(default="")
    before: dict[str, Any] = json_dict()
    after: dict[str, Any] = json_dict()
    at: datetime = now_column()


class Checkpoint(SQLModel, table=True):
    """Where the next incremental read or write of a stream resumes."""

    __tablename__ = "checkpoints"
    integration_id: str = Field(foreign_key="integrations.id", primary_key=True, max_length=32)
    stream: str = Field(primary_key=True, max_length=100)
    direction: str = Field(primary_key=True, max_length=20)
    value: dict[str, Any] = json_dict()
    run_id: str = Field(default="", max_length=32)
    updated_at: datetime = now_column()


class IntegrationError(SQLModel, table=True):
    """The spec's IntegrationError: every failure and conflict waiting in the errors inbox."""

    __tablename__ = "integration_errors"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    integration_id: str = Field(foreign_key="integrations.id", index=True, max_length=32)
    run_id: str = Field(default="", max_length=32, index=True)
    error_type: str = Field(max_length=40, index=True)  # validation, vendor, auth, rate_limit, conflict, ...
    error_code: str = Field(default="", max_length=100)
    error_message: str = Field(default="")
    error_details: dict[str, Any] = json_dict()
    record_id: str | None = Field(default=None, max_length=200)
    stream: str = Field(default="", max_length=100)
    timestamp: datetime = Field(default_factory=utcnow, sa_type=TZDateTime, index=True)
    resolved: bool = Field(default=False, index=True)
    resolution_action: str | None = Field(default=None, max_length=40)
    resolution_note: str = Field(default="")
    resolved_at: datetime | None = optional_time()
    resolved_by: str = Field(default="", max_length=320)
    retry_count: int = 0
    max_retries: int = 3
