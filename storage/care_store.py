"""The care record store's sync side: idempotent upserts with version history, per-field lineage,
tombstones, checkpoints committed with the records they cover, outbound batches and run rollback.

One :class:`CareStore` serves one run of one integration. Every ``apply_*``/``commit_*`` method is one
transaction: the records, their versions, lineage, links, outcomes, the run's counts and the stream's
checkpoint commit together or not at all.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, and_, bindparam, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from sqlmodel import select as model_select

from engine.ports import WriteOutcome
from engine.sync.keys import content_hash, idempotency_key
from engine.sync.ownership import (
    WCN,
    Action,
    DeletePolicy,
    LocalState,
    OwnershipRule,
    Strategy,
    decide_inbound,
)
from engine.sync.ports import Counts, MappedItem, OutboundBatch, OutboundCandidate, PageResult
from storage.audit import record_audit
from storage.db import Database
from storage.models import (
    CareRecord,
    CareRecordVersion,
    Checkpoint,
    ExternalLink,
    FieldLineage,
    Integration,
    IntegrationError,
    OutboundWrite,
    RecordOutcome,
    RunStatus,
    SyncRun,
    SyncRunEvent,
    new_id,
    new_ids,
    utcnow,
)
from storage.outbound_cursor import cursor_gaps, open_gaps, version_cursor

WRITER_CHILD_ENV = "CAREHUB_STORE_WRITER_CHILD"  # set in a worker's store writer process (app.store_writer)
FAULT_ENV = "CAREHUB_SYNC_FAULT"  # test seam: "<point>:<n>" kills this process the n-th time <point> is reached
_fault_hits: dict[str, int] = {}
_CHUNK = 500


def fault_point(name: str) -> None:
    """Kill the process with SIGKILL at the n-th arrival at ``name`` when ``CAREHUB_SYNC_FAULT`` asks for it."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] >= int(nth or "1"):
        if os.environ.get(WRITER_CHILD_ENV):  # the worker's store writer: the crash takes the worker too
            os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: treat them as UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _chunks(items: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _json_text(value: Any) -> Any:
    if type(value) is bytes:  # already encoded (MappedItem.values_json)
        return value.decode()
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _datetime_text(value: Any) -> Any:
    # SQLAlchemy's SQLite DATETIME storage format (naive, always with microseconds), via the C isoformat.
    return None if value is None else value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _table(model: Any) -> Any:
    return model.__table__


def _bulk_insert(s: Session, model: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Core executemany insert (the ORM's bulk path costs more than the database does).

    On SQLite the rows go straight to the driver's ``executemany`` inside the session's transaction, with
    JSON and datetime columns bound as the very text SQLAlchemy's SQLite types store: per-row parameter
    processing, not the database, dominates the cost of large pages there.
    """
    if not rows:
        return
    table = model.__table__
    if s.get_bind().dialect.name != "sqlite":
        json_cols = [c for c in rows[0] if isinstance(table.c[c].type, JSON)]
        s.execute(table.insert(), [_decoded(r, json_cols) for r in rows] if json_cols else list(rows))
        return
    cols = list(rows[0])
    # Column by column: one comprehension per column beats a generator per row, and a page's datetimes
    # repeat (the page's "now", vendors' batch timestamps), so each distinct one is formatted once.
    columns: list[list[Any]] = []
    for c in cols:
        kind = table.c[c].type
        values = [r[c] for r in rows]
        if isinstance(kind, JSON):
            values = [_json_text(v) for v in values]
        elif isinstance(kind, DateTime):
            texts: dict[Any, Any] = {}
            values = [texts[v] if v in texts else texts.setdefault(v, _datetime_text(v)) for v in values]
        columns.append(values)
    params = list(zip(*columns, strict=True))
    # Many rows per statement: the driver releases and retakes the GIL around every statement step, and
    # a row-per-step executemany makes the store thread queue behind the mapping thread a thousand times
    # a page (measured: twice the store's cost while a sync reads ahead).
    per_statement = max(1, _SQLITE_VARIABLES // len(cols))
    cursor = s.connection().connection.cursor()
    try:
        for i in range(0, len(params), per_statement):
            chunk = params[i:i + per_statement]
            cursor.execute(_multi_insert_sql(table.name, tuple(cols), len(chunk)),
                           [v for row in chunk for v in row])
    finally:
        cursor.close()


def _decoded(row: Mapping[str, Any], json_cols: Sequence[str]) -> Mapping[str, Any]:
    """``row`` with JSON columns given as encoded bytes decoded (the driver's JSON type encodes them itself)."""
    if not any(type(row[c]) is bytes for c in json_cols):
        return row
    return {k: orjson.loads(v) if k in json_cols and type(v) is bytes else v for k, v in row.items()}


_SQLITE_VARIABLES = 30_000  # under SQLite's default limit of 32,766 bound variables per statement (3.32+)


@lru_cache(maxsize=64)
def _multi_insert_sql(table: str, cols: tuple[str, ...], rows: int) -> str:
    one = f"({', '.join('?' for _ in cols)})"
    return (f'INSERT INTO "{table}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) '  # noqa: S608
            f'VALUES {", ".join(one for _ in range(rows))}')


def _bulk_update(s: Session, model: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Core executemany update by primary key ``id``, one statement per set of columns."""
    table = model.__table__
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        cols = tuple(sorted(k for k in row if k != "id"))
        groups.setdefault(cols, []).append({**{k: v for k, v in row.items() if k != "id"}, "_pk": row["id"]})
    for cols, group in groups.items():
        stmt = table.update().where(table.c.id == bindparam("_pk")).values({c: bindparam(c) for c in cols})
        s.execute(stmt, group)


class CareStore:
    """The store as one run of one integration sees it (sync methods; wrap them for async callers)."""

    def __init__(self, db: Database, integration_id: str, run_id: str, *, resolve_on_success: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self.integration_id = integration_id
        self.run_id = run_id
        self.resolve_on_success = resolve_on_success  # retry runs close the inbox errors of records that now pass

    # ------------------------------------------------------------------ checkpoints and counts

    def load_checkpoint(self, stream: str, direction: str) -> dict[str, Any] | None:
        """The stored checkpoint of a stream and direction (None: never synced, read in full)."""
        with self.db.session() as s:
            cp = s.get(Checkpoint, (self.integration_id, stream, direction))
            return dict(cp.value) if cp is not None and cp.value else None

    def save_checkpoint(self, stream: str, direction: str, value: Mapping[str, Any] | None) -> None:
        """Store a checkpoint on its own (when no records go with it)."""
        with self.db.session() as s:
            self._put_checkpoint(s, stream, direction, value)

    def _put_checkpoint(self, s: Session, stream: str, direction: str, value: Mapping[str, Any] | None) -> None:
        cp = s.get(Checkpoint, (self.integration_id, stream, direction))
        if cp is None:
            s.add(Checkpoint(integration_id=self.integration_id, stream=stream, direction=direction,
                             value=dict(value or {}), run_id=self.run_id))
        else:
            cp.value = dict(value or {})
            cp.run_id = self.run_id
            cp.updated_at = utcnow()
            s.add(cp)

    def _bump_counts(self, s: Session, stream: str, counts: Counts, *, changes: int = 0) -> dict[str, Any]:
        run = s.execute(select(SyncRun).where(col(SyncRun.id) == self.run_id).with_for_update()).scalar_one()
        data = dict(run.counts or {})
        for k, v in counts.as_dict().items():
            data[k] = int(data.get(k, 0)) + v
        streams = dict(data.get("streams") or {})
        st = dict(streams.get(stream) or {})
        for k in ("read", "created", "updated", "unchanged", "skipped", "failed", "deleted", "written"):
            st[k] = int(st.get(k, 0)) + getattr(counts, k)
        st["changes"] = int(st.get("changes", 0)) + changes
        streams[stream] = st
        data["streams"] = streams
        run.counts = data
        s.add(run)
        return st

    def _run_stream_counts(self, s: Session, stream: str) -> dict[str, Any]:
        run = s.get(SyncRun, self.run_id)
        if run is None:
            return {}
        return dict((run.counts or {}).get("streams", {}).get(stream, {}))

    def population(self, stream: str) -> int:
        """How many live records this integration has linked on ``stream``."""
        with self.db.session() as s:
            n = s.execute(select(func.count()).select_from(ExternalLink).where(
                col(ExternalLink.integration_id) == self.integration_id, col(ExternalLink.stream) == stream,
                col(ExternalLink.deleted) == False)).scalar_one()  # noqa: E712
            return int(n)

    def stream_reads(self, stream: str) -> int:
        """Records read on ``stream`` by this run so far (across resumes)."""
        with self.db.session() as s:
            return int(self._run_stream_counts(s, stream).get("read", 0))

    def previous_full_reads(self, stream: str, limit: int = 5) -> list[int]:
        """Records read by recent successful full reads of ``stream`` (for the empty-read valve)."""
        with self.db.session() as s:
            runs = s.execute(select(SyncRun).where(
                col(SyncRun.integration_id) == self.integration_id, col(SyncRun.id) != self.run_id,
                col(SyncRun.status) == RunStatus.SUCCEEDED.value).order_by(col(SyncRun.queued_at).desc()).limit(20)).scalars()
            out: list[int] = []
            for run in runs:
                st = (run.counts or {}).get("streams", {}).get(stream, {})
                if st.get("full"):
                    out.append(int(st.get("read", 0)))
                if len(out) >= limit:
                    break
            return out

    def mark_full(self, stream: str) -> None:
        """Note on the run that ``stream`` was read in full (the empty-read valve compares full reads)."""
        with self.db.session() as s:
            run = s.execute(select(SyncRun).where(col(SyncRun.id) == self.run_id).with_for_update()).scalar_one()
            data = dict(run.counts or {})
            streams = dict(data.get("streams") or {})
            st = dict(streams.get(stream) or {})
            st["full"] = True
            streams[stream] = st
            data["streams"] = streams
            run.counts = data
            s.add(run)

    # ------------------------------------------------------------------ inbound

    def apply_inbound(self, stream: str, care_type: str, rule: OwnershipRule, items: Sequence[MappedItem],
                      checkpoint: Mapping[str, Any] | None, change_budget: int | None) -> PageResult:
        """Store one page under the ownership rules and commit ``checkpoint`` in the same transaction.

        With ``change_budget`` set, a page that would take the run's updates plus deletes on this stream
        past it is not stored at all (``tripped``).
        """
        # The last occurrence of an external id in a page wins (vendors sometimes repeat a record).
        latest: dict[str, MappedItem] = {}
        for it in items:
            latest[it.external_id] = it
        now = utcnow()
        counts = Counts(read=len(items))
        counts.unchanged += len(items) - len(latest)
        with self.db.session() as s:
            links = self._links(s, stream, list(latest))
            records = self._records(s, [lk.record_id for lk in links.values()])
            in_review = self._open_reviews(s, list(records)) if rule.strategy == Strategy.MANUAL_REVIEW else set()
            new_records: list[dict[str, Any]] = []
            new_links: list[dict[str, Any]] = []
            versions: list[dict[str, Any]] = []
            lineage_new: list[dict[str, Any]] = []
            lineage_upd: list[tuple[str, str]] = []
            rec_updates: list[dict[str, Any]] = []
            link_updates: list[dict[str, Any]] = []
            outcomes: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            seen_ids: list[int] = []
            changes = 0
            fresh_ids = iter(new_ids(len(latest) - len(links)))
            create = decide_inbound(rule, {}, "", None, None)  # a new record's fate depends on the rule alone
            for ext_id, it in latest.items():
                link = links.get(ext_id)
                rec = records.get(link.record_id) if link is not None else None
                if it.error:
                    counts.failed += 1
                    errors.append(self._error(stream, "validation", "mapping", it.error, ext_id, {}))
                    outcomes.append(self._outcome(stream, care_type, ext_id, rec.id if rec else "", "failed", it.error))
                    if link is not None:
                        seen_ids.append(int(link.id or 0))
                    continue
                if it.skipped_reason:
                    counts.skipped += 1
                    outcomes.append(self._outcome(stream, care_type, ext_id, rec.id if rec else "", "skipped",
                                                  it.skipped_reason))
                    if link is not None:
                        seen_ids.append(int(link.id or 0))
                    continue
                if it.deleted:
                    if link is None or rec is None or link.deleted:
                        counts.unchanged += 1
                        continue
                    if not rule.reads:
                        counts.skipped += 1
                        continue
                    self._delete_one(rec, link, rule.delete_policy, now, stream, ext_id, versions, rec_updates,
                                     link_updates, outcomes, care_type)
                    counts.deleted += 1
                    changes += 1
                    continue
                if link is None or rec is None:
                    if create.action != Action.CREATE:
                        counts.skipped += 1
                        outcomes.append(self._outcome(stream, care_type, ext_id, "", "skipped", create.reason))
                        continue
                    rid = next(fresh_ids, None) or new_id()
                    ts = aware(it.source_updated_at) or now
                    data = it.values_json if it.values_json is not None else (it.values or {})
                    new_records.append(dict(id=rid, care_type=care_type, data=data, content_hash=it.content_hash,
                                            version=1, origin=self.integration_id, created_at=now, updated_at=ts,
                                            deleted_at=None))
                    new_links.append(dict(integration_id=self.integration_id, stream=stream, external_id=ext_id,
                                          record_id=rid, content_hash=it.content_hash, vendor_hash=it.content_hash,
                                          source_updated_at=aware(it.source_updated_at), last_run_id=self.run_id,
                                          deleted=False))
                    counts.created += 1
                    continue
                values = it.data() or {}
                archived = rec.deleted_at is not None or link.deleted
                local = LocalState(rec.data or {}, rec.content_hash, link.content_hash, aware(rec.updated_at),
                                   archived=archived, vendor_hash=link.vendor_hash)
                decision = decide_inbound(rule, values, it.content_hash, it.source_updated_at, local,
                                          hasher=content_hash)
                if archived and decision.action == Action.UNCHANGED:
                    decision = type(decision)(Action.UPDATE, dict(values), "restored: the vendor has it again")
                seen_ids.append(int(link.id or 0))
                if decision.conflict:
                    counts.conflicts += 1
                if decision.action == Action.UNCHANGED:
                    counts.unchanged += 1
                    continue
                if decision.action == Action.SKIP:
                    counts.skipped += 1
                    outcomes.append(self._outcome(stream, care_type, ext_id, rec.id, "skipped", decision.reason))
                    continue
                if decision.action == Action.REVIEW:
                    counts.skipped += 1
                    if rec.id in in_review:
                        continue
                    in_review.add(rec.id)
                    errors.append(self._error(stream, "conflict", "manual_review",
                                              "Both systems changed this record; choose which version to keep.",
                                              rec.id, {"external_id": ext_id, "local": rec.data, "incoming": values,
                                                       "incoming_hash": it.content_hash}))
                    outcomes.append(self._outcome(stream, care_type, ext_id, rec.id, "conflict", decision.reason))
                    continue
                merged = decision.values
                new_hash = content_hash(merged)
                version = rec.version + 1
                from_vendor_only = new_hash == it.content_hash
                changed = sorted(k for k in set(merged) | set(rec.data or {})
                                 if (rec.data or {}).get(k) != merged.get(k))
                ts = aware(it.source_updated_at) or now
                rec_updates.append(dict(id=rec.id, data=merged, content_hash=new_hash, version=version,
                                        origin=self.integration_id if from_vendor_only else WCN,
                                        updated_at=ts, deleted_at=None))
                versions.append(self._version(rec.id, version, merged, new_hash, "update", now,
                                              integration=self.integration_id if from_vendor_only else ""))
                link_updates.append(dict(id=link.id, content_hash=it.content_hash, vendor_hash=it.content_hash,
                                         source_updated_at=aware(it.source_updated_at), last_run_id=self.run_id,
                                         deleted=False))
                for fld in changed:
                    lineage_upd.append((rec.id, fld))
                outcomes.append(self._outcome(stream, care_type, ext_id, rec.id, "updated", decision.reason,
                                              before={k: (rec.data or {}).get(k) for k in changed},
                                              after={k: merged.get(k) for k in changed}))
                counts.updated += 1
                changes += 1
            if change_budget is not None:
                so_far = int(self._run_stream_counts(s, stream).get("changes", 0))
                if so_far + changes > change_budget:
                    s.rollback()
                    return PageResult(tripped=True, would_change=so_far + changes)
            if new_records:
                _bulk_insert(s, CareRecord, new_records)
            if rec_updates:
                _bulk_update(s, CareRecord, rec_updates)
            if versions:
                _bulk_insert(s, CareRecordVersion, versions)
            if new_links:
                after = int(s.execute(select(func.coalesce(func.max(col(ExternalLink.id)), 0))).scalar_one())
                _bulk_insert(s, ExternalLink, new_links)
                self._derive_created(s, after, stream, care_type, now)
            if link_updates:
                _bulk_update(s, ExternalLink, link_updates)
            updated_links = {u["id"] for u in link_updates}
            stamp = [i for i in seen_ids if i not in updated_links]
            if stamp:
                links_t = _table(ExternalLink)
                touch = links_t.update().where(links_t.c.id.in_(bindparam("ids", expanding=True))).values(
                    last_run_id=self.run_id)
                for chunk in _chunks(stamp):
                    s.execute(touch, {"ids": list(chunk)})
            if lineage_new:
                _bulk_insert(s, FieldLineage, lineage_new)
            if lineage_upd:
                self._upsert_lineage(s, lineage_upd, stream, latest, records, now)
            if outcomes:
                _bulk_insert(s, RecordOutcome, outcomes)
            if errors:
                _bulk_insert(s, IntegrationError, errors)
            if self.resolve_on_success:
                ok_ids = [i.external_id for i in latest.values() if not i.error and not i.skipped_reason]
                for chunk in _chunks(ok_ids):
                    s.execute(update(IntegrationError).execution_options(synchronize_session=False).where(
                        col(IntegrationError.integration_id) == self.integration_id,
                        col(IntegrationError.stream) == stream, col(IntegrationError.error_type) == "validation",
                        col(IntegrationError.resolved) == False, col(IntegrationError.record_id).in_(chunk))  # noqa: E712
                        .values(resolved=True, resolution_action="retried", resolved_at=now, resolved_by="sync",
                                resolution_note=f"stored by run {self.run_id}"))
            fault_point("after_records")
            self._bump_counts(s, stream, counts, changes=changes)
            self._put_checkpoint(s, stream, "inbound", checkpoint)
            if not self.db.foreign_keys:
                self._check_parents(s, [u["id"] for u in rec_updates])
            fault_point("before_commit")
        return PageResult(counts=counts)

    def _check_parents(self, s: Session, updated_records: Sequence[str]) -> None:
        """What SQLite's per-row foreign-key checks would catch, checked once for the page.

        Runs after the page's writes, so this transaction holds the write lock and no delete can come
        between the check and the commit. New records are this transaction's own rows; the integration,
        the run and records updated in place are checked here.
        """
        missing: list[str] = []
        if s.execute(select(col(Integration.id)).where(col(Integration.id) == self.integration_id)).first() is None:
            missing.append(f"integration {self.integration_id}")
        if s.execute(select(col(SyncRun.id)).where(col(SyncRun.id) == self.run_id)).first() is None:
            missing.append(f"run {self.run_id}")
        for chunk in _chunks(updated_records):
            found = set(s.execute(select(col(CareRecord.id)).where(col(CareRecord.id).in_(chunk))).scalars())
            missing += [f"care record {r}" for r in chunk if r not in found]
        if missing:
            raise IntegrityError("page parents", {}, ValueError(
                "FOREIGN KEY constraint failed: " + ", ".join(missing[:5]) + " no longer exist(s); page not stored"))

    def _derive_created(self, s: Session, after_link_id: int, stream: str, care_type: str, now: datetime) -> None:
        """Version 1, whole-record lineage and the "created" outcome of the records just linked, copied by SQL.

        The new links of this page are this run's links on this stream with ids past ``after_link_id``
        (the largest id before the page's insert): ``INSERT ... SELECT`` writes the three derived rows per
        record without building them in Python, the store's main cost on large first reads.
        """
        rec, link, ver, lin, out = (_table(m) for m in (CareRecord, ExternalLink, CareRecordVersion, FieldLineage,
                                                          RecordOutcome))
        new = select(link.c.record_id, link.c.external_id).where(
            link.c.id > bindparam("after"), link.c.integration_id == bindparam("integ"),
            link.c.stream == bindparam("stream"), link.c.last_run_id == bindparam("run")
        ).with_hint(link, "NOT INDEXED", dialect_name="sqlite").subquery()  # a rowid range, not the whole stream
        params = {"after": after_link_id, "integ": self.integration_id, "stream": stream, "run": self.run_id}
        s.execute(ver.insert().from_select(
            ["record_id", "version", "data", "content_hash", "change_kind", "integration_id", "run_id", "changed_by",
             "changed_at"],
            select(rec.c.id, literal(1), rec.c.data, rec.c.content_hash, literal("create"), bindparam("integ"),
                   bindparam("run"), literal(f"sync:{self.integration_id}"), literal(now, ver.c.changed_at.type))
            .select_from(new.join(rec, rec.c.id == new.c.record_id))), params)
        s.execute(lin.insert().from_select(
            ["record_id", "field", "system", "integration_id", "run_id", "stream", "source_record_id", "updated_at"],
            select(new.c.record_id, literal("*"), bindparam("integ"), bindparam("integ"), bindparam("run"),
                   bindparam("stream"), new.c.external_id, literal(now, lin.c.updated_at.type))), params)
        s.execute(out.insert().from_select(
            ["run_id", "stream", "care_type", "external_id", "record_id", "outcome", "reason", "before", "after",
             "at"],
            select(bindparam("run"), bindparam("stream"), literal(care_type), new.c.external_id, new.c.record_id,
                   literal("created"), literal(""), literal({}, out.c.before.type), literal({}, out.c.after.type),
                   literal(now, out.c.at.type))), params)

    def _open_reviews(self, s: Session, record_ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for chunk in _chunks(record_ids):
            out.update(r for r in s.execute(select(col(IntegrationError.record_id)).where(
                col(IntegrationError.integration_id) == self.integration_id, col(IntegrationError.error_type) == "conflict",
                col(IntegrationError.resolved) == False, col(IntegrationError.record_id).in_(chunk))).scalars() if r)  # noqa: E712
        return out

    # Links and records come back as read-only rows (attribute access like the models) rather than ORM
    # objects: building and tracking an instance per row cost more than the query on every re-read page.

    def _links(self, s: Session, stream: str, ext_ids: Sequence[str]) -> dict[str, Any]:
        link = _table(ExternalLink)
        stmt = select(*link.c).where(link.c.integration_id == self.integration_id, link.c.stream == stream,
                                     link.c.external_id.in_(bindparam("ids", expanding=True)))
        out: dict[str, Any] = {}
        for chunk in _chunks(ext_ids):
            out.update({r.external_id: r for r in s.execute(stmt, {"ids": list(chunk)})})
        return out

    def _records(self, s: Session, ids: Sequence[str]) -> dict[str, Any]:
        rec = _table(CareRecord)
        stmt = select(*rec.c).where(rec.c.id.in_(bindparam("ids", expanding=True)))
        out: dict[str, Any] = {}
        for chunk in _chunks(ids):
            out.update({r.id: r for r in s.execute(stmt, {"ids": list(chunk)})})
        return out

    def _upsert_lineage(self, s: Session, pairs: Sequence[tuple[str, str]], stream: str,
                        latest: Mapping[str, MappedItem], records: Mapping[str, CareRecord], now: datetime) -> None:
        ext_by_record: dict[str, str] = {}
        links = self._links(s, stream, list(latest))
        for ext, lk in links.items():
            ext_by_record[lk.record_id] = ext
        rec_ids = sorted({r for r, _ in pairs})
        existing: set[tuple[str, str]] = set()
        for chunk in _chunks(rec_ids):
            for rid, fld in s.execute(select(col(FieldLineage.record_id), col(FieldLineage.field)).where(
                    col(FieldLineage.record_id).in_(chunk))):
                existing.add((rid, fld))
        fresh = [self._lineage(r, f, stream, ext_by_record.get(r, ""), now) for r, f in pairs if (r, f) not in existing]
        stale = [(r, f) for r, f in pairs if (r, f) in existing]
        if fresh:
            _bulk_insert(s, FieldLineage, fresh)
        for r, f in stale:
            s.execute(update(FieldLineage).where(and_(col(FieldLineage.record_id) == r, col(FieldLineage.field) == f))
                      .values(system=self.integration_id, integration_id=self.integration_id, run_id=self.run_id,
                              stream=stream, source_record_id=ext_by_record.get(r, ""), updated_at=now))

    def _lineage(self, record_id: str, fld: str, stream: str, ext_id: str, now: datetime) -> dict[str, Any]:
        return dict(record_id=record_id, field=fld, system=self.integration_id, integration_id=self.integration_id,
                    run_id=self.run_id, stream=stream, source_record_id=ext_id, updated_at=now)

    def _version(self, record_id: str, version: int, data: Mapping[str, Any], h: str, kind: str, now: datetime,
                 integration: str | None = None) -> dict[str, Any]:
        return dict(record_id=record_id, version=version, data=dict(data), content_hash=h, change_kind=kind,
                    integration_id=self.integration_id if integration is None else integration, run_id=self.run_id,
                    changed_by=f"sync:{self.integration_id}", changed_at=now)

    def _outcome(self, stream: str, care_type: str, ext_id: str, record_id: str, outcome: str, reason: str,
                 before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return dict(run_id=self.run_id, stream=stream, care_type=care_type, external_id=ext_id, record_id=record_id,
                    outcome=outcome, reason=reason, before=dict(before or {}), after=dict(after or {}), at=utcnow())

    def _error(self, stream: str, kind: str, code: str, message: str, record_id: str | None,
               details: Mapping[str, Any]) -> dict[str, Any]:
        return dict(id=new_id(), integration_id=self.integration_id, run_id=self.run_id, error_type=kind,
                    error_code=code, error_message=message, error_details=dict(details), record_id=record_id,
                    stream=stream, timestamp=utcnow(), resolved=False, resolution_action=None, resolution_note="",
                    resolved_at=None, resolved_by="", retry_count=0, max_retries=3)

    def _delete_one(self, rec: CareRecord, link: ExternalLink, policy: DeletePolicy, now: datetime, stream: str,
                    ext_id: str, versions: list[dict[str, Any]], rec_updates: list[dict[str, Any]],
                    link_updates: list[dict[str, Any]], outcomes: list[dict[str, Any]], care_type: str) -> None:
        link_updates.append(dict(id=link.id, deleted=True, last_run_id=self.run_id))
        if policy == DeletePolicy.IGNORE:
            outcomes.append(self._outcome(stream, care_type, ext_id, rec.id, "deleted", "unlinked (delete policy: ignore)"))
            return
        data = dict(rec.data or {}) if policy == DeletePolicy.ARCHIVE else {}
        version = rec.version + 1
        h = content_hash(data)
        rec_updates.append(dict(id=rec.id, data=data, content_hash=h, version=version, deleted_at=now,
                                origin=self.integration_id, updated_at=now))
        versions.append(self._version(rec.id, version, data, h, "delete", now))
        outcomes.append(self._outcome(stream, care_type, ext_id, rec.id, "deleted", f"deleted at the vendor ({policy.value})"))

    def unseen_links(self, stream: str) -> list[str]:
        """External ids linked on ``stream`` that this run's full read did not see (deleted at the vendor)."""
        with self.db.session() as s:
            rows = s.execute(select(col(ExternalLink.external_id)).where(
                col(ExternalLink.integration_id) == self.integration_id, col(ExternalLink.stream) == stream,
                col(ExternalLink.deleted) == False, col(ExternalLink.last_run_id) != self.run_id))  # noqa: E712
            return [r[0] for r in rows]

    def apply_deletes(self, stream: str, rule: OwnershipRule, external_ids: Sequence[str]) -> Counts:
        """Apply vendor deletes per the delete policy (one transaction)."""
        counts = Counts()
        now = utcnow()
        with self.db.session() as s:
            links = self._links(s, stream, external_ids)
            records = self._records(s, [lk.record_id for lk in links.values()])
            versions: list[dict[str, Any]] = []
            rec_updates: list[dict[str, Any]] = []
            link_updates: list[dict[str, Any]] = []
            outcomes: list[dict[str, Any]] = []
            for ext_id, link in links.items():
                rec = records.get(link.record_id)
                if rec is None or link.deleted:
                    continue
                self._delete_one(rec, link, rule.delete_policy, now, stream, ext_id, versions, rec_updates,
                                 link_updates, outcomes, "")
                counts.deleted += 1
            if rec_updates:
                _bulk_update(s, CareRecord, rec_updates)
            if versions:
                _bulk_insert(s, CareRecordVersion, versions)
            if link_updates:
                _bulk_update(s, ExternalLink, link_updates)
            if outcomes:
                _bulk_insert(s, RecordOutcome, outcomes)
            self._bump_counts(s, stream, counts, changes=counts.deleted)
        return counts

    # ------------------------------------------------------------------ outbound

    def outbound_batch(self, stream: str, care_type: str, checkpoint: Mapping[str, Any] | None,
                       limit: int) -> OutboundBatch:
        """Up to ``limit`` care records of ``care_type`` changed since ``checkpoint`` (a version-row cursor).

        A record with a pending create from an interrupted run is offered at that pending version, with its
        original key, so the vendor's idempotency store answers instead of creating it twice.
        """
        after = int((checkpoint or {}).get("version_id", 0))
        now = self.clock()
        gaps = cursor_gaps(checkpoint, now)
        with self.db.session() as s:
            newer = col(CareRecordVersion.id) > after
            rows = list(s.execute(
                select(col(CareRecordVersion.id), col(CareRecordVersion.record_id))
                .join(CareRecord, col(CareRecord.id) == col(CareRecordVersion.record_id))
                .where(col(CareRecord.care_type) == care_type,
                       or_(newer, col(CareRecordVersion.id).in_(sorted(gaps))) if gaps else newer)
                .order_by(col(CareRecordVersion.id)).limit(limit)))
            top = max([after, *(int(r[0]) for r in rows)])
            gaps = open_gaps(s, after, top, gaps, now)
            if not rows:
                unchanged = checkpoint is None and not gaps
                return OutboundBatch([], checkpoint=None if unchanged else version_cursor(after, gaps), exhausted=True)
            new_cp = version_cursor(top, gaps)
            ids = list(dict.fromkeys(r[1] for r in rows))
            records = self._records(s, ids)
            links = {lk.record_id: lk for lk in s.execute(select(ExternalLink).where(
                col(ExternalLink.integration_id) == self.integration_id, col(ExternalLink.stream) == stream,
                col(ExternalLink.record_id).in_(ids))).scalars()}
            current = {(v.record_id, v.version): v for v in s.execute(select(CareRecordVersion).where(
                col(CareRecordVersion.record_id).in_(ids))).scalars()}
            pending = {w.record_id: w for w in s.execute(select(OutboundWrite).where(
                col(OutboundWrite.integration_id) == self.integration_id, col(OutboundWrite.stream) == stream,
                col(OutboundWrite.status) == "pending", col(OutboundWrite.external_id) == "",
                col(OutboundWrite.record_id).in_(ids))).scalars()}
            review = {e.record_id for e in s.execute(select(IntegrationError).where(
                col(IntegrationError.integration_id) == self.integration_id, col(IntegrationError.error_type) == "conflict",
                col(IntegrationError.resolved) == False, col(IntegrationError.record_id).in_(ids))).scalars()}  # noqa: E712
            out: list[OutboundCandidate] = []
            for rid in ids:
                rec = records.get(rid)
                if rec is None:
                    continue
                link = links.get(rid)
                ver = current.get((rid, rec.version))
                version, values, h = rec.version, dict(rec.data or {}), rec.content_hash
                pw = pending.get(rid) if link is None else None
                if pw is not None and pw.record_version != rec.version and (rid, pw.record_version) in current:
                    old = current[(rid, pw.record_version)]
                    version, values, h = pw.record_version, dict(old.data or {}), old.content_hash
                out.append(OutboundCandidate(
                    record_id=rid, version=version, values=values, content_hash=h,
                    external_id=link.external_id if link is not None and not link.deleted else None,
                    synced_hash=link.content_hash if link is not None else None,
                    last_writer_integration=ver.integration_id if ver is not None else "",
                    idempotency_key=idempotency_key(self.integration_id, rid, version),
                    updated_at=aware(rec.updated_at), in_review=rid in review, deleted=rec.deleted_at is not None,
                    vendor_deleted=link is not None and link.deleted))
            return OutboundBatch(out, new_cp, exhausted=len(rows) < limit)

    def failed_outbound(self, stream: str, care_type: str, limit: int,
                        record_ids: Sequence[str] | None = None) -> OutboundBatch:
        """Records whose outbound write failed (open errors in the inbox), offered again at their current
        version; no checkpoint moves. Successful ones resolve their errors in :meth:`commit_outbound`."""
        with self.db.session() as s:
            ids = list(dict.fromkeys(r for r in s.execute(select(col(IntegrationError.record_id)).where(
                col(IntegrationError.integration_id) == self.integration_id, col(IntegrationError.stream) == stream,
                col(IntegrationError.error_type) == "vendor", col(IntegrationError.resolved) == False,  # noqa: E712
            ).order_by(col(IntegrationError.timestamp))).scalars() if r))
        if record_ids:
            wanted = set(record_ids)
            ids = [i for i in ids if i in wanted]
        out: list[OutboundCandidate] = []
        for rid in ids:
            if len(out) >= limit:
                break
            out.extend(self._candidates(stream, [rid], care_type))
        return OutboundBatch(out, None, exhausted=True)

    def _candidates(self, stream: str, ids: Sequence[str], care_type: str) -> list[OutboundCandidate]:
        with self.db.session() as s:
            records = {r.id: r for r in s.execute(select(CareRecord).where(col(CareRecord.id).in_(ids))).scalars()
                       if r.care_type == care_type}
            links = {lk.record_id: lk for lk in s.execute(select(ExternalLink).where(
                col(ExternalLink.integration_id) == self.integration_id, col(ExternalLink.stream) == stream,
                col(ExternalLink.record_id).in_(ids))).scalars()}
            out = []
            for rid in ids:
                rec = records.get(rid)
                if rec is None:
                    continue
                link = links.get(rid)
                out.append(OutboundCandidate(
                    record_id=rid, version=rec.version, values=dict(rec.data or {}), content_hash=rec.content_hash,
                    external_id=link.external_id if link is not None and not link.deleted else None,
                    synced_hash=link.content_hash if link is not None else None, last_writer_integration="",
                    idempotency_key=idempotency_key(self.integration_id, rid, rec.version),
                    updated_at=aware(rec.updated_at), deleted=rec.deleted_at is not None,
                    vendor_deleted=link is not None and link.deleted))
            return out

    def mark_pending(self, stream: str, candidates: Sequence[OutboundCandidate]) -> None:
        """Record the writes about to go out (committed before the vendor sees them)."""
        with self.db.session() as s:
            keys = [c.idempotency_key for c in candidates]
            have = set(s.execute(select(col(OutboundWrite.idempotency_key)).where(
                col(OutboundWrite.idempotency_key).in_(keys))).scalars())
            rows = [dict(idempotency_key=c.idempotency_key, integration_id=self.integration_id, stream=stream,
                         record_id=c.record_id, record_version=c.version, external_id=c.external_id or "",
                         status="pending", run_id=self.run_id, error="", at=utcnow())
                    for c in candidates if c.idempotency_key not in have]
            if rows:
                _bulk_insert(s, OutboundWrite, rows)

    def commit_outbound(self, stream: str, care_type: str, results: Sequence[tuple[OutboundCandidate, WriteOutcome]],
                        skipped: Sequence[tuple[OutboundCandidate, str]],
                        checkpoint: Mapping[str, Any] | None,
                        vendor_hashes: Mapping[str, str] | None = None) -> Counts:
        """Settle one batch: link what was written, queue per-element failures, advance the checkpoint.

        ``vendor_hashes`` (idempotency key -> hash of the vendor's reply mapped back) lets the next inbound
        read recognise our own write instead of taking it for a vendor change.
        """
        counts = Counts()
        now = utcnow()
        with self.db.session() as s:
            outcomes: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            for c, o in results:
                w = s.get(OutboundWrite, c.idempotency_key)
                if o.ok:
                    ext = o.external_id or c.external_id or ""
                    link = s.execute(select(ExternalLink).where(
                        col(ExternalLink.integration_id) == self.integration_id, col(ExternalLink.stream) == stream,
                        col(ExternalLink.record_id) == c.record_id)).scalars().first()
                    if link is None:
                        link = s.execute(select(ExternalLink).where(
                            col(ExternalLink.integration_id) == self.integration_id, col(ExternalLink.stream) == stream,
                            col(ExternalLink.external_id) == ext)).scalars().first()
                    if link is None:
                        link = ExternalLink(integration_id=self.integration_id, stream=stream, external_id=ext,
                                            record_id=c.record_id)
                    link.external_id = ext or link.external_id
                    link.record_id = c.record_id
                    link.content_hash = c.content_hash
                    link.vendor_hash = (vendor_hashes or {}).get(c.idempotency_key, "")
                    link.last_run_id = self.run_id
                    link.deleted = c.deleted  # an archived record went out as the vendor's delete
                    s.add(link)
                    if w is not None:
                        w.status, w.external_id, w.error = "done", ext, ""
                        s.add(w)
                    counts.written += 1
                    counts.deleted += int(c.deleted)
                    s.execute(update(IntegrationError).execution_options(synchronize_session=False).where(
                        col(IntegrationError.integration_id) == self.integration_id,
                        col(IntegrationError.record_id) == c.record_id, col(IntegrationError.error_type) == "vendor",
                        col(IntegrationError.resolved) == False)  # noqa: E712
                        .values(resolved=True, resolution_action="retried", resolved_at=utcnow(), resolved_by="sync",
                                resolution_note=f"written by run {self.run_id}"))
                    outcomes.append(self._outcome(
                        stream, care_type, ext, c.record_id,
                        "deleted" if c.deleted else "updated" if c.external_id else "created",
                        "deleted at the vendor" if c.deleted else "written to the vendor"))
                else:
                    counts.failed += 1
                    msg = o.error_message or o.error_code or "the vendor rejected this record"
                    errors.append(self._error(stream, "vendor", o.error_code or "rejected", msg, c.record_id,
                                              {"idempotency_key": c.idempotency_key, "version": c.version,
                                               "direction": "outbound"}))
                    outcomes.append(self._outcome(stream, care_type, c.external_id or "", c.record_id, "failed", msg))
                    if w is not None:
                        w.status, w.error = "failed", msg
                        s.add(w)
            for c, reason in skipped:
                if reason.startswith(("unchanged", "echo")):
                    counts.unchanged += 1
                    continue
                counts.skipped += 1
                outcomes.append(self._outcome(stream, care_type, c.external_id or "", c.record_id, "skipped", reason))
            if outcomes:
                _bulk_insert(s, RecordOutcome, outcomes)
            if errors:
                _bulk_insert(s, IntegrationError, errors)
            fault_point("outbound_before_commit")
            self._bump_counts(s, stream, counts)
            if checkpoint is not None:
                self._put_checkpoint(s, stream, "outbound", checkpoint)
            del now
        return counts


class RollbackRefused(ValueError):
    """A run cannot be rolled back now; the message says why in plain English."""


@dataclass
class RollbackReport:
    """What undoing a run did."""

    run_id: str
    restored: int = 0
    removed: int = 0
    kept_changed_later: int = 0
    records: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for events and audit rows."""
        return {"run_id": self.run_id, "restored": self.restored, "removed": self.removed,
                "kept_changed_later": self.kept_changed_later}


def rollback_run_in(session: Session, run_id: str, *, actor: str, reason: str = "") -> RollbackReport:
    """Undo every care-store write of a run from version history; the run becomes ``rolled_back``.

    A record the run created is removed (soft delete, history kept); a record it changed gets its
    data from just before the run back, as a new ``rollback`` version. A record a later run changed
    again is left as it is and counted in ``kept_changed_later``. Audited.
    """
    run = session.get(SyncRun, run_id)
    if run is None:
        raise RollbackRefused("That run does not exist.")
    if run.status == RunStatus.ROLLED_BACK.value:
        raise RollbackRefused("This run has already been rolled back.")
    if run.status in (RunStatus.RUNNING.value, RunStatus.QUEUED.value):
        raise RollbackRefused("The run is still going: cancel it or wait for it to finish before rolling back.")
    versions = session.exec(model_select(CareRecordVersion).where(CareRecordVersion.run_id == run_id)
                            .order_by(col(CareRecordVersion.id))).all()
    first: dict[str, CareRecordVersion] = {}
    last: dict[str, int] = {}
    for version in versions:
        first.setdefault(version.record_id, version)
        last[version.record_id] = max(last.get(version.record_id, 0), version.version)
    report = RollbackReport(run_id=run_id)
    now = utcnow()
    for record_id, earliest in first.items():
        record = session.get(CareRecord, record_id)
        if record is None:
            continue
        if record.version > last[record_id]:
            report.kept_changed_later += 1  # a later write owns it now; undoing would lose that change
            continue
        previous = None if earliest.change_kind == "create" else session.exec(
            model_select(CareRecordVersion).where(CareRecordVersion.record_id == record_id,
                                            CareRecordVersion.version == earliest.version - 1)).first()
        record.version += 1
        record.updated_at = now
        if previous is None:
            record.deleted_at = now
            report.removed += 1
        else:
            record.data = dict(previous.data)
            record.content_hash = previous.content_hash
            record.deleted_at = None
            report.restored += 1
        session.add(record)
        session.add(CareRecordVersion(record_id=record_id, version=record.version, data=dict(record.data),
                                      content_hash=record.content_hash, change_kind="rollback",
                                      integration_id=run.integration_id, run_id=f"rb-{run_id}"[:32],
                                      changed_by=actor, changed_at=now))
        report.records.append(record_id)
    undone = set(report.records)
    for lineage in session.exec(model_select(FieldLineage).where(FieldLineage.run_id == run_id)).all():
        if lineage.record_id in undone:
            session.delete(lineage)
    for link in session.exec(model_select(ExternalLink).where(ExternalLink.last_run_id == run_id)).all():
        if link.record_id not in undone:
            continue
        created_here = first.get(link.record_id) is not None and first[link.record_id].change_kind == "create"
        if created_here:
            session.delete(link)
        else:
            link.content_hash = ""
            session.add(link)
    for error in session.exec(model_select(IntegrationError).where(IntegrationError.run_id == run_id,
                                                             col(IntegrationError.resolved).is_(False))).all():
        error.resolved, error.resolution_action, error.resolved_at, error.resolved_by = True, "rolled_back", now, actor
        error.resolution_note = "The run was rolled back."
        session.add(error)
    run.status = RunStatus.ROLLED_BACK.value
    session.add(run)
    session.add(SyncRunEvent(run_id=run_id, kind="rolled_back", message=f"Rolled back by {actor}. {reason}".strip(),
                             data=report.as_dict()))
    record_audit(session, actor=actor, action="run.rollback", entity_type="sync_run", entity_id=run_id,
                 detail={**report.as_dict(), "reason": reason})
    return report


def rollback_run(db: Database, run_id: str, actor: str = "", reason: str = "") -> dict[str, int]:
    """Undo a run in its own transaction; counts as ``restored``, ``archived`` and ``kept``."""
    with db.session() as session:
        report = rollback_run_in(session, run_id, actor=actor or "rollback", reason=reason)
    return {"restored": report.restored, "archived": report.removed, "kept": report.kept_changed_later}


def field_lineage(db: Database, record_id: str) -> dict[str, dict[str, Any]]:
    """Which integration, run and source record last wrote each field (``"*"``: every field not listed).

    Fields changed since creation have their own rows; the rest come from the record's creation (its first
    version and, for synced records, the external link to the source record).
    """
    with db.session() as s:
        rows = s.execute(select(FieldLineage).where(col(FieldLineage.record_id) == record_id)).scalars()
        out = {r.field: {"system": r.system, "integration_id": r.integration_id, "run_id": r.run_id,
                         "stream": r.stream, "source_record_id": r.source_record_id} for r in rows}
        if "*" not in out:
            first = s.execute(select(CareRecordVersion).where(col(CareRecordVersion.record_id) == record_id,
                                                              col(CareRecordVersion.version) == 1)).scalars().first()
            link = s.execute(select(ExternalLink).where(col(ExternalLink.record_id) == record_id)
                             .order_by(col(ExternalLink.id))).scalars().first()
            if first is not None:
                out["*"] = {"system": first.integration_id or WCN, "integration_id": first.integration_id,
                            "run_id": first.run_id, "stream": link.stream if link is not None else "",
                            "source_record_id": link.external_id if link is not None else ""}
        return out


def reconcile_run(db: Database, integration_id: str, run_id: str, streams: Sequence[str]) -> dict[str, Any]:
    """After a run: do the counts balance, and does every link the run touched agree with its record?

    Per stream: ``balanced`` (read = created + updated + unchanged + skipped + failed + deleted),
    ``checked`` links stamped by this run, ``hash_mismatch`` among them whose record was last written by the
    vendor yet holds different content, and ``accuracy`` (share of checked links that match).
    """
    out: dict[str, Any] = {}
    with db.session() as s:
        run = s.get(SyncRun, run_id)
        per = dict((run.counts or {}).get("streams", {})) if run is not None else {}
        for stream in streams:
            st = per.get(stream, {})
            outcome_sum = sum(int(st.get(k, 0)) for k in ("created", "updated", "unchanged", "skipped", "failed",
                                                            "deleted"))
            rows = s.execute(select(col(ExternalLink.content_hash), col(CareRecord.content_hash), col(CareRecord.origin))
                             .join(CareRecord, col(CareRecord.id) == col(ExternalLink.record_id))
                             .where(col(ExternalLink.integration_id) == integration_id, col(ExternalLink.stream) == stream,
                                    col(ExternalLink.last_run_id) == run_id, col(ExternalLink.deleted) == False)).all()  # noqa: E712
            vendor_written = [r for r in rows if r[2] == integration_id]
            mismatch = sum(1 for r in vendor_written if r[0] != r[1])
            out[stream] = {"read": int(st.get("read", 0)), "outcomes": outcome_sum,
                           "balanced": int(st.get("read", 0)) <= outcome_sum + int(st.get("written", 0)) or not st,
                           "checked": len(vendor_written), "hash_mismatch": mismatch,
                           "accuracy": 1.0 if not vendor_written else 1 - mismatch / len(vendor_written)}
    return out


def write_local(db: Database, care_type: str, data: Mapping[str, Any], record_id: str | None = None,
                actor: str = "writecarenotes", at: datetime | None = None) -> CareRecord:
    """A change made in WriteCareNotes itself (a user edit): create or update a care record with a new
    version. Outbound syncs pick it up from the version history."""
    now = aware(at) or utcnow()
    h = content_hash(dict(data))
    with db.session() as s:
        rec = s.get(CareRecord, record_id) if record_id else None
        if rec is None:
            rec = CareRecord(id=record_id or new_id(), care_type=care_type, data=dict(data), content_hash=h, version=1,
                             origin=WCN, created_at=now, updated_at=now)
            kind = "create"
        else:
            rec.data, rec.content_hash, rec.version = dict(data), h, rec.version + 1
            rec.origin, rec.updated_at, rec.deleted_at = WCN, now, None
            kind = "update"
        s.add(rec)
        s.flush()
        s.add(CareRecordVersion(record_id=rec.id, version=rec.version, data=dict(data), content_hash=h,
                                change_kind=kind, integration_id="", run_id="", changed_by=actor, changed_at=now))
        s.add(FieldLineage(record_id=rec.id, field="*", system=WCN, updated_at=now)) if kind == "create" else None
        return rec


def archive_local(db: Database, record_id: str, actor: str = "writecarenotes", at: datetime | None = None) -> CareRecord:
    """A record archived in WriteCareNotes itself: a new "delete" version keeping the data, ``deleted_at`` set.

    Outbound syncs whose connector declares a delete send it to the vendor once. Raises ``KeyError`` for an
    unknown record; archiving an archived record changes nothing.
    """
    now = aware(at) or utcnow()
    with db.session() as s:
        rec = s.get(CareRecord, record_id)
        if rec is None:
            raise KeyError(record_id)
        if rec.deleted_at is not None:
            return rec
        rec.version += 1
        rec.origin, rec.updated_at, rec.deleted_at = WCN, now, now
        s.add(rec)
        s.add(CareRecordVersion(record_id=rec.id, version=rec.version, data=dict(rec.data or {}),
                                content_hash=rec.content_hash, change_kind="delete", integration_id="", run_id="",
                                changed_by=actor, changed_at=now))
        return rec
