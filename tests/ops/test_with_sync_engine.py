"""The operate views and rollback on runs made by the real sync engine (Xero sandbox over loopback)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import select
from sync.conftest import drain
from sync.harness import make_integration, vendor_contacts, xero_post, xero_sandbox

from app.sync_jobs import enqueue_run
from storage import migration_plans as mp
from storage import ops_queries as oq
from storage.models import AuditLog


async def test_engine_runs_show_on_the_timeline_and_roll_back_from_history(ctx: Any, redis_url: str) -> None:
    from arq.connections import RedisSettings, create_pool

    db = ctx.db
    arq = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        with xero_sandbox(contacts=40) as sb:
            integ = make_integration(db, ctx.box, sb)
            first = await enqueue_run(db, arq, integ, "manual", requested_by="test")
            await drain(ctx, redis_url)
            with db.session() as s:
                after_first = mp.care_snapshot(s)
            assert len(after_first) == 40
            contacts = vendor_contacts(sb)
            xero_post(sb, [{"ContactID": contacts[3]["ContactID"], "Name": "Renamed Funder"},
                           {"Name": "Brand New Funder"}])
            second = await enqueue_run(db, arq, integ, "manual", requested_by="test")
            await drain(ctx, redis_url)
    finally:
        await arq.aclose()
    with db.session() as s:
        flt = oq.TimelineFilter.period("day")
        assert {b.id for b in oq.timeline_bars(s, flt)} >= {first, second}
        rows, total = oq.runs_page(s, flt)
        assert total >= 2 and rows[0].id == second and rows[0].read >= 2
        detail = oq.run_detail(s, second)
        assert detail is not None and detail.rollback_possible
        assert detail.outcome_counts == {"created": 1, "updated": 1}
        outcomes, n = oq.outcomes_page(s, second, outcome="updated")
        assert n == 1 and outcomes[0].record_id
        overall, per = oq.health(s)
        assert overall.runs >= 2 and per[0].success_pct == 100.0
    with db.session() as s:
        report = mp.rollback_run(s, second, actor="admin@home.example", reason="test")
    assert report.restored == 1 and report.removed == 1
    with db.session() as s:
        assert mp.care_snapshot(s) == after_first
        audit = s.exec(select(AuditLog).where(AuditLog.action == "run.rollback")).one()
        assert audit.entity_id == second
