"""Integrations as a service: configure, update, soft-delete (audited), sync settings, versioned mapping
designs with diff and restore, data ownership, webhook subscriptions, runs and the errors inbox.

Every function takes a :class:`Session` first and keyword-only arguments, adds its audit row to the same
transaction, and returns models. Callers (the REST API and the UI) own the transaction: the change and its
audit row commit together or not at all.

Optimistic concurrency: every change to an integration (its settings, sync settings, mapping designs,
ownership) bumps ``Integration.revision`` with a conditional ``UPDATE ... WHERE revision = :expected``, so
two editors holding the same revision can never both win; the loser gets :class:`RevisionMismatch`.
"""

from __future__ import annotations

import base64
import secrets as pysecrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import CursorResult, func, update
from sqlmodel import Session, col, select

from storage.audit import record_audit
from storage.crypto import SecretBox
from storage.models import (
    DataOwnership,
    Integration,
    IntegrationError,
    IntegrationStatus,
    MappingDesign,
    OperationMode,
    SyncConfiguration,
    SyncRun,
    Webhook,
    utcnow,
)
from storage.models.integrations import ConflictResolution, SyncDirection

T = TypeVar("T")
RESOLUTION_ACTIONS = ("resolved", "ignored", "retry")
ERROR_STATES = ("open", "resolved", "all")
WEBHOOK_DIRECTIONS = ("inbound", "outbound")
SYNC_SETTING_FIELDS = frozenset({
    "sync_direction", "sync_frequency", "batch_size", "retry_policy", "conflict_resolution", "data_validation",
    "transformation_pipeline", "error_threshold", "notification_settings", "pause_on_empty_read",
    "max_change_share", "streams",
})
INTEGRATION_FIELDS = frozenset({
    "name", "integration_type", "system_name", "system_version", "authentication_method", "connection_details",
    "status", "operation_mode", "fallback_procedures", "data_filters", "transformation_rules", "error_handling",
    "next_sync", "stale_after_minutes",
})


class IntegrationServiceError(Exception):
    """Base of the errors this module raises; the message is safe to show."""


class NotFound(IntegrationServiceError, LookupError):
    """The integration (or the webhook, design, error) does not exist or was deleted."""


class RevisionMismatch(IntegrationServiceError):
    """Someone else changed the integration since the caller read it (optimistic concurrency)."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"The integration changed since you loaded it (you had revision {expected}, "
                         f"it is now {current}); reload and apply your change again.")
        self.expected = expected
        self.current = current


@dataclass
class FieldProblem:
    """One invalid input: where it is and why."""

    field: str
    reason: str


class InvalidInput(IntegrationServiceError, ValueError):
    """The input failed validation; ``problems`` names each field and the reason."""

    def __init__(self, message: str, problems: Sequence[FieldProblem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass
class Page(Generic[T]):
    """One page of a list plus the total count."""

    items: list[T]
    total: int
    offset: int
    limit: int


@dataclass
class DesignDiff:
    """What changed between two mapping designs, keyed by target field."""

    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    other: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when the designs are the same."""
        return not (self.added or self.removed or self.changed or self.other)


# ---------------------------------------------------------------------------------------------- helpers


def _choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}",
                           [FieldProblem(name, f"'{value}' is not one of {', '.join(allowed)}")])
    return value


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def get_integration(session: Session, *, integration_id: str, include_deleted: bool = False) -> Integration:
    """The integration with this id; raises :class:`NotFound` when missing or soft-deleted."""
    row = session.get(Integration, integration_id, populate_existing=True)
    if row is None or (row.deleted_at is not None and not include_deleted):
        raise NotFound(f"No integration with id '{integration_id}'.")
    return row


def list_integrations(session: Session, *, owner: str | None = None, include_deleted: bool = False,
                      offset: int = 0, limit: int = 50) -> Page[Integration]:
    """Integrations, newest first; ``owner`` restricts to those created by that user."""
    query = select(Integration)
    count = select(func.count()).select_from(Integration)
    if not include_deleted:
        query = query.where(col(Integration.deleted_at).is_(None))
        count = count.where(col(Integration.deleted_at).is_(None))
    if owner is not None:
        query = query.where(Integration.created_by == owner)
        count = count.where(Integration.created_by == owner)
    total = session.exec(count).one()
    rows = session.exec(query.order_by(col(Integration.created_at).desc(), col(Integration.id))
                        .offset(offset).limit(limit)).all()
    return Page(list(rows), int(total), offset, limit)


def bump_revision(session: Session, *, integration_id: str, expected_revision: int | None = None) -> int:
    """Atomically increment the integration's revision; with ``expected_revision`` only if it still matches.

    Issue this before reading anything else in the transaction: on SQLite it takes the write lock first, on
    PostgreSQL it locks the row, so a concurrent editor waits and then sees the new revision.
    Raises :class:`RevisionMismatch` or :class:`NotFound`.
    """
    stmt = (update(Integration).where(col(Integration.id) == integration_id)
            .where(col(Integration.deleted_at).is_(None))
            .values(revision=col(Integration.revision) + 1, updated_at=utcnow()))
    if expected_revision is not None:
        stmt = stmt.where(col(Integration.revision) == expected_revision)
    result = cast(CursorResult[Any], session.execute(stmt))
    if result.rowcount != 1:
        row = get_integration(session, integration_id=integration_id)
        raise RevisionMismatch(expected_revision if expected_revision is not None else -1, row.revision)
    return get_integration(session, integration_id=integration_id).revision


def credentials_set(integration: Integration) -> bool:
    """True when credentials are stored (the API shows this instead of the secrets)."""
    return bool(integration.credentials_encrypted)


def read_credentials(box: SecretBox, integration: Integration) -> dict[str, Any]:
    """Decrypt the stored credentials (for connectors only; never send them to a client)."""
    return box.decrypt(integration.credentials_encrypted)


# -------------------------------------------------------------------------------------- integrations


def configure_integration(
    session: Session, *, box: SecretBox, actor: str, name: str, connector_id: str,
    integration_type: str = "", system_name: str = "", system_version: str = "",
    authentication_method: str = "", connection_details: Mapping[str, Any] | None = None,
    credentials: Mapping[str, Any] | None = None, operation_mode: str = OperationMode.HYBRID_EQUAL.value,
    data_filters: Sequence[Any] = (), transformation_rules: Sequence[Any] = (),
    error_handling: Mapping[str, Any] | None = None, sync_settings: Mapping[str, Any] | None = None,
    status: str = IntegrationStatus.DRAFT.value,
) -> Integration:
    """Create an integration with its sync configuration; credentials are encrypted, the change audited."""
    if not name.strip():
        raise InvalidInput("name is required", [FieldProblem("name", "must not be empty")])
    if not connector_id.strip():
        raise InvalidInput("connector is required", [FieldProblem("connectorId", "must not be empty")])
    _choice(operation_mode, [m.value for m in OperationMode], "operationMode")
    _choice(status, [s.value for s in IntegrationStatus if s is not IntegrationStatus.DELETED], "status")
    row = Integration(
        name=name.strip(), connector_id=connector_id, integration_type=integration_type,
        system_name=system_name or connector_id, system_version=system_version,
        authentication_method=authentication_method, connection_details=dict(connection_details or {}),
        credentials_encrypted=box.encrypt(credentials) if credentials else "", status=status,
        operation_mode=operation_mode, data_filters=list(data_filters),
        transformation_rules=list(transformation_rules), error_handling=dict(error_handling or {}),
        created_by=actor,
    )
    session.add(row)
    session.flush()
    config = SyncConfiguration(integration_id=row.id)
    _apply_sync_settings(config, sync_settings or {})
    session.add(config)
    session.flush()
    record_audit(session, actor=actor, action="integration.configure", entity_type="integration",
                 entity_id=row.id, detail={"connector": connector_id, "name": row.name,
                                           "credentialsSet": credentials_set(row)})
    return row


def update_integration(session: Session, *, box: SecretBox, actor: str, integration_id: str,
                       expected_revision: int | None = None, credentials: Mapping[str, Any] | None = None,
                       replace_credentials: bool = False, **changes: Any) -> Integration:
    """Change an integration's settings; ``credentials`` are merged into the stored ones (partial update)
    unless ``replace_credentials``. Unknown fields raise :class:`InvalidInput`."""
    unknown = set(changes) - INTEGRATION_FIELDS
    if unknown:
        raise InvalidInput("unknown fields", [FieldProblem(k, "not a field of an integration") for k in sorted(unknown)])
    if "operation_mode" in changes:
        _choice(changes["operation_mode"], [m.value for m in OperationMode], "operationMode")
    if "status" in changes:
        _choice(changes["status"], [s.value for s in IntegrationStatus if s is not IntegrationStatus.DELETED],
                "status")
    if "name" in changes and not str(changes["name"]).strip():
        raise InvalidInput("name is required", [FieldProblem("name", "must not be empty")])
    revision = bump_revision(session, integration_id=integration_id, expected_revision=expected_revision)
    row = get_integration(session, integration_id=integration_id)
    for key, value in changes.items():
        setattr(row, key, value)
    if credentials is not None:
        merged = {} if replace_credentials else read_credentials(box, row)
        merged.update(credentials)
        row.credentials_encrypted = box.encrypt(merged) if merged else ""
    session.add(row)
    session.flush()
    record_audit(session, actor=actor, action="integration.update", entity_type="integration", entity_id=row.id,
                 detail={"fields": sorted(changes), "credentialsChanged": credentials is not None,
                         "revision": revision})
    return row


def delete_integration(session: Session, *, actor: str, integration_id: str,
                       expected_revision: int | None = None) -> Integration:
    """Soft-delete: the row stays (history, audit, lineage) but disappears from every list; its webhooks stop."""
    bump_revision(session, integration_id=integration_id, expected_revision=expected_revision)
    row = get_integration(session, integration_id=integration_id)
    now = utcnow()
    row.deleted_at = now
    row.status = IntegrationStatus.DELETED.value
    row.next_sync = None
    session.add(row)
    for hook in session.exec(select(Webhook).where(Webhook.integration_id == integration_id)
                             .where(col(Webhook.deleted_at).is_(None))).all():
        hook.active = False
        hook.deleted_at = now
        hook.disabled_reason = "integration deleted"
        session.add(hook)
    session.flush()
    record_audit(session, actor=actor, action="integration.delete", entity_type="integration", entity_id=row.id)
    return row


def record_view(session: Session, *, actor: str, integration_id: str, what: str) -> None:
    """Audit a view of data that may hold personal information (samples, previews, errors)."""
    record_audit(session, actor=actor, action=f"view.{what}", entity_type="integration", entity_id=integration_id)


# -------------------------------------------------------------------------------------- sync settings


def _apply_sync_settings(config: SyncConfiguration, values: Mapping[str, Any]) -> None:
    unknown = set(values) - SYNC_SETTING_FIELDS
    if unknown:
        raise InvalidInput("unknown sync settings",
                           [FieldProblem(k, "not a sync setting") for k in sorted(unknown)])
    problems: list[FieldProblem] = []
    if "sync_direction" in values and values["sync_direction"] not in [d.value for d in SyncDirection]:
        problems.append(FieldProblem("syncDirection", f"must be one of {', '.join(d.value for d in SyncDirection)}"))
    if "conflict_resolution" in values and values["conflict_resolution"] not in [c.value for c in ConflictResolution]:
        problems.append(FieldProblem("conflictResolution",
                                     f"must be one of {', '.join(c.value for c in ConflictResolution)}"))
    if "batch_size" in values and not 1 <= int(values["batch_size"]) <= 10_000:
        problems.append(FieldProblem("batchSize", "must be between 1 and 10000"))
    if "error_threshold" in values and not 0 <= int(values["error_threshold"]) <= 1_000_000:
        problems.append(FieldProblem("errorThreshold", "must be between 0 and 1000000"))
    if "max_change_share" in values and not 0.0 <= float(values["max_change_share"]) <= 1.0:
        problems.append(FieldProblem("maxChangeShare", "must be between 0 and 1"))
    if problems:
        raise InvalidInput("invalid sync settings", problems)
    for key, value in values.items():
        setattr(config, key, value)
    config.updated_at = utcnow()


def get_sync_settings(session: Session, *, integration_id: str) -> SyncConfiguration:
    """The integration's sync configuration (created with defaults if missing)."""
    get_integration(session, integration_id=integration_id)
    config = session.get(SyncConfiguration, integration_id, populate_existing=True)
    if config is None:
        config = SyncConfiguration(integration_id=integration_id)
        session.add(config)
        session.flush()
    return config


def update_sync_settings(session: Session, *, actor: str, integration_id: str,
                         expected_revision: int | None = None, **values: Any) -> SyncConfiguration:
    """Change sync settings (direction, frequency, batch size, retry policy...); audited, revision-checked."""
    revision = bump_revision(session, integration_id=integration_id, expected_revision=expected_revision)
    config = get_sync_settings(session, integration_id=integration_id)
    _apply_sync_settings(config, values)
    session.add(config)
    session.flush()
    record_audit(session, actor=actor, action="integration.sync_settings", entity_type="integration",
                 entity_id=integration_id, detail={"fields": sorted(values), "revision": revision})
    return config


# -------------------------------------------------------------------------------------- mapping designs


def validate_design(design: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and compile a design with the mapping engine (camelCase or snake_case); returns it in camelCase.

    Raises :class:`InvalidInput` naming each bad field: unknown target fields, unknown functions, bad paths and
    type clashes are caught before saving.
    """
    from pydantic import ValidationError

    from engine.mapping import MappingDesign as DesignModel
    from engine.mapping import MappingError, compile_design

    try:
        model = DesignModel.model_validate(dict(design))
    except ValidationError as exc:
        raise InvalidInput("the mapping design is not valid", [
            FieldProblem(".".join(str(p) for p in err["loc"]) or "design", err["msg"]) for err in exc.errors()
        ]) from None
    try:
        compile_design(model)
    except MappingError as exc:
        text = str(exc)
        where, sep, why = text.partition(": ")
        problem = FieldProblem(where, why) if sep and " " not in where else FieldProblem("mappings", text)
        raise InvalidInput(f"the mapping design does not compile: {text}", [problem]) from None
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def current_designs(session: Session, *, integration_id: str) -> list[MappingDesign]:
    """The current version of every (stream, care type) design of the integration."""
    get_integration(session, integration_id=integration_id)
    return list(session.exec(select(MappingDesign).where(MappingDesign.integration_id == integration_id)
                             .where(col(MappingDesign.is_current).is_(True))
                             .order_by(col(MappingDesign.stream), col(MappingDesign.care_type))).all())


def design_history(session: Session, *, integration_id: str, stream: str, care_type: str) -> list[MappingDesign]:
    """Every saved version of one design, newest first."""
    return list(session.exec(select(MappingDesign).where(MappingDesign.integration_id == integration_id)
                             .where(MappingDesign.stream == stream).where(MappingDesign.care_type == care_type)
                             .order_by(col(MappingDesign.version).desc())).all())


def get_design_version(session: Session, *, integration_id: str, stream: str, care_type: str,
                       version: int) -> MappingDesign:
    """One saved version of a design; :class:`NotFound` if there is no such version."""
    row = session.exec(select(MappingDesign).where(MappingDesign.integration_id == integration_id)
                       .where(MappingDesign.stream == stream).where(MappingDesign.care_type == care_type)
                       .where(MappingDesign.version == version)).first()
    if row is None:
        raise NotFound(f"No version {version} of the {stream} -> {care_type} mapping.")
    return row


def save_mapping_design(session: Session, *, actor: str, integration_id: str, design: Mapping[str, Any],
                        comment: str = "", expected_revision: int | None = None,
                        validate: bool = True) -> MappingDesign:
    """Save a design as the next version of its (stream, care type); the previous one stays in history.

    ``design`` is the engine's MappingDesign (camelCase or snake_case, with ``stream`` and ``careType``).
    """
    revision = bump_revision(session, integration_id=integration_id, expected_revision=expected_revision)
    clean = validate_design(design) if validate else dict(design)
    stream = str(clean.get("stream") or "")
    care_type = str(clean.get("careType") or clean.get("care_type") or "")
    if not stream or not care_type:
        raise InvalidInput("the design needs a stream and a care type",
                           [FieldProblem(name, "required") for name, v in (("stream", stream), ("careType", care_type))
                            if not v])
    history = design_history(session, integration_id=integration_id, stream=stream, care_type=care_type)
    version = (history[0].version + 1) if history else 1
    for old in history:
        if old.is_current:
            old.is_current = False
            session.add(old)
    clean["version"] = version
    row = MappingDesign(integration_id=integration_id, stream=stream, care_type=care_type, version=version,
                        design=clean, is_current=True, comment=comment[:500], created_by=actor)
    session.add(row)
    session.flush()
    changes = diff_designs(history[0].design if history else {}, clean)
    record_audit(session, actor=actor, action="mapping.save", entity_type="integration", entity_id=integration_id,
                 detail={"stream": stream, "careType": care_type, "version": version, "revision": revision,
                         "added": len(changes.added), "removed": len(changes.removed),
                         "changed": len(changes.changed)})
    return row


def _mappings_by_target(design: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in design.get("mappings") or []:
        if isinstance(item, Mapping):
            target = str(item.get("targetField") or item.get("target_field") or "")
            out[target] = dict(item)
    return out


def diff_designs(old: Mapping[str, Any], new: Mapping[str, Any]) -> DesignDiff:
    """Field-by-field difference between two designs (by target field), plus other changed keys."""
    before, after = _mappings_by_target(old), _mappings_by_target(new)
    diff = DesignDiff()
    for target in sorted(after.keys() - before.keys()):
        diff.added.append(after[target])
    for target in sorted(before.keys() - after.keys()):
        diff.removed.append(before[target])
    for target in sorted(before.keys() & after.keys()):
        if before[target] != after[target]:
            diff.changed.append({"targetField": target, "before": before[target], "after": after[target]})
    for key in sorted((set(old) | set(new)) - {"mappings", "version"}):
        if old.get(key) != new.get(key):
            diff.other[key] = {"before": old.get(key), "after": new.get(key)}
    return diff


def diff_design_versions(session: Session, *, integration_id: str, stream: str, care_type: str,
                         from_version: int, to_version: int) -> DesignDiff:
    """Difference between two saved versions of one design."""
    a = get_design_version(session, integration_id=integration_id, stream=stream, care_type=care_type,
                           version=from_version)
    b = get_design_version(session, integration_id=integration_id, stream=stream, care_type=care_type,
                           version=to_version)
    return diff_designs(a.design, b.design)


def restore_mapping_design(session: Session, *, actor: str, integration_id: str, stream: str, care_type: str,
                           version: int, expected_revision: int | None = None) -> MappingDesign:
    """Make an old version current again by saving a copy of it as the newest version."""
    old = get_design_version(session, integration_id=integration_id, stream=stream, care_type=care_type,
                             version=version)
    row = save_mapping_design(session, actor=actor, integration_id=integration_id, design=dict(old.design),
                              comment=f"restored version {version}", expected_revision=expected_revision,
                              validate=False)
    record_audit(session, actor=actor, action="mapping.restore", entity_type="integration",
                 entity_id=integration_id, detail={"stream": stream, "careType": care_type,
                                                   "restored": version, "version": row.version})
    return row


# -------------------------------------------------------------------------------------- ownership


def get_ownership(session: Session, *, integration_id: str) -> list[DataOwnership]:
    """Per care type: primary system, direction, update permissions, conflict strategy."""
    get_integration(session, integration_id=integration_id)
    return list(session.exec(select(DataOwnership).where(DataOwnership.integration_id == integration_id)
                             .order_by(col(DataOwnership.care_type))).all())


def set_ownership(session: Session, *, actor: str, integration_id: str, care_type: str,
                  primary_system: str = "external", sync_direction: str = SyncDirection.INBOUND.value,
                  update_permissions: Sequence[str] = ("external",),
                  conflict_resolution: str = ConflictResolution.PRIMARY_WINS.value,
                  field_owners: Mapping[str, str] | None = None, delete_policy: str = "archive",
                  expected_revision: int | None = None) -> DataOwnership:
    """Create or replace the ownership rule of one care type."""
    _choice(primary_system, ("writecarenotes", "external"), "primarySystem")
    _choice(sync_direction, [d.value for d in SyncDirection], "syncDirection")
    _choice(conflict_resolution, [c.value for c in ConflictResolution], "conflictResolution")
    _choice(delete_policy, ("archive", "delete", "ignore"), "deletePolicy")
    for perm in update_permissions:
        _choice(perm, ("writecarenotes", "external"), "updatePermissions")
    bump_revision(session, integration_id=integration_id, expected_revision=expected_revision)
    row = session.exec(select(DataOwnership).where(DataOwnership.integration_id == integration_id)
                       .where(DataOwnership.care_type == care_type)).first()
    if row is None:
        row = DataOwnership(integration_id=integration_id, care_type=care_type)
    row.primary_system = primary_system
    row.sync_direction = sync_direction
    row.update_permissions = list(update_permissions)
    row.conflict_resolution = conflict_resolution
    row.field_owners = dict(field_owners or {})
    row.delete_policy = delete_policy
    session.add(row)
    session.flush()
    record_audit(session, actor=actor, action="ownership.set", entity_type="integration", entity_id=integration_id,
                 detail={"careType": care_type, "primarySystem": primary_system, "syncDirection": sync_direction,
                         "conflictResolution": conflict_resolution})
    return row


def set_operation_mode(session: Session, *, actor: str, integration_id: str, mode: str,
                       expected_revision: int | None = None) -> Integration:
    """Set the hybrid operation mode (full_writecarenotes ... external_primary)."""
    _choice(mode, [m.value for m in OperationMode], "operationMode")
    bump_revision(session, integration_id=integration_id, expected_revision=expected_revision)
    row = get_integration(session, integration_id=integration_id)
    row.operation_mode = mode
    session.add(row)
    record_audit(session, actor=actor, action="integration.operation_mode", entity_type="integration",
                 entity_id=integration_id, detail={"mode": mode})
    return row


# -------------------------------------------------------------------------------------- webhooks


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode()


def create_webhook(session: Session, *, box: SecretBox, actor: str, integration_id: str, url: str = "",
                   events: Sequence[str] = (), direction: str = "outbound", secret: str | None = None,
                   description: str = "", active: bool = True) -> tuple[Webhook, str | None]:
    """Add an outbound subscriber or an inbound receiver; returns it and the generated secret (if we made one).

    The secret is stored encrypted and never read back out through this module's callers.
    """
    _choice(direction, WEBHOOK_DIRECTIONS, "direction")
    get_integration(session, integration_id=integration_id)
    if direction == "outbound" and not url:
        raise InvalidInput("an outbound webhook needs a URL", [FieldProblem("url", "required")])
    generated = None
    if not secret:
        secret = generated = new_webhook_secret()
    hook = Webhook(integration_id=integration_id, direction=direction, url=url, events=list(events),
                   secret_encrypted=box.encrypt({"secret": secret}), description=description[:500], active=active)
    session.add(hook)
    session.flush()
    record_audit(session, actor=actor, action="webhook.create", entity_type="webhook", entity_id=hook.id,
                 detail={"integration": integration_id, "direction": direction, "events": list(events)})
    return hook, generated


def list_webhooks(session: Session, *, integration_id: str, offset: int = 0, limit: int = 50) -> Page[Webhook]:
    """The integration's webhooks (not deleted), oldest first."""
    get_integration(session, integration_id=integration_id)
    base = select(Webhook).where(Webhook.integration_id == integration_id).where(col(Webhook.deleted_at).is_(None))
    total = session.exec(select(func.count()).select_from(base.subquery())).one()
    rows = session.exec(base.order_by(col(Webhook.created_at), col(Webhook.id)).offset(offset).limit(limit)).all()
    return Page(list(rows), int(total), offset, limit)


def get_webhook(session: Session, *, webhook_id: str, integration_id: str | None = None) -> Webhook:
    """One webhook (not deleted); :class:`NotFound` otherwise or when it belongs to another integration."""
    hook = session.get(Webhook, webhook_id, populate_existing=True)
    if hook is None or hook.deleted_at is not None or (integration_id and hook.integration_id != integration_id):
        raise NotFound(f"No webhook with id '{webhook_id}'.")
    return hook


def webhook_secret(box: SecretBox, hook: Webhook) -> str:
    """The webhook's signing secret (for signing or verifying only)."""
    return str(box.decrypt(hook.secret_encrypted).get("secret", ""))


def update_webhook(session: Session, *, box: SecretBox, actor: str, integration_id: str, webhook_id: str,
                   expected_revision: int | None = None, url: str | None = None,
                   events: Sequence[str] | None = None, secret: str | None = None,
                   description: str | None = None, active: bool | None = None) -> Webhook:
    """Change a webhook; re-activating clears the disabled reason. Revision-checked on ``Webhook.revision``."""
    hook = get_webhook(session, webhook_id=webhook_id, integration_id=integration_id)
    stmt = (update(Webhook).where(col(Webhook.id) == webhook_id).values(revision=col(Webhook.revision) + 1))
    if expected_revision is not None:
        stmt = stmt.where(col(Webhook.revision) == expected_revision)
    result = cast(CursorResult[Any], session.execute(stmt))
    if result.rowcount != 1:
        current = get_webhook(session, webhook_id=webhook_id)
        raise RevisionMismatch(expected_revision if expected_revision is not None else -1, current.revision)
    hook = get_webhook(session, webhook_id=webhook_id)
    if url is not None:
        if hook.direction == "outbound" and not url:
            raise InvalidInput("an outbound webhook needs a URL", [FieldProblem("url", "required")])
        hook.url = url
    if events is not None:
        hook.events = list(events)
    if secret:
        hook.secret_encrypted = box.encrypt({"secret": secret})
    if description is not None:
        hook.description = description[:500]
    if active is not None:
        hook.active = active
        if active:
            hook.disabled_reason = ""
    session.add(hook)
    session.flush()
    record_audit(session, actor=actor, action="webhook.update", entity_type="webhook", entity_id=webhook_id,
                 detail={"secretChanged": bool(secret), "active": hook.active})
    return hook


def delete_webhook(session: Session, *, actor: str, integration_id: str, webhook_id: str) -> Webhook:
    """Soft-delete a webhook: it stops receiving and delivering at once."""
    hook = get_webhook(session, webhook_id=webhook_id, integration_id=integration_id)
    hook.deleted_at = utcnow()
    hook.active = False
    hook.disabled_reason = "deleted"
    session.add(hook)
    session.flush()
    record_audit(session, actor=actor, action="webhook.delete", entity_type="webhook", entity_id=webhook_id)
    return hook


# -------------------------------------------------------------------------------------- runs and errors


def list_runs(session: Session, *, integration_id: str, offset: int = 0, limit: int = 50,
              status: str | None = None) -> Page[SyncRun]:
    """The integration's sync runs, newest first."""
    get_integration(session, integration_id=integration_id, include_deleted=True)
    base = select(SyncRun).where(SyncRun.integration_id == integration_id)
    if status:
        base = base.where(SyncRun.status == status)
    total = session.exec(select(func.count()).select_from(base.subquery())).one()
    rows = session.exec(base.order_by(col(SyncRun.queued_at).desc(), col(SyncRun.id)).offset(offset)
                        .limit(limit)).all()
    return Page(list(rows), int(total), offset, limit)


def latest_run(session: Session, *, integration_id: str) -> SyncRun | None:
    """The most recently queued run of the integration, if any."""
    return session.exec(select(SyncRun).where(SyncRun.integration_id == integration_id)
                        .order_by(col(SyncRun.queued_at).desc()).limit(1)).first()


def is_stale(integration: Integration, *, now: datetime | None = None) -> bool:
    """True when the last successful sync is older than the integration's staleness limit (or never was)."""
    last = _aware(integration.last_success)
    now = now or utcnow()
    return last is None or now - last > timedelta(minutes=integration.stale_after_minutes)


def list_errors(session: Session, *, integration_id: str, error_type: str | None = None, state: str = "open",
                offset: int = 0, limit: int = 50) -> Page[IntegrationError]:
    """The errors inbox of one integration, newest first, filtered by type and state (open/resolved/all)."""
    _choice(state, ERROR_STATES, "state")
    get_integration(session, integration_id=integration_id, include_deleted=True)
    base = select(IntegrationError).where(IntegrationError.integration_id == integration_id)
    if error_type:
        base = base.where(IntegrationError.error_type == error_type)
    if state != "all":
        base = base.where(col(IntegrationError.resolved).is_(state == "resolved"))
    total = session.exec(select(func.count()).select_from(base.subquery())).one()
    rows = session.exec(base.order_by(col(IntegrationError.timestamp).desc(), col(IntegrationError.id))
                        .offset(offset).limit(limit)).all()
    return Page(list(rows), int(total), offset, limit)


def count_open_errors(session: Session, *, integration_id: str) -> int:
    """How many errors of the integration are waiting in the inbox."""
    return int(session.exec(select(func.count()).select_from(IntegrationError)
                            .where(IntegrationError.integration_id == integration_id)
                            .where(col(IntegrationError.resolved).is_(False))).one())


def get_error(session: Session, *, integration_id: str, error_id: str) -> IntegrationError:
    """One error of the integration; :class:`NotFound` otherwise."""
    row = session.get(IntegrationError, error_id, populate_existing=True)
    if row is None or row.integration_id != integration_id:
        raise NotFound(f"No error with id '{error_id}' on this integration.")
    return row


def resolve_error(session: Session, *, actor: str, integration_id: str, error_id: str, action: str = "resolved",
                  note: str = "") -> IntegrationError:
    """Close an error as resolved or ignored, or mark it for retry (it then stays open until the retry runs)."""
    _choice(action, RESOLUTION_ACTIONS, "resolutionAction")
    row = get_error(session, integration_id=integration_id, error_id=error_id)
    row.resolution_action = action
    row.resolution_note = note[:2000]
    if action == "retry":
        row.resolved = False
    else:
        row.resolved = True
        row.resolved_at = utcnow()
        row.resolved_by = actor
    session.add(row)
    session.flush()
    record_audit(session, actor=actor, action="error.resolve", entity_type="integration_error", entity_id=error_id,
                 detail={"integration": integration_id, "action": action})
    return row


def errors_to_retry(session: Session, *, integration_id: str, error_ids: Sequence[str] | None = None,
                    error_type: str | None = None) -> list[IntegrationError]:
    """Open errors eligible for a retry (under their retry limit), optionally only the given ids or type."""
    query = (select(IntegrationError).where(IntegrationError.integration_id == integration_id)
             .where(col(IntegrationError.resolved).is_(False))
             .where(col(IntegrationError.retry_count) < col(IntegrationError.max_retries)))
    if error_ids:
        query = query.where(col(IntegrationError.id).in_(list(error_ids)))
    if error_type:
        query = query.where(IntegrationError.error_type == error_type)
    return list(session.exec(query.order_by(col(IntegrationError.timestamp))).all())


def mark_retried(session: Session, *, actor: str, integration_id: str, errors: Sequence[IntegrationError],
                 run_id: str = "") -> None:
    """Count a retry on each error (the retry run resolves those that then succeed)."""
    for row in errors:
        row.retry_count += 1
        row.resolution_action = "retry"
        session.add(row)
    record_audit(session, actor=actor, action="error.retry", entity_type="integration", entity_id=integration_id,
                 detail={"errors": [e.id for e in errors], "run": run_id})
