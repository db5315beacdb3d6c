"""Verizon Connect Reveal REST (FIM) sandbox: ``https://fim.api.us.fleetmatics.com`` (EU ``fim.api.eu``).

* ``GET /token`` with HTTP basic (the Reveal REST integration user) answers the token as ``text/plain``; it
  lasts ``token_ttl_seconds`` (Reveal: about 20 minutes).
* Every other call needs ``Authorization: Atmosphere atmosphere_app_id=<App ID>, Bearer <token>``; a missing or
  expired token is a 401 and an unknown app id a 403, with ASP.NET Web API bodies ``{"Message": "..."}``.
* ``GET /cmd/v1/vehicles``: the account's vehicles (one JSON list, no paging).
* ``GET /rad/v1/vehicles/{vehicleNumber}/location``: the last GPS position.
* ``POST /rad/v1/vehicles/locations``: a JSON list of vehicle numbers in, one ``{VehicleNumber, StatusCode,
  ContentResource: {Value, StatusCode}}`` per number out (unknown numbers get 404 inside the list).
* ``GET /rad/v1/vehicles/{vehicleNumber}/status/history?startdatetimeutc=&enddatetimeutc=``: GPS points with
  ``UpdateUtc`` in ``[start, end)``; at most 7 days per call (the real limit is not published: unconfirmed).
* ``GET /rad/v1/vehicles/{vehicleNumber}/segments?startdateutc=``: ignition-on/off trips starting in the 24
  hours from the start, as ``[{Driver, Vehicle, Segments: [...]}]`` (path and shape from public client code,
  unconfirmed).

No rate limits are published; throttling is answered 429 with ``Retry-After`` (unconfirmed). History and
segments are generated per vehicle back from the hour before the app was built; ``POST
/_sandbox/verizon/drive`` adds a finished trip with its GPS points now (for incremental reads).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    pools,
    rng_for,
)
from connectors.sandboxes.samsara import PLACES, VEHICLES, _plate

USERNAME = "REST_carehub_willowcourt@carehub.example"
PASSWORD = "reveal-sandbox-Pa55!"
APP_ID = "fleetmatics-p-eu-CareHubSandbox0a1b2c3d4e5f"
POINT_STEP = timedelta(hours=1)
TRIP_STEP = timedelta(hours=6)
MAX_HISTORY = timedelta(days=7)
_ATMOSPHERE = re.compile(r'Atmosphere\s+atmosphere_app_id="?([^",\s]+)"?\s*,\s*Bearer\s+(\S+)')


def utc(dt: datetime) -> str:
    """Reveal's UTC times: ``2026-11-28T09:00:00Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reveal_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """ASP.NET Web API's error body."""
    return JSONResponse({"Message": message}, status_code=status, headers=headers or {})


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return reveal_error(429, "Too many requests. The rate limit for this application has been reached.", headers)


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _address(place: str) -> dict[str, Any]:
    parts = [p.strip() for p in place.split(",")]
    town_postcode = parts[-1].rsplit(" ", 2)
    return {"AddressLine1": ", ".join(parts[:-1]), "AddressLine2": "", "Locality": town_postcode[0],
            "AdministrativeArea": "West Yorkshire", "PostalCode": " ".join(town_postcode[1:]), "Country": "GB"}


class _Lazy(dict[str, list[dict[str, Any]]]):
    """Per-vehicle records built on first use (a fleet of hundreds with long histories starts instantly)."""

    def __init__(self, known: dict[str, Any], build: Callable[[str], list[dict[str, Any]]]) -> None:
        super().__init__()
        self.known = known
        self.build = build

    def __contains__(self, key: object) -> bool:
        return key in self.known

    def __missing__(self, key: str) -> list[dict[str, Any]]:
        if key not in self.known:
            raise KeyError(key)
        self[key] = self.build(key)
        return self[key]

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[key] if key in self.known else default


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Verizon Connect Reveal sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Verizon Connect")
    seed = cfg.seed
    n_vehicles = cfg.count("vehicles", 6)
    n_points = cfg.count("history", 24)
    n_trips = cfg.count("trips", 4)
    anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    p = pools(seed)

    vehicles: list[dict[str, Any]] = []
    for i in range(n_vehicles):
        r = rng_for(seed, "vehicles", i)
        make, model, _notes = VEHICLES[i % len(VEHICLES)]
        vehicles.append({"VehicleId": 40_100 + i, "VehicleNumber": str(2001 + i),
                         "Name": f"{CARE_HOMES[i % len(CARE_HOMES)]} {model.split()[0]}",
                         "RegistrationNumber": _plate(r), "VIN": f"WF0{r.randrange(10**13, 10**14)}",
                         "Make": make, "Model": model, "Year": r.choice((2019, 2020, 2021, 2022)),
                         "TankCapacity": 80.0, "HighwayMPG": 38.0, "CityMPG": 29.0, "FuelType": 2,
                         "VehicleSize": 2, "HasNavigationDevice": True, "HasTachograph": False})
    by_number = {v["VehicleNumber"]: v for v in vehicles}

    def point(vn: str, k: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, f"history:{vn}", k)
        place = r.choice(PLACES)
        return {"VehicleNumber": vn, "VehicleName": by_number[vn]["Name"], "UpdateUtc": utc(at),
                "OdometerInKM": round(20_000 + k * 3.7 + r.uniform(0, 1), 1), "IsPrivate": False,
                "DriverNumber": str(r.randrange(1, 30)), "FirstName": r.choice(p.first_names),
                "LastName": r.choice(p.last_names), "Address": _address(place),
                "Latitude": round(53.8 + r.uniform(-0.2, 0.2), 6), "Longitude": round(-1.55 + r.uniform(-0.3, 0.3), 6),
                "Speed": r.choice((0.0, 0.0, 24.0, 48.0, 64.0)), "BatteryLevel": None,
                "DisplayState": r.choice(("Moving", "Stop", "Idle"))}

    def segment(vn: str, k: int, end: datetime) -> dict[str, Any]:
        r = rng_for(seed, f"segments:{vn}", k)
        start = end - timedelta(minutes=r.randrange(20, 90))
        home = by_number[vn]["Name"].rsplit(" ", 1)[0]
        frm, to = (f"{home}, Leeds LS8 1AA", r.choice(PLACES)) if k % 2 else (r.choice(PLACES), f"{home}, Leeds LS8 1AA")
        return {"StartDateUtc": utc(start), "EndDateUtc": utc(end), "IsComplete": True,
                "StartLocation": {"Latitude": 53.83, "Longitude": -1.52, "Address": _address(frm)},
                "EndLocation": {"Latitude": 53.80, "Longitude": -1.55, "Address": _address(to)},
                "StartLocationIsPrivate": False, "EndLocationIsPrivate": False,
                "DistanceKilometers": round(r.uniform(2, 60), 1)}

    history = _Lazy(by_number, lambda vn: [point(vn, k, anchor - k * POINT_STEP) for k in reversed(range(n_points))])
    segments = _Lazy(by_number, lambda vn: [segment(vn, k, anchor - k * TRIP_STEP) for k in reversed(range(n_trips))])
    state.extra.update({"vehicles": vehicles, "history": history, "segments": segments, "token_grants": 0,
                        "anchor": anchor})

    app = FastAPI(title="Verizon Connect Reveal sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/token",))
    add_control_routes(app, state)

    def refused(request: Request) -> Response | None:
        m = _ATMOSPHERE.fullmatch(request.headers.get("authorization", "").strip())
        if m is None or not state.token_valid(m.group(2)):
            return reveal_error(401, "Authorization has been denied for this request.")
        if m.group(1) != APP_ID:
            return reveal_error(403, "The atmosphere_app_id is not registered for this account's REST API access.")
        return None

    @app.get("/token")
    async def token(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        try:
            user, _, pwd = base64.b64decode(header[6:]).decode().partition(":") if header.startswith("Basic ") \
                else ("", "", "")
        except ValueError:
            user, pwd = "", ""
        if (user, pwd) != (USERNAME, PASSWORD):
            return reveal_error(401, "Invalid username or password for the Reveal REST API.")
        value = secrets.token_urlsafe(32)
        state.access_tokens[value] = time.time() + cfg.token_ttl_seconds
        state.extra["token_grants"] += 1
        return PlainTextResponse(value)

    @app.get("/cmd/v1/vehicles")
    async def list_vehicles(request: Request) -> Response:
        return refused(request) or JSONResponse(vehicles)

    def has_position(vn: str) -> bool:
        if vn not in history:
            return False
        return bool(history[vn]) if dict.__contains__(history, vn) else n_points > 0

    def last_location(vn: str) -> dict[str, Any]:
        # The newest point; built alone while the vehicle's history has not been asked for (bulk reads of big fleets).
        last = history[vn][-1] if dict.__contains__(history, vn) else point(vn, 0, anchor)
        return {"Address": last["Address"], "DeltaDistance": 0.0, "DeltaTime": 0, "DeviceTimeZoneOffset": 0,
                "DeviceTimeZoneUseDST": True, "DisplayState": last["DisplayState"], "Direction": 90, "Heading": "E",
                "DriverNumber": last["DriverNumber"], "GeoFenceName": None, "Latitude": last["Latitude"],
                "Longitude": last["Longitude"], "Speed": last["Speed"], "UpdateUTC": last["UpdateUtc"],
                "IsPrivate": False}

    @app.get("/rad/v1/vehicles/{number}/location")
    async def location(number: str, request: Request) -> Response:
        denied = refused(request)
        if denied:
            return denied
        if not has_position(number):
            return reveal_error(404, f"Vehicle number '{number}' was not found.")
        return JSONResponse(last_location(number))

    @app.post("/rad/v1/vehicles/locations")
    async def locations(request: Request) -> Response:
        denied = refused(request)
        if denied:
            return denied
        try:
            numbers = await request.json()
        except ValueError:
            numbers = None
        if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) for n in numbers):
            return reveal_error(400, "The request body must be a JSON list of vehicle numbers.")
        out = []
        for n in numbers:
            if has_position(n):
                out.append({"VehicleNumber": n, "StatusCode": 200,
                            "ContentResource": {"Value": last_location(n), "StatusCode": 200}})
            else:
                out.append({"VehicleNumber": n, "StatusCode": 404, "ContentResource": None})
        return JSONResponse(out)

    @app.get("/rad/v1/vehicles/{number}/status/history")
    async def status_history(number: str, request: Request) -> Response:
        denied = refused(request)
        if denied:
            return denied
        if number not in history:
            return reveal_error(404, f"Vehicle number '{number}' was not found.")
        start = _when(request.query_params.get("startdatetimeutc"))
        end = _when(request.query_params.get("enddatetimeutc"))
        if start is None or end is None:
            return reveal_error(400, "startdatetimeutc and enddatetimeutc are required UTC date-times "
                                     "(e.g. 2026-11-28T09:00:00Z).")
        if end <= start:
            return reveal_error(400, "enddatetimeutc must be after startdatetimeutc.")
        if end - start > MAX_HISTORY:
            return reveal_error(400, "The requested date range exceeds the maximum of 7 days.")
        return JSONResponse([pt for pt in history[number] if start <= _when(pt["UpdateUtc"]) < end])  # type: ignore[operator]

    @app.get("/rad/v1/vehicles/{number}/segments")
    async def vehicle_segments(number: str, request: Request) -> Response:
        denied = refused(request)
        if denied:
            return denied
        if number not in segments:
            return reveal_error(404, f"Vehicle number '{number}' was not found.")
        start = _when(request.query_params.get("startdateutc"))
        if start is None:
            return reveal_error(400, "startdateutc is a required UTC date-time.")
        end = start + timedelta(hours=24)
        found = [s for s in segments[number] if start <= _when(s["StartDateUtc"]) < end]  # type: ignore[operator]
        v = by_number[number]
        driver = {"DriverNumber": str(10 + vehicles.index(v)), "FirstName": p.first_names[vehicles.index(v)],
                  "LastName": p.last_names[vehicles.index(v)]}
        return JSONResponse([{"Driver": driver, "Vehicle": {"VehicleNumber": number, "Name": v["Name"]},
                              "Segments": found}])

    @app.post("/_sandbox/verizon/drive")
    async def drive(request: Request) -> dict[str, Any]:
        """A finished trip of ``vehicle`` ending now (or one still going: ``in_progress``), with a GPS point now."""
        body = await request.json()
        vn = str(body.get("vehicle") or vehicles[0]["VehicleNumber"])
        now = datetime.now(UTC).replace(microsecond=0)
        k = len(segments[vn]) + 1000
        trip = segment(vn, k, now)
        if body.get("in_progress"):  # still driving: no end yet
            trip = {**trip, "StartDateUtc": utc(now - timedelta(minutes=5)), "EndDateUtc": None, "IsComplete": False,
                    "EndLocation": None}
        segments[vn].append(trip)
        history[vn].append(point(vn, k, now))
        return {"vehicle": vn, "trip": trip, "point": history[vn][-1]}

    app.state.credentials = {"username": USERNAME, "password": PASSWORD}
    app.state.config = {"app_id": APP_ID}
    return app
