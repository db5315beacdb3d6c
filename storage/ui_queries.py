"""Read models the browser pages need beyond :mod:`storage.integrations`: list rows, records, run detail.

Every function takes an open session; the caller's unit of work commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from storage.integrations import latest_run, list_integrations
from storage.models import CareRecord, ExternalLink, SyncConfiguration, SyncRun


class RunNotFound(LookupError):
    """The sync run asked for does not exist."""


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
    records: int


def integration_rows(session: Session, limit: int = 200) -> list[IntegrationRow]:
    """Every live integration, newest first, with its data types, last run and record count."""
    out: list[IntegrationRow] = []
    for i in list_integrations(session, limit=limit).items:
        last = latest_run(session, integration_id=i.id)
        cfg = session.get(SyncConfiguration, i.id)
        records = session.exec(select(func.count()).select_from(ExternalLink)
                               .where(ExternalLink.integration_id == i.id)).one()
        when = (last.finished_at or last.started_at or last.queued_at) if last else None
        out.append(IntegrationRow(
            id=i.id, name=i.name, connector_id=i.connector_id, system_name=i.system_name, status=i.status,
            streams=list(cfg.streams) if cfg else [], last_run_status=last.status if last else None,
            last_run_at=when.strftime("%d %b %Y %H:%M") if when else None, records=int(records)))
    return out


def get_run(session: Session, run_id: str) -> SyncRun:
    """A sync run by id, or :class:`RunNotFound`."""
    run = session.get(SyncRun, run_id, populate_existing=True)
    if run is None:
        raise RunNotFound(f"No sync run with id '{run_id}'.")
    return run


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
    rows = session.exec(select(ExternalLink, CareRecord)
                        .join(CareRecord, col(CareRecord.id) == col(ExternalLink.record_id))
                        .where(ExternalLink.integration_id == integration_id, ExternalLink.stream == stream,
                               col(ExternalLink.external_id).in_(list(external_ids)))).all()
    return {link.external_id: dict(record.data) for link, record in rows}
