"""Sync run repository: create, claim with a lease, heartbeat, release, finish, pause, reap orphans,
events, outcomes, errors and per-integration metrics. The SQL row is the source of truth; the queue
only carries run ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlmodel import col

from storage.care_store import aware
from storage.db import Database
from storage.models import (
    IntegrationError,
    RecordOutcome,
    RunStatus,
    RunTrigger,
    SyncRun,
    SyncRunEvent,
    utcnow,
)

ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.WAITING.value, RunStatus.PAUSED.value)
FINISHED = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value, RunStatus.ROLLED_BACK.value)


def _rowcount(result: Any) -> int:
    """Rows matched by an UPDATE (typed as Result, which mypy does not know carries rowcount)."""
    return int(getattr(result, "rowcount", 0))


class RunError(RuntimeError):
    """A run cannot move to the requested state (wrong status, unknown id)."""


def job_id(run: SyncRun) -> str:
    """The arq job id of a run's current dispatch (a new one per re-queue, so arq never dedupes it away)."""
    return f"sync:{run.id}:{run.attempt}"


def create_run(db: Database, integration_id: str, trigger: str = RunTrigger.MANUAL.value,
               params: Mapping[str, Any] | None = None, requested_by: str = "", direction: str = "") -> tuple[SyncRun, bool]:
    """A new queued run, or the integration's active one (one run per integration at a time).

    Returns ``(run, created)``.
    """
    RunTrigger(trigger)
    with db.session() as s:
        active = s.execute(select(SyncRun).where(col(SyncRun.integration_id) == integration_id,
                                                 col(SyncRun.status).in_(ACTIVE))
                           .order_by(col(SyncRun.queued_at))).scalars().first()
        if active is not None:
            return active, False
        run = SyncRun(integration_id=integration_id, trigger=trigger, params=dict(params or {}),
                      requested_by=requested_by, direction=direction or "inbound", attempt=0)
        s.add(run)
        s.flush()
        return run, True


def get_run(db: Database, run_id: str) -> SyncRun | None:
    """One run by id."""
    with db.session() as s:
        return s.get(SyncRun, run_id)


def claim(db: Database, run_id: str, worker_id: str, lease_seconds: float) -> SyncRun | None:
    """Take the run for this worker (atomic): queued/waiting runs, or running ones whose lease expired.

    Never re-entrant: a second dispatch of a run this very worker is executing is refused too.

    Returns the run, or None when it is finished, paused, or leased by a live worker.
    """
    now = utcnow()
    with db.session() as s:
        res = s.execute(update(SyncRun).execution_options(synchronize_session=False).where(
            col(SyncRun.id) == run_id,
            or_(col(SyncRun.status).in_((RunStatus.QUEUED.value, RunStatus.WAITING.value)),
                (col(SyncRun.status) == RunStatus.RUNNING.value) & or_(col(SyncRun.lease_until).is_(None),
                                                                  col(SyncRun.lease_until) < now)),
        ).values(status=RunStatus.RUNNING.value, worker_id=worker_id, lease_until=now + timedelta(seconds=lease_seconds),
                 heartbeat_at=now, started_at=func.coalesce(col(SyncRun.started_at), now)))
        if _rowcount(res) != 1:
            return None
    return get_run(db, run_id)


def heartbeat(db: Database, run_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Extend the lease; False when this worker no longer holds the run (stop working on it)."""
    now = utcnow()
    with db.session() as s:
        res = s.execute(update(SyncRun).execution_options(synchronize_session=False).where(
            col(SyncRun.id) == run_id, col(SyncRun.worker_id) == worker_id,
            col(SyncRun.status) == RunStatus.RUNNING.value,
        ).values(lease_until=now + timedelta(seconds=lease_seconds), heartbeat_at=now))
        return bool(_rowcount(res) == 1)


def _move(db: Database, run_id: str, holder: str | None, status: str, **values: Any) -> bool:
    with db.session() as s:
        cond = [col(SyncRun.id) == run_id]
        if holder is not None:
            cond += [col(SyncRun.worker_id) == holder, col(SyncRun.status) == RunStatus.RUNNING.value]
        res = s.execute(update(SyncRun).execution_options(synchronize_session=False).where(*cond).values(status=status, **values))
        return bool(_rowcount(res) == 1)


def release(db: Database, run_id: str, worker_id: str) -> bool:
    """Give the run back to the queue at once (graceful shutdown); the next dispatch gets a new job id."""
    return _move(db, run_id, worker_id, RunStatus.QUEUED.value, worker_id="", lease_until=None,
                 attempt=col(SyncRun.attempt) + 1)


def finish(db: Database, run_id: str, worker_id: str, status: str, error: str = "") -> bool:
    """Mark the run finished (succeeded/failed/cancelled) if this worker still holds it."""
    return _move(db, run_id, worker_id, status, error=error, finished_at=utcnow(), lease_until=None)


def pause(db: Database, run_id: str, worker_id: str, reason: str) -> bool:
    """Park the run for approval (a safety valve tripped)."""
    return _move(db, run_id, worker_id, RunStatus.PAUSED.value, error=reason, lease_until=None)


def wait(db: Database, run_id: str, worker_id: str, reason: str) -> bool:
    """The run waits for a deferred retry (rate limit, open breaker, outage); next dispatch gets a new job id."""
    return _move(db, run_id, worker_id, RunStatus.WAITING.value, error=reason, lease_until=None,
                 attempt=col(SyncRun.attempt) + 1)


def resume_paused(db: Database, run_id: str, actor: str, params: Mapping[str, Any]) -> SyncRun:
    """Approve a paused run: back to queued with ``params`` merged (e.g. ``approved``)."""
    with db.session() as s:
        run = s.get(SyncRun, run_id)
        if run is None:
            raise RunError(f"no sync run {run_id}")
        if run.status != RunStatus.PAUSED.value:
            raise RunError(f"run {run_id} is {run.status}, not paused")
        run.params = {**(run.params or {}), **params, "approved_by": actor}
        run.status = RunStatus.QUEUED.value
        run.error = ""
        run.attempt += 1
        s.add(run)
        return run


def cancel(db: Database, run_id: str) -> bool:
    """Cancel a run that has not finished (a running job notices at its next heartbeat)."""
    with db.session() as s:
        res = s.execute(update(SyncRun).execution_options(synchronize_session=False).where(col(SyncRun.id) == run_id, col(SyncRun.status).in_(ACTIVE))
                        .values(status=RunStatus.CANCELLED.value, finished_at=utcnow(), lease_until=None))
        return bool(_rowcount(res) == 1)


@dataclass(frozen=True)
class Orphan:
    """A run the reaper put back in the queue."""

    run_id: str
    job_id: str


def reap_expired(db: Database, now: datetime | None = None) -> list[Orphan]:
    """Running runs whose lease expired (their worker died): back to queued with a new dispatch id."""
    now = now or utcnow()
    out: list[Orphan] = []
    with db.session() as s:
        stale = s.execute(select(SyncRun).where(col(SyncRun.status) == RunStatus.RUNNING.value,
                                                col(SyncRun.lease_until) < now)).scalars().all()
        for run in stale:
            res = s.execute(update(SyncRun).execution_options(synchronize_session=False).where(col(SyncRun.id) == run.id, col(SyncRun.status) == RunStatus.RUNNING.value,
                                                  col(SyncRun.lease_until) < now)
                            .values(status=RunStatus.QUEUED.value, worker_id="", lease_until=None,
                                    attempt=run.attempt + 1))
            if _rowcount(res) == 1:
                run.attempt += 1
                out.append(Orphan(run.id, job_id(run)))
    return out


def waiting_runs(db: Database, older_than: datetime) -> list[SyncRun]:
    """Queued or waiting runs last touched before ``older_than`` (the reaper checks their job exists)."""
    with db.session() as s:
        return list(s.execute(select(SyncRun).where(
            col(SyncRun.status).in_((RunStatus.QUEUED.value, RunStatus.WAITING.value)),
            col(SyncRun.queued_at) < older_than)).scalars().all())


def add_event(db: Database, run_id: str, kind: str, message: str = "", data: Mapping[str, Any] | None = None) -> None:
    """Append an event to a run's timeline."""
    with db.session() as s:
        s.add(SyncRunEvent(run_id=run_id, kind=kind, message=message, data=dict(data or {})))


def events(db: Database, run_id: str) -> list[SyncRunEvent]:
    """A run's events, oldest first."""
    with db.session() as s:
        return list(s.execute(select(SyncRunEvent).where(col(SyncRunEvent.run_id) == run_id)
                              .order_by(col(SyncRunEvent.id))).scalars().all())


def outcomes(db: Database, run_id: str, outcome: str | None = None) -> list[RecordOutcome]:
    """Per-record outcomes of a run."""
    with db.session() as s:
        q = select(RecordOutcome).where(col(RecordOutcome.run_id) == run_id)
        if outcome:
            q = q.where(col(RecordOutcome.outcome) == outcome)
        return list(s.execute(q.order_by(col(RecordOutcome.id))).scalars().all())


def run_errors(db: Database, run_id: str) -> list[IntegrationError]:
    """Errors queued by a run."""
    with db.session() as s:
        return list(s.execute(select(IntegrationError).where(col(IntegrationError.run_id) == run_id)).scalars().all())


def set_counts_field(db: Database, run_id: str, key: str, value: Any) -> None:
    """Set one top-level entry of a run's counts (reconciliation results)."""
    with db.session() as s:
        run = s.execute(select(SyncRun).where(col(SyncRun.id) == run_id).with_for_update()).scalar_one()
        run.counts = {**(run.counts or {}), key: value}
        s.add(run)


def _seconds(start: datetime | None, end: datetime | None) -> float:
    a, b = aware(start), aware(end)
    return (b - a).total_seconds() if a is not None and b is not None else 0.0


def integration_metrics(db: Database, integration_id: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    """Sync success rate, data accuracy, run duration and error resolution time (over runs since ``since``)."""
    since = since or utcnow() - timedelta(days=30)
    with db.session() as s:
        q = select(SyncRun).where(col(SyncRun.queued_at) >= since, col(SyncRun.status).in_(FINISHED))
        if integration_id:
            q = q.where(col(SyncRun.integration_id) == integration_id)
        runs: Sequence[SyncRun] = s.execute(q).scalars().all()
        eq = select(IntegrationError).where(col(IntegrationError.timestamp) >= since)
        if integration_id:
            eq = eq.where(col(IntegrationError.integration_id) == integration_id)
        errs: Sequence[IntegrationError] = s.execute(eq).scalars().all()
    finished = [r for r in runs if r.status in (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value)]
    ok = [r for r in finished if r.status == RunStatus.SUCCEEDED.value]
    durations = sorted(_seconds(r.started_at, r.finished_at) for r in finished if r.started_at and r.finished_at)
    processed = sum(int((r.counts or {}).get("read", 0)) + int((r.counts or {}).get("written", 0)) for r in runs)
    failed = sum(int((r.counts or {}).get("failed", 0)) for r in runs)
    resolved = [_seconds(e.timestamp, e.resolved_at) for e in errs if e.resolved and e.resolved_at]
    return {
        "runs": len(finished),
        "sync_success_rate": (len(ok) / len(finished)) if finished else None,
        "data_accuracy": (1 - failed / processed) if processed else None,
        "run_duration_avg_s": (sum(durations) / len(durations)) if durations else None,
        "run_duration_p95_s": durations[min(len(durations) - 1, int(len(durations) * 0.95))] if durations else None,
        "error_resolution_avg_s": (sum(resolved) / len(resolved)) if resolved else None,
        "open_errors": sum(1 for e in errs if not e.resolved),
    }
