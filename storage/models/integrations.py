"""Integrations (the spec's ExternalIntegration), their sync configuration, mapping designs,
operation mode and per-care-type ownership."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Field, SQLModel, UniqueConstraint

from storage.models.base import json_dict, json_list, new_id, now_column, optional_time


class IntegrationStatus(StrEnum):
    """Lifecycle of an integration."""

    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ERROR = "error"
    DELETED = "deleted"


class OperationMode(StrEnum):
    """The spec's hybrid operation modes."""

    FULL_WRITECARENOTES = "full_writecarenotes"
    HYBRID_EQUAL = "hybrid_equal"
    HYBRID_WRITECARENOTES_PRIMARY = "hybrid_writecarenotes_primary"
    HYBRID_EXTERNAL_PRIMARY = "hybrid_external_primary"
    EXTERNAL_PRIMARY = "external_primary"


class SyncDirection(StrEnum):
    """Which way records flow between WriteCareNotes and the external system."""

    BIDIRECTIONAL = "bidirectional"
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ConflictResolution(StrEnum):
    """How a conflicting change is settled."""

    PRIMARY_WINS = "primary_wins"
    LAST_WRITE_WINS = "last_write_wins"
    FIELD_LEVEL = "field_level"
    MANUAL_REVIEW = "manual_review"


class Integration(SQLModel, table=True):
    """A connection to one external system plus its settings; credentials are encrypted."""

    __tablename__ = "integrations"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    connector_id: str = Field(index=True, max_length=100)
    integration_type: str = Field(default="", max_length=50)
    system_name: str = Field(default="", max_length=200)
    system_version: str = Field(default="", max_length=50)
    authentication_method: str = Field(default="", max_length=50)
    connection_details: dict[str, Any] = json_dict()
    credentials_encrypted: str = Field(default="")
    status: str = Field(default=IntegrationStatus.DRAFT.value, max_length=20, index=True)
    operation_mode: str = Field(default=OperationMode.HYBRID_EQUAL.value, max_length=40)
    fallback_procedures: list[Any] = json_list()
    data_filters: list[Any] = json_list()
    transformation_rules: list[Any] = json_list()
    error_handling: dict[str, Any] = json_dict()
    last_sync: datetime | None = optional_time()
    last_success: datetime | None = optional_time()
    next_sync: datetime | None = optional_time(index=True)
    stale_after_minutes: int = 24 * 60
    revision: int = 1
    created_by: str = Field(default="", max_length=320)
    created_at: datetime = now_column()
    updated_at: datetime = now_column()
    deleted_at: datetime | None = optional_time()


class SyncConfiguration(SQLModel, table=True):
    """The spec's SyncConfiguration, one per integration."""

    __tablename__ = "sync_configurations"
    integration_id: str = Field(foreign_key="integrations.id", primary_key=True, max_length=32)
    sync_direction: str = Field(default=SyncDirection.INBOUND.value, max_length=20)
    sync_frequency: dict[str, Any] = json_dict()  # {"kind": "manual|minutes|hourly|daily|cron", ...}
    batch_size: int = 100
    retry_policy: dict[str, Any] = json_dict()
    conflict_resolution: str = Field(default=ConflictResolution.PRIMARY_WINS.value, max_length=30)
    data_validation: list[Any] = json_list()
    transformation_pipeline: list[Any] = json_list()
    error_threshold: int = 50
    notification_settings: dict[str, Any] = json_dict()
    pause_on_empty_read: bool = True
    max_change_share: float = 0.5
    streams: list[Any] = json_list()  # [{"stream": "invoices", "care_type": "Invoice"}]
    updated_at: datetime = now_column()


class MappingDesign(SQLModel, table=True):
    """One saved version of the field mappings between a stream and a care type."""

    __tablename__ = "mapping_designs"
    __table_args__ = (UniqueConstraint("integration_id", "stream", "care_type", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    integration_id: str = Field(foreign_key="integrations.id", index=True, max_length=32)
    stream: str = Field(max_length=100)
    care_type: str = Field(max_length=50)
    version: int = 1
    design: dict[str, Any] = json_dict()
    is_current: bool = Field(default=True, index=True)
    comment: str = Field(default="", max_length=500)
    created_by: str = Field(default="", max_length=320)
    created_at: datetime = now_column()


class DataOwnership(SQLModel, table=True):
    """The spec's DataOwnershipConfig: per care type, who owns it and how conflicts settle."""

    __tablename__ = "data_ownership"
    __table_args__ = (UniqueConstraint("integration_id", "care_type"),)
    id: int | None = Field(default=None, primary_key=True)
    integration_id: str = Field(foreign_key="integrations.id", index=True, max_length=32)
    care_type: str = Field(max_length=50)
    primary_system: str = Field(default="external", max_length=20)  # "writecarenotes" | "external"
    sync_direction: str = Field(default=SyncDirection.INBOUND.value, max_length=20)
    update_permissions: list[Any] = json_list()  # systems allowed to update: ["external", "writecarenotes"]
    conflict_resolution: str = Field(default=ConflictResolution.PRIMARY_WINS.value, max_length=30)
    field_owners: dict[str, Any] = json_dict()  # field -> system, for field-level ownership
    delete_policy: str = Field(default="archive", max_length=20)
