"""Inbound runs against the Xero sandbox over loopback: full, incremental, deletes, counts, events."""

from __future__ import annotations

from sqlalchemy import select

from app.sync_jobs import enqueue_run, metrics
from storage import runs as runrepo
from storage.care_store import field_lineage
from storage.models import CareRecord, CareRecordVersion, Checkpoint

from .conftest import drain
from .harness import care_count, linked, make_integration, vendor_contacts, xero_post, xero_sandbox


async def test_full_then_incremental_inbound(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=230) as sb:
        integ = make_integration(db, ctx.box, sb)
        run_id = await enqueue_run(db, arq, integ, "manual", requested_by="test")
        await drain(ctx, redis_url)
        run = runrepo.get_run(db, run_id)
        assert run.status == "succeeded", run.error
        assert run.counts["read"] == 230 and run.counts["created"] == 230 and run.counts["failed"] == 0
        links = linked(db, integ)
        assert set(links) == {c["ContactID"] for c in vendor_contacts(sb)}
        assert care_count(db) == 230
        with db.session() as s:
            cp = s.get(Checkpoint, (integ, "contacts", "inbound"))
            assert cp is not None and cp.value.get("since")
        kinds = [e.kind for e in runrepo.events(db, run_id)]
        assert kinds[0] == "queued" and "started" in kinds and kinds.count("page_read") == 3 and kinds[-1] == "finished"
        assert run.counts["reconciliation"]["contacts"]["hash_mismatch"] == 0

        # The vendor changes two contacts and adds one: the next run reads only those (plus the boundary record).
        all_c = vendor_contacts(sb)
        xero_post(sb, [{"ContactID": all_c[5]["ContactID"], "Name": "Renamed Resident"},
                       {"ContactID": all_c[9]["ContactID"], "Name": all_c[9]["Name"], "EmailAddress": "new.address@example.org"},
                       {"Name": "Brand New Funder"}])
        run2 = await enqueue_run(db, arq, integ, "manual")
        assert run2 != run_id
        await drain(ctx, redis_url)
        r2 = runrepo.get_run(db, run2)
        assert r2.status == "succeeded", r2.error
        assert r2.counts["created"] == 1 and r2.counts["updated"] == 2
        assert r2.counts["read"] <= 4  # incremental: not the whole set again
        assert care_count(db) == 231
        rid = linked(db, integ)[all_c[5]["ContactID"]]
        with db.session() as s:
            rec = s.get(CareRecord, rid)
            assert rec.data["name"] == "Renamed Resident" and rec.version == 2
            versions = s.execute(select(CareRecordVersion).where(CareRecordVersion.record_id == rid)).scalars().all()
            assert [v.version for v in versions] == [1, 2]
        lineage = field_lineage(db, rid)
        assert lineage["name"]["run_id"] == run2 and lineage["*"]["run_id"] == run_id

        # A third run with nothing new changes nothing.
        run3 = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        r3 = runrepo.get_run(db, run3)
        assert r3.status == "succeeded" and r3.counts["created"] == 0 and r3.counts["updated"] == 0
        m = await metrics(db, arq, integ)
        assert m["sync_success_rate"] == 1.0 and m["runs"] == 3


async def test_archived_at_vendor_is_archived_here(ctx, arq, redis_url):
    db = ctx.db
    with xero_sandbox(contacts=40) as sb:
        integ = make_integration(db, ctx.box, sb, stream_extra={"deleted_when": {"field": "ContactStatus",
                                                                                  "values": ["ARCHIVED"]}})
        await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        c = vendor_contacts(sb)
        xero_post(sb, [{"ContactID": c[i]["ContactID"], "Name": c[i]["Name"], "ContactStatus": "ARCHIVED"} for i in range(3)])
        run2 = await enqueue_run(db, arq, integ, "manual")
        await drain(ctx, redis_url)
        r2 = runrepo.get_run(db, run2)
        assert r2.status == "succeeded", r2.error
        assert r2.counts["deleted"] == 3
        assert len(linked(db, integ)) == 37
        with db.session() as s:
            archived = s.execute(select(CareRecord).where(CareRecord.deleted_at.is_not(None))).scalars().all()
            assert len(archived) == 3 and all(a.data.get("name") for a in archived)  # archive keeps the data
