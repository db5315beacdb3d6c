"""Pages already read and mapped when the store turns to them commit together, as one transaction."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, NoResultFound

from app.sync_jobs import AsyncCareStore, classify
from engine.ports import ReadPage, SourceRecord
from engine.sync.keys import canonical_bytes, content_hash
from engine.sync.mapper import FieldCopyMapper
from engine.sync.ownership import OwnershipRule
from engine.sync.ports import MappedItem, PageResult
from engine.sync.runner import RunOptions, StreamPlan, SyncRunner, _take_ready, map_record
from storage.care_store import CareStore
from storage.db import Database
from storage.models import CareRecord, Checkpoint

from .harness import bare_integration

PAGES, PER_PAGE = 6, 10


class PagedVendor:
    """A stream of ``PAGES`` pages; ``done`` is set once the last one has been handed over."""

    def __init__(self) -> None:
        self.done = asyncio.Event()

    async def read(self, stream: str, checkpoint: Any = None) -> AsyncIterator[ReadPage]:
        for p in range(PAGES):
            records = [SourceRecord(f"c-{p}-{i}", {"name": f"Contact {p}-{i}"}, datetime(2026, 1, 1, tzinfo=UTC))
                       for i in range(PER_PAGE)]
            if p == PAGES - 1:
                self.done.set()
            yield ReadPage(records, {"page": p + 1})


class HeldStore(AsyncCareStore):
    """The real store; its first page waits until the vendor has handed over every page."""

    def __init__(self, store: CareStore, vendor: PagedVendor) -> None:
        super().__init__(store, None)
        self.vendor = vendor
        self.sizes: list[int] = []

    async def apply_inbound(self, stream: str, care_type: str, rule: OwnershipRule, items: Sequence[MappedItem],
                            checkpoint: dict[str, Any] | None, change_budget: int | None) -> PageResult:
        if not self.sizes:
            await asyncio.wait_for(self.vendor.done.wait(), 10)
            await asyncio.sleep(0.05)  # let the last pages be mapped
        self.sizes.append(len(items))
        return await super().apply_inbound(stream, care_type, rule, items, checkpoint, change_budget)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def event(self, kind: str, message: str = "", data: Any = None) -> None:
        self.seen.append((kind, dict(data or {})))


@pytest.mark.parametrize("limit", [5000, 20])
async def test_ready_pages_commit_together_up_to_the_limit(ctx: Any, limit: int) -> None:
    db = ctx.db
    integration_id, run_id = bare_integration(db, "group")
    vendor = PagedVendor()
    store = HeldStore(CareStore(db, integration_id, run_id), vendor)
    events = Events()
    runner = SyncRunner(store=store, reporter=events, classify=classify, reader=vendor)
    plan = StreamPlan("contacts", "Contact", OwnershipRule(),
                      FieldCopyMapper({"mappings": [{"sourceField": "name", "targetField": "name"}]}))
    counts = await runner.run([plan], RunOptions(run_id=run_id, integration_id=integration_id, commit_records=limit))

    assert counts.created == PAGES * PER_PAGE and sum(store.sizes) == PAGES * PER_PAGE
    assert store.sizes[0] == PER_PAGE and max(store.sizes) > PER_PAGE  # the held pages went in together
    assert max(store.sizes) <= max(limit, PER_PAGE) + PER_PAGE - 1 and len(store.sizes) < PAGES
    pages = [d for k, d in events.seen if k == "page_read"]
    assert [d["records"] for d in pages] == [PER_PAGE] * PAGES  # still one event a page
    assert sum(d.get("created", 0) for d in pages) == PAGES * PER_PAGE
    assert [d["pages_committed"] for d in pages if "pages_committed" in d] == [
        n // PER_PAGE for n in store.sizes]
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(CareRecord)).scalar_one() == PAGES * PER_PAGE
        cp = s.get(Checkpoint, (integration_id, "contacts", "inbound"))
        assert cp is not None and cp.value["page"] == PAGES  # the last page's checkpoint, with its records


async def test_take_ready_stops_at_the_end_or_the_readers_error() -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in [("p2", [1] * 10), ("p3", [1] * 10), None]:
        queue.put_nowait(item)
    group: list[Any] = [("p1", [1] * 10)]
    assert _take_ready(queue, group, 5000) == (True, None) and [g[0] for g in group] == ["p1", "p2", "p3"]

    boom = RuntimeError("vendor went away")
    for item in [("p2", [1] * 10), boom]:
        queue.put_nowait(item)
    group = [("p1", [1] * 10)]
    assert _take_ready(queue, group, 5000) == (True, boom) and len(group) == 2

    for item in [("p2", [1] * 10), ("p3", [1] * 10)]:
        queue.put_nowait(item)
    group = [("p1", [1] * 10)]
    assert _take_ready(queue, group, 15) == (False, None) and len(group) == 2 and queue.qsize() == 1


def test_an_item_crosses_processes_as_its_canonical_json() -> None:
    values = {"name": "Margaret Thompson", "address": {"town": "Leeds", "postcode": "LS1 4AP"}, "n": 3}
    item = map_record(FieldCopyMapper({"mappings": [{"sourceField": k, "targetField": k} for k in values]}),
                      SourceRecord("x-1", values))
    assert item.values_json == canonical_bytes(values) and item.content_hash == content_hash(values)
    copy = pickle.loads(pickle.dumps(item))
    assert copy.values is None and copy.data() == values and copy.content_hash == item.content_hash
    plain = MappedItem("x-2", {"a": 1}, content_hash({"a": 1}))
    assert pickle.loads(pickle.dumps(plain)) == plain  # no encoded form: the dict travels


def test_without_foreign_key_checks_a_page_whose_parents_are_gone_is_refused(ctx: Any) -> None:
    if not ctx.db.is_sqlite:
        pytest.skip("foreign-key checks are switched off only in SQLite's writer process")
    db = Database(ctx.db.url, foreign_keys=False)
    try:
        integration_id, run_id = bare_integration(db, "group")
        items = [MappedItem(f"e-{i}", {"name": f"N{i}"}, content_hash({"name": f"N{i}"})) for i in range(3)]
        with pytest.raises(NoResultFound):  # the run's counts have nowhere to go
            CareStore(db, integration_id, "no-such-run").apply_inbound("contacts", "Contact", OwnershipRule(), items,
                                                                      {"p": 1}, None)
        with pytest.raises(IntegrityError, match="integration gone"):
            CareStore(db, "gone", run_id).apply_inbound("contacts", "Contact", OwnershipRule(), items, {"p": 1}, None)
        with db.session() as s:  # nothing of either page stayed
            assert s.execute(select(func.count()).select_from(CareRecord)).scalar_one() == 0
            assert s.get(Checkpoint, (integration_id, "contacts", "inbound")) is None
        stored = CareStore(db, integration_id, run_id).apply_inbound("contacts", "Contact", OwnershipRule(), items,
                                                                    {"p": 1}, None)
        assert stored.counts.created == 3
    finally:
        db.dispose()
