"""BambooHR connector against its sandbox over real HTTP (httpx.ASGITransport): manifest, full and
incremental reads, throttling and 5xx storms, writes that stay single when retried, signed webhooks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from connectors.manifest import Backoff, ConnectorManifest, RateLimits, load_manifest
from connectors.runtime import ConnectorSession
from connectors.sandboxes import bamboohr
from connectors.sandboxes.common import CARE_HOMES, SandboxConfig
from connectors.webhooks import handle_delivery, verify
from engine.ports import OutboundRecord

MANIFEST = Path(__file__).resolve().parents[2] / "templates" / "connectors" / "bamboohr.yaml"
CONFIG = {"company_domain": bamboohr.COMPANY_DOMAIN, "time_off_start": "2026-01-01", "time_off_end": "2026-12-31"}


@pytest.fixture(scope="module")
def manifest() -> ConnectorManifest:
    return load_manifest(MANIFEST)


def session(manifest: ConnectorManifest, app: FastAPI, **kw: Any) -> ConnectorSession:
    rules = manifest.errors.model_copy(update={"backoff": Backoff(base_seconds=0.01, cap_seconds=0.05),
                                               "default_retry_after_seconds": 0.01, "deadline_seconds": 60})
    secrets = kw.pop("secrets", {"api_key": bamboohr.API_KEY})
    return ConnectorSession(manifest, kw.pop("config", CONFIG), secrets, base_url="http://bamboohr.sandbox",
                            transport=httpx.ASGITransport(app=app), connection_id=f"bhr-{id(app)}",
                            error_rules=rules, rate_limits=RateLimits(), **kw)


async def faults(app: FastAPI, **patch: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sb") as c:
        (await c.post("/_sandbox/faults", json=patch)).raise_for_status()


async def read_ids(s: ConnectorSession, stream: str, checkpoint: dict[str, Any] | None = None
                   ) -> tuple[list[str], dict[str, Any] | None]:
    ids: list[str] = []
    last: dict[str, Any] | None = None
    async for page in s.read(stream, checkpoint):
        ids += [r.external_id for r in page.records]
        last = page.checkpoint
    return ids, last


def test_manifest_validates_with_described_fields(manifest: ConnectorManifest) -> None:
    assert manifest.id == "bamboohr" and manifest.auth.type == "basic"
    assert set(manifest.streams) == {"employees", "employees_directory", "employee_changes", "time_off"}
    for name, stream in manifest.streams.items():
        assert stream.fields, name
        for f in stream.fields:
            assert len(f.description) > 5, (name, f.name)
    assert manifest.webhooks is not None and manifest.webhooks.signed == "body_timestamp"


async def test_full_read_of_every_stream(manifest: ConnectorManifest) -> None:
    app = bamboohr.create_app(SandboxConfig(records={"employees": 180, "time_off": 120}))
    async with session(manifest, app) as s:
        ids, cp = await read_ids(s, "employees")
        assert len(ids) == len(set(ids)) == 180
        assert cp and cp["since"].startswith("2024-01-01T20:")  # newest lastChanged of the seed (179 x 7 min)
        directory, _ = await read_ids(s, "employees_directory")
        active = sum(1 for r in app.state.sandbox.datasets["employees"].iter() if r["status"] == "Active")
        assert len(directory) == active
        off, _ = await read_ids(s, "time_off")
        assert len(off) == len(set(off)) == 120  # the seed's requests all fall in 2026
        sample = await s.sample("employees", 3)
        assert sample[0].data["location"] in CARE_HOMES and sample[0].data["country"] == "United Kingdom"
        assert s.stats.failed_calls == 0


async def test_wrong_api_key_is_explained(manifest: ConnectorManifest) -> None:
    app = bamboohr.create_app(SandboxConfig(records=5))
    async with session(manifest, app, secrets={"api_key": "wrong"}) as s:
        result = await s.test_connection()
    assert not result.ok and "did not accept the credentials" in result.reason


async def test_incremental_reads_pick_up_only_changes(manifest: ConnectorManifest) -> None:
    app = bamboohr.create_app(SandboxConfig(records={"employees": 120, "time_off": 10}))
    async with session(manifest, app) as s:
        _, cp = await read_ids(s, "employees")
        _, changes_cp = await read_ids(s, "employee_changes", {"since": "2024-01-01T00:00:00Z"})
        changed = [bamboohr.employee_id(i) for i in (3, 50, 99)]
        outcomes = await s.write("employees", [OutboundRecord(f"k-{e}", {"jobTitle": "Senior Care Assistant"}, e)
                                               for e in changed])
        assert all(o.ok and o.external_id in changed for o in outcomes)
        ids, cp2 = await read_ids(s, "employees", cp)
        # lastChanged >= since: the boundary record of the last read may come again (an upsert), nothing else
        assert set(changed) <= set(ids) and len(ids) <= len(changed) + 1
        assert cp2 and cp and cp2["since"] > cp["since"]
        recent, _ = await read_ids(s, "employee_changes", changes_cp)
        assert set(changed) <= set(recent) and len(recent) <= len(changed) + 1
        again, _ = await read_ids(s, "employees", cp2)
        # lastChanged has one-second resolution: only records of that last second can come again
        assert set(again) <= set(changed)


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_end_with_every_record_and_no_failed_call(manifest: ConnectorManifest, storm: str) -> None:
    app = bamboohr.create_app(SandboxConfig(records={"employees": 150, "time_off": 60}))
    await faults(app, **{storm: 6, "retry_after": "0", "error_status": 502})
    async with session(manifest, app) as s:
        ids, _ = await read_ids(s, "employees")
        off, _ = await read_ids(s, "time_off")
    assert len(set(ids)) == 150 and len(set(off)) == 60
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_writes_retried_through_failures_are_applied_once(manifest: ConnectorManifest) -> None:
    app = bamboohr.create_app(SandboxConfig(records={"employees": 30, "time_off": 20}))
    state = app.state.sandbox
    emp = bamboohr.employee_id(7)
    req = next(r for r in state.datasets["time_off"].iter() if r["status"]["status"] == "requested")
    async with session(manifest, app) as s:
        await faults(app, storm_5xx=2, storm_429=1, retry_after="0")
        record = OutboundRecord("emp-7-v1", {"jobTitle": "Registered Nurse", "department": "Nursing"}, emp)
        first = await s.write("employees", [record])
        second = await s.write("employees", [record])  # the engine re-sending after a crash
        approve = OutboundRecord("off-1", {"status": "approved", "note": "Cover arranged"}, req["id"])
        third = await s.write("time_off", [approve])
        fourth = await s.write("time_off", [approve])
    assert all(o[0].ok for o in (first, second, third, fourth))
    assert first[0].external_id == emp and third[0].external_id == req["id"]
    employees = state.datasets["employees"]
    assert list(employees.overlay) == [emp]  # one stored version, not two records
    assert employees.get(emp)["jobTitle"] == "Registered Nurse"
    assert sum(1 for r in employees.iter() if r["id"] == emp) == 1
    assert state.datasets["time_off"].get(req["id"])["status"]["status"] == "approved"
    assert s.stats.failed_calls == 0


async def test_validation_error_carries_bamboohr_message(manifest: ConnectorManifest) -> None:
    app = bamboohr.create_app(SandboxConfig(records=5))
    async with session(manifest, app) as s:
        out = await s.write("employees", [OutboundRecord("bad", {"id": "999"}, bamboohr.employee_id(1))])
    assert not out[0].ok and out[0].error_code == "400"
    assert out[0].error_message == "Fields cannot be updated: id"


async def test_signed_webhook_delivery_verifies_and_tampering_fails(manifest: ConnectorManifest) -> None:
    assert manifest.webhooks is not None
    spec = manifest.webhooks
    key = "whk-private-key-for-tests"
    received: list[tuple[int, dict[str, Any]]] = []
    receiver = FastAPI()

    @receiver.post("/hooks/bamboohr")
    async def hook(request: Request) -> Response:
        raw = await request.body()
        result = handle_delivery(spec, key, dict(request.headers), raw)
        received.append((result.status, result.payload or {}))
        return Response(status_code=result.status)

    app = bamboohr.create_app(SandboxConfig(records=20, webhook_url="http://receiver/hooks/bamboohr", webhook_key=key))
    app.state.webhook_transport = httpx.ASGITransport(app=receiver)
    async with session(manifest, app) as s:
        out = await s.write("employees", [OutboundRecord("w1", {"mobilePhone": "07700 900123"},
                                                         bamboohr.employee_id(4))])
    assert out[0].ok
    assert received and received[0][0] == 200
    assert received[0][1]["employees"][0]["changedFields"] == ["mobilePhone"]

    body = json.dumps({"employees": [{"id": "104", "action": "Updated"}]}).encode()
    ts = str(int(time.time()))
    good = {"X-BambooHR-Signature": bamboohr.sign_webhook(key, body, ts), "X-BambooHR-Timestamp": ts}
    assert verify(spec, key, good, body)
    assert not verify(spec, key, good, body.replace(b"104", b"105"))
    assert not verify(spec, "another-key", good, body)
    old = str(int(time.time()) - 301)
    stale = {"X-BambooHR-Signature": bamboohr.sign_webhook(key, body, old), "X-BambooHR-Timestamp": old}
    assert not verify(spec, key, stale, body)


async def test_reads_through_the_sandbox_mounted_like_the_web_app(manifest: ConnectorManifest) -> None:
    from connectors.sandboxes import mount_sandboxes

    host = FastAPI()
    mounted = mount_sandboxes(host, config=SandboxConfig(records=12), only=["bamboohr"])
    async with ConnectorSession(manifest, CONFIG, mounted["bamboohr"].state.credentials,
                                base_url="http://carehub.local/sandbox/bamboohr",
                                transport=httpx.ASGITransport(app=host), connection_id="bhr-mounted") as s:
        ids, _ = await read_ids(s, "employees")
    assert len(ids) == sum(1 for _ in mounted["bamboohr"].state.sandbox.datasets["employees"].iter())
