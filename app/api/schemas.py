"""Request and response bodies of /api/v1, shaped like the spec's data models, in camelCase.

Secrets are write-only: ``credentials`` and webhook ``secret`` are accepted and never returned; responses say
``credentialsSet`` / ``secretSet`` instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from engine.mapping import DataFilter, FieldMapping, MappingDesign, TransformationRule
from storage.models import ConflictResolution, OperationMode, SyncDirection

T = TypeVar("T")
ID_EXAMPLE = "4f1c0d2e9a8b4c7d8e6f5a4b3c2d1e0f"
Text = Field(default="", max_length=200)


class ApiIn(BaseModel):
    """A request body: camelCase, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ApiOut(BaseModel):
    """A response body: camelCase; timestamps always carry their UTC offset (SQLite forgets it)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    @field_validator("*", mode="after")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class OutboundEventType(StrEnum):
    """Events CareHub sends to webhook subscribers."""

    RUN_FINISHED = "run.finished"
    RUN_FAILED = "run.failed"
    ERROR_RAISED = "error.raised"
    CONFLICT_WAITING = "conflict.waiting"
    MIGRATION_PHASE_DONE = "migration.phase_done"


# ------------------------------------------------------------------------------------------ sync settings


class SyncFrequency(ApiIn):
    """When scheduled syncs run: manual only, every N minutes, hourly, daily at a time, or a cron line."""

    kind: Literal["manual", "minutes", "hourly", "daily", "cron"] = "manual"
    every: int | None = Field(default=None, ge=1, le=1440, description="Minutes between runs (kind=minutes)")
    at: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM (kind=daily)")
    cron: str | None = Field(default=None, max_length=100, description="Cron line (kind=cron)")


class RetryPolicy(ApiIn):
    """How failed calls are retried: attempts and backoff bounds (full jitter)."""

    max_attempts: int = Field(default=5, ge=0, le=20)
    initial_delay_seconds: float = Field(default=1.0, ge=0, le=3600)
    max_delay_seconds: float = Field(default=60.0, ge=0, le=86400)


class StreamLink(ApiIn):
    """One connector stream synced to one care type."""

    stream: str = Field(min_length=1, max_length=100)
    care_type: str = Field(min_length=1, max_length=50)


class SyncConfigurationIn(ApiIn):
    """The spec's SyncConfiguration; fields left out keep their value."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "syncDirection": "inbound", "syncFrequency": {"kind": "minutes", "every": 30}, "batchSize": 100,
        "retryPolicy": {"maxAttempts": 5, "initialDelaySeconds": 1, "maxDelaySeconds": 60},
        "conflictResolution": "primary_wins", "errorThreshold": 50,
        "streams": [{"stream": "invoices", "careType": "Invoice"}]}]})

    sync_direction: SyncDirection | None = None
    sync_frequency: SyncFrequency | None = None
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    retry_policy: RetryPolicy | None = None
    conflict_resolution: ConflictResolution | None = None
    data_validation: list[dict[str, Any]] | None = Field(default=None, max_length=200)
    transformation_pipeline: list[dict[str, Any]] | None = Field(default=None, max_length=200)
    error_threshold: int | None = Field(default=None, ge=0, le=1_000_000)
    notification_settings: dict[str, Any] | None = None
    pause_on_empty_read: bool | None = None
    max_change_share: float | None = Field(default=None, ge=0, le=1)
    streams: list[StreamLink] | None = Field(default=None, max_length=100)


class SyncConfigurationOut(ApiOut):
    """The spec's SyncConfiguration as stored."""

    sync_direction: str
    sync_frequency: dict[str, Any]
    batch_size: int
    retry_policy: dict[str, Any]
    conflict_resolution: str
    data_validation: list[Any]
    transformation_pipeline: list[Any]
    error_threshold: int
    notification_settings: dict[str, Any]
    pause_on_empty_read: bool
    max_change_share: float
    streams: list[Any]
    updated_at: datetime | None = None


# ------------------------------------------------------------------------------------------ integrations


class IntegrationConfigure(ApiIn):
    """POST /integrations/configure: connect a system. ``credentials`` are write-only."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Xero - Oakwood House", "connectorId": "xero", "integrationType": "accounting",
        "systemName": "Xero", "systemVersion": "2.0", "authenticationMethod": "oauth2",
        "connectionDetails": {"tenantId": "6a1b5c1e-0000-4000-8000-000000000001", "environment": "sandbox"},
        "credentials": {"clientId": "ABC123", "clientSecret": "s3cr3t-value"},
        "operationMode": "hybrid_equal",
        "syncConfiguration": {"syncDirection": "inbound", "syncFrequency": {"kind": "minutes", "every": 30}}}]})

    name: str = Field(min_length=1, max_length=200)
    connector_id: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")
    integration_type: str = Field(default="", max_length=50)
    system_name: str = Text
    system_version: str = Field(default="", max_length=50)
    authentication_method: str = Field(default="", max_length=50)
    connection_details: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] | None = Field(default=None, json_schema_extra={"writeOnly": True},
                                               description="Secrets for the connection; stored encrypted, "
                                                           "never returned")
    operation_mode: OperationMode = OperationMode.HYBRID_EQUAL
    status: Literal["draft", "active", "paused"] = "draft"
    sync_configuration: SyncConfigurationIn | None = None
    data_filters: list[DataFilter] = Field(default_factory=list, max_length=100)
    transformation_rules: list[TransformationRule] = Field(default_factory=list, max_length=100)
    error_handling: dict[str, Any] = Field(default_factory=dict)


class IntegrationUpdate(ApiIn):
    """PUT /integrations/{id}: change settings; fields left out keep their value, ``credentials`` merge."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Xero - Oakwood House (live)", "status": "active", "credentials": {"clientSecret": "rotated"}}]})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    integration_type: str | None = Field(default=None, max_length=50)
    system_name: str | None = Field(default=None, max_length=200)
    system_version: str | None = Field(default=None, max_length=50)
    authentication_method: str | None = Field(default=None, max_length=50)
    connection_details: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = Field(default=None, json_schema_extra={"writeOnly": True})
    operation_mode: OperationMode | None = None
    status: Literal["draft", "active", "paused"] | None = None
    data_filters: list[DataFilter] | None = Field(default=None, max_length=100)
    transformation_rules: list[TransformationRule] | None = Field(default=None, max_length=100)
    error_handling: dict[str, Any] | None = None


class ExternalIntegration(ApiOut):
    """The spec's ExternalIntegration (credentials never included; see ``credentialsSet``)."""

    id: str
    name: str
    connector_id: str
    integration_type: str
    system_name: str
    system_version: str
    connection_details: dict[str, Any]
    authentication_method: str
    credentials_set: bool
    sync_configuration: SyncConfigurationOut | None
    field_mappings: list[FieldMapping]
    data_filters: list[Any]
    transformation_rules: list[Any]
    error_handling: dict[str, Any]
    status: str
    operation_mode: str
    last_sync: datetime | None
    next_sync: datetime | None
    sync_frequency: dict[str, Any]
    revision: int
    created_by: str
    created_at: datetime | None
    updated_at: datetime | None


class IntegrationStatusOut(ApiOut):
    """GET /integrations/{id}/status."""

    id: str
    name: str
    status: str
    last_sync: datetime | None
    last_success: datetime | None
    next_sync: datetime | None
    stale: bool
    open_errors: int
    current_run: SyncRunOut | None


class AvailableSystem(ApiOut):
    """One system of the catalog: how CareHub connects to it and whether it is built."""

    id: str
    name: str
    category: str
    subcategory: str
    integration_method: str
    availability: str
    note: str
    connector: str | None = None


# ------------------------------------------------------------------------------------------ runs


class SyncRunOut(ApiOut):
    """One sync run (scheduled, manual, webhook, retry or migration) with its counts."""

    id: str
    integration_id: str
    trigger: str
    status: str
    direction: str
    params: dict[str, Any]
    counts: dict[str, Any]
    error: str
    attempt: int
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    requested_by: str


class SyncRequest(ApiIn):
    """POST /sync and /manual-sync: which streams (default: all configured), incremental or full."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"streams": ["invoices"], "fullRefresh": False}]})

    streams: list[str] | None = Field(default=None, max_length=50)
    full_refresh: bool = False
    reason: str = Field(default="", max_length=500)


class SyncStatusOut(ApiOut):
    """GET /sync-status: what is running now and how the last run ended."""

    integration_id: str
    state: str
    current_run: SyncRunOut | None
    last_run: SyncRunOut | None
    last_sync: datetime | None
    last_success: datetime | None
    next_sync: datetime | None


class PageOut(ApiOut, Generic[T]):
    """One page of a list: items, the total, where it starts and its size."""

    items: list[T]
    total: int
    offset: int
    limit: int


# ------------------------------------------------------------------------------------------ mappings


class StoredDesign(ApiOut):
    """One saved design version of a (stream, care type)."""

    stream: str
    care_type: str
    version: int
    comment: str
    created_by: str
    created_at: datetime | None
    design: MappingDesign


class FieldMappingsOut(ApiOut):
    """GET /field-mappings: every current design plus the flat list of the spec's FieldMapping."""

    integration_id: str
    revision: int
    designs: list[StoredDesign]
    field_mappings: list[FieldMapping]


class FieldMappingsPut(ApiIn):
    """PUT /field-mappings: save a design as the next version of its (stream, care type)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "design": {"connector": "xero", "stream": "invoices", "careType": "Invoice",
                   "mappings": [{"sourceField": "InvoiceNumber", "targetField": "number"},
                                {"sourceField": "Total", "targetField": "totalPence",
                                 "transformationFunction": "pounds_to_pence"}]},
        "comment": "map invoice totals"}]})

    design: MappingDesign
    comment: str = Field(default="", max_length=500)


class TestMappingRequest(ApiIn):
    """POST /test-mapping: run sample records through a design (given, or the current one)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "stream": "invoices", "careType": "Invoice",
        "samples": [{"InvoiceID": "inv-1", "InvoiceNumber": "INV-0001", "Total": 120.5}]}]})

    design: MappingDesign | None = None
    stream: str | None = Field(default=None, max_length=100)
    care_type: str | None = Field(default=None, max_length=50)
    samples: list[dict[str, Any]] = Field(min_length=1, max_length=50)


class PreviewFieldError(ApiOut):
    """A problem with one mapped field of one sample."""

    field: str
    message: str
    code: str
    value: str | None = None


class PreviewRowOut(ApiOut):
    """One sample before and after mapping (sensitive values masked)."""

    key: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    errors: list[PreviewFieldError]
    skipped_reason: str | None


class TestMappingOut(ApiOut):
    """The preview of a design on samples."""

    mapped: int
    with_errors: int
    skipped: int
    elapsed_ms: float
    rows: list[PreviewRowOut]


class MappingTemplateOut(ApiOut):
    """A ready-made design for this integration's connector."""

    connector: str
    care_type: str
    design: MappingDesign


# ------------------------------------------------------------------------------------------ webhooks


def _check_url(value: str | None) -> str | None:
    """A URL that parses: scheme, host, and a valid port if one is given."""
    if not value:
        return value
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    return value


class WebhookIn(ApiIn):
    """POST /webhooks: an outbound subscriber (CareHub signs with Standard Webhooks) or an inbound receiver."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "direction": "outbound", "url": "https://hooks.example.org/carehub",
        "events": ["run.finished", "run.failed"], "description": "Finance team alerts"}]})

    direction: Literal["outbound", "inbound"] = "outbound"
    url: str = Field(default="", max_length=2000, pattern=r"^(https?://\S+)?$")
    events: list[OutboundEventType] = Field(default_factory=list, max_length=20)
    secret: str | None = Field(default=None, min_length=16, max_length=200, json_schema_extra={"writeOnly": True},
                               description="Signing secret (whsec_...); generated and shown once if left out")
    description: str = Field(default="", max_length=500)
    active: bool = True

    _url = field_validator("url")(_check_url)


class WebhookUpdate(ApiIn):
    """PUT /webhooks/{id}: fields left out keep their value; re-activating clears the disabled reason."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"events": ["run.failed"], "active": True}]})

    url: str | None = Field(default=None, max_length=2000, pattern=r"^(https?://\S+)?$")
    events: list[OutboundEventType] | None = Field(default=None, max_length=20)
    secret: str | None = Field(default=None, min_length=16, max_length=200, json_schema_extra={"writeOnly": True})
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = None

    _url = field_validator("url")(_check_url)


class WebhookOut(ApiOut):
    """A webhook; for inbound ones ``receiverUrl`` is where the vendor must send events."""

    id: str
    integration_id: str
    direction: str
    url: str
    events: list[str]
    active: bool
    disabled_reason: str
    description: str
    revision: int
    created_at: datetime | None
    secret_set: bool
    receiver_url: str | None = None
    signing_secret: str | None = Field(default=None, description="Only in the response that generated it")


# ------------------------------------------------------------------------------------------ errors


class IntegrationErrorOut(ApiOut):
    """The spec's IntegrationError."""

    id: str
    integration_id: str
    error_type: str
    error_code: str
    error_message: str
    error_details: dict[str, Any]
    record_id: str | None
    timestamp: datetime | None
    resolved: bool
    resolution_action: str | None
    retry_count: int
    max_retries: int
    run_id: str
    stream: str


class RetryRequest(ApiIn):
    """POST /retry-failed: retry these errors (default: every open error under its retry limit)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"errorIds": [ID_EXAMPLE]}]})

    error_ids: list[str] | None = Field(default=None, max_length=1000)
    error_type: str | None = Field(default=None, max_length=40)


class RetryOut(ApiOut):
    """The retry run and how many errors it covers."""

    run: SyncRunOut | None
    errors: int


class ResolveRequest(ApiIn):
    """PUT /resolve-error: close an error (resolved, ignored) or mark it for retry."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "errorId": ID_EXAMPLE, "resolutionAction": "resolved", "note": "Fixed the VAT code in Xero"}]})

    error_id: str = Field(min_length=1, max_length=32)
    resolution_action: Literal["resolved", "ignored", "retry"] = "resolved"
    note: str = Field(default="", max_length=2000)


IntegrationStatusOut.model_rebuild()
