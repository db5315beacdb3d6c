"""Safety valves: an empty read, a mass delete and a mass change each pause the run; approval resumes it."""

from __future__ import annotations

from app.sync_jobs import approve, enqueue_run
from storage import runs as runrepo

from .conftest import drain
from .harness import care_count, linked, make_integration, repoint, vendor_contacts, xero_post, xero_sandbox

SNAPSHOT = {"deletes": "snapshot"}


async def test_empty_read_pauses_then_approval_resumes(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=50) as full, xero_sandbox(contacts=0) as empty:
        integ = make_integration(db, ctx.box, full, stream_extra=SNAPSHOT)
        await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        assert len(linked(db, integ)) == 50
        repoint(db, ctx.box, integ, empty)
        run_id = await enqueue_run(db, arq, integ, "manual", {"full": True})
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "paused" and "no records" in run.error
        assert next(e for e in runrepo.events(db, run_id) if e.kind == "paused").data["valve"] == "empty_read"
        assert len(linked(db, integ)) == 50  # nothing deleted while paused
        # A new request while paused returns the paused run rather than starting another.
        assert await enqueue_run(db, arq, integ, "scheduled") == run_id
        await approve(db, arq, run_id, "manager@example.org")
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "succeeded", run.error
        assert run.counts["deleted"] == 50 and len(linked(db, integ)) == 0
        assert care_count(db) == 50  # archived, not destroyed


async def test_mass_delete_pauses(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=50) as full, xero_sandbox(contacts=10) as fewer:
        integ = make_integration(db, ctx.box, full, stream_extra=SNAPSHOT)
        await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        repoint(db, ctx.box, integ, fewer)
        run_id = await enqueue_run(db, arq, integ, "manual", {"full": True})
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "paused"
        pause = next(e for e in runrepo.events(db, run_id) if e.kind == "paused")
        assert pause.data["valve"] == "mass_delete" and pause.data["observed"] == 40
        assert len(linked(db, integ)) == 50
        await approve(db, arq, run_id, "manager@example.org")
        await drain(ctx, redis_url)
        assert runrepo.get_run(db, run_id).status == "succeeded"
        assert len(linked(db, integ)) == 10


async def test_mass_change_pauses_before_changing(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=40) as sb:
        integ = make_integration(db, ctx.box, sb, max_change_share=0.5)
        await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        c = vendor_contacts(sb)
        xero_post(sb, [{"ContactID": x["ContactID"], "Name": x["Name"] + " (updated)"} for x in c[:30]])
        run_id = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "paused", run.counts
        assert run.counts.get("updated", 0) == 0
        await approve(db, arq, run_id, "admin@example.org")
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "succeeded" and run.counts["updated"] == 30


async def test_error_threshold_aborts_the_run(ctx, arq, redis_url):
    from sqlalchemy import select

    from storage.models import MappingDesign

    db = ctx.db
    with xero_sandbox(contacts=250) as sb:
        integ = make_integration(db, ctx.box, sb, error_threshold=20)
        with db.session() as s:  # a required field the vendor never sends: every record fails validation
            d = s.execute(select(MappingDesign).where(MappingDesign.integration_id == integ)).scalar_one()
            d.design = {**d.design, "mappings": [{**m, "required": True} if m.get("targetField") == "vatNumber" else m
                                                 for m in d.design["mappings"]]}
            s.add(d)
        run_id = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "failed" and "error threshold" in run.error
        assert run.counts["failed"] == 100  # stopped after the first page, every failure in the inbox
        assert len(runrepo.run_errors(db, run_id)) == 101  # 100 validation errors + the run's own
