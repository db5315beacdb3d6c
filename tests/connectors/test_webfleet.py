"""Webfleet connector against its sandbox over real HTTP: credentials and API key in the query string,
errors and quota refusals inside HTTP 200 replies (8011 handled as throttling), trips read in 31-day
windows with the open window re-read next time, 5xx storms, and the Vehicle/Trip mappings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.sandboxes import webfleet

from .ops_helpers import check_registered, map_records, read_all, sandbox, session, storm_starter

CONFIG = {"account": webfleet.ACCOUNT}
SECRETS = {"username": webfleet.USERNAME, "password": webfleet.PASSWORD, "api_key": webfleet.API_KEY}


def s(app: Any, **kw: Any) -> Any:
    return session("webfleet", app, CONFIG, kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("webfleet", catalog_id="tomtom_telematics")
    assert m.auth.type == "api_key" and m.auth.location == "query"
    assert m.errors.body_errors is not None and m.errors.body_errors.statuses["8011"] == 429
    assert m.streams["trips"].params["action"] == "showTripReportExtern"


async def test_full_read_of_vehicles_and_trips_in_windows() -> None:
    app = sandbox("webfleet", records={"vehicles": 8, "trips": 300})  # 300 trips, 8 hours apart: 100 days
    async with s(app) as sess:
        vehicles, _ = await read_all(sess, "vehicles")
        trips, pages = await read_all(sess, "trips")
    assert len(vehicles) == 8 and vehicles[0].data["latitude_mdeg"] > 53_000_000
    assert len({r.external_id for r in trips}) == 300
    today = datetime.now(UTC).date()
    assert pages[-1].checkpoint["since"] <= today.isoformat()
    assert (today - datetime.fromisoformat(pages[-1].checkpoint["since"]).date()).days < 31
    assert sess.stats.failed_calls == 0


async def test_wrong_credentials_come_back_as_errors_in_200_replies() -> None:
    app = sandbox("webfleet", records={"vehicles": 2, "trips": 2})
    async with s(app, secrets={**SECRETS, "password": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and result.reason.endswith(
        "invalid credentials: account, username or password not accepted)")
    async with s(app, secrets={**SECRETS, "api_key": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "access denied: the apikey is missing" in result.reason and "errorCode" not in result.reason


async def test_incremental_read_rereads_only_the_open_window() -> None:
    app = sandbox("webfleet", records={"vehicles": 3, "trips": 120})
    data = app.state.sandbox.datasets["trips"]
    async with s(app) as sess:
        _, pages = await read_all(sess, "trips")
        cp = pages[-1].checkpoint
        now = datetime.now(UTC)
        fresh = {**data.get(str(webfleet.TRIP_BASE + 3)), "tripid": "99000001",
                 "start_time": webfleet._iso(now - timedelta(minutes=40)), "end_time": webfleet._iso(now)}
        data.put("99000001", fresh)
        again, _ = await read_all(sess, "trips", cp)
    assert [r.external_id for r in again] == ["99000001"]


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_quota_and_5xx_storms_end_with_every_record(storm: str) -> None:
    app = sandbox("webfleet", records={"vehicles": 4, "trips": 400})
    async with s(app) as sess:
        trips, _ = await read_all(sess, "trips", between=storm_starter(app, storm))
    assert len({r.external_id for r in trips}) == 400
    assert sess.stats.failed_calls == 0
    # storm_429 is Webfleet's quota refusal: errorCode 8011 in an HTTP 200 reply
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_mappings_compile_and_map_sandbox_records() -> None:
    app = sandbox("webfleet", records={"vehicles": 8, "trips": 30})
    async with s(app) as sess:
        vehicles = await sess.sample("vehicles", 8)
        trips, _ = await read_all(sess, "trips")
    fleet = map_records("webfleet", "Vehicle", vehicles, stream="vehicles")
    assert fleet[0]["site"] == webfleet.CARE_HOMES[0] and fleet[0]["status"] == "available"
    journeys = map_records("webfleet", "Trip", trips, stream="trips")
    assert len(journeys) == 30 and journeys[0]["vehicleRef"] == trips[0].data["objectno"]
    assert journeys[0]["start"] < journeys[0]["end"] and isinstance(journeys[0]["distanceKm"], int | float)
