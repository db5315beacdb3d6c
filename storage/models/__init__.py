"""Every SQLModel table; importing this package registers them all on ``metadata``."""

from storage.models.base import metadata, new_id, new_ids, utcnow
from storage.models.care import CareRecord, CareRecordVersion, ExternalLink, FieldLineage, OutboundWrite
from storage.models.integrations import (
    ConflictResolution,
    DataOwnership,
    Integration,
    IntegrationStatus,
    MappingDesign,
    OperationMode,
    SyncConfiguration,
    SyncDirection,
)
from storage.models.migration import MigrationPhase, MigrationPlan
from storage.models.runs import (
    Checkpoint,
    IntegrationError,
    RecordOutcome,
    RunStatus,
    RunTrigger,
    SyncRun,
    SyncRunEvent,
)
from storage.models.users import ApiToken, AuditLog, Role, User
from storage.models.webhooks import InboundEvent, Webhook, WebhookDelivery

__all__ = [
    "ApiToken",
    "AuditLog",
    "CareRecord",
    "CareRecordVersion",
    "Checkpoint",
    "ConflictResolution",
    "DataOwnership",
    "ExternalLink",
    "FieldLineage",
    "InboundEvent",
    "Integration",
    "IntegrationError",
    "IntegrationStatus",
    "MappingDesign",
    "MigrationPhase",
    "MigrationPlan",
    "OperationMode",
    "OutboundWrite",
    "RecordOutcome",
    "Role",
    "RunStatus",
    "RunTrigger",
    "SyncConfiguration",
    "SyncDirection",
    "SyncRun",
    "SyncRunEvent",
    "User",
    "Webhook",
    "WebhookDelivery",
    "metadata",
    "new_id",
    "new_ids",
    "utcnow",
]
