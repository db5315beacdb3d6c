"""Read models for the operate pages: the sync timeline, run detail, the errors inbox and health figures.

Everything that can grow (runs, outcomes, errors) is paged or aggregated in SQL, so the pages stay fast
with tens of thousands of runs. Error actions (retry, edit and resubmit, map, ignore, resolve) live here
too; each is audited.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, func, literal
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from storage.audit import record_audit
from storage.migration_plans import write_care_record
from storage.models import (
    CareRecord,
    CareRecordVersion,
    ExternalLink,
    FieldLineage,
    Integration,
    IntegrationError,
    RecordOutcome,
    RunStatus,
    RunTrigger,
    SyncRun,
    SyncRunEvent,
    utcnow,
)

FINISHED = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.ROLLED_BACK.value,
            RunStatus.CANCELLED.value)
PERIODS: dict[str, timedelta] = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=31),
                                 "quarter": timedelta(days=92)}
BUCKETS: dict[str, int] = {"day": 3600, "week": 6 * 3600, "month": 86400, "quarter": 86400}
TARGETS = {"success_pct": 99.5, "accuracy_pct": 99.9, "duration_seconds": 300.0, "resolution_hours": 2.0,
           "uptime_pct": 99.9}
ERROR_AGE_ALERT = timedelta(hours=2)


class OpsError(ValueError):
    """An error-inbox action cannot be done; the message says why in plain English."""


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; they are stored in UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


def _cols(*columns: Any) -> list[Any]:
    """Columns for a multi-column select (SQLModel's typed ``select`` stops at four)."""
    return list(columns)


def _rows(session: Session, query: Any) -> Sequence[Any]:
    """Rows of a Core select, run on the session's connection (inside its transaction)."""
    return session.connection().execute(query).all()


def epoch(column: Any, dialect: str) -> ColumnElement[Any]:
    """Seconds since 1970 of a timestamp column, in SQL, for either database."""
    if dialect == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    return func.extract("epoch", column)


# ---------------------------------------------------------------- timeline


@dataclass(frozen=True, slots=True)
class TimelineFilter:
    """Which runs the timeline shows: a window of time plus optional integration and status filters."""

    start: datetime
    end: datetime
    integration_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()

    @classmethod
    def period(cls, name: str, *, end: datetime | None = None, integration_ids: Sequence[str] = (),
               statuses: Sequence[str] = ()) -> TimelineFilter:
        """The last day/week/month/quarter up to ``end`` (now by default)."""
        end = end or utcnow()
        return cls(end - PERIODS[name], end, tuple(integration_ids), tuple(statuses))

    def conditions(self) -> list[ColumnElement[bool]]:
        """SQL conditions on ``sync_runs`` (the window uses the indexed ``queued_at``)."""
        conds: list[ColumnElement[bool]] = [col(SyncRun.queued_at) >= self.start, col(SyncRun.queued_at) < self.end]
        if self.integration_ids:
            conds.append(col(SyncRun.integration_id).in_(self.integration_ids))
        if self.statuses:
            conds.append(col(SyncRun.status).in_(self.statuses))
        return conds


@dataclass(frozen=True, slots=True)
class RunBar:
    """One run as the chart draws it."""

    id: str
    integration_id: str
    status: str
    trigger: str
    start: datetime
    end: datetime
    read: int
    written: int
    failed: int

    @property
    def duration_seconds(self) -> float:
        """How long the run took (so far)."""
        return max(0.0, (self.end - self.start).total_seconds())


def integration_names(session: Session) -> dict[str, str]:
    """Every integration's display name by id (deleted ones included: old runs still name them)."""
    return {i: n for i, n in session.exec(select(Integration.id, Integration.name)).all()}


def count_runs(session: Session, flt: TimelineFilter) -> int:
    """How many runs match the filter."""
    return int(session.exec(select(func.count()).select_from(SyncRun).where(*flt.conditions())).one())


def timeline_bars(session: Session, flt: TimelineFilter, limit: int = 1500) -> list[RunBar]:
    """Individual runs in the window (newest ``limit``), for the zoomed-in chart."""
    counts = col(SyncRun.counts)
    query = (sa_select(*_cols(SyncRun.id, SyncRun.integration_id, SyncRun.status, SyncRun.trigger, SyncRun.queued_at,
                    SyncRun.started_at, SyncRun.finished_at, counts["read"].as_integer(),
                    counts["written"].as_integer(), counts["failed"].as_integer()))
             .where(*flt.conditions()).order_by(col(SyncRun.queued_at).desc()).limit(limit))
    now = utcnow()
    bars = []
    for rid, iid, status, trigger, queued, started, finished, read, written, failed in _rows(session, query):
        begin = aware(started) or aware(queued) or now
        bars.append(RunBar(rid, iid, status, trigger, begin, aware(finished) or max(now, begin), int(read or 0),
                           int(written or 0), int(failed or 0)))
    bars.reverse()
    return bars


@dataclass(frozen=True, slots=True)
class Bucket:
    """Runs of one status that started in one time bucket."""

    start: datetime
    status: str
    runs: int
    avg_seconds: float
    records: int


def timeline_buckets(session: Session, flt: TimelineFilter, bucket_seconds: int) -> list[Bucket]:
    """Runs grouped by time bucket and status in SQL: the zoomed-out chart for any number of runs."""
    dialect = session.get_bind().dialect.name
    start = epoch(col(SyncRun.queued_at), dialect)
    slot = func.cast(func.floor(start / bucket_seconds), Integer).label("slot")
    duration = epoch(col(SyncRun.finished_at), dialect) - epoch(col(SyncRun.started_at), dialect)
    query = (sa_select(*_cols(slot, SyncRun.status, func.count(), func.avg(duration),
                    func.sum(func.coalesce(col(SyncRun.counts)["read"].as_integer(), 0))))
             .where(*flt.conditions()).group_by(slot, SyncRun.status).order_by(slot))
    tz = utcnow().tzinfo
    return [Bucket(datetime.fromtimestamp(int(s) * bucket_seconds, tz), status, int(n), float(avg or 0.0),
                   int(records or 0)) for s, status, n, avg, records in _rows(session, query)]


@dataclass(frozen=True, slots=True)
class RunRow:
    """One line of the runs table."""

    id: str
    integration: str
    status: str
    trigger: str
    queued_at: datetime
    duration_seconds: float | None
    read: int
    written: int
    failed: int
    error: str


def runs_page(session: Session, flt: TimelineFilter, page: int = 1, page_size: int = 25, *,
              total: int | None = None, names: dict[str, str] | None = None) -> tuple[list[RunRow], int]:
    """One page of the runs in the window, newest first, with the total for the pager (counted unless
    the caller already knows it)."""
    names = names if names is not None else integration_names(session)
    counts = col(SyncRun.counts)
    query = (sa_select(*_cols(SyncRun.id, SyncRun.integration_id, SyncRun.status, SyncRun.trigger, SyncRun.queued_at,
                    SyncRun.started_at, SyncRun.finished_at, counts["read"].as_integer(),
                    counts["written"].as_integer(), counts["failed"].as_integer(), SyncRun.error))
             .where(*flt.conditions()).order_by(col(SyncRun.queued_at).desc())
             .offset(max(0, page - 1) * page_size).limit(page_size))
    rows = []
    for rid, iid, status, trigger, queued, started, finished, read, written, failed, error in _rows(session, query):
        started_at, finished_at = aware(started), aware(finished)
        duration = (finished_at - started_at).total_seconds() if started_at and finished_at else None
        rows.append(RunRow(rid, names.get(iid, iid), status, trigger, aware(queued) or utcnow(), duration,
                           int(read or 0), int(written or 0), int(failed or 0), error))
    return rows, count_runs(session, flt) if total is None else total


# ---------------------------------------------------------------- run detail


@dataclass
class RunDetail:
    """A run with its integration, events, errors and outcome counts."""

    run: SyncRun
    integration: str
    events: list[SyncRunEvent]
    errors: list[IntegrationError]
    outcome_counts: dict[str, int]
    rollback_possible: bool


def run_detail(session: Session, run_id: str) -> RunDetail | None:
    """Everything the run page shows above the outcomes table; None when there is no such run."""
    run = session.get(SyncRun, run_id)
    if run is None:
        return None
    integration = session.get(Integration, run.integration_id)
    events = list(session.exec(select(SyncRunEvent).where(SyncRunEvent.run_id == run_id)
                               .order_by(col(SyncRunEvent.id)).limit(500)).all())
    errors = list(session.exec(select(IntegrationError).where(IntegrationError.run_id == run_id)
                               .order_by(col(IntegrationError.timestamp)).limit(200)).all())
    outcome_counts = {o: int(n) for o, n in session.exec(
        select(RecordOutcome.outcome, func.count()).where(RecordOutcome.run_id == run_id)
        .group_by(RecordOutcome.outcome)).all()}
    wrote = session.exec(select(CareRecordVersion.id).where(CareRecordVersion.run_id == run_id).limit(1)).first()
    return RunDetail(run, integration.name if integration else run.integration_id, events, errors, outcome_counts,
                     rollback_possible=run.status in (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value,
                                                      RunStatus.CANCELLED.value) and wrote is not None)


def outcomes_page(session: Session, run_id: str, page: int = 1, page_size: int = 20,
                  outcome: str | None = None) -> tuple[list[RecordOutcome], int]:
    """One page of a run's per-record outcomes (optionally of one kind) and the total."""
    conds: list[ColumnElement[bool]] = [col(RecordOutcome.run_id) == run_id]
    if outcome:
        conds.append(col(RecordOutcome.outcome) == outcome)
    total = int(session.exec(select(func.count()).select_from(RecordOutcome).where(*conds)).one())
    rows = session.exec(select(RecordOutcome).where(*conds).order_by(col(RecordOutcome.id))
                        .offset(max(0, page - 1) * page_size).limit(page_size)).all()
    return list(rows), total


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field's value before and after a write."""

    field: str
    before: Any
    after: Any
    kind: str  # added, changed, removed


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """The fields that differ between two versions of a record, in name order."""
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in before:
            changes.append(FieldChange(name, None, after[name], "added"))
        elif name not in after:
            changes.append(FieldChange(name, before[name], None, "removed"))
        elif before[name] != after[name]:
            changes.append(FieldChange(name, before[name], after[name], "changed"))
    return changes


def lineage(session: Session, record_id: str) -> list[FieldLineage]:
    """Which system, integration, run and source record last wrote each field of a record."""
    return list(session.exec(select(FieldLineage).where(FieldLineage.record_id == record_id)
                             .order_by(col(FieldLineage.field))).all())


# ---------------------------------------------------------------- errors inbox


@dataclass(frozen=True, slots=True)
class Explanation:
    """What went wrong and how to fix it, for people who do not read stack traces."""

    cause: str
    fix: str
    actions: tuple[str, ...]  # retry, edit, map, ignore, resolve


_EXPLAIN: dict[str, Explanation] = {
    "validation": Explanation(
        "A record had a value CareHub could not accept, so it was not saved.",
        "Correct the value and resubmit it, or ignore the record if it should not be copied.",
        ("edit", "ignore", "resolve")),
    "conflict": Explanation(
        "The same record was changed in both systems and the ownership rules say a person must choose.",
        "Compare the two versions and keep one, or correct a value and resubmit.",
        ("choose", "edit", "ignore", "resolve")),
    "run": Explanation(
        "The whole run stopped before it finished (the other system or the connection failed repeatedly).",
        "Retry the run; if it stops again, check the integration's connection settings.",
        ("retry", "ignore", "resolve")),
    "auth": Explanation(
        "The other system refused CareHub's sign-in: the password, key or connection has expired or was removed.",
        "Reconnect the integration with fresh credentials, then retry.", ("retry", "resolve")),
    "rate_limit": Explanation(
        "The other system asked CareHub to slow down and the run gave up waiting.",
        "Retry later; CareHub spaces requests out automatically.", ("retry", "ignore", "resolve")),
    "vendor": Explanation(
        "The other system returned an error of its own.",
        "Retry; if it keeps failing, check the system's status page or contact its support.",
        ("retry", "ignore", "resolve")),
    "network": Explanation(
        "CareHub could not reach the other system (network or timeout).",
        "Retry once the connection is back.", ("retry", "ignore", "resolve")),
    "not_found": Explanation(
        "The record CareHub tried to update no longer exists in the other system.",
        "Map it to another record, or ignore it if it was deleted on purpose.", ("map", "ignore", "resolve")),
    "mapping": Explanation(
        "The field mapping could not produce a value (a transform failed or a required field is unmapped).",
        "Fix the mapping in the designer, then retry; or correct this record's value and resubmit.",
        ("edit", "retry", "ignore", "resolve")),
}
_DEFAULT_EXPLANATION = Explanation("Something went wrong while syncing this record.",
                                   "Retry it; if it fails again, ignore it with a reason or ask support.",
                                   ("retry", "ignore", "resolve"))


def explain(error_type: str) -> Explanation:
    """The plain-English cause and fix-it choices for an error type."""
    return _EXPLAIN.get(error_type, _DEFAULT_EXPLANATION)


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """Open errors that share a cause."""

    error_type: str
    error_code: str
    count: int
    oldest: datetime
    newest: datetime
    integrations: int
    explanation: Explanation

    @property
    def key(self) -> str:
        """A stable id for the group."""
        return f"{self.error_type}:{self.error_code}"


def _error_conds(integration_id: str | None, resolved: bool) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [col(IntegrationError.resolved).is_(resolved)]
    if integration_id:
        conds.append(col(IntegrationError.integration_id) == integration_id)
    return conds


def error_groups(session: Session, integration_id: str | None = None) -> list[ErrorGroup]:
    """Open errors grouped by cause (type and code), largest group first."""
    query = (sa_select(*_cols(IntegrationError.error_type, IntegrationError.error_code, func.count(),
                    func.min(IntegrationError.timestamp), func.max(IntegrationError.timestamp),
                    func.count(func.distinct(IntegrationError.integration_id))))
             .where(*_error_conds(integration_id, False))
             .group_by(IntegrationError.error_type, IntegrationError.error_code)
             .order_by(func.count().desc()))
    now = utcnow()
    return [ErrorGroup(t, c, int(n), aware(lo) or now, aware(hi) or now, int(k), explain(t))
            for t, c, n, lo, hi, k in _rows(session, query)]


def errors_in_group(session: Session, error_type: str, error_code: str, *, integration_id: str | None = None,
                    page: int = 1, page_size: int = 20) -> tuple[list[IntegrationError], int]:
    """One page of the open errors of one group, oldest first, and the total."""
    conds = [*_error_conds(integration_id, False), col(IntegrationError.error_type) == error_type,
             col(IntegrationError.error_code) == error_code]
    total = int(session.exec(select(func.count()).select_from(IntegrationError).where(*conds)).one())
    rows = session.exec(select(IntegrationError).where(*conds).order_by(col(IntegrationError.timestamp))
                        .offset(max(0, page - 1) * page_size).limit(page_size)).all()
    return list(rows), total


def _open_error(session: Session, error_id: str) -> IntegrationError:
    error = session.get(IntegrationError, error_id)
    if error is None:
        raise OpsError("That error no longer exists.")
    if error.resolved:
        raise OpsError("Someone has already dealt with this error.")
    return error


def _close(session: Session, error: IntegrationError, action: str, note: str, actor: str) -> None:
    now = utcnow()
    error.resolved, error.resolution_action, error.resolution_note = True, action, note
    error.resolved_at, error.resolved_by = now, actor
    session.add(error)
    record_audit(session, actor=actor, action=f"error.{action}", entity_type="integration_error",
                 entity_id=error.id, detail={"note": note, "run_id": error.run_id,
                                             "age_minutes": round(resolution_minutes(error) or 0.0, 1)})


def resolution_minutes(error: IntegrationError) -> float | None:
    """Minutes from the error to its resolution (None while open)."""
    opened, closed = aware(error.timestamp), aware(error.resolved_at)
    if opened is None or closed is None:
        return None
    return (closed - opened).total_seconds() / 60


def retry_errors(session: Session, error_ids: Sequence[str], actor: str) -> dict[str, dict[str, Any]]:
    """Mark errors for retry; returns, per integration, the params of the ``retry`` run to queue.

    The params name the errors and their records (``error_ids``, ``record_ids``, ``streams``); the errors
    stay open with a higher retry count until the retry run settles them. Errors past their retry
    limit are refused.
    """
    errors = [e for e in (session.get(IntegrationError, i) for i in error_ids) if e is not None and not e.resolved]
    if not errors:
        raise OpsError("Choose at least one open error to retry.")
    by_integration: dict[str, list[IntegrationError]] = defaultdict(list)
    for error in errors:
        if error.retry_count >= error.max_retries:
            raise OpsError(f"{error.error_code or error.error_type} has been retried {error.retry_count} times, "
                           "its limit: edit the value, map it, or ignore it.")
        error.retry_count += 1
        error.error_details = {**error.error_details, "retry_requested_at": utcnow().isoformat(),
                               "retry_requested_by": actor}
        session.add(error)
        by_integration[error.integration_id].append(error)
    plans: dict[str, dict[str, Any]] = {}
    for integration_id, group in by_integration.items():
        plans[integration_id] = {"error_ids": [e.id for e in group],
                                 "record_ids": sorted({e.record_id for e in group if e.record_id}),
                                 "streams": sorted({e.stream for e in group if e.stream})}
        record_audit(session, actor=actor, action="error.retry", entity_type="integration",
                     entity_id=integration_id, detail=plans[integration_id])
    return plans


def queue_retry_run(session: Session, integration_id: str, params: dict[str, Any], actor: str) -> str:
    """Record a queued ``retry`` run when no sync worker queue is wired (the worker picks queued runs up)."""
    run = SyncRun(integration_id=integration_id, trigger=RunTrigger.RETRY.value, requested_by=actor,
                  params=dict(params))
    session.add(run)
    session.flush()
    session.add(SyncRunEvent(run_id=run.id, kind="queued", message=f"retry run queued by {actor}"))
    return run.id


def resubmit_with_value(session: Session, error_id: str, field_name: str, value: Any, actor: str) -> CareRecord:
    """Correct one field of the failed record and write it to the care store; the error is resolved.

    The write is a new version attributed to the original run, with lineage, so the record's history
    shows who fixed what.
    """
    from engine.migration.legacy import CHECKS, PLAIN_FIELD_PROBLEMS

    error = _open_error(session, error_id)
    details = error.error_details
    record = details.get("record")
    care_type = str(details.get("care_type") or "")
    if not isinstance(record, dict) or not care_type:
        raise OpsError("This error did not keep the record it was about, so it cannot be resubmitted: retry it.")
    if isinstance(value, str):
        value = value.strip()
    if value in ("", None):
        raise OpsError(f"Enter a value for {field_name}.")
    check = CHECKS.get(field_name)
    if check is not None and not check(value):
        raise OpsError(f"{value!s} {PLAIN_FIELD_PROBLEMS.get(field_name, 'is still not allowed')}.")
    fixed = {**record, field_name: value}
    integration = session.get(Integration, error.integration_id)
    result = write_care_record(session, care_type=care_type, data=fixed, integration_id=error.integration_id,
                               run_id=error.run_id, stream=str(details.get("stream") or error.stream or care_type),
                               external_id=str(details.get("external_id") or error.record_id or error.id),
                               system=integration.connector_id if integration else "", actor=actor)
    if error.run_id:
        session.add(RecordOutcome(run_id=error.run_id, stream=error.stream, care_type=care_type,
                                  external_id=str(details.get("external_id") or error.record_id or ""),
                                  record_id=result.record.id, outcome="written",
                                  reason=f"resubmitted by {actor} after correcting {field_name}",
                                  before=result.before, after=dict(result.record.data)))
        session.add(SyncRunEvent(run_id=error.run_id, kind="resubmitted",
                                 message=f"{actor} corrected {field_name} and resubmitted {error.record_id or ''}"))
    error.error_details = {**details, "corrected_field": field_name}
    _close(session, error, "edited", f"{field_name} corrected and resubmitted", actor)
    return result.record


def resolve_conflict(session: Session, error_id: str, keep: str, actor: str) -> IntegrationError:
    """Settle a conflict: keep WriteCareNotes' version (``writecarenotes``) or take the incoming one
    (``incoming``, written as a new version with lineage)."""
    error = _open_error(session, error_id)
    details = error.error_details
    if error.error_type != "conflict" or not isinstance(details.get("incoming"), dict):
        raise OpsError("This error is not a conflict between two versions of a record.")
    if keep not in ("writecarenotes", "incoming"):
        raise OpsError("Choose which version to keep.")
    if keep == "incoming":
        record = session.get(CareRecord, str(error.record_id or ""))
        if record is None:
            raise OpsError("The WriteCareNotes record no longer exists.")
        integration = session.get(Integration, error.integration_id)
        write_care_record(session, care_type=record.care_type, data=dict(details["incoming"]),
                          integration_id=error.integration_id, run_id=error.run_id, stream=error.stream,
                          external_id=str(details.get("external_id") or ""), actor=actor, record_id=record.id,
                          system=integration.connector_id if integration else "")
    _close(session, error, "kept_incoming" if keep == "incoming" else "kept_writecarenotes",
           "kept the incoming version" if keep == "incoming" else "kept WriteCareNotes' version", actor)
    return error


def map_to_record(session: Session, error_id: str, record_id: str, actor: str) -> IntegrationError:
    """Link the failed external record to an existing care record (future syncs update that record)."""
    error = _open_error(session, error_id)
    target = session.get(CareRecord, record_id.strip())
    if target is None or target.deleted_at is not None:
        raise OpsError("There is no care record with that id.")
    external_id = str(error.error_details.get("external_id") or error.record_id or "")
    stream = str(error.error_details.get("stream") or error.stream)
    if not external_id or not stream:
        raise OpsError("This error is not about one external record, so it cannot be mapped.")
    link = session.exec(select(ExternalLink).where(ExternalLink.integration_id == error.integration_id,
                                                   ExternalLink.stream == stream,
                                                   ExternalLink.external_id == external_id)).first()
    link = link or ExternalLink(integration_id=error.integration_id, stream=stream, external_id=external_id,
                                record_id=target.id)
    link.record_id, link.deleted, link.content_hash = target.id, False, ""
    session.add(link)
    _close(session, error, "mapped", f"mapped to record {target.id}", actor)
    return error


def ignore_error(session: Session, error_id: str, reason: str, actor: str) -> IntegrationError:
    """Close the error without changing data; a reason is required."""
    if not reason.strip():
        raise OpsError("Say why this error can be ignored (it is kept in the audit log).")
    error = _open_error(session, error_id)
    _close(session, error, "ignored", reason.strip(), actor)
    return error


def resolve_error(session: Session, error_id: str, note: str, actor: str) -> IntegrationError:
    """Mark the error as dealt with outside CareHub."""
    error = _open_error(session, error_id)
    _close(session, error, "resolved", note.strip() or "resolved", actor)
    return error


# ---------------------------------------------------------------- health


@dataclass
class Health:
    """Measured figures for one integration (or all of them) against the spec's targets."""

    name: str
    integration_id: str | None
    runs: int = 0
    succeeded: int = 0
    records_read: int = 0
    records_failed: int = 0
    durations: list[float] = field(default_factory=list)
    resolution_minutes: list[float] = field(default_factory=list)
    open_errors: int = 0
    aged_errors: int = 0
    downtime_seconds: float = 0.0
    window_seconds: float = 1.0
    last_success: datetime | None = None
    stale: bool = False

    @property
    def success_pct(self) -> float | None:
        """Share of finished runs that succeeded."""
        return round(100.0 * self.succeeded / self.runs, 3) if self.runs else None

    @property
    def accuracy_pct(self) -> float | None:
        """Share of records read that were written or skipped without an error."""
        if not self.records_read:
            return None
        return round(100.0 * (self.records_read - self.records_failed) / self.records_read, 3)

    @property
    def p95_duration_seconds(self) -> float | None:
        """95th percentile run duration."""
        return _percentile(self.durations, 95)

    @property
    def p95_resolution_hours(self) -> float | None:
        """95th percentile time to resolve an error, in hours."""
        value = _percentile(self.resolution_minutes, 95)
        return None if value is None else round(value / 60, 3)

    @property
    def uptime_pct(self) -> float | None:
        """Share of the window not spent between a failed run and the next good one."""
        if not self.runs:
            return None
        return round(100.0 * max(0.0, 1 - self.downtime_seconds / self.window_seconds), 3)

    def figures(self) -> dict[str, float | None]:
        """Measured value per target key."""
        return {"success_pct": self.success_pct, "accuracy_pct": self.accuracy_pct,
                "duration_seconds": self.p95_duration_seconds, "resolution_hours": self.p95_resolution_hours,
                "uptime_pct": self.uptime_pct}

    def meets(self) -> dict[str, bool | None]:
        """Per target: met (True), missed (False) or not measured (None)."""
        out: dict[str, bool | None] = {}
        for key, value in self.figures().items():
            if value is None:
                out[key] = None
            elif key in ("duration_seconds", "resolution_hours"):
                out[key] = value < TARGETS[key]
            else:
                out[key] = value > TARGETS[key]
        return out


def _percentile(values: Sequence[float], pct: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))], 3)


def health(session: Session, *, days: int = 30, now: datetime | None = None) -> tuple[Health, list[Health]]:
    """Overall and per-integration figures over the last ``days`` days."""
    now = now or utcnow()
    since = now - timedelta(days=days)
    window = (now - since).total_seconds()
    integrations = session.exec(select(Integration).where(col(Integration.deleted_at).is_(None))
                                .order_by(col(Integration.name))).all()
    per = {i.id: Health(i.name, i.id, window_seconds=window, last_success=aware(i.last_success)) for i in integrations}
    overall = Health("All integrations", None, window_seconds=window)
    dialect = session.get_bind().dialect.name
    counts = col(SyncRun.counts)
    duration = epoch(col(SyncRun.finished_at), dialect) - epoch(col(SyncRun.started_at), dialect)
    query = (sa_select(*_cols(SyncRun.integration_id, SyncRun.status, SyncRun.finished_at, duration,
                    counts["read"].as_integer(), counts["failed"].as_integer()))
             .where(col(SyncRun.queued_at) >= since, col(SyncRun.status).in_(FINISHED[:2]))
             .order_by(SyncRun.integration_id, col(SyncRun.finished_at)))
    down_since: dict[str, datetime] = {}
    for iid, status, finished, seconds, read, failed in _rows(session, query):
        target = per.get(iid)
        finished_at = aware(finished)
        for h in (target, overall):
            if h is None:
                continue
            h.runs += 1
            h.succeeded += status == RunStatus.SUCCEEDED.value
            h.records_read += int(read or 0)
            h.records_failed += int(failed or 0)
            if seconds is not None:
                h.durations.append(float(seconds))
        if target is None or finished_at is None:
            continue
        if status == RunStatus.SUCCEEDED.value:
            if target.last_success is None or finished_at > target.last_success:
                target.last_success = finished_at
            if iid in down_since:
                target.downtime_seconds += (finished_at - down_since.pop(iid)).total_seconds()
        else:
            down_since.setdefault(iid, finished_at)
    for iid, since_failure in down_since.items():
        per[iid].downtime_seconds += (now - since_failure).total_seconds()
    overall.downtime_seconds = (sum(h.downtime_seconds for h in per.values()) / len(per)) if per else 0.0
    resolved = session.exec(select(IntegrationError.integration_id, IntegrationError.timestamp,
                                   IntegrationError.resolved_at)
                            .where(col(IntegrationError.resolved).is_(True), col(IntegrationError.resolved_at) >= since,
                                   col(IntegrationError.resolution_action) != "rolled_back")).all()
    for iid, opened, closed in resolved:
        o, c = aware(opened), aware(closed)
        if o and c:
            minutes = (c - o).total_seconds() / 60
            overall.resolution_minutes.append(minutes)
            if iid in per:
                per[iid].resolution_minutes.append(minutes)
    aged_cutoff = now - ERROR_AGE_ALERT
    for iid, n, aged in session.exec(select(IntegrationError.integration_id, func.count(),
                                            func.sum(case((col(IntegrationError.timestamp) < aged_cutoff, 1),
                                                          else_=literal(0))))
                                     .where(col(IntegrationError.resolved).is_(False))
                                     .group_by(IntegrationError.integration_id)).all():
        for h in (per.get(iid), overall):
            if h is not None:
                h.open_errors += int(n)
                h.aged_errors += int(aged or 0)
    for integration in integrations:
        h = per[integration.id]
        if integration.status == "active":
            limit = timedelta(minutes=integration.stale_after_minutes)
            h.stale = h.last_success is None or now - h.last_success > limit
    overall.stale = any(h.stale for h in per.values())
    return overall, list(per.values())


def daily_trend(session: Session, *, days: int = 14, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per day: runs, success % and average duration (for the trend charts)."""
    now = now or utcnow()
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    dialect = session.get_bind().dialect.name
    slot = func.cast(func.floor(epoch(col(SyncRun.queued_at), dialect) / 86400), Integer).label("day")
    duration = epoch(col(SyncRun.finished_at), dialect) - epoch(col(SyncRun.started_at), dialect)
    query = (select(slot, func.count(), func.sum(case((col(SyncRun.status) == RunStatus.SUCCEEDED.value, 1),
                                                      else_=literal(0))), func.avg(duration))
             .where(col(SyncRun.queued_at) >= since, col(SyncRun.status).in_(FINISHED[:2]))
             .group_by(slot).order_by(slot))
    found = {int(d): (int(n), int(ok or 0), float(avg or 0.0)) for d, n, ok, avg in session.exec(query).all()}
    first = int(since.timestamp() // 86400)
    out = []
    for day in range(first, first + days):
        n, ok, avg = found.get(day, (0, 0, 0.0))
        out.append({"day": datetime.fromtimestamp(day * 86400, now.tzinfo).date().isoformat(), "runs": n,
                    "success_pct": round(100.0 * ok / n, 2) if n else None, "avg_seconds": round(avg, 1)})
    return out


def failed_runs_since(session: Session, since: datetime) -> list[SyncRun]:
    """Runs that failed after ``since`` (for alerts)."""
    return list(session.exec(select(SyncRun).where(SyncRun.status == RunStatus.FAILED.value,
                                                   col(SyncRun.finished_at) >= since)
                             .order_by(col(SyncRun.finished_at)).limit(500)).all())


def aged_errors(session: Session, *, now: datetime | None = None) -> list[IntegrationError]:
    """Open errors older than two hours (the resolution target)."""
    cutoff = (now or utcnow()) - ERROR_AGE_ALERT
    return list(session.exec(select(IntegrationError).where(col(IntegrationError.resolved).is_(False),
                                                            col(IntegrationError.timestamp) < cutoff)
                             .order_by(col(IntegrationError.timestamp)).limit(500)).all())

