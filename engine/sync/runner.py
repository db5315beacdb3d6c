"""The sync run: inbound streams then outbound streams, with valves, breaker, deadlines and retries.

Pure orchestration over ports. Every page commits with its checkpoint (the store's job), so a run
resumed after a crash re-reads at most the page that was in flight; effects are idempotent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from engine.ports import OutboundRecord, ReadPage, SourceRecord, StreamReader, StreamWriter, WriteOutcome
from engine.sync.keys import canonical_bytes, hash_bytes
from engine.sync.ownership import WCN, DeletePolicy, OwnershipRule, decide_outbound
from engine.sync.ports import (
    BreakerStore,
    Classifier,
    Counts,
    Failure,
    FailureKind,
    MappedItem,
    Mapper,
    OutboundCandidate,
    Reporter,
    SyncStore,
)
from engine.sync.resilience import RetryPolicy
from engine.sync.valves import ValveTrip, change_limit, empty_read, mass_change

T = TypeVar("T")

INBOUND = "inbound"
OUTBOUND = "outbound"


@dataclass(frozen=True)
class StreamPlan:
    """One stream <-> care type pair of an integration, with its rule and compiled mapping.

    ``deletes``: ``"flag"`` (the vendor marks records deleted) or ``"snapshot"`` (a record missing
    from a full read was deleted at the vendor).
    """

    stream: str
    care_type: str
    rule: OwnershipRule
    mapper: Mapper
    deletes: str = "flag"
    deleted_field: str | None = None  # vendor convention: this field ...
    deleted_values: frozenset[Any] = frozenset()  # ... holding one of these values means deleted
    send_deletes: bool = False  # records archived in WriteCareNotes are deleted at the vendor too

    def is_deleted(self, record: SourceRecord) -> bool:
        """Whether the vendor marks this record deleted (its own flag, or the plan's field convention)."""
        if record.deleted:
            return True
        return self.deleted_field is not None and record.data.get(self.deleted_field) in self.deleted_values


@dataclass(frozen=True)
class RunOptions:
    """Settings of one run, from its SyncConfiguration and run params."""

    run_id: str
    integration_id: str
    full: bool = False
    approved: bool = False
    batch_size: int = 100
    error_threshold: int = 50
    max_change_share: float = 0.5
    pause_on_empty_read: bool = True
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    retry_failed: bool = False  # resend records whose outbound writes sit in the errors inbox
    retry_record_ids: tuple[str, ...] = ()  # ... only these records (empty: every failed one)
    # Pages already read and mapped when the store turns to them commit together, up to this many records:
    # on a large first read the store's cost per commit (random index pages, WAL writes) is paid once a group.
    commit_records: int = 5000


class RunPaused(Exception):
    """A safety valve tripped; the run waits for approval."""

    def __init__(self, trip: ValveTrip, stream: str) -> None:
        self.trip = trip
        self.stream = stream
        super().__init__(trip.message)


class RunDeferred(Exception):
    """The next attempt is too far away to wait in the worker: reschedule the job after ``delay``."""

    def __init__(self, delay: float, failure: Failure) -> None:
        self.delay = delay
        self.failure = failure
        super().__init__(f"retry in {delay:.1f}s: {failure.message}")


class RunFailed(Exception):
    """The run cannot succeed (auth revoked, fatal vendor error, error threshold, retries spent)."""

    def __init__(self, message: str, kind: str = "fatal") -> None:
        self.kind = kind
        super().__init__(message)


class _Retryable(Exception):
    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.message)


def _errors_text(errors: Any) -> str:
    if not errors:
        return ""
    if isinstance(errors, str):
        return errors
    parts = []
    for e in errors:
        if isinstance(e, str):
            parts.append(e)
        else:
            fld = getattr(e, "field", None) or getattr(e, "target_field", None)
            msg = getattr(e, "message", None) or str(e)
            parts.append(f"{fld}: {msg}" if fld else str(msg))
    return "; ".join(parts)


def map_record(mapper: Mapper, record: SourceRecord, deleted: bool | None = None) -> MappedItem:
    """Run one source record through the mapping; never raises."""
    if record.deleted if deleted is None else deleted:
        return MappedItem(record.external_id, None, source_updated_at=record.updated_at, deleted=True)
    try:
        mapped = mapper.apply(record.data)
    except Exception as exc:  # a broken transform fails one record, not the run
        return MappedItem(record.external_id, None, error=f"mapping failed: {exc}",
                          source_updated_at=record.updated_at)
    skipped = getattr(mapped, "skipped_reason", None)
    errors = _errors_text(getattr(mapped, "errors", None))
    values = dict(getattr(mapped, "values", None) or {})
    if skipped:
        return MappedItem(record.external_id, None, skipped_reason=str(skipped), source_updated_at=record.updated_at)
    if errors:
        return MappedItem(record.external_id, values, error=errors, source_updated_at=record.updated_at)
    encoded = canonical_bytes(values)
    return MappedItem(record.external_id, values, hash_bytes(encoded), record.updated_at, values_json=encoded)


def delete_refusal(plan: StreamPlan, c: OutboundCandidate, integration_id: str) -> str:
    """Why a record archived in WriteCareNotes is not deleted at the vendor ("" when it should be)."""
    rule = plan.rule
    if not rule.writes:
        return f"direction is {rule.direction.value}: nothing is written to the vendor"
    if c.vendor_deleted:
        return "unchanged: already deleted at the vendor"
    if c.external_id is None:
        return "archived in WriteCareNotes before it reached the vendor: nothing to delete there"
    if c.last_writer_integration == integration_id:
        return "echo: deleted at this vendor first"
    if rule.delete_policy == DeletePolicy.IGNORE:
        return "archived in WriteCareNotes: the delete policy keeps the vendor record"
    if WCN not in rule.update_permissions:
        return "delete refused: WriteCareNotes may not change this data type at the vendor"
    if not plan.send_deletes:
        return "archived in WriteCareNotes: this connector cannot delete the vendor record"
    return ""


class SyncRunner:
    """Runs one integration's streams for one run id over the given ports."""

    def __init__(self, *, store: SyncStore, reporter: Reporter, classify: Classifier,
                 reader: StreamReader | None = None, writer: StreamWriter | None = None,
                 breaker: BreakerStore | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store = store
        self.reporter = reporter
        self.classify = classify
        self.reader = reader
        self.writer = writer
        self.breaker = breaker
        self.clock = clock
        self.sleep = sleep
        self.counts = Counts()

    async def run(self, plans: Sequence[StreamPlan], options: RunOptions) -> Counts:
        """Run every plan (inbound first, then outbound); retry transient failures with full jitter.

        Raises RunPaused, RunDeferred or RunFailed; returns the counts of this execution otherwise.
        """
        attempt = 0
        while True:
            try:
                for plan in plans:
                    if plan.rule.reads and self.reader is not None:
                        await self._inbound(plan, options)
                for plan in plans:
                    if plan.rule.writes and self.writer is not None:
                        await self._outbound(plan, options)
                return self.counts
            except _Retryable as r:
                attempt += 1
                if attempt >= options.policy.max_attempts:
                    raise RunFailed(f"gave up after {attempt} attempts: {r.failure.message}", r.failure.kind) from r
                delay = options.policy.delay(attempt, r.failure.retry_after)
                at = datetime.fromtimestamp(self.clock() + delay, tz=UTC)
                await self.reporter.event("retry_scheduled", f"{r.failure.message}; next attempt at {at:%H:%M:%S} UTC",
                                          {"at": at.isoformat(), "delay": round(delay, 3), "attempt": attempt,
                                           "kind": r.failure.kind.value, "status": r.failure.status})
                if delay > options.policy.defer_over_seconds:
                    raise RunDeferred(delay, r.failure) from r
                await self.sleep(delay)

    # ------------------------------------------------------------------ calls

    async def _guarded(self, call: Callable[[], Awaitable[T]], deadline: float) -> T:
        br = await self.breaker.load() if self.breaker is not None else None
        if br is not None:
            now = self.clock()
            allowed = br.allow(now)
            await self.breaker.save(br)  # type: ignore[union-attr]
            if not allowed:
                raise _Retryable(Failure(FailureKind.TRANSIENT, "circuit breaker open: the vendor kept failing",
                                         retry_after=max(0.5, br.retry_in(now))))
        try:
            result = await asyncio.wait_for(call(), timeout=deadline)
        except StopAsyncIteration:
            raise
        except (RunPaused, RunDeferred, RunFailed, _Retryable):
            raise
        except Exception as exc:
            failure = (Failure(FailureKind.TRANSIENT, f"no complete answer within {deadline:.0f}s")
                       if isinstance(exc, TimeoutError) else self.classify(exc))
            if failure.kind == FailureKind.TRANSIENT and self.breaker is not None:
                br = await self.breaker.load()
                br.failure(self.clock())
                await self.breaker.save(br)
            if failure.kind == FailureKind.AUTH:
                raise RunFailed(failure.message, "auth") from exc
            if failure.kind == FailureKind.FATAL:
                raise RunFailed(failure.message) from exc
            raise _Retryable(failure) from exc
        if br is not None and (br.failures or br.state.value != "closed"):
            br = await self.breaker.load()  # type: ignore[union-attr]
            br.success()
            await self.breaker.save(br)  # type: ignore[union-attr]
        return result

    # ------------------------------------------------------------------ inbound

    async def _inbound(self, plan: StreamPlan, options: RunOptions) -> None:
        assert self.reader is not None
        stored = await self.store.load_checkpoint(plan.stream, INBOUND)
        mine = stored is not None and stored.get("_run") == options.run_id
        if mine:
            cp: dict[str, Any] | None = stored
            full = bool(stored.get("_full")) if stored else False
        elif options.full or stored is None:
            cp, full = None, True
        else:
            cp, full = stored, False
        budget = None if options.approved else change_limit(await self.store.population(plan.stream),
                                                            options.max_change_share)
        if stored is None or not mine:
            await self.reporter.event("stream_started", f"reading {plan.stream}" + (" (full)" if full else ""),
                                      {"stream": plan.stream, "full": full})
        agen: AsyncIterator[ReadPage] = self.reader.read(plan.stream, _strip(cp))
        # Read ahead, in two stages: the next page's request is on its way to the vendor while this page is
        # mapped, and the next page is mapped while this one is being stored.
        pages: asyncio.Queue[ReadPage | BaseException | None] = asyncio.Queue(maxsize=2)
        queue: asyncio.Queue[tuple[ReadPage, list[MappedItem]] | BaseException | None] = asyncio.Queue(maxsize=4)

        async def fetch() -> None:
            try:
                while True:
                    try:
                        page = await self._guarded(agen.__anext__, options.policy.call_deadline_seconds)
                    except StopAsyncIteration:
                        break
                    await pages.put(page)
                await pages.put(None)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed on, and raised by the consumer in order
                await pages.put(exc)

        async def produce() -> None:
            while True:
                got = await pages.get()
                if got is None or isinstance(got, BaseException):
                    await queue.put(got)
                    return
                await asyncio.sleep(0)  # let the fetcher send the next request before mapping holds the loop
                await queue.put((got, [map_record(plan.mapper, r, plan.is_deleted(r)) for r in got.records]))

        fetcher = asyncio.create_task(fetch())
        producer = asyncio.create_task(produce())
        try:
            done = False
            while not done:
                got = await queue.get()
                if got is None:
                    break
                if isinstance(got, BaseException):
                    raise got
                group = [got]
                done, error = _take_ready(queue, group, options.commit_records)
                await self._store_group(plan, options, group, full, budget)
                if error is not None:
                    raise error
        finally:
            fetcher.cancel()
            producer.cancel()
            await asyncio.gather(fetcher, producer, return_exceptions=True)
            await agen.aclose()  # type: ignore[attr-defined]
        if not full:
            return
        read = await self.store.stream_reads(plan.stream)
        if not options.approved:
            trip = empty_read(read, await self.store.previous_full_reads(plan.stream),
                              enabled=options.pause_on_empty_read)
            if trip is not None:
                raise RunPaused(trip, plan.stream)
        if plan.deletes == "snapshot":
            missing = await self.store.unseen_links(plan.stream)
            if missing and not options.approved:
                trip = mass_change(len(missing), await self.store.population(plan.stream),
                                   options.max_change_share, kind="mass_delete")
                if trip is not None:
                    raise RunPaused(trip, plan.stream)
            if missing:
                counts = await self.store.apply_deletes(plan.stream, plan.rule, missing)
                self.counts.add(counts)
                await self.reporter.event("deleted", f"{plan.stream}: {counts.deleted} records gone at the vendor",
                                          {"stream": plan.stream, "deleted": counts.deleted})

    async def _store_group(self, plan: StreamPlan, options: RunOptions, group: list[tuple[ReadPage, list[MappedItem]]],
                           full: bool, budget: int | None) -> None:
        """Store pages in one transaction with the last page's checkpoint; one ``page_read`` event a page."""
        items = group[0][1] if len(group) == 1 else [it for _, page_items in group for it in page_items]
        new_cp = {**(group[-1][0].checkpoint or {}), "_run": options.run_id, "_full": full}
        result = await self.store.apply_inbound(plan.stream, plan.care_type, plan.rule, items, new_cp, budget)
        if result.tripped:
            population = await self.store.population(plan.stream)
            trip = mass_change(result.would_change, population, options.max_change_share)
            raise RunPaused(trip or ValveTrip("mass_change", "too many changes", result.would_change,
                                              budget or 0), plan.stream)
        self.counts.add(result.counts)
        for n, (_, page_items) in enumerate(group, 1):
            data: dict[str, Any] = {"stream": plan.stream, "records": len(page_items)}
            if n == len(group):  # the group's counts go on its last page
                data.update(result.counts.as_dict(), pages_committed=len(group))
            await self.reporter.event("page_read", f"{plan.stream}: {len(page_items)} records", data)
        self._check_threshold(options)

    def _check_threshold(self, options: RunOptions) -> None:
        if options.error_threshold and self.counts.failed > options.error_threshold:
            raise RunFailed(f"{self.counts.failed} records failed, over the error threshold of "
                            f"{options.error_threshold}; the run stopped", "threshold")

    # ------------------------------------------------------------------ outbound

    async def _outbound(self, plan: StreamPlan, options: RunOptions) -> None:
        assert self.writer is not None
        writer = self.writer
        stored = await self.store.load_checkpoint(plan.stream, OUTBOUND)
        cp = stored
        if options.full and (stored is None or stored.get("_run") != options.run_id):
            cp = None
        retrying = options.retry_failed
        while True:
            if retrying:
                batch = await self.store.failed_outbound(plan.stream, plan.care_type, options.batch_size,
                                                         options.retry_record_ids or None)
                if not batch.candidates:
                    retrying = False
                    continue
            else:
                batch = await self.store.outbound_batch(plan.stream, plan.care_type, cp, options.batch_size)
            if not batch.candidates:
                if batch.checkpoint is not None and batch.checkpoint != cp:
                    await self.store.save_checkpoint(plan.stream, OUTBOUND, batch.checkpoint)
                return
            send: list[tuple[OutboundCandidate, OutboundRecord]] = []
            skipped: list[tuple[OutboundCandidate, str]] = []
            for c in batch.candidates:
                if c.deleted:
                    refused = delete_refusal(plan, c, options.integration_id)
                    if refused:
                        skipped.append((c, refused))
                    else:
                        send.append((c, OutboundRecord(c.idempotency_key, {}, c.external_id, delete=True)))
                    continue
                d = decide_outbound(plan.rule, linked=c.external_id is not None, content_hash=c.content_hash,
                                    synced_hash=c.synced_hash, last_writer_integration=c.last_writer_integration,
                                    integration_id=options.integration_id, vendor_changed=c.in_review)
                if not d.send:
                    skipped.append((c, d.reason))
                    continue
                try:
                    payload = plan.mapper.reverse(dict(c.values))
                except Exception as exc:
                    failed = WriteOutcome(c.idempotency_key, False, error_code="mapping",
                                          error_message=f"reverse mapping failed: {exc}")
                    await self.store.commit_outbound(plan.stream, plan.care_type, [(c, failed)], [], None)
                    self.counts.failed += 1
                    continue
                send.append((c, OutboundRecord(c.idempotency_key, payload, c.external_id)))
            outcomes: list[WriteOutcome] = []
            if send:
                await self.store.mark_pending(plan.stream, [c for c, _ in send])
                records = [r for _, r in send]
                outcomes = await self._guarded(lambda recs=records: writer.write(plan.stream, recs),  # type: ignore[misc]
                                               options.policy.call_deadline_seconds)
            by_key = {o.idempotency_key: o for o in outcomes}
            settled = [(c, by_key.get(r.idempotency_key) or WriteOutcome(r.idempotency_key, False, retryable=True,
                                                                          error_message="no reply for this element"))
                       for c, r in send]
            retry = [(c, o) for c, o in settled if not o.ok and o.retryable]
            final = [(c, o) for c, o in settled if o.ok or not o.retryable]
            vendor_hashes: dict[str, str] = {}
            for _c, o in final:
                if o.ok and o.data:
                    view = map_record(plan.mapper, SourceRecord(o.external_id or "", dict(o.data)), False)
                    if view.values is not None and not view.error:
                        vendor_hashes[o.idempotency_key] = view.content_hash
            counts = await self.store.commit_outbound(plan.stream, plan.care_type, final, skipped,
                                                      None if retry else batch.checkpoint, vendor_hashes)
            self.counts.add(counts)
            await self.reporter.event("batch_written", f"{plan.stream}: {len(send)} sent, {counts.written} written, "
                                                       f"{counts.failed} failed",
                                      {"stream": plan.stream, "sent": len(send), **counts.as_dict()})
            if retry:
                first = retry[0][1]
                raise _Retryable(Failure(FailureKind.TRANSIENT, f"{len(retry)} writes to retry: "
                                                                f"{first.error_message or first.error_code}"))
            self._check_threshold(options)
            if retrying:
                if counts.written == 0:  # every retried record failed again: they stay in the inbox
                    retrying = False
                continue
            cp = batch.checkpoint
            if batch.exhausted:
                return


def _take_ready(queue: asyncio.Queue[Any], group: list[Any], limit: int) -> tuple[bool, BaseException | None]:
    """Move pages already waiting in ``queue`` into ``group`` while it holds fewer than ``limit`` records.

    Returns whether the stream's end was taken too, and the reader's error if that end was one (raised
    only after the group is stored, as it would have been page by page).
    """
    size = sum(len(items) for _, items in group)
    while size < limit and not queue.empty():
        got = queue.get_nowait()
        if got is None or isinstance(got, BaseException):
            return True, got
        group.append(got)
        size += len(got[1])
    return False, None


def _strip(cp: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if cp is None:
        return None
    out = {k: v for k, v in cp.items() if not k.startswith("_")}
    return out or None


def deadline_from(now: datetime, seconds: float) -> datetime:
    """``now + seconds`` (helper for callers computing a defer time)."""
    return now + timedelta(seconds=seconds)
