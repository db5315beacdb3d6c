"""Samsara connector against its sandbox over real HTTP: bearer token, cursor paging (endCursor and
hasNextPage), updatedAfterTime/startTime incremental reads, vehicle updates, signed webhooks (known answer,
mutations, replay window), 429/5xx storms, and the Vehicle/Trip mappings."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from connectors.sandboxes import samsara
from connectors.webhooks import verify
from engine.ports import OutboundRecord

from .ops_helpers import check_registered, manifest, map_records, read_all, sandbox, session, storm_starter

SECRETS = {"api_token": samsara.API_TOKEN}


def s(app: Any, **kw: Any) -> Any:
    return session("samsara", app, {}, kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("samsara")
    assert m.auth.type == "api_key" and m.auth.prefix == "Bearer "
    assert m.streams["vehicles"].paginator.type == "cursor"


async def test_full_read_follows_cursors_to_the_end() -> None:
    app = sandbox("samsara", records={"vehicles": 230, "trips": 450})
    async with s(app) as sess:
        vehicles, vpages = await read_all(sess, "vehicles")
        trips, tpages = await read_all(sess, "trips")
    assert len({r.external_id for r in vehicles}) == 230 and len(vpages) == 3
    assert "cursor" in vpages[0].checkpoint["page"]
    assert len({r.external_id for r in trips}) == 450 and len(tpages) == 3
    assert vehicles[0].data["tags"][0]["name"] == samsara.CARE_HOMES[0]
    assert sess.stats.failed_calls == 0


async def test_bad_token_is_explained() -> None:
    app = sandbox("samsara", records={"vehicles": 3, "trips": 3})
    async with s(app, secrets={"api_token": "nope"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "API token is invalid" in result.reason


async def test_incremental_reads_and_vehicle_update_with_signed_webhook() -> None:
    received: list[tuple[bool, dict[str, Any]]] = []
    receiver = FastAPI()

    @receiver.post("/hooks/samsara")
    async def hook(request: Request) -> Response:
        raw = await request.body()
        ok = verify_samsara(samsara.WEBHOOK_SECRET_B64, dict(request.headers), raw, now=time.time())
        received.append((ok, json.loads(raw)))
        return Response(status_code=204 if ok else 401)

    app = sandbox("samsara", records={"vehicles": 150, "trips": 30}, webhook_url="http://receiver/hooks/samsara")
    app.state.webhook_transport = httpx.ASGITransport(app=receiver)
    async with s(app) as sess:
        vehicles, pages = await read_all(sess, "vehicles")
        cp = pages[-1].checkpoint
        target = vehicles[7].external_id
        out = await sess.write("vehicles", [OutboundRecord("v7", {"licensePlate": "YK72 CHB", "notes": "MOT booked"},
                                                           target)])
        assert out[0].ok and out[0].external_id == target
        again = await sess.write("vehicles", [OutboundRecord("v7", {"licensePlate": "YK72 CHB", "notes": "MOT booked"},
                                                             target)])
        assert again[0].ok
        changed, _ = await read_all(sess, "vehicles", cp)
    # updatedAfterTime is "at or after": the newest vehicle of the last read may come again, then the change
    assert [r.external_id for r in changed][-1] == target and len(changed) <= 2
    assert changed[-1].data["licensePlate"] == "YK72 CHB"
    assert len(app.state.sandbox.datasets["vehicles"].overlay) == 1
    assert received and all(ok for ok, _ in received)
    assert received[0][1]["eventType"] == "VehicleUpdated" and received[0][1]["data"]["vehicle"]["id"] == target


def verify_samsara(secret: str, headers: dict[str, str], body: bytes, *, now: float) -> bool:
    """What the receiver does with a Samsara delivery: the manifest's declared scheme, nothing Samsara-specific."""
    spec = manifest("samsara").webhooks
    assert spec is not None
    return verify(spec, secret, headers, body, now=now)


def test_webhook_signature_known_answer_mutations_and_replay() -> None:
    secret = samsara.WEBHOOK_SECRET_B64
    samsara_signature = samsara.samsara_signature
    body = b'{"eventType":"VehicleUpdated","data":{"vehicle":{"id":"281474976710008"}}}'
    # printf 'v1:1700000000:%s' "$body" | openssl dgst -sha256 -hmac samsara-sandbox-webhook-secret
    assert samsara_signature(secret, "1700000000", body) == "v1=7e2193a5f2d0c017922472b52bc4617647ce1f2e93cb0940ea1ff04ddd1428aa"
    headers = {"X-Samsara-Signature": samsara_signature(secret, "1700000000", body),
               "X-Samsara-Timestamp": "1700000000"}
    assert verify_samsara(secret, headers, body, now=1700000100)
    assert not verify_samsara(secret, headers, body.replace(b"008", b"009"), now=1700000100)
    assert not verify_samsara(secret, {**headers, "X-Samsara-Timestamp": "1700000001"}, body, now=1700000100)
    assert not verify_samsara(secret, headers, body, now=1700000000 + 301)  # outside the replay window
    assert not verify_samsara("AAAA", headers, body, now=1700000100)
    assert not verify_samsara(secret, {"X-Samsara-Timestamp": "1700000000"}, body, now=time.time())
    assert not verify_samsara("not base64!", headers, body, now=1700000100)


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("samsara", records={"vehicles": 10, "trips": 900})
    async with s(app) as sess:
        trips, _ = await read_all(sess, "trips", between=storm_starter(app, storm))
    assert len({r.external_id for r in trips}) == 900
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_mappings_compile_and_map_sandbox_records() -> None:
    app = sandbox("samsara", records={"vehicles": 20, "trips": 40})
    async with s(app) as sess:
        vehicles = await sess.sample("vehicles", 20)
        trips = await sess.sample("trips", 40)
    fleet = map_records("samsara", "Vehicle", vehicles, stream="vehicles")
    assert fleet[0]["site"] == samsara.CARE_HOMES[0] and fleet[0]["registration"] == fleet[0]["registration"].upper()
    journeys = map_records("samsara", "Trip", trips, stream="trips")
    assert all(j["vehicleRef"].startswith("2814749767") for j in journeys)
    assert journeys[0]["start"] < journeys[0]["end"] and journeys[0]["to"]
    assert [j["externalRefs"]["samsara"] for j in journeys] == [t.external_id for t in trips]


async def test_trips_incremental_read_by_update_time() -> None:
    app = sandbox("samsara", records={"vehicles": 5, "trips": 260})
    data = app.state.sandbox.datasets["trips"]
    async with s(app) as sess:
        trips, pages = await read_all(sess, "trips")
        cp = pages[-1].checkpoint
        late = {**trips[3].data, "tripStartTime": "2026-11-27T09:15:00.000Z", "completionStatus": "completed"}
        at = data.put("late-trip", late)
        late["updatedAtTime"] = samsara._iso(at)
        again, _ = await read_all(sess, "trips", cp)
    # startTime with queryBy=updatedAtTime is "at or after": the newest trip of the last read comes again
    late_key = f"{late['asset']['id']}|2026-11-27T09:15:00.000Z"
    assert [r.external_id for r in again] == [trips[-1].external_id, late_key]
