"""Open Banking transactions end to end through the real sync worker (sandbox bank on loopback): a full read
over every Links.Next page, then increments from the last booking time; BankTransaction care records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy import select

from app.sync_jobs import enqueue_run
from connectors.sandboxes import open_banking as ob
from connectors.sandboxes.common import SandboxConfig
from storage import runs as runrepo
from storage.models import CareRecord, Integration, MappingDesign, SyncConfiguration

from .conftest import TEMPLATES
from .worker_harness import count_care, drain, serve


@pytest.fixture
def bank() -> Iterator[tuple[str, FastAPI]]:
    app = ob.create_app(SandboxConfig(records=40))
    with serve(app) as url:
        yield url, app


async def _drain(ctx_app: Any, redis_url: str) -> None:
    await drain(ctx_app, redis_url, "ob-test-worker")


def _count(ctx: Any) -> int:
    return count_care(ctx, "BankTransaction")


async def test_bank_transactions_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str,
                                                    bank: tuple[str, FastAPI]) -> None:
    url, _app = bank
    tokens = httpx.post(f"{url}/_sandbox/tokens", timeout=5).json()  # the demo consent (already authorised)
    design = yaml.safe_load((TEMPLATES.parent / "mappings" / "open_banking" / "BankTransaction.yaml").read_text())
    with ctx.db.session() as s:
        integ = Integration(name="Bank (Open Banking)", connector_id="open_banking", status="active",
                            operation_mode="external_primary",
                            connection_details={"environment": "sandbox", "base_url": url},
                            credentials_encrypted=ctx.box.encrypt({
                                "client_id": ob.CLIENT_ID, "private_key": "", "access_token": tokens["access_token"],
                                "refresh_token": tokens["refresh_token"], "expires_at": time.time() + 1700}),
                            error_handling={})
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=50,
                                retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 3,
                                              "call_deadline_seconds": 10},
                                error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                streams=[{"stream": "transactions", "care_type": "BankTransaction"}]))
        s.add(MappingDesign(integration_id=integ.id, stream="transactions", care_type="BankTransaction",
                            design=design))
        integ_id = str(integ.id)

    run1 = await enqueue_run(ctx.db, arq, integ_id, "manual", requested_by="test")
    await _drain(ctx, redis_url)
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 120 and r1.counts["created"] == 120 and _count(ctx) == 120

    httpx.post(f"{url}/_sandbox/ob/post-transaction", json={"account_id": "acc-003", "amount": -42.5,
                                                            "information": "HAIRDRESSER"}, timeout=5)
    run2 = await enqueue_run(ctx.db, arq, integ_id, "manual")
    await _drain(ctx, redis_url)
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2.status == "succeeded", r2.error
    assert r2.counts["created"] == 1 and r2.counts["read"] <= 3 and _count(ctx) == 121
    with ctx.db.session() as s:
        newest = s.execute(select(CareRecord).where(CareRecord.care_type == "BankTransaction")
                           .order_by(CareRecord.created_at.desc())).scalars().first()
    assert newest is not None and newest.data["amountPence"] == -4250 and newest.data["description"] == "HAIRDRESSER"
