"""Deputy connector against its sandbox over real HTTP (httpx.ASGITransport): QUERY paging with start/max,
incremental on Modified, rotating OAuth tokens refreshed mid-read, storms, creates that stay single when a
reply is lost, topic webhooks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from connectors.auth import OutgoingRequest
from connectors.manifest import Backoff, ConnectorManifest, RateLimits, load_manifest
from connectors.runtime import ConnectorSession
from connectors.sandboxes import deputy
from connectors.sandboxes.common import SandboxConfig
from engine.ports import OutboundRecord

MANIFEST = Path(__file__).resolve().parents[2] / "templates" / "connectors" / "deputy.yaml"
CONFIG = {"install": deputy.INSTALL, "geo": deputy.GEO}


@pytest.fixture(scope="module")
def manifest() -> ConnectorManifest:
    return load_manifest(MANIFEST)


def tokens(app: FastAPI) -> dict[str, Any]:
    tok = app.state.sandbox.issue_tokens()
    return {"client_id": "carehub", "client_secret": "s3cret", "access_token": tok["access_token"],
            "refresh_token": tok["refresh_token"], "expires_at": time.time() + 86400}


def session(manifest: ConnectorManifest, app: FastAPI, **kw: Any) -> ConnectorSession:
    rules = manifest.errors.model_copy(update={"backoff": Backoff(base_seconds=0.01, cap_seconds=0.05),
                                               "default_retry_after_seconds": 0.01, "deadline_seconds": 60})
    return ConnectorSession(manifest, CONFIG, kw.pop("secrets", None) or tokens(app), base_url="http://deputy.sandbox",
                            transport=httpx.ASGITransport(app=app), connection_id=f"deputy-{id(app)}",
                            error_rules=rules, rate_limits=RateLimits(), **kw)


async def control(app: FastAPI, path: str, body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sb") as c:
        r = await c.post(path, json=body or {})
        r.raise_for_status()
        return r.json()


async def read_ids(s: ConnectorSession, stream: str, checkpoint: dict[str, Any] | None = None,
                   between: Any = None) -> tuple[list[str], list[dict[str, Any] | None]]:
    ids: list[str] = []
    checkpoints: list[dict[str, Any] | None] = []
    async for page in s.read(stream, checkpoint):
        ids += [r.external_id for r in page.records]
        checkpoints.append(page.checkpoint)
        if between is not None:
            await between(len(checkpoints))
    return ids, checkpoints


def shift(start: int, area: int = 1, employee: int = 3) -> dict[str, Any]:
    return {"StartTime": start, "EndTime": start + 8 * 3600, "OperationalUnit": area, "Employee": employee,
            "Mealbreak": "2026-11-30T00:30:00+00:00", "Published": True}


def test_manifest_validates_with_described_fields(manifest: ConnectorManifest) -> None:
    assert set(manifest.streams) == {"employees", "locations", "rosters", "timesheets"}
    for name, stream in manifest.streams.items():
        assert stream.method == "POST" and stream.path.endswith("/QUERY"), name
        assert all(len(f.description) > 5 for f in stream.fields), name
    env = manifest.environments["production"]
    assert "{config.install}" in env.base_url and env.token_url and "{config.geo}" in env.token_url


async def test_production_host_comes_from_the_install(manifest: ConnectorManifest) -> None:
    async with ConnectorSession(manifest, CONFIG, {}, connection_id="deputy-prod", allow_private=True,
                                transport=httpx.MockTransport(lambda r: httpx.Response(500))) as s:
        assert s.base_url == "https://willowcourt.uk.deputy.com"
        assert s.token_url == "https://willowcourt.uk.deputy.com/oauth/access_token"


async def test_full_read_pages_with_start_and_max(manifest: ConnectorManifest) -> None:
    app = deputy.create_app(SandboxConfig(records={"rosters": 1200, "employees": 80, "timesheets": 510,
                                                   "locations": 12}))
    async with session(manifest, app) as s:
        ids, cps = await read_ids(s, "rosters")
        assert len(ids) == len(set(ids)) == 1200 and len(cps) == 3
        assert cps[0] == {"since": None, "max_seen": cps[0]["max_seen"], "page": {"start": 500}}  # type: ignore[index]
        for stream, n in (("employees", 80), ("timesheets", 510), ("locations", 12)):
            got, _ = await read_ids(s, stream)
            assert len(got) == len(set(got)) == n, stream
        test = await s.test_connection()
        assert test.ok, test.reason
    assert s.stats.failed_calls == 0


async def test_incremental_read_returns_changes_only(manifest: ConnectorManifest) -> None:
    app = deputy.create_app(SandboxConfig(records={"rosters": 700, "employees": 30, "timesheets": 40}))
    async with session(manifest, app) as s:
        _, cps = await read_ids(s, "rosters")
        last = cps[-1]
        assert last and "page" not in last
        created = await s.write("rosters", [OutboundRecord("carehub-shift-1", shift(1_764_486_000))])
        updated = await s.write("rosters", [OutboundRecord("u1", {"Comment": "Cover for sickness"}, "10005")])
        assert created[0].ok and updated[0].ok and updated[0].external_id == "10005"
        ids, cps2 = await read_ids(s, "rosters", last)
        # Modified >= since: the newest record of the last read (10700) comes again, as an upsert
        assert {created[0].external_id, "10005"} <= set(ids) <= {created[0].external_id, "10005", "10700"}
        assert cps2[-1] and cps2[-1]["since"] > last["since"]


async def test_rotating_tokens_refreshed_mid_read(manifest: ConnectorManifest) -> None:
    app = deputy.create_app(SandboxConfig(records={"rosters": 1600, "employees": 20}))

    async def expire(n: int) -> None:
        if n in (1, 2):  # twice: the second refresh must use the rotated refresh token
            await control(app, "/_sandbox/expire-tokens")

    async with session(manifest, app) as s:
        ids, _ = await read_ids(s, "rosters", between=expire)
    assert len(set(ids)) == 1600
    assert s.stats.refreshes == 2 and s.stats.failed_calls == 0
    assert app.state.sandbox.token_grants.get("refresh_token") == 2


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_end_with_every_record_and_no_failed_call(manifest: ConnectorManifest, storm: str) -> None:
    app = deputy.create_app(SandboxConfig(records={"timesheets": 1100, "employees": 20}))
    await control(app, "/_sandbox/faults", {storm: 7, "retry_after": "0", "error_status": 503})
    async with session(manifest, app) as s:
        ids, _ = await read_ids(s, "timesheets")
    assert len(ids) == len(set(ids)) == 1100
    assert s.stats.failed_calls == 0
    assert s.stats.throttled + s.stats.server_errors == 7


async def test_creates_stay_single_when_replies_are_lost_and_writes_are_repeated(manifest: ConnectorManifest) -> None:
    app = deputy.create_app(SandboxConfig(records={"rosters": 50, "timesheets": 50, "employees": 10}))
    state = app.state.sandbox
    await control(app, "/_sandbox/deputy/lose-replies", {"count": 1})
    await control(app, "/_sandbox/faults", {"storm_5xx": 1, "error_status": 500})
    records = [OutboundRecord("carehub:shift:2026-12-01:ann", shift(1_764_576_000)),
               OutboundRecord("carehub:shift:2026-12-01:bob", shift(1_764_604_800, employee=4))]
    async with session(manifest, app) as s:
        first = await s.write("rosters", records)
        again = await s.write("rosters", records)  # the engine re-sends after a crash
        ts = OutboundRecord("carehub:ts:77", {"Employee": 3, "StartTime": 1_764_576_000, "EndTime": 1_764_604_800,
                                              "OperationalUnit": 2})
        await control(app, "/_sandbox/deputy/lose-replies", {"count": 2})
        ts1 = await s.write("timesheets", [ts])
        ts2 = await s.write("timesheets", [ts])
    assert [o.ok for o in first + again + ts1 + ts2] == [True] * 6
    assert [o.external_id for o in first] == [o.external_id for o in again]
    assert ts1[0].external_id == ts2[0].external_id
    for key in ("carehub:shift:2026-12-01:ann", "carehub:shift:2026-12-01:bob"):
        assert sum(1 for r in state.datasets["rosters"].iter() if r.get("Comment") == key) == 1
    assert sum(1 for r in state.datasets["timesheets"].iter() if r.get("SupervisorComment") == "carehub:ts:77") == 1
    assert s.stats.failed_calls == 0


async def test_validation_error_is_deputys_message(manifest: ConnectorManifest) -> None:
    app = deputy.create_app(SandboxConfig(records=10))
    async with session(manifest, app) as s:
        out = await s.write("rosters", [OutboundRecord("bad", {**shift(1_764_576_000), "OperationalUnit": 999})])
    assert not out[0].ok and out[0].error_message == "OperationalUnit 999 does not exist"


async def test_topic_webhook_delivered_on_insert(manifest: ConnectorManifest) -> None:
    got: list[dict[str, Any]] = []
    receiver = FastAPI()

    @receiver.post("/hooks/deputy")
    async def hook(request: Request) -> Response:
        got.append(await request.json())
        return Response(status_code=200)

    app = deputy.create_app(SandboxConfig(records=10))
    app.state.webhook_transport = httpx.ASGITransport(app=receiver)
    async with session(manifest, app) as s:
        sub = await s.request(lambda: OutgoingRequest(
            "POST", s.base_url + "/api/v1/resource/Webhook",
            json_body={"Topic": "Roster.Insert", "Address": "http://receiver/hooks/deputy", "Type": "URL"}))
        assert sub.json()["Topic"] == "Roster.Insert"
        out = await s.write("rosters", [OutboundRecord("hook-1", shift(1_764_576_000))])
    assert got and got[0]["topic"] == "Roster.Insert" and str(got[0]["data"]["Id"]) == out[0].external_id


async def test_reads_through_the_sandbox_mounted_like_the_web_app(manifest: ConnectorManifest) -> None:
    from connectors.sandboxes import mount_sandboxes

    host = FastAPI()
    app = mount_sandboxes(host, config=SandboxConfig(records=30), only=["deputy"])["deputy"]
    async with ConnectorSession(manifest, CONFIG, {**tokens(app), "expires_at": time.time() - 1},
                                base_url="http://carehub.local/sandbox/deputy",
                                transport=httpx.ASGITransport(app=host), connection_id="deputy-mounted") as s:
        ids, _ = await read_ids(s, "employees")  # the expired token is refreshed at the mounted token URL
    assert len(ids) == 30 and s.token_url == "http://carehub.local/sandbox/deputy/oauth/access_token"
