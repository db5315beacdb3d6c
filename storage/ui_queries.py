"""Reads and writes the browser pages need that the integration service layer does not (yet) offer.

Every function takes an open session; the caller's unit of work commits. Changes write an audit row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from storage.audit import record_audit
from storage.models import (
    CareRecord,
    DataOwnership,
    ExternalLink,
    Integration,
    IntegrationStatus,
    MappingDesign,
    RecordOutcome,
    SyncConfiguration,
    SyncRun,
    SyncRunEvent,
    utcnow,
)


class NotFound(LookupError):
    """The integration (or version, run) asked for does not exist."""


@dataclass(frozen=True, slots=True)
class IntegrationRow:
    """One line of the integrations list."""

    id: str
    name: str
    connector_id: str
    system_name: str
    status: str
    streams: list[dict[str, Any]]
    last_run_status: str | None
    last_run_at: str | None
    open_runs: int


# ------------------------------------------------------------------ integrations


def get_integration(session: Session, integration_id: str) -> Integration:
    """The live integration with this id, or :class:`NotFound`."""
    row = session.get(Integration, integration_id)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no integration {integration_id}")
    return row


def list_integrations(session: Session) -> list[IntegrationRow]:
    """Every integration that is not deleted, newest first, with its last run."""
    rows = session.exec(select(Integration).where(col(Integration.deleted_at).is_(None))
                        .order_by(col(Integration.created_at).desc())).all()
    out: list[IntegrationRow] = []
    for i in rows:
        last = session.exec(select(SyncRun).where(SyncRun.integration_id == i.id)
                            .order_by(col(SyncRun.queued_at).desc()).limit(1)).first()
        open_runs = session.exec(select(func.count()).select_from(SyncRun).where(
            SyncRun.integration_id == i.id, col(SyncRun.status).in_(["queued", "running", "waiting"]))).one()
        cfg = session.get(SyncConfiguration, i.id)
        out.append(IntegrationRow(
            id=i.id, name=i.name, connector_id=i.connector_id, system_name=i.system_name, status=i.status,
            streams=list(cfg.streams) if cfg else [],
            last_run_status=last.status if last else None,
            last_run_at=(last.finished_at or last.started_at or last.queued_at).strftime("%d %b %Y %H:%M")
            if last else None,
            open_runs=int(open_runs)))
    return out


def create_integration(session: Session, *, connector_id: str, name: str, system_name: str,
                       integration_type: str, authentication_method: str, connection_details: Mapping[str, Any],
                       credentials_encrypted: str, actor: str) -> Integration:
    """A new draft integration with a default sync configuration."""
    row = Integration(name=name, connector_id=connector_id, system_name=system_name,
                      integration_type=integration_type, authentication_method=authentication_method,
                      connection_details=dict(connection_details), credentials_encrypted=credentials_encrypted,
                      status=IntegrationStatus.DRAFT.value, created_by=actor)
    session.add(row)
    session.flush()
    session.add(SyncConfiguration(integration_id=row.id, sync_frequency={"kind": "manual"},
                                  retry_policy={"max_attempts": 3, "backoff_seconds": 60},
                                  notification_settings={"on_failure": True, "on_success": False, "email": ""}))
    record_audit(session, actor=actor, action="integration.create", entity_type="integration",
                 entity_id=row.id, detail={"connector": connector_id})
    return row


def update_connection(session: Session, integration_id: str, *, connection_details: Mapping[str, Any] | None = None,
                      credentials_encrypted: str | None = None, actor: str) -> Integration:
    """Replace the connection settings and/or the encrypted credentials."""
    row = get_integration(session, integration_id)
    if connection_details is not None:
        row.connection_details = dict(connection_details)
    if credentials_encrypted is not None:
        row.credentials_encrypted = credentials_encrypted
    row.updated_at = utcnow()
    row.revision += 1
    session.add(row)
    record_audit(session, actor=actor, action="integration.connection", entity_type="integration",
                 entity_id=row.id, detail={"credentials_changed": credentials_encrypted is not None})
    return row


def set_status(session: Session, integration_id: str, status: IntegrationStatus, *, actor: str) -> Integration:
    """Activate, pause or otherwise change an integration's lifecycle status."""
    row = get_integration(session, integration_id)
    row.status = status.value
    row.updated_at = utcnow()
    row.revision += 1
    session.add(row)
    record_audit(session, actor=actor, action=f"integration.{status.value}", entity_type="integration",
                 entity_id=row.id)
    return row


# ------------------------------------------------------------------ sync configuration


def sync_config(session: Session, integration_id: str) -> SyncConfiguration:
    """The integration's sync configuration (created with defaults when missing)."""
    get_integration(session, integration_id)
    cfg = session.get(SyncConfiguration, integration_id)
    if cfg is None:
        cfg = SyncConfiguration(integration_id=integration_id, sync_frequency={"kind": "manual"})
        session.add(cfg)
        session.flush()
    return cfg


def set_streams(session: Session, integration_id: str, streams: Sequence[Mapping[str, str]], *,
                actor: str) -> SyncConfiguration:
    """The data types this integration syncs: ``[{"stream": ..., "care_type": ...}]``."""
    cfg = sync_config(session, integration_id)
    cfg.streams = [dict(s) for s in streams]
    cfg.updated_at = utcnow()
    session.add(cfg)
    record_audit(session, actor=actor, action="integration.streams", entity_type="integration",
                 entity_id=integration_id, detail={"streams": [s["stream"] for s in streams]})
    return cfg


def save_settings(session: Session, integration_id: str, values: Mapping[str, Any], *, actor: str) -> SyncConfiguration:
    """Save schedule and settings: frequency, batch size, retry policy, threshold, notifications."""
    cfg = sync_config(session, integration_id)
    allowed = {"sync_frequency", "batch_size", "retry_policy", "error_threshold", "notification_settings",
               "sync_direction", "pause_on_empty_read", "max_change_share"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    for key, value in values.items():
        setattr(cfg, key, value)
    cfg.updated_at = utcnow()
    session.add(cfg)
    record_audit(session, actor=actor, action="integration.settings", entity_type="integration",
                 entity_id=integration_id, detail={"changed": sorted(values)})
    return cfg


# ------------------------------------------------------------------ mapping designs


def current_design(session: Session, integration_id: str, stream: str) -> MappingDesign | None:
    """The current saved version of a stream's design, if any."""
    return session.exec(select(MappingDesign).where(
        MappingDesign.integration_id == integration_id, MappingDesign.stream == stream,
        col(MappingDesign.is_current).is_(True)).order_by(col(MappingDesign.version).desc())).first()


def design_versions(session: Session, integration_id: str, stream: str) -> list[MappingDesign]:
    """Every saved version of a stream's design, newest first."""
    return list(session.exec(select(MappingDesign).where(
        MappingDesign.integration_id == integration_id, MappingDesign.stream == stream)
        .order_by(col(MappingDesign.version).desc())).all())


def save_design(session: Session, integration_id: str, stream: str, care_type: str, design: Mapping[str, Any], *,
                actor: str, comment: str = "") -> MappingDesign:
    """Save a new version (the previous one stays in the history, no longer current)."""
    get_integration(session, integration_id)
    latest = session.exec(select(func.max(MappingDesign.version)).where(
        MappingDesign.integration_id == integration_id, MappingDesign.stream == stream,
        MappingDesign.care_type == care_type)).one()
    version = int(latest or 0) + 1
    for old in session.exec(select(MappingDesign).where(
            MappingDesign.integration_id == integration_id, MappingDesign.stream == stream,
            col(MappingDesign.is_current).is_(True))).all():
        old.is_current = False
        session.add(old)
    body = dict(design)
    body["version"] = version
    row = MappingDesign(integration_id=integration_id, stream=stream, care_type=care_type, version=version,
                        design=body, is_current=True, comment=comment[:500], created_by=actor)
    session.add(row)
    session.flush()
    record_audit(session, actor=actor, action="mapping.save", entity_type="integration", entity_id=integration_id,
                 detail={"stream": stream, "version": version})
    return row


def restore_design(session: Session, integration_id: str, stream: str, version: int, *, actor: str) -> MappingDesign:
    """Make an old version current again by saving it as a new version (history is never rewritten)."""
    old = session.exec(select(MappingDesign).where(
        MappingDesign.integration_id == integration_id, MappingDesign.stream == stream,
        MappingDesign.version == version)).first()
    if old is None:
        raise NotFound(f"no version {version} of {stream}")
    return save_design(session, integration_id, stream, old.care_type, old.design, actor=actor,
                       comment=f"Restored version {version}")


# ------------------------------------------------------------------ ownership


def ownership(session: Session, integration_id: str) -> list[DataOwnership]:
    """Per care type: primary system, direction, update permissions and conflict strategy."""
    return list(session.exec(select(DataOwnership).where(DataOwnership.integration_id == integration_id)
                             .order_by(col(DataOwnership.care_type))).all())


def save_ownership(session: Session, integration_id: str, mode: str, rows: Sequence[Mapping[str, Any]], *,
                   actor: str) -> None:
    """Save the operation mode and the per-care-type ownership matrix (upsert by care type)."""
    integration = get_integration(session, integration_id)
    integration.operation_mode = mode
    integration.updated_at = utcnow()
    session.add(integration)
    existing = {o.care_type: o for o in ownership(session, integration_id)}
    for r in rows:
        row = existing.get(str(r["care_type"])) or DataOwnership(integration_id=integration_id,
                                                                  care_type=str(r["care_type"]))
        row.primary_system = str(r["primary_system"])
        row.sync_direction = str(r["sync_direction"])
        row.update_permissions = list(r["update_permissions"])
        row.conflict_resolution = str(r["conflict_resolution"])
        session.add(row)
    record_audit(session, actor=actor, action="ownership.save", entity_type="integration", entity_id=integration_id,
                 detail={"mode": mode, "care_types": [str(r["care_type"]) for r in rows]})


# ------------------------------------------------------------------ runs and records


def get_run(session: Session, run_id: str) -> SyncRun:
    """A sync run by id, or :class:`NotFound`."""
    run = session.get(SyncRun, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def recent_runs(session: Session, integration_id: str, limit: int = 10) -> list[SyncRun]:
    """The integration's newest runs."""
    return list(session.exec(select(SyncRun).where(SyncRun.integration_id == integration_id)
                             .order_by(col(SyncRun.queued_at).desc()).limit(limit)).all())


def run_events(session: Session, run_id: str, limit: int = 50) -> list[SyncRunEvent]:
    """A run's events, oldest first."""
    return list(session.exec(select(SyncRunEvent).where(SyncRunEvent.run_id == run_id)
                             .order_by(col(SyncRunEvent.id)).limit(limit)).all())


def run_outcomes(session: Session, run_id: str, limit: int = 200) -> list[RecordOutcome]:
    """Per-record outcomes of a run."""
    return list(session.exec(select(RecordOutcome).where(RecordOutcome.run_id == run_id)
                             .order_by(col(RecordOutcome.id)).limit(limit)).all())


def integration_records(session: Session, integration_id: str, stream: str | None = None,
                        limit: int = 50) -> list[tuple[ExternalLink, CareRecord]]:
    """Care records this integration wrote, with their external links, newest first."""
    query = (select(ExternalLink, CareRecord).join(CareRecord, col(CareRecord.id) == col(ExternalLink.record_id))
             .where(ExternalLink.integration_id == integration_id))
    if stream:
        query = query.where(ExternalLink.stream == stream)
    rows = session.exec(query.order_by(col(CareRecord.updated_at).desc()).limit(limit)).all()
    return [(link, record) for link, record in rows]


def current_records_for(session: Session, integration_id: str, stream: str,
                        external_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The care records already linked to these vendor ids (for the preview's diff), by external id."""
    if not external_ids:
        return {}
    rows = session.exec(select(ExternalLink, CareRecord).join(CareRecord, col(CareRecord.id) == col(ExternalLink.record_id))
                        .where(ExternalLink.integration_id == integration_id, ExternalLink.stream == stream,
                               col(ExternalLink.external_id).in_(list(external_ids)))).all()
    return {link.external_id: dict(record.data) for link, record in rows}
