"""Turn storage rows into API bodies (never copying a secret), and ETags."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.api.schemas import (
    ExternalIntegration,
    IntegrationErrorOut,
    StoredDesign,
    SyncConfigurationOut,
    SyncRunOut,
    WebhookOut,
)
from engine.mapping import FieldMapping, MappingDesign
from storage import models as m

SECRET_WORDS = ("secret", "password", "token", "apikey", "api_key", "privatekey", "private_key", "passphrase")


def etag(kind: str, entity_id: str, revision: int) -> str:
    """A strong ETag for one revision of an entity."""
    return f'"{kind}-{entity_id[:32]}-{revision}"'


def parse_if_match(value: str | None, kind: str, entity_id: str) -> int | None:
    """The revision an If-Match names, -1 when it names another entity or is malformed, None when absent.

    ``*`` matches any revision (None)."""
    if value is None:
        return None
    value = value.strip()
    if value == "*":
        return None
    first = value.split(",")[0].strip().removeprefix("W/").strip('"')
    prefix = f"{kind}-{entity_id[:32]}-"
    if not first.startswith(prefix) or not first[len(prefix):].isdigit():
        return -1
    return int(first[len(prefix):])


def split_secrets(details: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Move secret-looking keys out of connection details, so they are stored encrypted and never echoed."""
    plain: dict[str, Any] = {}
    hidden: dict[str, Any] = {}
    for key, value in details.items():
        squashed = key.lower().replace("-", "").replace("_", "")
        if any(word.replace("_", "") in squashed for word in SECRET_WORDS):
            hidden[key] = value
        else:
            plain[key] = value
    return plain, hidden


def sync_config_out(row: m.SyncConfiguration | None) -> SyncConfigurationOut | None:
    """The API form of a sync configuration."""
    if row is None:
        return None
    return SyncConfigurationOut.model_validate(row, from_attributes=True)


def _field_mappings(designs: list[m.MappingDesign]) -> list[FieldMapping]:
    out: list[FieldMapping] = []
    for design in designs:
        for item in design.design.get("mappings") or []:
            try:
                out.append(FieldMapping.model_validate(item))
            except ValidationError:
                continue
    return out


def integration_out(row: m.Integration, config: m.SyncConfiguration | None,
                    designs: list[m.MappingDesign]) -> ExternalIntegration:
    """The spec's ExternalIntegration; ``credentialsSet`` instead of the credentials."""
    return ExternalIntegration(
        id=row.id, name=row.name, connector_id=row.connector_id, integration_type=row.integration_type,
        system_name=row.system_name, system_version=row.system_version,
        connection_details=dict(row.connection_details), authentication_method=row.authentication_method,
        credentials_set=bool(row.credentials_encrypted), sync_configuration=sync_config_out(config),
        field_mappings=_field_mappings(designs), data_filters=list(row.data_filters),
        transformation_rules=list(row.transformation_rules), error_handling=dict(row.error_handling),
        status=row.status, operation_mode=row.operation_mode, last_sync=row.last_sync, next_sync=row.next_sync,
        sync_frequency=dict(config.sync_frequency) if config else {}, revision=row.revision,
        created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at)


def run_out(row: m.SyncRun | None) -> SyncRunOut | None:
    """The API form of a sync run."""
    return None if row is None else SyncRunOut.model_validate(row, from_attributes=True)


def stored_design_out(row: m.MappingDesign) -> StoredDesign:
    """One saved design version."""
    return StoredDesign(stream=row.stream, care_type=row.care_type, version=row.version, comment=row.comment,
                        created_by=row.created_by, created_at=row.created_at,
                        design=MappingDesign.model_validate(row.design))


def webhook_out(row: m.Webhook, *, public_url: str = "", signing_secret: str | None = None) -> WebhookOut:
    """The API form of a webhook (the secret only when just generated)."""
    receiver = f"{public_url}/webhooks/{row.integration_id}/{row.id}" if row.direction == "inbound" else None
    return WebhookOut(id=row.id, integration_id=row.integration_id, direction=row.direction, url=row.url,
                      events=[str(e) for e in row.events], active=row.active, disabled_reason=row.disabled_reason,
                      description=row.description, revision=row.revision, created_at=row.created_at,
                      secret_set=bool(row.secret_encrypted), receiver_url=receiver, signing_secret=signing_secret)


def error_out(row: m.IntegrationError) -> IntegrationErrorOut:
    """The spec's IntegrationError."""
    return IntegrationErrorOut.model_validate(row, from_attributes=True)
