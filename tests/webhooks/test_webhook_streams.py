"""Webhook-fed streams (``source: webhook``): LinkedIn Apply Connect applications pushed by the LinkedIn sandbox,
signed by it (X-LI-Signature), through the inbound receiver mounted at ``/webhooks`` as in the web app, the arq
jobs (process_inbound_event, run_sync) on the test Redis and the care store: one delivery is one applicant; a
re-sent delivery makes no second; a tampered one is 401 and makes none; a run reads only unconsumed deliveries."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func
from fastapi import FastAPI
from sqlalchemy import func as sqlfunc
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.routing import Mount

from app.sync_jobs import run_sync
from app.webhook_streams import OVERLAP, WebhookStreamReader, changed_streams, webhook_streams
from app.webhooks_in import drain_queue, forget_receivers, process_inbound_event, webhooks_app
from connectors.errors import ManifestError
from connectors.manifest import load_manifest, parse_manifest
from connectors.sandboxes.common import SandboxConfig
from connectors.sandboxes.linkedin_talent import CLIENT_ID, CLIENT_SECRET, ORGANIZATION
from connectors.sandboxes.linkedin_talent import create_app as linkedin_app
from storage import integrations as svc
from storage import webhooks as store
from storage.models import CareRecord, ExternalLink, InboundEvent, SyncRun

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "templates/connectors/linkedin_talent.yaml"
ACTOR = "admin@carehub.test"


async def _work(ctx: Any, redis_url: str) -> None:
    """Run the queued inbound-event and sync jobs until the queue is empty (a burst worker)."""
    await drain_queue()
    pool = await create_pool(RedisSettings.from_dsn(redis_url))

    async def startup(job_ctx: dict[str, Any]) -> None:
        job_ctx["app"] = ctx
        job_ctx["worker_id"] = "webhook-stream-worker"

    worker = Worker(functions=[func(run_sync, name="run_sync", max_tries=20),
                               func(process_inbound_event, name="process_inbound_event", max_tries=20)],
                    redis_pool=pool, burst=True, poll_delay=0.01, handle_signals=False, on_startup=startup,
                    keep_result=0, max_jobs=4)
    await worker.async_run()
    await worker.close()
    await pool.aclose()


def _integration(ctx: Any) -> tuple[str, str]:
    design = yaml.safe_load((ROOT / "templates/mappings/linkedin_talent/Applicant.yaml").read_text())
    with ctx.db.session() as s:
        integration = svc.configure_integration(
            s, box=ctx.box, actor=ACTOR, name="LinkedIn (Apply Connect)", connector_id="linkedin_talent",
            status="active", operation_mode="external_primary",
            credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            # No call goes to LinkedIn for pushed applications; a loopback address keeps the test offline.
            connection_details={"base_url": "http://127.0.0.1:9", "organization_urn": ORGANIZATION},
            sync_settings={"streams": [{"stream": "applications", "care_type": "Applicant"}], "batch_size": 50,
                           "max_change_share": 1.0, "sync_frequency": {"kind": "manual"},
                           "retry_policy": {"base_seconds": 0.05, "cap_seconds": 0.5, "max_attempts": 10}})
        svc.save_mapping_design(s, actor=ACTOR, integration_id=integration.id, design=design)
        hook, _ = svc.create_webhook(s, box=ctx.box, actor=ACTOR, integration_id=integration.id,
                                     direction="inbound", secret=CLIENT_SECRET)
        return integration.id, hook.id


def _count(ctx: Any, model: Any) -> int:
    with ctx.db.session() as s:
        return int(s.exec(select(sqlfunc.count()).select_from(model)).one())


def _applicants(ctx: Any) -> list[CareRecord]:
    with ctx.db.session() as s:
        return list(s.exec(select(CareRecord).where(CareRecord.care_type == "Applicant")).all())


def _webhook_runs(ctx: Any) -> list[SyncRun]:
    with ctx.db.session() as s:
        return list(s.exec(select(SyncRun).where(SyncRun.trigger == "webhook")
                           .order_by(col(SyncRun.queued_at))).all())


async def _apply(linkedin: FastAPI, job: str) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=linkedin), base_url="http://li") as c:
        answer = (await c.post("/_sandbox/apply", json={"externalJobPostingId": job})).json()
    assert answer["delivered"] and answer["attempts"] == 1, answer
    return dict(answer)


def test_the_manifest_declares_the_stream_as_webhook_fed() -> None:
    manifest = load_manifest(MANIFEST)
    assert manifest.streams["applications"].source == "webhook"
    assert manifest.streams["job_postings"].source == "poll"  # the default
    assert set(webhook_streams("linkedin_talent")) == {"applications"}
    data = yaml.safe_load(MANIFEST.read_text())
    data["streams"]["applications"]["source"] = "push"
    with pytest.raises(ManifestError, match="source") as err:
        parse_manifest(data)
    assert {"poll", "webhook"} <= set(err.value.allowed)
    body = {"jobApplicationId": "urn:li:jobApplication:1", "appliedAt": 1764316800000}
    changed = changed_streams("linkedin_talent", body)
    assert list(changed) == ["applications"] and list(changed["applications"]) == ["urn:li:jobApplication:1"]
    when = changed["applications"]["urn:li:jobApplication:1"]
    assert when is not None and when.isoformat() == "2025-11-28T08:00:00+00:00"  # epoch milliseconds
    assert changed_streams("linkedin_talent", {"somethingElse": 1}) == {}


async def test_a_signed_delivery_becomes_one_applicant_once(ctx: Any, redis_url: str) -> None:
    forget_receivers()
    iid, wid = _integration(ctx)
    hub = Starlette(routes=[Mount("/webhooks", app=webhooks_app)])  # mounted as app/web.py mounts it
    linkedin = linkedin_app(SandboxConfig(records={"job_postings": 10, "job_posting_tasks": 0},
                                          webhook_url=f"http://hub/webhooks/{iid}/{wid}"))
    linkedin.state.webhook_transport = httpx.ASGITransport(app=hub)
    try:
        first = await _apply(linkedin, "WCN-JOB-00002")
        assert _count(ctx, InboundEvent) == 1
        await _work(ctx, redis_url)
        people = _applicants(ctx)
        assert len(people) == 1, [(r.status, r.error) for r in _webhook_runs(ctx)]
        sent = linkedin.state.sandbox.extra["applications"][0]
        assert people[0].data["givenName"] == sent["applicant"]["firstName"]
        assert people[0].data["email"] == sent["applicant"]["email"]
        assert people[0].data["jobPostingRef"] == "WCN-JOB-00002" and people[0].data["source"] == "LinkedIn"
        with ctx.db.session() as s:
            links = s.exec(select(ExternalLink).where(ExternalLink.integration_id == iid)).all()
        assert [(lk.external_id, lk.record_id) for lk in links] == [(first["application"], people[0].id)]
        runs = _webhook_runs(ctx)
        assert len(runs) == 1 and runs[0].status == "succeeded", [r.error for r in runs]
        assert runs[0].params["streams"] == ["applications"]
        assert runs[0].counts["read"] == 1 and runs[0].counts["created"] == 1

        # LinkedIn re-sends the same delivery (byte for byte, same signature): stored once, no second applicant.
        raw = json.dumps(sent, separators=(",", ":")).encode()
        signature = _signature(raw)
        assert linkedin.state.sandbox.webhooks_sent == [sent]  # what the sandbox signed and sent
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub), base_url="http://hub") as c:
            again = await c.post(f"/webhooks/{iid}/{wid}", content=raw,
                                 headers={"Content-Type": "application/json", "X-LI-Signature": signature})
            assert again.status_code == 200
            # The same application in a differently serialised body (a new, validly signed delivery): read once
            # more by the next run, still one applicant.
            spaced = json.dumps(sent, indent=1).encode()
            other = await c.post(f"/webhooks/{iid}/{wid}", content=spaced,
                                 headers={"Content-Type": "application/json", "X-LI-Signature": _signature(spaced)})
            assert other.status_code == 200
            # Tampered: the body changed after signing. 401, nothing stored.
            forged = raw.replace(b"WCN-JOB-00002", b"WCN-JOB-00003")
            assert forged != raw
            bad = await c.post(f"/webhooks/{iid}/{wid}", content=forged,
                               headers={"Content-Type": "application/json", "X-LI-Signature": signature})
            assert bad.status_code == 401
            unsigned = await c.post(f"/webhooks/{iid}/{wid}", content=raw, headers={"Content-Type": "application/json"})
            assert unsigned.status_code == 401
        assert _count(ctx, InboundEvent) == 2  # the first delivery and the re-serialised one
        await _work(ctx, redis_url)
        assert len(_applicants(ctx)) == 1 and _applicants(ctx)[0].version == 1
        runs = _webhook_runs(ctx)
        assert len(runs) == 2 and runs[1].status == "succeeded"
        assert runs[1].counts["read"] == 1 and runs[1].counts["created"] == 0  # only the unconsumed delivery

        # A second candidate: the next run reads only that delivery.
        await _apply(linkedin, "WCN-JOB-00003")
        await _work(ctx, redis_url)
        people = _applicants(ctx)
        assert len(people) == 2
        assert {p.data["jobPostingRef"] for p in people} == {"WCN-JOB-00002", "WCN-JOB-00003"}
        runs = _webhook_runs(ctx)
        assert len(runs) == 3 and runs[2].counts["read"] == 1 and runs[2].counts["created"] == 1
        with ctx.db.session() as s:
            assert all(e.processed for e in s.exec(select(InboundEvent)).all())
    finally:
        forget_receivers()


def _signature(raw: bytes) -> str:
    """X-LI-Signature as LinkedIn computes it (independently of the code under test)."""
    import hashlib
    import hmac

    return "hmacsha256=" + hmac.new(CLIENT_SECRET.encode(), raw, hashlib.sha256).hexdigest()


async def test_a_delivery_committed_after_a_newer_one_was_read_is_still_consumed_once(ctx: Any) -> None:
    iid, _ = _integration(ctx)
    spec = webhook_streams("linkedin_talent")
    reader = WebhookStreamReader(ctx.db, iid, spec, None)

    def deliver(n: int, shift: timedelta = timedelta(0)) -> None:
        body = {"jobApplicationId": f"urn:li:jobApplication:{n}", "externalJobPostingId": "WCN-JOB-00001",
                "appliedAt": 1764316800000 + n, "applicant": {"firstName": "A", "lastName": f"B{n}"}}
        with ctx.db.session() as s:
            assert store.claim_inbound(s, delivery_id=f"d{n}", integration_id=iid, payload=body)
            if shift:
                row = s.get(InboundEvent, f"d{n}")
                assert row is not None
                row.received_at = row.received_at - shift
                s.add(row)

    async def read(cp: dict[str, Any] | None) -> tuple[list[str], dict[str, Any] | None]:
        ids: list[str] = []
        last: dict[str, Any] | None = cp
        async for page in reader.read("applications", cp):
            ids.extend(r.external_id for r in page.records)
            last = dict(page.checkpoint) if page.checkpoint else None
        return ids, last

    deliver(1)
    deliver(2)
    ids, cp = await read(None)
    assert ids == ["urn:li:jobApplication:1", "urn:li:jobApplication:2"]
    # Stamped a minute before the newest one already read, committed only now (a slow transaction).
    deliver(3, timedelta(minutes=1))
    deliver(4)
    ids, cp = await read(cp)
    assert ids == ["urn:li:jobApplication:3", "urn:li:jobApplication:4"]
    ids, again = await read(cp)
    assert ids == [] and again == cp


async def test_the_checkpoint_keeps_only_the_ids_inside_the_overlap(ctx: Any) -> None:
    iid, _ = _integration(ctx)
    reader = WebhookStreamReader(ctx.db, iid, webhook_streams("linkedin_talent"), None)
    with ctx.db.session() as s:
        for n, age in ((1, OVERLAP * 2), (2, timedelta(0))):
            assert store.claim_inbound(s, delivery_id=f"d{n}", integration_id=iid,
                                       payload={"jobApplicationId": f"urn:li:jobApplication:{n}"})
            row = s.get(InboundEvent, f"d{n}")
            assert row is not None
            row.received_at = row.received_at - age
            s.add(row)
    pages = [p async for p in reader.read("applications", None)]
    assert [r.external_id for p in pages for r in p.records] == ["urn:li:jobApplication:1", "urn:li:jobApplication:2"]
    cp = pages[-1].checkpoint
    assert cp is not None and list(cp["recent"]) == ["d2"]
    again = [p async for p in reader.read("applications", cp)]
    assert [r.external_id for p in again for r in p.records] == []
