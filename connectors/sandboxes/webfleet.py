"""Webfleet sandbox: WEBFLEET.connect ``GET /extern?action=...`` with credentials in the query.

``account``, ``username``, ``password`` and ``apikey`` on every call; ``outputformat=json`` answers a JSON list
of rows; ``showObjectReportExtern`` lists vehicles with their last position (micro-degrees),
``showTripReportExtern`` the trips of a ``range_pattern=ud`` window (``rangefrom_string``/``rangeto_string``).
Errors and quota refusals come with HTTP 200 as ``{"errorCode", "errorMsg"}`` (8011: request quota reached).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    BASE_TIME,
    CARE_HOMES,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    pools,
    rng_for,
)
from connectors.sandboxes.samsara import PLACES, VEHICLES, _plate

ACCOUNT = "willowcourt-care"
USERNAME = "carehub-api"
PASSWORD = "webfleet-sandbox-Pa55!"
API_KEY = "wf-sandbox-apikey-3c1d7e9a-5b2f"
TRIP_STEP = timedelta(hours=8)
TRIP_BASE = 71_000_001


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def wf_error(code: int, message: str) -> JSONResponse:
    """WEBFLEET.connect's error reply: HTTP 200 with an error code."""
    return JSONResponse({"errorCode": code, "errorMsg": message})


def _throttle(state: SandboxState) -> Response:
    return wf_error(8011, "request quota reached, try again later")


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Webfleet sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Webfleet")
    seed = cfg.seed
    n_vehicles = cfg.count("vehicles", 8)

    def vehicle(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "vehicles", i)
        p = pools(seed)
        _make, model, _notes = VEHICLES[i % len(VEHICLES)]
        home = CARE_HOMES[i % len(CARE_HOMES)]
        return {"objectno": f"{858 + i}EU{r.randrange(1, 10)}", "objectname": _plate(r),
                "objectclassname": "minibus" if "minibus" in model.lower() or "WAV" in model else "car",
                "objecttype": model, "objectuid": f"1-{r.randrange(10**7, 10**8)}-{i}",
                "latitude_mdeg": int((53.8 + r.uniform(-0.2, 0.2)) * 1_000_000),
                "longitude_mdeg": int((-1.55 + r.uniform(-0.3, 0.3)) * 1_000_000), "pos_time": _iso(at),
                "postext": f"{home}, Leeds", "speed": 0, "course": r.randrange(0, 360), "ignition": 0,
                "odometer": r.randrange(5_000_000, 120_000_000), "drivername": f"{r.choice(p.first_names)} "
                                                                              f"{r.choice(p.last_names)}",
                "description": home}

    def trip(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "trips", i)
        p = pools(seed)
        v = vehicle(r.randrange(max(1, n_vehicles)), at)
        minutes = r.randrange(15, 180)
        start = at - timedelta(minutes=minutes)
        distance = r.randrange(2_000, 90_000)
        return {"tripid": str(TRIP_BASE + i), "objectno": v["objectno"], "objectname": v["objectname"],
                "drivername": f"{r.choice(p.first_names)} {r.choice(p.last_names)}", "driverno": str(r.randrange(1, 40)),
                "start_time": _iso(start), "end_time": _iso(at), "start_postext": v["postext"],
                "end_postext": r.choice(PLACES), "distance": distance, "duration": minutes * 60,
                "avg_speed": int(distance / 1000 / (minutes / 60)), "tripmode": 1,
                "start_odometer": v["odometer"], "end_odometer": v["odometer"] + distance}

    vehicles = Dataset(n_vehicles, vehicle, lambda i: vehicle(i, BASE_TIME)["objectno"], lambda v: None)
    trips = Dataset(cfg.count("trips"), trip, lambda i: str(TRIP_BASE + i),
                    lambda v: int(v) - TRIP_BASE if v.isdigit() else None, step=TRIP_STEP)
    state.datasets = {"vehicles": vehicles, "trips": trips}
    app = FastAPI(title="Webfleet sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    @app.get("/extern")
    async def extern(request: Request) -> Response:
        q = request.query_params
        if q.get("apikey") != API_KEY:
            return wf_error(45, "access denied: the apikey is missing or not valid for this account")
        if (q.get("account"), q.get("username"), q.get("password")) != (ACCOUNT, USERNAME, PASSWORD) \
                or state.faults.revoke_tokens:
            return wf_error(1101, "invalid credentials: account, username or password not accepted")
        if q.get("outputformat") != "json":
            return wf_error(20, "only outputformat=json is available in this sandbox")
        action = q.get("action")
        if action == "showObjectReportExtern":
            return JSONResponse(list(vehicles.iter()))
        if action == "showTripReportExtern":
            if q.get("range_pattern") != "ud":
                return wf_error(9, "range_pattern must be ud with rangefrom_string and rangeto_string here")
            start, end = _day(q.get("rangefrom_string")), _day(q.get("rangeto_string"))
            if start is None or end is None or end < start:
                return wf_error(9, "rangefrom_string and rangeto_string must be dates, from before to")
            if (end - start).days > 31:
                return wf_error(9, "the date range may span at most 31 days")
            lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
            hi = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
            rows = []
            for row in trips.iter(lo):
                ended = datetime.fromisoformat(row["end_time"])
                if ended >= hi:
                    break
                rows.append(row)
            return JSONResponse(rows)
        return wf_error(10, f"unknown action {action!r}")

    app.state.credentials = {"username": USERNAME, "password": PASSWORD, "api_key": API_KEY}
    app.state.config = {"account": ACCOUNT}
    app.state.started = time.time()
    return app
