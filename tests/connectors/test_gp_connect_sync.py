"""GP Connect through the real sync worker (provider sandbox on loopback): residents' medications become
Medication care records with dm+d codes; a resident who dissented is skipped, the others are stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy import select

from app.sync_jobs import enqueue_run
from connectors.sandboxes import gp_connect as gpc
from connectors.sandboxes.common import SandboxConfig
from storage import runs as runrepo
from storage.models import CareRecord, Integration, MappingDesign, SyncConfiguration

from .conftest import TEMPLATES
from .worker_harness import drain, serve


@pytest.fixture
def provider() -> Iterator[tuple[str, FastAPI]]:
    app = gpc.create_app(SandboxConfig(records=9))
    with serve(app) as url:
        yield url, app


async def _drain(ctx_app: Any, redis_url: str) -> None:
    await drain(ctx_app, redis_url, "gpc-test-worker")


async def test_residents_medications_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str,
                                                        provider: tuple[str, FastAPI]) -> None:
    url, app = provider
    residents = list(app.state.sandbox.extra["patients"])
    design = yaml.safe_load((TEMPLATES.parent / "mappings" / "gp_connect" / "Medication.yaml").read_text())
    details = {"base_url": url, "nhs_numbers": ", ".join(residents), "consumer_asid": "200000000359",
               "provider_asid": gpc.PROVIDER_ASID, "ods_code": "VM123", "organisation_name": "Willow Court",
               "sds_user_id": "111111111111", "sds_role_profile_id": "22222222222222", "practitioner_id": "7",
               "practitioner_family": "Jones", "practitioner_given": "Sam"}
    with ctx.db.session() as s:
        integ = Integration(name="GP records (GP Connect)", connector_id="gp_connect", status="active",
                            operation_mode="external_primary", connection_details=details,
                            credentials_encrypted=ctx.box.encrypt({}), error_handling={})
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=50,
                                retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 3,
                                              "call_deadline_seconds": 10},
                                error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                streams=[{"stream": "medications", "care_type": "Medication"}]))
        s.add(MappingDesign(integration_id=integ.id, stream="medications", care_type="Medication", design=design))
        integ_id = str(integ.id)

    run1 = await enqueue_run(ctx.db, arq, integ_id, "manual", requested_by="test")
    await _drain(ctx, redis_url)
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1.status == "succeeded", r1.error
    with ctx.db.session() as s:
        meds = [r.data for r in s.execute(select(CareRecord).where(CareRecord.care_type == "Medication")).scalars()]
    assert meds and r1.counts["created"] == len(meds)
    on_record = {m["residentRef"] for m in meds}
    assert residents[gpc.NO_CONSENT_INDEX] not in on_record and on_record <= set(residents)
    assert all(m["dmdCode"] in {c for c, _n, _d in gpc.MEDICINES} for m in meds)

    run2 = await enqueue_run(ctx.db, arq, integ_id, "manual")  # no change feed: a full re-read, nothing new
    await _drain(ctx, redis_url)
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2.status == "succeeded" and r2.counts["created"] == 0 and r2.counts["updated"] == 0
