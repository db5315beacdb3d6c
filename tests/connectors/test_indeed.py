"""Indeed for a direct employer: the XML job feed written from JobPosting care records (round trip, Indeed's
element set, safe escaping, closed jobs leaving the feed, retries writing nothing new) and Indeed Apply
applications POSTed to the app's real webhook route, verified by X-Indeed-Signature (a tampered body is refused
with 401) and landing once as Applicant care records through the worker.

Real parts: defusedxml on every feed read, the IndeedSession on a real folder, the mapping compiler both ways, the
app's receiver ``/webhooks/{integration}/{webhook}`` over ASGI, and arq workers (process_inbound_event, run_sync)
on the test Redis into the care store on the test database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func
from sqlalchemy import select

from app.sync_jobs import enqueue_run, run_sync
from app.webhooks_in import drain_queue, forget_receivers, process_inbound_event, webhooks_app
from connectors.manifest import load_manifest
from connectors.sessions import open_session
from connectors.xmlfeeds.indeed_feed import ELEMENTS, REQUIRED, JobFeed, parse_feed, write_feed
from connectors.xmlfeeds.safe import XmlRejected
from connectors.xmlfeeds.sessions import IndeedSession
from engine.mapping import compile_design, load_mapping_template_file
from engine.ports import OutboundRecord
from storage import integrations as svc
from storage import runs as runrepo
from storage.care_store import write_local
from storage.models import CareRecord, InboundEvent, Integration, MappingDesign, SyncConfiguration, SyncRun

from .conftest import TEMPLATES
from .worker_harness import count_care

MAPPINGS = TEMPLATES.parent / "mappings" / "indeed"
SECRET = "indeed-apply-api-secret-5f2b9c"
CONFIG = {"company": "Rose Court Care Group", "publisher_url": "https://rosecourt.example/careers",
          "job_url": "https://rosecourt.example/careers/{referencenumber}?source=Indeed", "city": "Leeds",
          "county": "West Yorkshire", "postcode": "LS17 8AB", "apply_email": "jobs@rosecourt.example"}
TRICKY = 'Nights & weekends <b>bonus</b> "£1.50/h" ]]> <![CDATA[ not markup ]]> ends\x07 here'


def _jobs(n: int) -> list[dict[str, str]]:
    kinds = ["fulltime", "parttime", "temporary", "fulltime,parttime"]
    return [{"title": f"Care Assistant {i}" if i % 5 else TRICKY[:60], "date": "Fri, 27 Nov 2026 08:00:00 GMT",
             "referencenumber": f"WCN-JOB-{i:04d}", "url": f"https://rosecourt.example/careers/WCN-JOB-{i:04d}",
             "company": "Rose Court Care Group", "city": "Leeds", "state": "West Yorkshire", "country": "GB",
             "postalcode": "LS17 8AB", "description": f"<p>Job {i}</p> {TRICKY}", "salary": "£12.60 per hour",
             "jobtype": kinds[i % 4], "expirationdate": "2026-12-31"} for i in range(1, n + 1)]


def _clean(job: dict[str, str]) -> dict[str, str]:
    return {k: v.replace("\x07", "").strip() for k, v in job.items()}


def test_feed_round_trip_keeps_every_job_and_uses_indeeds_element_set() -> None:
    jobs = _jobs(25)
    data = write_feed(JobFeed("Rose Court Care Group", "https://rosecourt.example/careers", jobs),
                      built=datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    back = parse_feed(data)
    assert back.publisher == "Rose Court Care Group" and back.publisherurl == "https://rosecourt.example/careers"
    assert back.last_build == "Sat, 28 Nov 2026 09:00:00 GMT"
    assert back.jobs == [_clean(j) for j in jobs]  # same jobs, same order, text intact (bell character dropped)
    assert back.jobs[4]["title"] == TRICKY[:60] and "]]>" in back.jobs[0]["description"]
    # Indeed's documented shape: <source> with publisher fields and <job>s holding only known elements.
    from xml.etree.ElementTree import fromstring  # the writer's own output, trusted here

    root = fromstring(data)
    assert [c.tag for c in root][:3] == ["publisher", "publisherurl", "lastBuildDate"]
    assert len(root.findall("job")) == 25 and {c.tag for c in root} == {"publisher", "publisherurl",
                                                                        "lastBuildDate", "job"}
    for job in root.findall("job"):
        tags = [c.tag for c in job]
        assert set(REQUIRED) <= set(tags) <= set(ELEMENTS)
        assert tags == [t for t in ELEMENTS if t in tags]  # a fixed order: the same jobs give the same bytes
    assert b"<title><![CDATA[Care Assistant 1]]></title>" in data
    assert b"\x07" not in data and b"]]]]><![CDATA[>" in data  # ']]>' split across two CDATA sections
    assert write_feed(JobFeed(back.publisher, back.publisherurl, back.jobs, back.last_build)) == data


def test_invalid_jobs_are_refused_naming_element_paths() -> None:
    jobs = _jobs(4)
    del jobs[0]["title"]
    jobs[1]["url"] = "rosecourt.example/jobs/2"
    jobs[1]["country"] = "United Kingdom"
    jobs[2]["jobtype"] = "fulltime, zero-hours"
    jobs[2]["perks"] = "free lunch"
    jobs[3]["referencenumber"] = jobs[2]["referencenumber"]
    with pytest.raises(XmlRejected) as caught:
        write_feed(JobFeed("Rose Court Care Group", "https://rosecourt.example/careers", jobs))
    assert [str(i) for i in caught.value.issues] == [
        "/source/job[1]/title: a value is required",
        "/source/job[2]/url: not an absolute http(s) URL (found 'rosecourt.example/jobs/2')",
        "/source/job[2]/country: not a two-letter ISO country code (found 'United Kingdom')",
        "/source/job[3]/perks: not an element of Indeed's job feed",
        "/source/job[3]/jobtype: job types are contract, fulltime, internship, parttime, temporary (found 'zero-hours')",
        "/source/job[4]/referencenumber: used by an earlier job in this feed (found 'WCN-JOB-0003')",
    ]


def test_feed_reader_refuses_entity_bombs() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE source [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            b"<source><publisher>&b;</publisher></source>")
    with pytest.raises(XmlRejected, match="entity declarations are refused"):
        parse_feed(bomb, "indeed_jobs.xml")


def _session(outbox: Path, **config: str) -> IndeedSession:
    manifest = load_manifest(TEMPLATES / "indeed.yaml")
    session = open_session(manifest, {**CONFIG, "outbox_dir": str(outbox), **config}, {},
                           connection_id=f"test-indeed-{outbox}")
    assert isinstance(session, IndeedSession)
    return session


async def test_job_postings_written_into_the_feed_once_updated_and_closed(tmp_path: Path) -> None:
    design = compile_design(load_mapping_template_file(MAPPINGS / "JobPosting.yaml"))
    postings = [{"title": f"Senior Care Assistant {i}", "site": "Leeds", "hours": ["Full time", "Part time"][i % 2],
                 "closingDate": "2026-12-31", "status": "open",
                 "description": f"<p>Days & nights at Rose Court {i}</p>"} for i in range(12)]
    records = [OutboundRecord(hashlib.sha256(f"v1:{i}".encode()).hexdigest()[:40], design.reverse(p))
               for i, p in enumerate(postings)]
    session = _session(tmp_path / "feed")
    first = await session.write("jobs", records)
    assert all(o.ok for o in first) and len({o.external_id for o in first}) == 12
    feed_file = tmp_path / "feed" / "indeed_jobs.xml"
    feed = parse_feed(feed_file.read_bytes())
    assert [j["title"] for j in feed.jobs] == [p["title"] for p in postings]
    assert feed.jobs[1]["jobtype"] == "parttime" and feed.jobs[0]["company"] == "Rose Court Care Group"
    assert feed.jobs[0]["url"] == f"https://rosecourt.example/careers/{first[0].external_id}?source=Indeed"
    assert feed.jobs[0]["state"] == "West Yorkshire" and feed.jobs[0]["country"] == "GB"

    before = feed_file.read_bytes()
    retried = await session.write("jobs", records[:3])  # the same versions again: the feed is unchanged
    assert all(o.ok and o.data.get("duplicate") for o in retried)
    assert feed_file.read_bytes() == before

    refs = [o.external_id for o in first]
    changed = dict(postings[2], title="Senior Care Assistant (nights)")
    closed = dict(postings[5], status="closed")
    update = [OutboundRecord("u" * 40, design.reverse(changed), refs[2]),
              OutboundRecord("c" * 40, design.reverse(closed), refs[5])]
    outcomes = await session.write("jobs", update)
    assert [(o.ok, o.external_id, o.data.get("removed")) for o in outcomes] == [(True, refs[2], None),
                                                                                 (True, refs[5], True)]
    feed = parse_feed(feed_file.read_bytes())
    assert len(feed.jobs) == 11 and refs[5] not in {j["referencenumber"] for j in feed.jobs}
    assert [j["title"] for j in feed.jobs if j["referencenumber"] == refs[2]] == ["Senior Care Assistant (nights)"]

    # Reading the feed back and mapping it gives the same postings (care -> feed -> care).
    read = [r async for page in session.read("jobs") for r in page.records]
    assert len(read) == 11
    mapped = design.apply(read[0].data).values
    assert {k: mapped[k] for k in ("title", "site", "hours", "closingDate", "status", "description")} == {
        k: postings[0][k] for k in ("title", "site", "hours", "closingDate", "status", "description")}
    assert mapped["externalRefs"] == {"indeed": refs[0]} and mapped["channels"] == ["Indeed"]


async def test_a_job_missing_what_indeed_requires_fails_alone(tmp_path: Path) -> None:
    session = _session(tmp_path / "feed", city="", county="")
    good = OutboundRecord("g" * 40, {"title": "Cook", "city": "Harrogate", "state": "North Yorkshire",
                                     "description": "Kitchen lead"})
    bad = OutboundRecord("b" * 40, {"title": "Chef", "description": "No town given"})
    outcomes = await session.write("jobs", [good, bad])
    assert outcomes[0].ok and not outcomes[1].ok
    assert outcomes[1].error_message == (f"/source/job[referencenumber=WCN-{'b' * 12}]/city: a value is required; "
                                         f"/source/job[referencenumber=WCN-{'b' * 12}]/state: a value is required")
    assert [j["title"] for j in parse_feed((tmp_path / "feed" / "indeed_jobs.xml").read_bytes()).jobs] == ["Cook"]
    test = await _session(tmp_path / "feed", job_url="").test_connection()
    assert not test.ok and "job_url" in test.reason


def _application(n: int) -> dict[str, Any]:
    first, last = ["Amelia", "Tomasz", "Grace"][n % 3], ["Hart", "Nowak", "Okafor"][n % 3]
    return {"id": f"a7c1e2d3f4b5{n:04d}", "appliedOnMillis": 1_795_852_800_000 + n * 60_000, "locale": "en_GB",
            "job": {"jobId": f"WCN-JOB-{n:04d}", "jobKey": f"9f8e7d6c5b4a{n:04d}", "jobTitle": "Senior Care Assistant",
                    "jobCompany": "Rose Court Care Group", "jobLocation": "Leeds, West Yorkshire",
                    "jobUrl": f"https://rosecourt.example/careers/WCN-JOB-{n:04d}"},
            "applicant": {"fullName": f"{first} {last}", "firstName": first, "lastName": last,
                          "email": f"{first.lower()}.{last.lower()}{n}@example.org",
                          "phoneNumber": f"07911 1234{n:02d}", "coverletter": "I have five years in dementia care.",
                          "resume": {"file": {"fileName": "cv.pdf", "contentType": "application/pdf",
                                              "data": base64.b64encode(b"%PDF-1.4 cv").decode()}}},
            "analytics": {"sponsored": False}}


def _signature(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


async def _work(ctx: Any, redis_url: str) -> None:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))

    async def startup(job_ctx: dict[str, Any]) -> None:
        job_ctx["app"] = ctx
        job_ctx["worker_id"] = "indeed-worker"

    worker = Worker(functions=[func(run_sync, name="run_sync", max_tries=20),
                               func(process_inbound_event, name="process_inbound_event", max_tries=20)],
                    redis_pool=pool, burst=True, poll_delay=0.01, handle_signals=False, on_startup=startup,
                    keep_result=0, max_jobs=2)
    await worker.async_run()
    await worker.close()
    await pool.aclose()


async def test_indeed_apply_signed_posts_land_as_applicants_and_tampered_ones_are_refused(
        ctx: Any, redis_url: str, tmp_path: Path) -> None:
    design = yaml.safe_load((MAPPINGS / "Applicant.yaml").read_text())
    with ctx.db.session() as s:
        integration = svc.configure_integration(
            s, box=ctx.box, actor="admin@carehub.test", name="Indeed", connector_id="indeed", status="active",
            operation_mode="external_primary", connection_details={**CONFIG, "outbox_dir": str(tmp_path)},
            sync_settings={"streams": [{"stream": "applications", "care_type": "Applicant"}], "batch_size": 50,
                           "max_change_share": 1.0, "sync_frequency": {"kind": "manual"},
                           "retry_policy": {"base_seconds": 0.05, "cap_seconds": 0.5, "max_attempts": 10}})
        svc.save_mapping_design(s, actor="admin@carehub.test", integration_id=integration.id, design=design)
        hook, _ = svc.create_webhook(s, box=ctx.box, actor="admin@carehub.test", integration_id=integration.id,
                                     direction="inbound", secret=SECRET)
        iid, wid = integration.id, hook.id
    forget_receivers()
    bodies = [json.dumps(_application(n), separators=(",", ":")).encode() for n in range(1, 4)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=webhooks_app), base_url="http://hub") as hub:
        async def post(body: bytes, signature: str) -> int:
            r = await hub.post(f"/{iid}/{wid}", content=body, headers={
                "Content-Type": "application/json", "X-Indeed-Signature": signature})
            return r.status_code

        tampered = bodies[0].replace(b"Tomasz", b"Tomas")
        assert tampered != bodies[0]
        assert await post(tampered, _signature(bodies[0])) == 401  # body changed after signing
        assert await post(bodies[0], _signature(bodies[0], "another-secret")) == 401  # wrong secret
        assert await post(bodies[0], "") == 401
        assert await post(bodies[0], hmac.new(SECRET.encode(), bodies[0], hashlib.sha1).hexdigest()) == 401  # hex
        statuses = [await post(b, _signature(b)) for b in bodies]
        assert statuses == [200, 200, 200]
        assert await post(bodies[1], _signature(bodies[1])) == 200  # Indeed re-sends: stored once
        await drain_queue()
    forget_receivers()
    with ctx.db.session() as s:
        assert len(s.execute(select(InboundEvent)).scalars().all()) == 3
    await _work(ctx, redis_url)

    assert count_care(ctx, "Applicant") == 3
    with ctx.db.session() as s:
        people = sorted((r.data for r in s.execute(select(CareRecord).where(CareRecord.care_type == "Applicant"))
                         .scalars()), key=lambda d: d["jobPostingRef"])
        runs = s.execute(select(SyncRun).where(SyncRun.integration_id == iid)).scalars().all()
    assert [(p["givenName"], p["familyName"], p["jobPostingRef"]) for p in people] == [
        ("Tomasz", "Nowak", "WCN-JOB-0001"), ("Grace", "Okafor", "WCN-JOB-0002"), ("Amelia", "Hart", "WCN-JOB-0003")]
    assert all(p["source"] == "Indeed" and p["stage"] == "applied" and p["phone"].startswith("+447911") for p in people)
    assert people[0]["email"] == "tomasz.nowak1@example.org"
    assert people[0]["appliedAt"].startswith("2026-11-28T08:01:00")
    assert runs and all(r.status == "succeeded" for r in runs), [(r.status, r.error) for r in runs]
    assert sum(int((r.counts or {}).get("created", 0)) for r in runs) == 3


async def test_job_postings_published_to_the_feed_by_the_worker(ctx: Any, redis_url: str, tmp_path: Path) -> None:
    design = yaml.safe_load((MAPPINGS / "JobPosting.yaml").read_text())
    with ctx.db.session() as s:
        integ = Integration(name="Indeed feed", connector_id="indeed", status="active",
                            operation_mode="full_writecarenotes",
                            connection_details={**CONFIG, "outbox_dir": str(tmp_path / "public")},
                            credentials_encrypted=ctx.box.encrypt({}), error_handling={})
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction="outbound", batch_size=5,
                                retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 2,
                                              "call_deadline_seconds": 10},
                                error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                streams=[{"stream": "jobs", "care_type": "JobPosting"}]))
        s.add(MappingDesign(integration_id=integ.id, stream="jobs", care_type="JobPosting", design=design))
        iid = str(integ.id)
    posting = {"title": "Night Care Assistant", "site": "Leeds", "hours": "Part time", "closingDate": "2026-12-31",
               "status": "open", "description": "<p>Nights at Rose Court & Harewood</p>"}
    records = [write_local(ctx.db, "JobPosting", {**posting, "title": f"Night Care Assistant {i}"}) for i in range(7)]
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    feed_file = tmp_path / "public" / "indeed_jobs.xml"

    async def run() -> SyncRun:
        run_id = await enqueue_run(ctx.db, pool, iid, "manual", requested_by="test")
        await _work(ctx, redis_url)
        done = runrepo.get_run(ctx.db, run_id)
        assert done.status == "succeeded", done.error
        return done

    try:
        first = await run()
        assert first.counts["written"] == 7 and first.counts.get("failed", 0) == 0
        jobs = parse_feed(feed_file.read_bytes()).jobs
        assert sorted(j["title"] for j in jobs) == [f"Night Care Assistant {i}" for i in range(7)]
        assert {j["jobtype"] for j in jobs} == {"parttime"} and len({j["referencenumber"] for j in jobs}) == 7
        assert (await run()).counts.get("written", 0) == 0  # nothing changed: nothing sent

        write_local(ctx.db, "JobPosting", {**posting, "title": "Night Senior Carer"}, record_id=records[3].id)
        write_local(ctx.db, "JobPosting", {**posting, "title": "Night Care Assistant 5", "status": "closed"},
                    record_id=records[5].id)
        third = await run()
        assert third.counts["written"] == 2
        jobs = parse_feed(feed_file.read_bytes()).jobs
        assert len(jobs) == 6 and "Night Senior Carer" in {j["title"] for j in jobs}
        assert "Night Care Assistant 5" not in {j["title"] for j in jobs}  # closed: out of the feed
    finally:
        await pool.aclose()


async def test_an_application_with_a_large_cv_inline_is_read_and_an_oversize_one_refused(ctx: Any) -> None:
    with ctx.db.session() as s:
        integration = svc.configure_integration(s, box=ctx.box, actor="admin@carehub.test", name="Indeed",
                                                connector_id="indeed", connection_details=CONFIG)
        hook, _ = svc.create_webhook(s, box=ctx.box, actor="admin@carehub.test", integration_id=integration.id,
                                     direction="inbound", secret=SECRET)
        iid, wid = integration.id, hook.id
    forget_receivers()
    application = _application(9)
    application["applicant"]["resume"]["file"]["data"] = base64.b64encode(b"%PDF-1.4 " + b"x" * 1_500_000).decode()
    big = json.dumps(application, separators=(",", ":")).encode()
    application["applicant"]["resume"]["file"]["data"] = "A" * 8_500_000
    huge = json.dumps(application, separators=(",", ":")).encode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=webhooks_app), base_url="http://hub") as hub:
        ok = await hub.post(f"/{iid}/{wid}", content=big, headers={"X-Indeed-Signature": _signature(big)})
        refused = await hub.post(f"/{iid}/{wid}", content=huge, headers={"X-Indeed-Signature": _signature(huge)})
        await drain_queue()
    forget_receivers()
    assert len(big) > 2_000_000 and (ok.status_code, refused.status_code) == (200, 413)
    with ctx.db.session() as s:
        stored = s.execute(select(InboundEvent)).scalars().all()
    assert len(stored) == 1 and stored[0].payload["applicant"]["resume"]["file"]["data"].startswith("JVBERi0xLjQg")
