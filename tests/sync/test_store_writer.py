"""The store writer process (SQLite): large inbound pages applied in a child, exactly as in a thread."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.store_writer import StoreWriter, _child_ready
from engine.sync.keys import content_hash
from engine.sync.ownership import OwnershipRule
from engine.sync.ports import MappedItem
from storage.models import CareRecord, CareRecordVersion, RecordOutcome

from .harness import bare_integration


def page(n: int, tag: str = "") -> list[MappedItem]:
    items = []
    for i in range(n):
        values = {"name": f"Resident {i}{tag}", "accountNumber": f"W{i:05d}"}
        items.append(MappedItem(f"ext-{i}", values, content_hash(values), datetime(2026, 1, 1, tzinfo=UTC)))
    return items


def count(db, model, **where) -> int:
    with db.session() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return int(s.execute(q).scalar_one())


async def test_pages_applied_in_the_child_commit_records_versions_and_outcomes(ctx) -> None:
    db = ctx.db
    if not db.is_sqlite:
        pytest.skip("the writer process serves SQLite only (PostgreSQL does the work in its server)")
    integration_id, run_id = bare_integration(db, "writer")
    writer = StoreWriter(db.url)
    try:
        while not await writer.ready():
            await asyncio.sleep(0.05)
        child = await asyncio.get_running_loop().run_in_executor(writer._start(), _child_ready)
        assert child != os.getpid()
        first = await writer.apply_inbound(integration_id, run_id, False, "contacts", "Contact", OwnershipRule(),
                                           page(300), {"page": 1}, None)
        assert (first.counts.created, first.counts.read) == (300, 300)
        assert count(db, CareRecord) == count(db, CareRecordVersion) == 300
        assert count(db, RecordOutcome, run_id=run_id, outcome="created") == 300
        again = await writer.apply_inbound(integration_id, run_id, False, "contacts", "Contact", OwnershipRule(),
                                           page(300), {"page": 1}, None)
        assert again.counts.unchanged == 300 and again.counts.created == 0
        edited = await writer.apply_inbound(integration_id, run_id, False, "contacts", "Contact", OwnershipRule(),
                                            page(300, " (moved)"), {"page": 2}, None)
        assert edited.counts.updated == 300
        assert count(db, CareRecord) == 300 and count(db, CareRecordVersion) == 600
    finally:
        writer.close()
    assert writer._pool is None


def test_small_pages_stay_in_a_thread_and_postgres_has_no_writer() -> None:
    from app.store_writer import writer_for

    assert writer_for("postgresql://postgres@127.0.0.1/test") is None
    w = StoreWriter("sqlite:///unused.db")
    assert not w.wanted(w.min_page - 1) and w.wanted(w.min_page)


async def test_a_writer_that_cannot_start_is_not_retried_on_every_page(tmp_path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    writer = StoreWriter(f"sqlite:///{blocked}/care.db")  # the child cannot create its database folder
    try:
        for _ in range(400):
            if writer._failed_at is not None:
                break
            assert not await writer.ready()
            await asyncio.sleep(0.05)
        assert writer._failed_at is not None and writer._pool is None
        assert not await writer.ready() and writer._pool is None  # within the back-off: no new process
        writer._failed_at -= 3600
        assert not await writer.ready() and writer._pool is not None  # later: tried again
    finally:
        writer.close()
