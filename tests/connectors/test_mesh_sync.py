"""End to end through the real sync worker: lab results from a MESH mailbox (sandbox served on loopback)
become Observation care records; messages leave the inbox only once a committed checkpoint names them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import ArqRedis
from fastapi import FastAPI

from app.sync_jobs import enqueue_run
from connectors.sandboxes import mesh as mesh_sandbox
from connectors.sandboxes.common import SandboxConfig
from storage import runs as runrepo
from storage.models import Integration, MappingDesign, SyncConfiguration

from .conftest import TEMPLATES
from .worker_harness import count_care, drain, serve


@pytest.fixture
def served() -> Iterator[tuple[str, FastAPI]]:
    app = mesh_sandbox.create_app(SandboxConfig(records=6))
    with serve(app) as url:
        yield url, app


async def _drain(ctx_app: Any, redis_url: str) -> None:
    await drain(ctx_app, redis_url, "mesh-test-worker")


def _observations(ctx: Any) -> int:
    return count_care(ctx, "Observation")


async def test_lab_results_from_mesh_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str,
                                                        served: tuple[str, FastAPI]) -> None:
    url, app = served
    world = app.state.world
    obx = sum(m.body.count(b"\rOBX|") for m in world.messages.values())
    design = yaml.safe_load((TEMPLATES.parent / "mappings" / "mesh" / "Observation.yaml").read_text())
    with ctx.db.session() as s:
        integ = Integration(name="Pathology results (MESH)", connector_id="mesh", status="active",
                            operation_mode="external_primary",
                            connection_details={"mailbox_id": mesh_sandbox.MAILBOX, "base_url": url},
                            credentials_encrypted=ctx.box.encrypt({"mailbox_password": mesh_sandbox.PASSWORD,
                                                                   "shared_key": mesh_sandbox.SHARED_KEY}),
                            error_handling={})
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=50,
                                retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 3,
                                              "call_deadline_seconds": 10},
                                error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                streams=[{"stream": "lab_results", "care_type": "Observation"}]))
        s.add(MappingDesign(integration_id=integ.id, stream="lab_results", care_type="Observation", design=design))
        integ_id = str(integ.id)

    run1 = await enqueue_run(ctx.db, arq, integ_id, "manual", requested_by="test")
    await _drain(ctx, redis_url)
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == obx and r1.counts["created"] == obx and _observations(ctx) == obx
    assert len(world.inboxes[mesh_sandbox.MAILBOX]) == 6  # stored, not yet acknowledged

    run2 = await enqueue_run(ctx.db, arq, integ_id, "manual")
    await _drain(ctx, redis_url)
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2.status == "succeeded" and r2.counts["read"] == 0
    assert world.inboxes[mesh_sandbox.MAILBOX] == []  # acknowledged from the committed checkpoint

    with open(TEMPLATES.parents[1] / "tests" / "connectors" / "samples" / "clinisys_oru_r01.hl7", newline="") as fh:
        content = fh.read()
    httpx.post(f"{url}/_sandbox/mesh/deliver", json={"content": content}, timeout=5).raise_for_status()
    run3 = await enqueue_run(ctx.db, arq, integ_id, "manual")
    await _drain(ctx, redis_url)
    r3 = runrepo.get_run(ctx.db, run3)
    assert r3.status == "succeeded" and r3.counts["created"] == 7 and _observations(ctx) == obx + 7
