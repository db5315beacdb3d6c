"""Verizon Connect Reveal REST against its sandbox over real HTTP: the GET /token log-in with basic auth and the
Atmosphere header on every call, a new log-in when the token expires mid-read, vehicles then each vehicle's GPS
history and trips in 24-hour windows (exact counts), incremental reads from the newest point, bulk last
positions, 429/5xx storms, the vendor's error replies as plain messages, the Vehicle/Trip mappings, and an
end-to-end sync through the real worker into the care store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import ArqRedis
from fastapi import FastAPI

from app.sync_jobs import enqueue_run
from connectors.auth import OutgoingRequest
from connectors.catalog import load_catalog
from connectors.errors import AuthFailed, VendorError
from connectors.manifest import RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes import SANDBOXES
from connectors.sandboxes import verizon_connect as vz
from connectors.sandboxes.common import SandboxConfig
from engine.mapping import compile_design, load_mapping_template_file
from storage import runs as runrepo
from storage.models import Integration, MappingDesign, SyncConfiguration

from .conftest import TEMPLATES
from .ops_helpers import control, fast_rules, manifest, map_records, read_all, sandbox, session, storm_starter
from .worker_harness import count_care, drain, serve

CONFIG = {"app_id": vz.APP_ID}
SECRETS = {"username": vz.USERNAME, "password": vz.PASSWORD}
RECORDS = {"vehicles": 6, "history": 24, "trips": 4}


def s(app: Any, **kw: Any) -> Any:
    return session("verizon_connect", app, kw.pop("config", CONFIG), kw.pop("secrets", SECRETS), **kw)


def grants(app: FastAPI) -> int:
    return int(app.state.sandbox.extra["token_grants"])


def test_manifest_sandbox_and_catalog_line() -> None:
    m = manifest("verizon_connect")
    assert m.auth.type == "custom" and m.auth.name == "verizon_connect_token"
    assert m.environments["production"].base_url == "https://fim.api.us.fleetmatics.com"
    assert m.environments["eu"].base_url == "https://fim.api.eu.fleetmatics.com"
    assert m.streams["vehicles"].path == "/cmd/v1/vehicles" and m.streams["trips"].care_type == "Trip"
    assert all(len(f.description) > 5 for st in m.streams.values() for f in st.fields)
    assert "verizon_connect" in SANDBOXES
    entry = next(e for e in load_catalog(TEMPLATES).entries if e.id == "verizon_connect")
    assert entry.connector == "verizon_connect" and entry.availability == "partner-only"
    assert "App ID" in entry.note and "fim.api" in entry.note


async def test_token_login_and_atmosphere_header_on_the_wire() -> None:
    app = sandbox("verizon_connect", records=RECORDS)
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.headers.get("authorization", ""))

    async with s(app) as sess:
        sess.client.event_hooks["request"].append(record)
        vehicles, pages = await read_all(sess, "vehicles")
    assert len(vehicles) == 6 and len(pages) == 1 and grants(app) == 1
    assert vehicles[0].external_id == "2001" and vehicles[0].data["RegistrationNumber"]
    assert seen[0].startswith("Basic ")  # GET /token
    assert seen[1].startswith(f"Atmosphere atmosphere_app_id={vz.APP_ID}, Bearer ") and len(seen[1]) > 60


async def test_full_read_across_vehicles_and_windows_with_exact_counts() -> None:
    app = sandbox("verizon_connect", records=RECORDS)
    async with s(app) as sess:
        history, pages = await read_all(sess, "status_history")
        trips, trip_pages = await read_all(sess, "trips")
        located, located_pages = await read_all(sess, "locations")
    assert len(history) == 6 * 24 and len({r.external_id for r in history}) == 144
    assert len(pages) == 1 + 6 * 2  # the vehicle list, then two 24-hour windows per vehicle (48 hours back)
    assert {r.data["VehicleNumber"] for r in history} == {str(2001 + i) for i in range(6)}
    assert len(trips) == 6 * 4 and len({r.external_id for r in trips}) == 24 and len(trip_pages) == 13
    assert all(r.data["DriverNumber"] for r in trips)  # copied from the segment group's Driver
    assert len(located) == 6 and len(located_pages) == 2  # the list, one bulk POST
    assert located[0].data["UpdateUTC"] == history[23].data["UpdateUtc"]
    anchor = app.state.sandbox.extra["anchor"]
    assert pages[-1].checkpoint == {"since": anchor.isoformat()}
    assert grants(app) == 1 and sess.stats.failed_calls == 0


async def test_token_expiry_mid_read_logs_in_again_and_finishes() -> None:
    app = sandbox("verizon_connect", records=RECORDS)

    async def expire(n: int) -> None:
        if n == 4:
            await control(app, "/_sandbox/expire-tokens")

    async with s(app) as sess:
        history, _ = await read_all(sess, "status_history", between=expire)
    assert len({r.external_id for r in history}) == 144
    assert grants(app) == 2 and sess.stats.refreshes == 1 and sess.stats.failed_calls == 0


async def test_a_token_past_its_lifetime_is_renewed_before_the_call() -> None:
    app = sandbox("verizon_connect", records=RECORDS)
    m = manifest("verizon_connect")
    assert m.auth.type == "custom" and m.auth.options["ttl_seconds"] == 1080  # 18 of Reveal's 20 minutes
    short = m.model_copy(update={"auth": m.auth.model_copy(update={"options": {"ttl_seconds": 1}})})
    async with ConnectorSession(short, CONFIG, SECRETS, base_url="http://verizon_connect.sandbox",
                                transport=httpx.ASGITransport(app=app), connection_id="test-vz-ttl",
                                error_rules=fast_rules(m), rate_limits=RateLimits()) as sess:
        await read_all(sess, "vehicles")
        await asyncio.sleep(1.1)
        vehicles, _ = await read_all(sess, "vehicles")
    assert len(vehicles) == 6
    assert grants(app) == 2 and sess.stats.refreshes == 0  # renewed ahead, never refused


async def test_incremental_read_starts_at_the_newest_point() -> None:
    app = sandbox("verizon_connect", records=RECORDS)
    async with s(app) as sess:
        _, pages = await read_all(sess, "status_history")
        cp = pages[-1].checkpoint
        assert cp is not None
        drove = await control(app, "/_sandbox/verizon/drive", {"vehicle": "2004"})
        again, again_pages = await read_all(sess, "status_history", cp)
        _, trip_pages = await read_all(sess, "trips")
        await control(app, "/_sandbox/verizon/drive", {"vehicle": "2002"})
        trips_again, _ = await read_all(sess, "trips", trip_pages[-1].checkpoint)
    new_id = f"2004|{drove['point']['UpdateUtc']}"
    # one window per vehicle from the cursor: the six points at the cursor (start inclusive) and the new one
    assert len(again_pages) == 1 + 6 and len(again) == 7 and new_id in {r.external_id for r in again}
    assert again_pages[-1].checkpoint is not None and again_pages[-1].checkpoint["since"] > cp["since"]
    # trips look back six hours before the cursor (late uploads): the newest trip of each vehicle, 2004's drive
    # (already read, dropped later by content hash) and 2002's new trip
    per_vehicle = [sum(r.data["VehicleNumber"] == str(v) for r in trips_again) for v in range(2001, 2007)]
    assert per_vehicle == [1, 2, 1, 2, 1, 1]


async def test_a_read_stopped_mid_fleet_resumes_at_the_next_window() -> None:
    app = sandbox("verizon_connect", records=RECORDS)
    first: list[Any] = []
    read_pages = 0
    async with s(app) as sess:
        async for page in sess.read("status_history"):
            first.extend(page.records)
            read_pages += 1
            if len(first) >= 50:
                stopped = page.checkpoint
                break
    assert stopped is not None and stopped["page"]["vehicles"] == [str(2001 + i) for i in range(6)]
    async with s(app) as sess:
        rest, pages = await read_all(sess, "status_history", stopped)
    ids = [r.external_id for r in first + rest]
    assert len(ids) == len(set(ids)) == 144 and read_pages + len(pages) == 13  # no window read twice


async def test_history_from_setting_starts_the_first_read() -> None:
    app = sandbox("verizon_connect", records=RECORDS)
    start = app.state.sandbox.extra["anchor"] - timedelta(hours=5)
    async with s(app, config={**CONFIG, "history_from": start.strftime("%Y-%m-%dT%H:%M:%SZ")}) as sess:
        history, pages = await read_all(sess, "status_history")
    assert len(history) == 6 * 6 and len(pages) == 1 + 6


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_throttling_and_5xx_storms_end_with_every_record(storm: str) -> None:
    app = sandbox("verizon_connect", records=RECORDS)
    async with s(app) as sess:
        history, _ = await read_all(sess, "status_history", between=storm_starter(app, storm))
    assert len({r.external_id for r in history}) == 144
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6
    assert grants(app) == 1


async def test_vendor_errors_come_back_as_plain_messages() -> None:
    app = sandbox("verizon_connect", records=RECORDS)
    async with s(app, secrets={**SECRETS, "password": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "Invalid username or password for the Reveal REST API." in result.reason
    async with s(app, config={"app_id": "fleetmatics-p-eu-NotOurs"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and result.reason.endswith(
        "answered with an error: The atmosphere_app_id is not registered for this account's REST API access.")
    async with s(app, config={}) as sess:
        with pytest.raises(AuthFailed, match="no App ID"):
            await read_all(sess, "vehicles")
    async with s(app) as sess:
        base = f"{sess.base_url}/rad/v1/vehicles"
        now = datetime.now(UTC)
        wide = {"startdatetimeutc": (now - timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "enddatetimeutc": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        with pytest.raises(VendorError) as too_wide:
            await sess.request(lambda: OutgoingRequest("GET", f"{base}/2001/status/history", dict(wide)))
        with pytest.raises(VendorError) as unknown:
            await sess.request(lambda: OutgoingRequest("GET", f"{base}/9999/location"))
        one = await sess.request(lambda: OutgoingRequest("GET", f"{base}/2001/location"))
    assert too_wide.value.status == 400
    assert too_wide.value.vendor_message == "The requested date range exceeds the maximum of 7 days."
    assert unknown.value.status == 404 and unknown.value.vendor_message == "Vehicle number '9999' was not found."
    assert one.json()["DisplayState"] in ("Moving", "Stop", "Idle")


async def test_mappings_compile_and_map_sandbox_records() -> None:
    app = sandbox("verizon_connect", records=RECORDS)
    async with s(app) as sess:
        vehicles, _ = await read_all(sess, "vehicles")
        await control(app, "/_sandbox/verizon/drive", {"vehicle": "2005", "in_progress": True})
        everything, _ = await read_all(sess, "trips")
    driving = [r for r in everything if not r.data["IsComplete"]]
    trips = [r for r in everything if r.data["IsComplete"]]
    assert len(driving) == 1 and driving[0].data["EndDateUtc"] is None and driving[0].updated_at is None
    compiled = compile_design(load_mapping_template_file(TEMPLATES.parent / "mappings" / "verizon_connect" / "Trip.yaml"))
    skipped = compiled.apply(driving[0].data)
    assert not skipped.ok and not skipped.errors  # filtered out until the trip ends
    fleet = map_records("verizon_connect", "Vehicle", vehicles, stream="vehicles")
    assert fleet[0]["registration"] == vehicles[0].data["RegistrationNumber"].upper()
    assert fleet[0]["make"] == "Ford" and fleet[0]["status"] == "available"
    journeys = map_records("verizon_connect", "Trip", trips, stream="trips")
    assert len(journeys) == 24 and journeys[0]["vehicleRef"] == trips[0].data["VehicleNumber"]
    assert journeys[0]["start"] < journeys[0]["end"] and journeys[0]["driverRef"] == trips[0].data["DriverNumber"]
    assert journeys[0]["from"] and isinstance(journeys[0]["distanceKm"], int | float)


# --------------------------------------------------------------------------- end to end through the worker


@pytest.fixture
def fleet() -> Iterator[tuple[str, FastAPI]]:
    app = vz.create_app(SandboxConfig(records=RECORDS))
    with serve(app) as url:
        yield url, app


def _integration(ctx: Any, url: str) -> str:
    designs = {ct: yaml.safe_load((TEMPLATES.parent / "mappings" / "verizon_connect" / f"{ct}.yaml").read_text())
               for ct in ("Vehicle", "Trip")}
    with ctx.db.session() as db:
        integ = Integration(name="Minibuses (Verizon Connect)", connector_id="verizon_connect", status="active",
                            operation_mode="external_primary",
                            connection_details={"base_url": url, "app_id": vz.APP_ID},
                            credentials_encrypted=ctx.box.encrypt(dict(SECRETS)), error_handling={})
        db.add(integ)
        db.flush()
        db.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=50,
                                 retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 3,
                                               "call_deadline_seconds": 10},
                                 error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                 streams=[{"stream": "vehicles", "care_type": "Vehicle"},
                                          {"stream": "trips", "care_type": "Trip"}]))
        db.add(MappingDesign(integration_id=integ.id, stream="vehicles", care_type="Vehicle",
                             design=designs["Vehicle"]))
        db.add(MappingDesign(integration_id=integ.id, stream="trips", care_type="Trip", design=designs["Trip"]))
        return str(integ.id)


async def test_vehicles_and_trips_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str,
                                                    fleet: tuple[str, FastAPI]) -> None:
    url, app = fleet
    integ = _integration(ctx, url)
    run1 = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await drain(ctx, redis_url, "verizon-test-worker")
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1 is not None
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 6 + 24 and r1.counts["created"] == 30
    assert count_care(ctx, "Vehicle") == 6 and count_care(ctx, "Trip") == 24

    httpx.post(f"{url}/_sandbox/verizon/drive", json={"vehicle": "2003"}, timeout=5)
    run2 = await enqueue_run(ctx.db, arq, integ, "manual")
    await drain(ctx, redis_url, "verizon-test-worker")
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2 is not None
    assert r2.status == "succeeded", r2.error
    assert r2.counts["created"] == 1 and count_care(ctx, "Trip") == 25 and count_care(ctx, "Vehicle") == 6
    assert grants(app) == 1  # the second run reused the stored token (still inside its 18 minutes)
