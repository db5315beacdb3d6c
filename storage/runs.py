"""Sync run repository: create, claim with a lease, heartbeat, release, finish, pause, reap orphans,
events, outcomes, errors and per-integration metrics. The SQL row is the source of truth; the queue
only carries run ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

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
        active = s.execute(select(SyncRun).where(SyncRun.integration_id == integration_id,  # type: ignore[arg-type]
                                                 SyncRun.status.in_(ACTIVE))  # type: ignore[attr-defined]
                           .order_by(SyncRun.queued_at)).scalars().first()
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
            SyncRun.id == run_id,  # type: ignore[arg-type]
            or_(SyncRun.status.in_((RunStatus.QUEUED.value, RunStatus.WAITING.value)),  # type: ignore[attr-defined]
                (SyncRun.status == RunStatus.RUNNING.value) & or_(SyncRun.lease_until.is_(None),  # type: ignore[union-attr]
                                                                  SyncRun.lease_until < now)),  # type: ignore[operator]
        ).values(status=RunStatus.RUNNING.value, worker_id=worker_id, lease_until=now + timedelta(seconds=lease_seconds),
                 heartbeat_at=now, started_at=func.coalesce(SyncRun.started_at, now)))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return None
    return get_run(db, run_id)


def heartbeat(db: Database, run_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Extend the lease; False when this worker no longer holds the run (stop working on it)."""
    now = utcnow()
    with db.session() as s:
        res = s.execute(update(SyncRun).execution_options(synchronize_session=False).where(
            SyncRun.id == run_id, SyncRun.worker_id == worker_id,  # type: ignore[arg-type]
            SyncRun.status == RunStatus.RUNNING.value,  # type: ignore[arg-type]
        ).values(lease_until=now + timedelta(seconds=lease_seconds), heartbeat_at=now))
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def _move(db: Database, run_id: str, holder: str | None, status: str, **values: Any) -> bool:
    with db.session() as s:
        cond = [SyncRun.id == run_id]
        if holder is not None:
            cond += [SyncRun.worker_id == holder, SyncRun.status == RunStatus.RUNNING.value]
        res = s.execute(update(SyncRun).execution_options(synchronize_session=False).where(*cond).values(status=status, **values))  # type: ignore[arg-type]
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def release(db: Database, run_id: str, worker_id: str) -> bool:
    """Give the run back to the queue at once (graceful shutdown); the next dispatch gets a new job id."""
    return _move(db, run_id, worker_id, RunStatus.QUEUED.value, worker_id="", lease_until=None,
                 attempt=SyncRun.attempt + 1)


def finish(db: Database, run_id: str, worker_id: str, status: str, error: str = "") -> bool:
    """Mark the run finished (succeeded/failed/cancelled) if this worker still holds it."""
    return _move(db, run_id, worker_id, status, error=error, finished_at=utcnow(), lease_until=None)


def pause(db: Database, run_id: str, worker_id: str, reason: str) -> bool:
    """Park the run for approval (a safety valve tripped)."""
    return _move(db, run_id, worker_id, RunStatus.PAUSED.value, error=reason, lease_until=None)


def wait(db: Database, run_id: str, worker_id: str, reason: str) -> bool:
    """The run waits for a deferred retry (rate limit, open breaker, outage); next dispatch gets a new job id."""
    return _move(db, run_id, worker_id, RunStatus.WAITING.value, error=reason, lease_until=None,
                 attempt=SyncRun.attempt + 1)


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
        res = s.execute(update(SyncRun).execution_options(synchronize_session=False).where(SyncRun.id == run_id, SyncRun.status.in_(ACTIVE))  # type: ignore[arg-type,attr-defined]
                        .values(status=RunStatus.CANCELLED.value, finished_at=utcnow(), lease_until=None))
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


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
        stale = s.execute(select(SyncRun).where(SyncRun.status == RunStatus.RUNNING.value,  # type: ignore[arg-type]
                                                SyncRun.lease_until < now)).scalars().all()  # type: ignore[operator]
        for run in stale:
            res = s.execute(update(SyncRun).execution_options(synchronize_session=False).where(SyncRun.id == run.id, SyncRun.status == RunStatus.RUNNING.value,  # type: ignore[arg-type]
                                                  SyncRun.lease_until < now)  # type: ignore[operator]
                            .values(status=RunStatus.QUEUED.value, worker_id="", lease_until=None,
                                    attempt=run.attempt + 1))
            if res.rowcount == 1:  # type: ignore[attr-defined]
                run.attempt += 1
                out.append(Orphan(run.id, job_id(run)))
    return out


def waiting_runs(db: Database, older_than: datetime) -> list[SyncRun]:
    """Queued or waiting runs last touched before ``older_than`` (the reaper checks their job exists)."""
    with db.session() as s:
        return list(s.execute(select(SyncRun).where(
            SyncRun.status.in_((RunStatus.QUEUED.value, RunStatus.WAITING.value)),  # type: ignore[attr-defined]
            SyncRun.queued_at < older_than)).scalars().all())  # type: ignore[operator]


def add_event(db: Database, run_id: str, kind: str, message: str = "", data: Mapping[str, Any] | None = None) -> None:
    """Append an event to a run's timeline."""
    with db.session() as s:
        s.add(SyncRunEvent(run_id=run_id, kind=kind, message=message, data=dict(data or {})))


def events(db: Database, run_id: str) -> list[SyncRunEvent]:
    """A run's events, oldest first."""
    with db.session() as s:
        return list(s.execute(select(SyncRunEvent).where(SyncRunEvent.run_id == run_id)  # type: ignore[arg-type]
                              .order_by(SyncRunEvent.id)).scalars().all())  # type: ignore[arg-type]


def outcomes(db: Database, run_id: str, outcome: str | None = None) -> list[RecordOutcome]:
    """Per-record outcomes of a run."""
    with db.session() as s:
        q = select(RecordOutcome).where(RecordOutcome.run_id == run_id)  # type: ignore[arg-type]
        if outcome:
            q = q.where(RecordOutcome.outcome == outcome)  # type: ignore[arg-type]
        return list(s.execute(q.order_by(RecordOutcome.id)).scalars().all())  # type: ignore[arg-type]


def run_errors(db: Database, run_id: str) -> list[IntegrationError]:
    """Errors queued by a run."""
    with db.session() as s:
        return list(s.execute(select(IntegrationError).where(IntegrationError.run_id == run_id)).scalars().all())  # type: ignore[arg-type]


def set_counts_field(db: Database, run_id: str, key: str, value: Any) -> None:
    """Set one top-level entry of a run's counts (reconciliation results)."""
    with db.session() as s:
        run = s.execute(select(SyncRun).where(SyncRun.id == run_id).with_for_update()).scalar_one()  # type: ignore[arg-type]
        run.counts = {**(run.counts or {}), key: value}
        s.add(run)


def integration_metrics(db: Database, integration_id: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    """Sync success rate, data accuracy, run duration and error resolution time (over runs since ``since``)."""
    since = since or utcnow() - timedelta(days=30)
    with db.session() as s:
        q = select(SyncRun).where(SyncRun.queued_at >= since, SyncRun.status.in_(FINISHED))  # type: ignore[operator,attr-defined]
        if integration_id:
            q = q.where(SyncRun.integration_id == integration_id)  # type: ignore[arg-type]
        runs: Sequence[SyncRun] = s.execute(q).scalars().all()
        eq = select(IntegrationError).where(IntegrationError.timestamp >= since)  # type: ignore[operator]
        if integration_id:
            eq = eq.where(IntegrationError.integration_id == integration_id)  # type: ignore[arg-type]
        errs: Sequence[IntegrationError] = s.execute(eq).scalars().all()
    finished = [r for r in runs if r.status in (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value)]
    ok = [r for r in finished if r.status == RunStatus.SUCCEEDED.value]
    durations = sorted((aware(r.finished_at) - aware(r.started_at)).total_seconds()  # type: ignore[operator]
                       for r in finished if r.started_at and r.finished_at)
    processed = sum(int((r.counts or {}).get("read", 0)) + int((r.counts or {}).get("written", 0)) for r in runs)
    failed = sum(int((r.counts or {}).get("failed", 0)) for r in runs)
    resolved = [(aware(e.resolved_at) - aware(e.timestamp)).total_seconds()  # type: ignore[operator]
                for e in errs if e.resolved and e.resolved_at]
    return {
        "runs": len(finished),
        "sync_success_rate": (len(ok) / len(finished)) if finished else None,
        "data_accuracy": (1 - failed / processed) if processed else None,
        "run_duration_avg_s": (sum(durations) / len(durations)) if durations else None,
        "run_duration_p95_s": durations[min(len(durations) - 1, int(len(durations) * 0.95))] if durations else None,
        "error_resolution_avg_s": (sum(resolved) / len(resolved)) if resolved else None,
        "open_errors": sum(1 for e in errs if not e.resolved),
    }
