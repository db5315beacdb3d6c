"""The care record store: WriteCareNotes records with version history, lineage and external links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel, UniqueConstraint

from storage.models.base import TZDateTime, json_dict, new_id, now_column, optional_time, utcnow


class CareRecord(SQLModel, table=True):
    """The current state of one care-type record (it plays WriteCareNotes)."""

    __tablename__ = "care_records"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    care_type: str = Field(max_length=50, index=True)
    data: dict[str, Any] = json_dict()
    content_hash: str = Field(default="", max_length=64)
    version: int = 1
    origin: str = Field(default="writecarenotes", max_length=100)  # system that last wrote it
    created_at: datetime = now_column()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime, index=True)
    deleted_at: datetime | None = optional_time()


class CareRecordVersion(SQLModel, table=True):
    """One entry of a record's version history; rollbacks restore from here."""

    __tablename__ = "care_record_versions"
    __table_args__ = (UniqueConstraint("record_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(foreign_key="care_records.id", max_length=32)  # unique(record_id, version) indexes it
    version: int
    data: dict[str, Any] = json_dict()
    content_hash: str = Field(default="", max_length=64)
    change_kind: str = Field(default="update", max_length=20)  # create, update, delete, rollback
    integration_id: str = Field(default="", max_length=32)
    run_id: str = Field(default="", max_length=32, index=True)
    changed_by: str = Field(default="", max_length=320)
    changed_at: datetime = now_column()


class FieldLineage(SQLModel, table=True):
    """Which integration, run and source record last wrote each field of a record."""

    __tablename__ = "field_lineage"
    record_id: str = Field(foreign_key="care_records.id", primary_key=True, max_length=32)
    field: str = Field(primary_key=True, max_length=100)
    system: str = Field(default="", max_length=100)
    integration_id: str = Field(default="", max_length=32)
    run_id: str = Field(default="", max_length=32)
    stream: str = Field(default="", max_length=100)
    source_record_id: str = Field(default="", max_length=200)
    updated_at: datetime = now_column()


class ExternalLink(SQLModel, table=True):
    """Maps (integration, stream, external id) to a care record: the key of idempotent upserts."""

    __tablename__ = "external_links"
    __table_args__ = (UniqueConstraint("integration_id", "stream", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    integration_id: str = Field(foreign_key="integrations.id", max_length=32)  # the unique key indexes it
    stream: str = Field(max_length=100)
    external_id: str = Field(max_length=200)
    record_id: str = Field(foreign_key="care_records.id", index=True, max_length=32)
    content_hash: str = Field(default="", max_length=64)
    source_updated_at: datetime | None = optional_time()
    vendor_hash: str = Field(default="", max_length=64)  # hash of the vendor's mapped view at the last sync
    last_run_id: str = Field(default="", max_length=32)
    deleted: bool = False


class OutboundWrite(SQLModel, table=True):
    """A write sent to a vendor, keyed by its deterministic idempotency key."""

    __tablename__ = "outbound_writes"
    idempotency_key: str = Field(primary_key=True, max_length=128)
    integration_id: str = Field(foreign_key="integrations.id", index=True, max_length=32)
    stream: str = Field(max_length=100)
    record_id: str = Field(max_length=32, index=True)
    record_version: int = 0
    external_id: str = Field(default="", max_length=200)
    status: str = Field(default="pending", max_length=20)
    run_id: str = Field(default="", max_length=32)
    error: str = Field(default="")
    at: datetime = now_column()
