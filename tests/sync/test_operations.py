"""Scheduler, webhook/retry triggers on the same path, rollback from version history, fallback queue and
replay while the vendor is unreachable, and health metrics."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from app.sync_jobs import enqueue_run, metrics, rollback, schedule_due
from storage import runs as runrepo
from storage.care_store import write_local
from storage.models import CareRecord, Integration, SyncRun, utcnow

from .conftest import drain
from .harness import linked, make_integration, vendor_contacts, xero_post, xero_sandbox


async def test_scheduler_enqueues_due_integrations_once(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=10) as sb:
        integ = make_integration(db, ctx.box, sb, frequency={"kind": "minutes", "every": 5})
        manual = make_integration(db, ctx.box, sb)
        started = await schedule_due(db, arq)
        assert len(started) == 1
        run = runrepo.get_run(db, started[0])
        assert run.integration_id == integ and run.trigger == "scheduled"
        with db.session() as s:
            nxt = s.get(Integration, integ).next_sync
            assert nxt is not None and s.get(Integration, manual).next_sync is None
        assert await schedule_due(db, arq) == []  # not due again yet
        with db.session() as s:  # due again while the first run is still queued: no second run
            s.get(Integration, integ).next_sync = utcnow() - timedelta(seconds=1)
        assert await schedule_due(db, arq) == [started[0]]
        await drain(ctx, redis_url)
        assert runrepo.get_run(db, started[0]).status == "succeeded"


async def test_webhook_and_retry_triggers_use_the_same_path(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=10) as sb:
        integ = make_integration(db, ctx.box, sb)
        first = await enqueue_run(db, arq, integ, "webhook", {"event": "CONTACT.UPDATE"}, "xero-webhook")
        await drain(ctx, redis_url)
        second = await enqueue_run(db, arq, integ, "retry", {"of": first})
        await drain(ctx, redis_url)
        with db.session() as s:
            runs = {r.id: r for r in s.execute(select(SyncRun)).scalars()}
        assert runs[first].trigger == "webhook" and runs[first].status == "succeeded"
        assert runs[second].trigger == "retry" and runs[second].status == "succeeded"
        assert runs[second].counts["created"] == 0


async def test_rollback_restores_from_version_history(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=20) as sb:
        integ = make_integration(db, ctx.box, sb)
        await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        before = {}
        with db.session() as s:
            for r in s.execute(select(CareRecord)).scalars():
                before[r.id] = dict(r.data)
        c = vendor_contacts(sb)
        xero_post(sb, [{"ContactID": c[i]["ContactID"], "Name": f"Changed {i}"} for i in range(3)]
                  + [{"Name": "Added Later"}])
        run2 = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        assert runrepo.get_run(db, run2).counts["updated"] == 3
        result = await rollback(db, run2, "onboarding@example.org")
        assert result == {"restored": 3, "archived": 1, "kept": 0}
        assert runrepo.get_run(db, run2).status == "rolled_back"
        with db.session() as s:
            for r in s.execute(select(CareRecord)).scalars():
                if r.id in before:
                    assert r.data == before[r.id] and r.deleted_at is None
                else:
                    assert r.deleted_at is not None and r.data["name"] == "Added Later"
        assert len(linked(db, integ)) == 20


async def test_vendor_unreachable_changes_queue_and_replay_in_order(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=0) as sb:
        integ = make_integration(db, ctx.box, sb, mode="full_writecarenotes", direction="outbound",
                                 error_handling={"connector": {"max_attempts": 1}},
                                 retry_policy={"base_seconds": 0.2, "cap_seconds": 0.4, "max_attempts": 40,
                                               "breaker_threshold": 1000})
        r1 = write_local(db, "Contact", {"name": "First v1", "status": "active"})
        sb.faults(storm_5xx=100000, retry_after=None)
        run_id = await enqueue_run(db, arq, integ, "manual")
        # While the vendor is down, WriteCareNotes keeps changing: the changes wait in the version history.
        write_local(db, "Contact", {"name": "First v2", "status": "active"}, record_id=r1.id)
        write_local(db, "Contact", {"name": "First v3", "status": "active"}, record_id=r1.id)
        r2 = write_local(db, "Contact", {"name": "Second v1", "status": "active"})
        threading.Timer(2.0, sb.clear_faults).start()
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "succeeded", run.error
        retries = [e for e in runrepo.events(db, run_id) if e.kind == "retry_scheduled"]
        assert retries and all(e.data.get("at") for e in retries)
        names = sorted(x["Name"] for x in vendor_contacts(sb))
        assert names == ["First v3", "Second v1"]  # latest state, no duplicates
        links = linked(db, integ)
        assert set(links.values()) == {r1.id, r2.id}


async def test_metrics_for_the_health_page(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=10) as sb:
        integ = make_integration(db, ctx.box, sb)
        await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        sb.faults(revoke_tokens=True)
        await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        await arq.zadd("carehub:workers", {"w1": __import__("time").time()})
        m = await metrics(db, arq, integ)
        assert m["runs"] == 2 and m["sync_success_rate"] == 0.5
        assert m["data_accuracy"] == 1.0 and m["run_duration_avg_s"] is not None
        assert m["open_errors"] == 1 and m["live_workers"] == 1 and m["worker_availability"] == 1.0


async def test_retry_from_the_errors_inbox_stores_fixed_records_and_resolves_errors(ctx, arq, redis_url):
    from storage.models import IntegrationError, MappingDesign

    db = ctx.db
    with xero_sandbox(contacts=30) as sb:
        integ = make_integration(db, ctx.box, sb)

        def require_vat(required: bool) -> None:
            with db.session() as s:
                d = s.execute(select(MappingDesign).where(MappingDesign.integration_id == integ)).scalar_one()
                d.design = {**d.design, "mappings": [{**m, "required": required} if m.get("targetField") == "vatNumber"
                                                     else m for m in d.design["mappings"]]}
                s.add(d)

        require_vat(True)
        first = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        assert runrepo.get_run(db, first).counts["failed"] == 30 and linked(db, integ) == {}
        with db.session() as s:
            ids = [e.id for e in s.execute(select(IntegrationError)).scalars()]
        require_vat(False)  # the manager fixes the design, then retries from the inbox
        retry = await enqueue_run(db, arq, integ, "retry", {"error_ids": ids, "record_ids": [], "streams": ["contacts"]})
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, retry)
        assert run.status == "succeeded" and run.counts["created"] == 30
        with db.session() as s:
            assert all(e.resolved for e in s.execute(select(IntegrationError)).scalars())
