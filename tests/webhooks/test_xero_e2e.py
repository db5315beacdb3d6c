"""A signed event from the Xero sandbox leads to the changed invoice in the care store.

Real parts over loopback: the Xero sandbox (its own signed webhooks and intent-to-receive check), the inbound
receiver on uvicorn, the arq worker functions (process_inbound_event, run_sync) on the test Redis, the sync
engine and the care store on the test database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func
from sqlmodel import select
from starlette.applications import Starlette
from starlette.routing import Mount

from app.sync_jobs import enqueue_run, run_sync
from app.webhooks_in import forget_receivers, process_inbound_event, webhooks_app
from connectors.sandboxes.common import SandboxConfig
from connectors.sandboxes.xero import TENANT_ID
from connectors.sandboxes.xero import create_app as xero_app
from storage import integrations as svc
from storage.models import CareRecord, ExternalLink, InboundEvent, SyncRun

ROOT = Path(__file__).resolve().parents[2]
KEY = "sandbox-webhook-key-0123456789"


def _serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


async def _work(ctx: Any, redis_url: str) -> None:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))

    async def startup(job_ctx: dict[str, Any]) -> None:
        job_ctx["app"] = ctx
        job_ctx["worker_id"] = "e2e-worker"

    worker = Worker(functions=[func(run_sync, name="run_sync", max_tries=20),
                               func(process_inbound_event, name="process_inbound_event", max_tries=20)],
                    redis_pool=pool, burst=True, poll_delay=0.01, handle_signals=False, on_startup=startup,
                    keep_result=0, max_jobs=4)
    await worker.async_run()
    await worker.close()
    await pool.aclose()


async def test_signed_xero_event_updates_the_invoice(ctx: Any, redis_url: str) -> None:
    forget_receivers()
    receiver_url, receiver, receiver_thread = _serve(Starlette(routes=[Mount("/webhooks", app=webhooks_app)]))
    design = yaml.safe_load((ROOT / "templates/mappings/xero/Invoice.yaml").read_text())
    with ctx.db.session() as s:
        integration = svc.configure_integration(
            s, box=ctx.box, actor="admin@carehub.test", name="Xero (sandbox)", connector_id="xero",
            status="active", operation_mode="external_primary",
            sync_settings={"streams": [{"stream": "invoices", "care_type": "Invoice"}], "batch_size": 50,
                           "max_change_share": 1.0, "sync_frequency": {"kind": "manual"},
                           "retry_policy": {"base_seconds": 0.05, "cap_seconds": 0.5, "max_attempts": 10}})
        svc.save_mapping_design(s, actor="admin@carehub.test", integration_id=integration.id, design=design)
        hook, _ = svc.create_webhook(s, box=ctx.box, actor="admin@carehub.test", integration_id=integration.id,
                                     direction="inbound", secret=KEY)
        iid, wid = integration.id, hook.id
    sandbox = xero_app(SandboxConfig(records={"contacts": 10, "invoices": 15}, webhook_key=KEY,
                                     webhook_url=f"{receiver_url}/webhooks/{iid}/{wid}"))
    sandbox_url, sandbox_server, sandbox_thread = _serve(sandbox)
    try:
        tokens = httpx.post(f"{sandbox_url}/_sandbox/tokens").json()
        with ctx.db.session() as s:
            svc.update_integration(s, box=ctx.box, actor="admin@carehub.test", integration_id=iid,
                                   connection_details={"tenant_id": TENANT_ID, "base_url": sandbox_url},
                                   credentials={"client_id": "sandbox-client", "client_secret": "sandbox-secret",
                                                "access_token": tokens["access_token"],
                                                "refresh_token": tokens["refresh_token"],
                                                "expires_at": time.time() + 1700})
        check = httpx.post(f"{sandbox_url}/_sandbox/webhooks/intent-to-receive").json()
        assert check["passed"], check  # Xero's intent to receive: 200 for the good signature, 401 for the bad

        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        await enqueue_run(ctx.db, pool, iid, trigger="manual", requested_by="e2e")
        await pool.aclose()
        await _work(ctx, redis_url)
        with ctx.db.session() as s:
            links = {link.external_id: link.record_id for link in
                     s.exec(select(ExternalLink).where(ExternalLink.integration_id == iid)).all()}
        assert len(links) >= 10
        invoice_id = sorted(links)[0]

        auth = {"Authorization": f"Bearer {tokens['access_token']}", "xero-tenant-id": TENANT_ID}
        current = httpx.get(f"{sandbox_url}/api.xro/2.0/Invoices/{invoice_id}", headers=auth).json()["Invoices"][0]
        changed = {k: current[k] for k in ("InvoiceID", "Type", "Contact", "Date", "DueDate", "LineItems", "Status")
                   if k in current}
        answer = httpx.post(f"{sandbox_url}/api.xro/2.0/Invoices",
                            json={"Invoices": [{**changed, "InvoiceNumber": "INV-WEBHOOK-E2E"}]}, headers=auth)
        assert answer.status_code == 200, answer.text
        with ctx.db.session() as s:
            assert len(s.exec(select(InboundEvent)).all()) == 1  # the signed event was verified and stored
        from app.webhooks_in import drain_queue

        await drain_queue()
        await _work(ctx, redis_url)
        with ctx.db.session() as s:
            record = s.get(CareRecord, links[invoice_id])
            assert record is not None and record.data["number"] == "INV-WEBHOOK-E2E"
            runs = s.exec(select(SyncRun).where(SyncRun.trigger == "webhook")).all()
            assert len(runs) == 1 and runs[0].status == "succeeded" and runs[0].params["streams"] == ["invoices"]
            assert s.exec(select(InboundEvent)).one().processed

        # Out of order: a newer change lands, then an older event for the same invoice arrives late.
        first_event = sandbox.state.sandbox.webhooks_sent[-1]["events"][0]
        answer = httpx.post(f"{sandbox_url}/api.xro/2.0/Invoices",
                            json={"Invoices": [{**changed, "InvoiceNumber": "INV-WEBHOOK-NEWER"}]}, headers=auth)
        assert answer.status_code == 200
        await drain_queue()
        await _work(ctx, redis_url)
        late = {"events": [{**first_event, "eventDateUtc": "2020-01-01T00:00:00.000"}], "firstEventSequence": 1,
                "lastEventSequence": 1, "entropy": "LATEOLDEREVENT000000"}
        raw = json.dumps(late, separators=(",", ":")).encode()
        signature = base64.b64encode(hmac.new(KEY.encode(), raw, hashlib.sha256).digest()).decode()
        r = httpx.post(f"{receiver_url}/webhooks/{iid}/{wid}", content=raw, headers={"x-xero-signature": signature})
        assert r.status_code == 200
        await _work(ctx, redis_url)
        with ctx.db.session() as s:
            record = s.get(CareRecord, links[invoice_id])
            assert record is not None and record.data["number"] == "INV-WEBHOOK-NEWER"
            assert len(s.exec(select(InboundEvent)).all()) == 3
    finally:
        sandbox_server.should_exit = True
        receiver.should_exit = True
        sandbox_thread.join(10)
        receiver_thread.join(10)
        forget_receivers()
