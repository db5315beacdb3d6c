"""Sync jobs: arq functions that take run ids, the scheduler and the reaper crons, and the one path every
caller uses to start a run (:func:`enqueue_run`), approve a paused one (:func:`approve`), roll one back
(:func:`rollback`) and read health metrics (:func:`metrics`).

Run state lives in SQL (``sync_runs``); arq carries only ``run_id``. A worker holds a lease on the run
and renews it with a heartbeat; the reaper re-queues runs whose lease expired (worker killed) and runs
whose queue entry vanished (Redis restarted empty), each with a fresh job id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy import select
from sqlmodel import col

from app.context import AppContext, get_context
from app.manifests import connector_manifest
from app.store_writer import StoreWriter, writer_for
from app.webhook_streams import with_webhook_streams
from connectors.errors import AuthFailed, ConnectorError, RateLimited, VendorError
from connectors.manifest import ConnectorManifest
from connectors.sessions import open_session
from engine.ports import StreamReader, StreamWriter, WriteOutcome
from engine.sync.keys import content_hash
from engine.sync.mapper import FieldCopyMapper
from engine.sync.ownership import OwnershipRule, effective_ownership
from engine.sync.ports import (
    Counts,
    Failure,
    FailureKind,
    MappedItem,
    Mapper,
    OutboundBatch,
    OutboundCandidate,
    PageResult,
)
from engine.sync.resilience import CircuitBreaker, RetryPolicy
from engine.sync.runner import RunDeferred, RunFailed, RunOptions, RunPaused, StreamPlan, SyncRunner
from engine.sync.schedule import is_due, next_run_at
from storage import runs as runrepo
from storage.care_store import CareStore, reconcile_run
from storage.care_store import rollback_run as _rollback_run
from storage.db import Database
from storage.models import (
    DataOwnership,
    Integration,
    IntegrationError,
    IntegrationStatus,
    MappingDesign,
    RunStatus,
    RunTrigger,
    SyncConfiguration,
    SyncRun,
    utcnow,
)

log = logging.getLogger("carehub.sync")
T = TypeVar("T")

LEASE_SECONDS = float(os.environ.get("CAREHUB_SYNC_LEASE_SECONDS", "30"))
HEARTBEAT_SECONDS = max(0.2, LEASE_SECONDS / 3)
ORPHAN_GRACE_SECONDS = float(os.environ.get("CAREHUB_SYNC_ORPHAN_GRACE_SECONDS", "20"))
MAX_UNEXPECTED_RETRIES = 8
WORKERS_KEY = "carehub:workers"


async def _io(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking database work off the event loop (heartbeats must keep beating)."""
    return await asyncio.to_thread(partial(fn, *args, **kwargs))


# ---------------------------------------------------------------------------------------- enqueueing


async def arq_pool(redis_url: str) -> ArqRedis:
    """An arq Redis pool for enqueuing (the API/UI keep one open)."""
    return await create_pool(RedisSettings.from_dsn(redis_url))


async def dispatch(redis: ArqRedis, run: SyncRun, *, defer_seconds: float | None = None) -> None:
    """Put a run's current dispatch on the queue (a no-op when that job id is already queued)."""
    kwargs: dict[str, Any] = {"_job_id": runrepo.job_id(run)}
    if defer_seconds:
        kwargs["_defer_by"] = timedelta(seconds=defer_seconds)
    await redis.enqueue_job("run_sync", run.id, **kwargs)


async def enqueue_run(db: Database, redis: ArqRedis, integration_id: str, trigger: str = RunTrigger.MANUAL.value,
                      params: Mapping[str, Any] | None = None, requested_by: str = "") -> str:
    """Start a sync of an integration (manual, scheduled, webhook, retry or migration) and return the run id.

    One run per integration at a time: when a run is already queued, running, waiting or paused, its id is
    returned instead. ``params``: ``full`` (read every stream from the start, ignoring checkpoints),
    ``retry_failed`` or ``error_ids``/``record_ids`` from the errors inbox (resend those failed outbound records
    and re-read in full; errors are resolved as their records succeed), ``streams`` (limit the run to these),
    anything else the caller wants on the run.
    """
    run, created = await _io(runrepo.create_run, db, integration_id, trigger, params, requested_by)
    if created:
        await _io(runrepo.add_event, db, run.id, "queued", f"{trigger} run queued",
                  {"trigger": trigger, "requested_by": requested_by})
    if run.status == RunStatus.QUEUED.value:
        await dispatch(redis, run)
    return run.id


async def approve(db: Database, redis: ArqRedis, run_id: str, actor: str) -> str:
    """Approve a run a safety valve paused: it resumes where it stopped, with the valves off for this run."""
    run = await _io(runrepo.resume_paused, db, run_id, actor, {"approved": True})
    await _io(runrepo.add_event, db, run_id, "approved", f"approved by {actor}", {"actor": actor})
    await dispatch(redis, run)
    return run.id


async def reject(db: Database, run_id: str, actor: str) -> bool:
    """Cancel a paused (or any unfinished) run."""
    ok = await _io(runrepo.cancel, db, run_id)
    if ok:
        await _io(runrepo.add_event, db, run_id, "cancelled", f"cancelled by {actor}", {"actor": actor})
    return ok


async def rollback(db: Database, run_id: str, actor: str) -> dict[str, int]:
    """Undo a run's changes to care records from version history (see :func:`storage.care_store.rollback_run`)."""
    return await _io(_rollback_run, db, run_id, actor)


def rollback_run(db: Database, run_id: str, actor: str = "") -> dict[str, int]:
    """Synchronous rollback for callers without an event loop (CLI, migration service)."""
    return _rollback_run(db, run_id, actor)


async def metrics(db: Database, redis: Any, integration_id: str | None = None) -> dict[str, Any]:
    """Per-integration health figures: success rate, data accuracy, run duration, error resolution time,
    and worker availability (workers that beat in the last minute)."""
    data = await _io(runrepo.integration_metrics, db, integration_id)
    now = time.time()
    alive = int(await redis.zcount(WORKERS_KEY, now - 60, "+inf"))
    data["live_workers"] = alive
    data["worker_availability"] = 1.0 if alive else 0.0
    return data


# ---------------------------------------------------------------------------------------- connectors


@dataclass
class ConnectorHandle:
    """A live connection for one run: reader/writer ports, the breaker key, and how to close it."""

    reader: StreamReader | None
    writer: StreamWriter | None
    breaker_key: str
    close: Callable[[], Awaitable[None]]


ConnectorFactory = Callable[[AppContext, Integration, Any, RetryPolicy], Awaitable[ConnectorHandle]]
_FACTORIES: dict[str, ConnectorFactory] = {}


def register_connector_factory(connector_id: str, factory: ConnectorFactory) -> None:
    """Use ``factory`` instead of the manifest runtime for one connector id (Python-only connectors)."""
    _FACTORIES[connector_id] = factory


def _manifest(connector_id: str) -> ConnectorManifest:
    """One connector's manifest (``CAREHUB_CONNECTOR_DIRS`` first, then ``templates/connectors``)."""
    manifest = connector_manifest(connector_id)
    if manifest is None:
        raise RunFailed(f"no connector manifest `{connector_id}`")
    return manifest


class IntegrationTokenStore:
    """OAuth tokens kept inside the integration's encrypted credentials (shared by every worker)."""

    def __init__(self, app: AppContext) -> None:
        self.app = app

    def _load(self, connection_id: str) -> Mapping[str, Any] | None:
        with self.app.db.session() as s:
            integ = s.get(Integration, connection_id)
            if integ is None:
                return None
            tokens = self.app.box.decrypt(integ.credentials_encrypted).get("tokens")
            return dict(tokens) if tokens else None

    def _save(self, connection_id: str, tokens: Mapping[str, Any]) -> None:
        with self.app.db.session() as s:
            integ = s.execute(select(Integration).where(col(Integration.id) == connection_id)
                              .with_for_update()).scalar_one()
            creds = self.app.box.decrypt(integ.credentials_encrypted)
            creds["tokens"] = dict(tokens)
            integ.credentials_encrypted = self.app.box.encrypt(creds)
            s.add(integ)

    async def load(self, connection_id: str) -> Mapping[str, Any] | None:
        """Saved tokens of a connection."""
        return await _io(self._load, connection_id)

    async def save(self, connection_id: str, tokens: Mapping[str, Any]) -> None:
        """Replace the tokens (one transaction)."""
        await _io(self._save, connection_id, tokens)


async def manifest_connector(app: AppContext, integ: Integration, redis: Any, policy: RetryPolicy) -> ConnectorHandle:
    """The default factory: the connector's manifest run by :class:`ConnectorSession`."""
    manifest = _manifest(integ.connector_id)
    config = dict(integ.connection_details or {})
    base_url = config.pop("base_url", None) or None
    secrets = app.box.decrypt(integ.credentials_encrypted)
    secrets.pop("tokens", None)
    rules = manifest.errors.model_copy(update={"deadline_seconds": min(manifest.errors.deadline_seconds,
                                                                       policy.call_deadline_seconds)})
    overrides: dict[str, Any] = {k: v for k, v in (integ.error_handling or {}).get("connector", {}).items()
                                 if k in ("max_attempts", "default_retry_after_seconds", "deadline_seconds")}
    backoff = (integ.error_handling or {}).get("connector", {}).get("backoff")
    if backoff:
        overrides["backoff"] = rules.backoff.model_copy(update=dict(backoff))
    if overrides:
        rules = rules.model_copy(update=overrides)
    allow_private = app.settings.allow_private_hosts or not app.settings.is_production
    session = open_session(manifest, config, secrets, base_url=base_url, token_store=IntegrationTokenStore(app),
                               redis=redis, connection_id=integ.id, error_rules=rules, allow_private=allow_private,
                               timeout=policy.call_deadline_seconds)
    return ConnectorHandle(session, session, session.limiter.key.replace(":rl:", ":cb:"), session.aclose)


def classify(exc: BaseException) -> Failure:
    """Connector exceptions -> what the runner does next."""
    if isinstance(exc, AuthFailed):
        return Failure(FailureKind.AUTH, f"{exc} - reconnect the account to resume syncing", status=exc.status)
    if isinstance(exc, RateLimited):
        return Failure(FailureKind.THROTTLED, str(exc), retry_after=exc.retry_after)
    if isinstance(exc, VendorError):
        kind = FailureKind.TRANSIENT if exc.retryable or exc.status >= 500 else FailureKind.FATAL
        return Failure(kind, str(exc), status=exc.status)
    if isinstance(exc, ConnectorError):
        return Failure(FailureKind.TRANSIENT if exc.retryable else FailureKind.FATAL, str(exc))
    if isinstance(exc, OSError | ConnectionError | TimeoutError):
        return Failure(FailureKind.TRANSIENT, f"connection problem: {exc!r}")
    if type(exc).__module__.startswith(("httpx", "redis", "sqlalchemy", "psycopg", "sqlite3")):
        return Failure(FailureKind.TRANSIENT, f"connection problem: {exc!r}")
    return Failure(FailureKind.FATAL, f"unexpected error: {exc!r}")


# ---------------------------------------------------------------------------------------- adapters


class AsyncCareStore:
    """:class:`storage.care_store.CareStore` behind the runner's async port (database work in threads)."""

    def __init__(self, store: CareStore, writer: StoreWriter | None = None) -> None:
        self.s = store
        self.writer = writer
        self._marked: set[str] = set()

    async def load_checkpoint(self, stream: str, direction: str) -> dict[str, Any] | None:
        return await _io(self.s.load_checkpoint, stream, direction)

    async def population(self, stream: str) -> int:
        return await _io(self.s.population, stream)

    async def previous_full_reads(self, stream: str) -> list[int]:
        return await _io(self.s.previous_full_reads, stream)

    async def stream_reads(self, stream: str) -> int:
        return await _io(self.s.stream_reads, stream)

    async def apply_inbound(self, stream: str, care_type: str, rule: OwnershipRule, items: Sequence[MappedItem],
                            checkpoint: dict[str, Any] | None, change_budget: int | None) -> PageResult:
        if checkpoint is not None and checkpoint.get("_full") and stream not in self._marked:
            await _io(self.s.mark_full, stream)
            self._marked.add(stream)
        w = self.writer
        if w is not None and w.wanted(len(items)) and await w.ready():
            return await w.apply_inbound(self.s.integration_id, self.s.run_id, self.s.resolve_on_success, stream,
                                         care_type, rule, list(items), checkpoint, change_budget)
        return await _io(self.s.apply_inbound, stream, care_type, rule, items, checkpoint, change_budget)

    async def unseen_links(self, stream: str) -> list[str]:
        return await _io(self.s.unseen_links, stream)

    async def apply_deletes(self, stream: str, rule: OwnershipRule, external_ids: Sequence[str]) -> Counts:
        return await _io(self.s.apply_deletes, stream, rule, external_ids)

    async def save_checkpoint(self, stream: str, direction: str, value: dict[str, Any] | None) -> None:
        await _io(self.s.save_checkpoint, stream, direction, value)

    async def outbound_batch(self, stream: str, care_type: str, checkpoint: dict[str, Any] | None,
                             limit: int) -> OutboundBatch:
        return await _io(self.s.outbound_batch, stream, care_type, checkpoint, limit)

    async def failed_outbound(self, stream: str, care_type: str, limit: int,
                              record_ids: Sequence[str] | None = None) -> OutboundBatch:
        return await _io(self.s.failed_outbound, stream, care_type, limit, record_ids)

    async def mark_pending(self, stream: str, candidates: Sequence[OutboundCandidate]) -> None:
        await _io(self.s.mark_pending, stream, candidates)

    async def commit_outbound(self, stream: str, care_type: str,
                              results: Sequence[tuple[OutboundCandidate, WriteOutcome]],
                              skipped: Sequence[tuple[OutboundCandidate, str]],
                              checkpoint: dict[str, Any] | None,
                              vendor_hashes: Mapping[str, str] | None = None) -> Counts:
        return await _io(self.s.commit_outbound, stream, care_type, results, skipped, checkpoint, vendor_hashes)


class RunReporter:
    """Run events into ``sync_run_events``."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id

    async def event(self, kind: str, message: str = "", data: Mapping[str, Any] | None = None) -> None:
        await _io(runrepo.add_event, self.db, self.run_id, kind, message, data)


class RedisBreakerStore:
    """Circuit breaker state per (vendor, tenant) in a Redis string, shared by every worker."""

    def __init__(self, redis: Any, key: str, threshold: int = 5, reset_seconds: float = 60.0) -> None:
        self.redis = redis
        self.key = key
        self.threshold = threshold
        self.reset_seconds = reset_seconds

    async def load(self) -> CircuitBreaker:
        import json

        raw = await self.redis.get(self.key)
        return CircuitBreaker.from_dict(json.loads(raw) if raw else None, self.threshold, self.reset_seconds)

    async def save(self, breaker: CircuitBreaker) -> None:
        import json

        await self.redis.set(self.key, json.dumps(breaker.to_dict()), ex=24 * 3600)


def build_mapper(design: Mapping[str, Any]) -> Mapper:
    """Compile a stored design with the mapping compiler; a plain field-copy mapper if it has no care type."""
    if design.get("care_type") or design.get("careType"):
        from engine.mapping import compile_design

        return compile_design(design)
    return FieldCopyMapper(design)


# ---------------------------------------------------------------------------------------- the job


@dataclass
class _Loaded:
    integration: Integration
    config: SyncConfiguration
    plans: list[StreamPlan]
    options: RunOptions


def _deletes_at_vendor(connector_id: str, stream: str) -> bool:
    """Whether the connector's manifest declares how to delete (or archive) a record of ``stream``."""
    try:
        spec = _manifest(connector_id).streams.get(stream)
    except (RunFailed, ConnectorError):  # a Python-only connector, or a manifest that no longer loads
        return False
    return spec is not None and spec.write is not None and spec.write.delete is not None


def _load(db: Database, run: SyncRun) -> _Loaded:
    with db.session() as s:
        integ = s.get(Integration, run.integration_id)
        if integ is None:
            raise RunFailed(f"integration {run.integration_id} no longer exists")
        cfg = s.get(SyncConfiguration, integ.id) or SyncConfiguration(integration_id=integ.id)
        owners = {o.care_type: o for o in s.execute(select(DataOwnership).where(
            col(DataOwnership.integration_id) == integ.id)).scalars()}
        designs = {(d.stream, d.care_type): d for d in s.execute(select(MappingDesign).where(
            col(MappingDesign.integration_id) == integ.id, col(MappingDesign.is_current) == True)  # noqa: E712
            .order_by(col(MappingDesign.version))).scalars()}
    plans: list[StreamPlan] = []
    only = set(run.params.get("streams") or [])
    for entry in cfg.streams or []:
        stream, care_type = str(entry.get("stream")), str(entry.get("care_type") or entry.get("careType"))
        if only and stream not in only:
            continue
        d = designs.get((stream, care_type))
        if d is None:
            raise RunFailed(f"no mapping design saved for {stream} -> {care_type}")
        o = owners.get(care_type)
        override = None if o is None else {
            "primary_system": o.primary_system, "sync_direction": o.sync_direction,
            "update_permissions": o.update_permissions, "conflict_resolution": o.conflict_resolution,
            "field_owners": o.field_owners, "delete_policy": o.delete_policy}
        rule = effective_ownership(integ.operation_mode, override, cfg.sync_direction if override is None else None)
        deleted_when = entry.get("deleted_when") or {}
        try:
            mapper = build_mapper(d.design)
        except ValueError as exc:  # MappingError: a saved design that no longer compiles
            raise RunFailed(f"the mapping design for {stream} -> {care_type} is not valid: {exc}") from exc
        plans.append(StreamPlan(stream, care_type, rule, mapper,
                                deletes=str(entry.get("deletes") or "flag"),
                                deleted_field=deleted_when.get("field") or None,
                                deleted_values=frozenset(deleted_when.get("values") or ()),
                                send_deletes=_deletes_at_vendor(integ.connector_id, stream)))
    policy = RetryPolicy.from_config(cfg.retry_policy)
    # A retry from the errors inbox (error_ids/record_ids, or retry_failed) resends failed outbound records and
    # re-reads the streams in full, so records that failed mapping or validation are stored once they pass.
    retry = bool(run.params.get("retry_failed") or run.params.get("error_ids") or run.params.get("record_ids"))
    options = RunOptions(run_id=run.id, integration_id=integ.id, full=bool(run.params.get("full")) or retry,
                         retry_record_ids=tuple(str(r) for r in run.params.get("record_ids") or ()),
                         approved=bool(run.params.get("approved")), batch_size=max(1, cfg.batch_size),
                         retry_failed=retry,
                         error_threshold=cfg.error_threshold, max_change_share=cfg.max_change_share,
                         pause_on_empty_read=cfg.pause_on_empty_read, policy=policy)
    return _Loaded(integ, cfg, plans, options)


async def run_sync(ctx: dict[str, Any], run_id: str) -> str:
    """The arq job: run one sync run by id. Safe to call more than once (claims are atomic, effects idempotent)."""
    app: AppContext = ctx.get("app") or get_context()
    db = app.db
    redis = ctx["redis"]
    worker_id = str(ctx.get("worker_id") or f"{os.uname().nodename}:{os.getpid()}")
    run = await _io(runrepo.claim, db, run_id, worker_id, LEASE_SECONDS)
    if run is None:
        return "not claimed"
    reporter = RunReporter(db, run_id)
    lost = asyncio.Event()
    me = asyncio.current_task()

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                ok = await _io(runrepo.heartbeat, db, run_id, worker_id, LEASE_SECONDS)
            except Exception:  # a database blip: try again next beat; the lease has slack
                log.warning("heartbeat of run %s failed", run_id, exc_info=True)
                continue
            if not ok:
                lost.set()
                if me is not None:
                    me.cancel()
                return

    hb = asyncio.create_task(beat())
    handle: ConnectorHandle | None = None
    started = time.monotonic()
    try:
        await reporter.event("started", f"worker {worker_id} started the run (dispatch {run.attempt})",
                             {"worker": worker_id, "attempt": run.attempt})
        loaded = await _io(_load, db, run)
        factory = _FACTORIES.get(loaded.integration.connector_id, manifest_connector)
        handle = await factory(app, loaded.integration, redis, loaded.options.policy)
        handle.reader = with_webhook_streams(app, loaded.integration.connector_id, loaded.integration.id, handle.reader)
        breaker = RedisBreakerStore(redis, handle.breaker_key,
                                    int((loaded.config.retry_policy or {}).get("breaker_threshold", 5)),
                                    float((loaded.config.retry_policy or {}).get("breaker_reset_seconds", 60)))
        store = AsyncCareStore(CareStore(db, loaded.integration.id, run_id,
                                         resolve_on_success=loaded.options.retry_failed), writer_for(db.url))
        runner = SyncRunner(store=store, reporter=reporter, classify=classify, reader=handle.reader,
                            writer=handle.writer, breaker=breaker)
        counts = await runner.run(loaded.plans, loaded.options)
        recon = await _io(reconcile_run, db, loaded.integration.id, run_id, [p.stream for p in loaded.plans])
        await _io(runrepo.set_counts_field, db, run_id, "reconciliation", recon)
        await _io(runrepo.finish, db, run_id, worker_id, RunStatus.SUCCEEDED.value)
        await _io(_touch_integration, db, loaded.integration.id, True)
        await reporter.event("finished", "run succeeded", {"status": "succeeded", **counts.as_dict(),
                                                           "duration_s": round(time.monotonic() - started, 3),
                                                           "reconciliation": recon})
        return "succeeded"
    except RunPaused as p:
        await _io(runrepo.pause, db, run_id, worker_id, p.trip.message)
        await reporter.event("paused", p.trip.message, {"valve": p.trip.kind, "stream": p.stream,
                                                        "observed": p.trip.observed, "limit": p.trip.limit})
        return "paused"
    except RunDeferred as d:
        if await _io(runrepo.wait, db, run_id, worker_id, d.failure.message):
            fresh = await _io(runrepo.get_run, db, run_id)
            if fresh is not None:
                await dispatch(redis, fresh, defer_seconds=d.delay)
        return "waiting"
    except RunFailed as f:
        await _fail(db, run_id, worker_id, str(f), f.kind)
        await reporter.event("finished", f"run failed: {f}", {"status": "failed", "kind": f.kind})
        return "failed"
    except asyncio.CancelledError:
        if lost.is_set():
            return "lease lost"
        # Graceful shutdown: hand the run back at once so the next worker need not wait for the lease.
        try:
            if await asyncio.wait_for(_io(runrepo.release, db, run_id, worker_id), 3):
                fresh = await _io(runrepo.get_run, db, run_id)
                if fresh is not None:
                    await asyncio.wait_for(dispatch(redis, fresh), 2)
        except Exception:  # the reaper re-queues it
            log.warning("could not hand back run %s on shutdown", run_id, exc_info=True)
        raise
    except Exception as exc:
        # Anything unexpected (database or Redis blip): retry the run later, up to a limit.
        failure = classify(exc)
        current = await _io(runrepo.get_run, db, run_id)
        tries = (current.attempt if current else 0)
        if failure.kind == FailureKind.FATAL or tries >= MAX_UNEXPECTED_RETRIES:
            await _fail(db, run_id, worker_id, failure.message, failure.kind.value)
            await reporter.event("finished", f"run failed: {failure.message}", {"status": "failed"})
            return "failed"
        delay = RetryPolicy().delay(tries + 1)
        if await _io(runrepo.wait, db, run_id, worker_id, failure.message):
            await reporter.event("retry_scheduled", f"{failure.message}; retrying in {delay:.0f}s",
                                 {"delay": delay, "kind": failure.kind.value})
            fresh = await _io(runrepo.get_run, db, run_id)
            if fresh is not None:
                await dispatch(redis, fresh, defer_seconds=delay)
        return "waiting"
    finally:
        hb.cancel()
        if handle is not None:
            try:
                await handle.close()
            except Exception:
                log.debug("closing connector failed", exc_info=True)


async def _fail(db: Database, run_id: str, worker_id: str, message: str, kind: str) -> None:
    await _io(runrepo.finish, db, run_id, worker_id, RunStatus.FAILED.value, message)
    run = await _io(runrepo.get_run, db, run_id)
    if run is None:
        return

    def add() -> None:
        with db.session() as s:
            s.add(IntegrationError(integration_id=run.integration_id, run_id=run_id,
                                   error_type="auth" if kind == "auth" else "run", error_code=kind,
                                   error_message=message))
    await _io(add)
    await _io(_touch_integration, db, run.integration_id, False)


def _touch_integration(db: Database, integration_id: str, ok: bool) -> None:
    with db.session() as s:
        integ = s.get(Integration, integration_id)
        if integ is None:
            return
        now = utcnow()
        integ.last_sync = now
        if ok:
            integ.last_success = now
        s.add(integ)


# ---------------------------------------------------------------------------------------- crons


def _due_integrations(db: Database) -> list[tuple[str, dict[str, Any], Any]]:
    with db.session() as s:
        rows = s.execute(select(Integration, SyncConfiguration).join(
            SyncConfiguration, col(SyncConfiguration.integration_id) == col(Integration.id))
            .where(col(Integration.status) == IntegrationStatus.ACTIVE.value)).all()
        return [(i.id, dict(c.sync_frequency or {}), i.next_sync) for i, c in rows]


def _set_next(db: Database, integration_id: str, when: Any) -> None:
    with db.session() as s:
        integ = s.get(Integration, integration_id)
        if integ is not None:
            integ.next_sync = when
            s.add(integ)


async def schedule_due(db: Database, redis: ArqRedis) -> list[str]:
    """Enqueue a scheduled run for every active integration whose sync frequency says it is due."""
    now = utcnow()
    started: list[str] = []
    for integ_id, freq, next_sync in await _io(_due_integrations, db):
        try:
            due = is_due(freq, next_sync, now)
            nxt = next_run_at(freq, now)
        except ValueError:
            log.warning("integration %s has an unreadable sync frequency %r", integ_id, freq)
            continue
        if due:
            started.append(await enqueue_run(db, redis, integ_id, RunTrigger.SCHEDULED.value, requested_by="scheduler"))
        if due or next_sync is None:
            await _io(_set_next, db, integ_id, nxt)
    return started


async def reap(db: Database, redis: ArqRedis) -> list[str]:
    """Re-queue runs whose worker died (lease expired) and queued/waiting runs whose job vanished from Redis."""
    requeued: list[str] = []
    for orphan in await _io(runrepo.reap_expired, db):
        run = await _io(runrepo.get_run, db, orphan.run_id)
        if run is not None:
            await _io(runrepo.add_event, db, run.id, "requeued", "the worker stopped answering; run re-queued",
                      {"job_id": orphan.job_id})
            await dispatch(redis, run)
            requeued.append(run.id)
    cutoff = utcnow() - timedelta(seconds=ORPHAN_GRACE_SECONDS)
    for run in await _io(runrepo.waiting_runs, db, cutoff):
        jid = runrepo.job_id(run)
        exists = await redis.exists(f"arq:job:{jid}", f"arq:in-progress:{jid}", f"arq:retry:{jid}")
        if not exists:
            fresh = await _io(_bump_attempt, db, run.id)
            if fresh is not None:
                await _io(runrepo.add_event, db, run.id, "requeued", "the queue had lost this run; re-queued", {})
                await dispatch(redis, fresh)
                requeued.append(run.id)
    return requeued


def _bump_attempt(db: Database, run_id: str) -> SyncRun | None:
    with db.session() as s:
        run = s.get(SyncRun, run_id)
        if run is None or run.status not in (RunStatus.QUEUED.value, RunStatus.WAITING.value):
            return None
        run.attempt += 1
        run.status = RunStatus.QUEUED.value
        s.add(run)
        return run


async def scheduler_cron(ctx: dict[str, Any]) -> int:
    """arq cron: enqueue due scheduled runs."""
    app: AppContext = ctx.get("app") or get_context()
    return len(await schedule_due(app.db, ctx["redis"]))


async def reaper_cron(ctx: dict[str, Any]) -> int:
    """arq cron: re-queue orphaned runs (well within a minute of a worker's death)."""
    app: AppContext = ctx.get("app") or get_context()
    return len(await reap(app.db, ctx["redis"]))


def sync_job_functions() -> list[Callable[..., Any]]:
    """Job functions for ``app.worker``."""
    return [run_sync]


def sync_cron_jobs() -> list[Any]:
    """Cron jobs for ``app.worker``: the scheduler every 30 s, the reaper every 10 s."""
    from arq import cron

    return [
        cron(scheduler_cron, second={0, 30}, run_at_startup=True, timeout=60),
        cron(reaper_cron, second={5, 15, 25, 35, 45, 55}, run_at_startup=True, timeout=60),
    ]


__all__ = [
    "approve",
    "arq_pool",
    "content_hash",
    "dispatch",
    "enqueue_run",
    "metrics",
    "reap",
    "register_connector_factory",
    "reject",
    "rollback",
    "rollback_run",
    "run_sync",
    "schedule_due",
]
