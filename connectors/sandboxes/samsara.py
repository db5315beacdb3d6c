"""Samsara sandbox: ``GET /fleet/vehicles``, ``PATCH /fleet/vehicles/{id}`` and ``GET /trips/stream``.

Bearer API tokens; every list answers ``{"data": [...], "pagination": {"endCursor", "hasNextPage"}}`` with
``limit`` (vehicles at most 512) and an opaque ``after`` cursor; ``updatedAfterTime`` filters vehicles and
``startTime``/``queryBy=updatedAtTime`` trips; errors ``{"message", "requestId"}``; 429 with
``Retry-After``. Webhook deliveries are signed ``X-Samsara-Signature: v1=<hex HMAC-SHA256>`` over
``v1:{timestamp}:{body}`` with the base64-decoded secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    bearer,
    new_state,
    pools,
    rng_for,
    send_webhook,
)

API_TOKEN = "samsara_api_sandbox_7Yq2Lr9Xk4Pz"
WEBHOOK_SECRET_B64 = base64.b64encode(b"samsara-sandbox-webhook-secret").decode()


def samsara_signature(secret_b64: str, timestamp: str, body: bytes) -> str:
    """The ``X-Samsara-Signature`` Samsara sends: ``v1=`` + hex HMAC-SHA256 of ``v1:{timestamp}:{body}``
    keyed by the base64-decoded secret (the vendor's side; CareHub verifies from the manifest)."""
    digest = hmac.new(base64.b64decode(secret_b64), b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()
VEHICLE_BASE, TRIP_BASE, DRIVER_BASE = 281474976710001, 9001000, 52001
VEHICLES = (  # (make, model, notes)
    ("Ford", "Transit 17-seat minibus", "Wheelchair accessible, tail lift"),
    ("Peugeot", "Boxer WAV", "Wheelchair accessible vehicle with ramp"),
    ("Vauxhall", "Vivaro Life", "Eight seats, used for day trips"),
    ("Toyota", "Proace Verso", "Nine seats"),
    ("Volkswagen", "Caddy Maxi Life", "Wheelchair accessible, one wheelchair space"),
    ("Skoda", "Octavia Estate", "Manager's car for hospital appointments"),
)
PLACES = ("Leeds General Infirmary, Great George Street, Leeds LS1 3EX",
          "St James's University Hospital, Beckett Street, Leeds LS9 7TF",
          "Roundhay Park, Mansion Lane, Leeds LS8 2HH", "Harewood House, Harewood, Leeds LS17 9LG",
          "Scarborough seafront, Foreshore Road, Scarborough YO11 1PB",
          "Boots Pharmacy, Briggate, Leeds LS1 6HD", "Garden centre, Wetherby Road, Leeds LS14 3HX")
LETTERS = "ABCDEFGHJKLMNOPRSTUVWXYZ"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _plate(r: Any) -> str:
    area = r.choice(("YA", "YB", "YC", "YD", "YE", "YF", "YG", "YH", "YJ", "YK", "LN", "MA", "SK"))
    return f"{area}{r.choice((19, 20, 21, 69, 70, 71, 72))} {''.join(r.choice(LETTERS) for _ in range(3))}"


def samsara_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Samsara's error body."""
    return JSONResponse({"message": message, "requestId": str(uuid.uuid4())}, status_code=status,
                        headers=headers or {})


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return samsara_error(429, "Rate limit exceeded. Please retry after the time in the Retry-After header.", headers)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(cursor: str) -> int | None:
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["o"])
    except (ValueError, KeyError, TypeError):
        return None


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Samsara sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Samsara")
    seed = cfg.seed
    n_vehicles = cfg.count("vehicles", 12)

    def driver(r: Any) -> dict[str, Any]:
        p = pools(seed)
        return {"id": str(DRIVER_BASE + r.randrange(0, 40)), "name": f"{r.choice(p.first_names)} "
                                                                    f"{r.choice(p.last_names)}"}

    def vehicle(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "vehicles", i)
        make, model, notes = VEHICLES[i % len(VEHICLES)]
        home = CARE_HOMES[i % len(CARE_HOMES)]
        return {"id": str(VEHICLE_BASE + i), "name": f"{home.split()[0]} {model.split()[0].lower()} {i + 1}",
                "vin": f"WF0{''.join(r.choice('0123456789ABCDEFGHJKLMNPRSTUVWXYZ') for _ in range(14))}",
                "serial": f"G{r.randrange(10**8, 10**9)}", "make": make, "model": model,
                "year": str(r.randrange(2016, 2025)), "licensePlate": _plate(r), "notes": notes,
                "esn": "", "cameraSerial": "", "externalIds": {"carehub.fleetNumber": f"FLT-{i + 1:03d}"},
                "harshAccelerationSettingType": "passengerCar", "vehicleRegulationMode": "unregulated",
                "staticAssignedDriver": driver(r), "tags": [{"id": str(4000 + i % len(CARE_HOMES)), "name": home,
                                                             "parentTagId": "4000"}],
                "gateway": {"serial": f"GW{r.randrange(10**6, 10**7)}", "model": "VG54-EU"},
                "createdAtTime": _iso(at - timedelta(days=400)), "updatedAtTime": _iso(at)}

    def trip(i: int, at: datetime) -> dict[str, Any]:
        # TripResponseBody: no id, driver or distance; a vehicle's trips never overlap (one every 7 x n minutes)
        r = rng_for(seed, "trips", i)
        vi = i % max(1, n_vehicles)
        v = vehicle(vi, at)
        start = at - timedelta(minutes=r.randrange(3, max(4, 7 * max(1, n_vehicles) - 1)))
        home = CARE_HOMES[vi % len(CARE_HOMES)]

        def place(address: str) -> dict[str, Any]:
            return {"latitude": round(53.8 + r.uniform(-0.2, 0.2), 6),
                    "longitude": round(-1.55 + r.uniform(-0.3, 0.3), 6),
                    "address": {"formattedAddress": address}}

        return {"asset": {"id": v["id"], "name": v["name"], "type": "vehicle",
                          "externalIds": v["externalIds"]},
                "tripStartTime": _iso(start), "tripEndTime": _iso(at),
                "startLocation": place(f"{home}, Leeds"), "endLocation": place(r.choice(PLACES)),
                "completionStatus": "completed", "createdAtTime": _iso(start), "updatedAtTime": _iso(at)}

    def int_ids(base: int) -> tuple[Any, Any]:
        return (lambda i: str(base + i)), (lambda v: int(v) - base if v.isdigit() else None)

    state.datasets = {
        "vehicles": Dataset(n_vehicles, vehicle, *int_ids(VEHICLE_BASE)),
        "trips": Dataset(cfg.count("trips"), trip, *int_ids(TRIP_BASE)),
    }
    app = FastAPI(title="Samsara sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def denied(request: Request) -> Response | None:
        if not request.headers.get("authorization"):
            return samsara_error(401, "Unauthorized: no API token was provided")
        if bearer(request) != API_TOKEN or state.faults.revoke_tokens:
            return samsara_error(401, "Unauthorized: the API token is invalid or has been revoked")
        return None

    def listing(name: str, request: Request, max_limit: int, since_param: str) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        try:
            limit = int(q.get("limit") or max_limit)
        except ValueError:
            return samsara_error(400, "limit must be a whole number")
        if not 1 <= limit <= max_limit:
            return samsara_error(400, f"limit must be between 1 and {max_limit}")
        offset = 0
        if q.get("after"):
            found = _offset(q["after"])
            if found is None:
                return samsara_error(400, "Invalid pagination cursor")
            offset = found
        since = None
        if q.get(since_param):
            since = _parse(q[since_param])
            if since is None:
                return samsara_error(400, f"{since_param} must be an RFC 3339 timestamp")
        items, total = state.datasets[name].page(since, offset, limit)
        more = offset + len(items) < total
        return JSONResponse({"data": items, "pagination": {"endCursor": _cursor(offset + len(items)) if more else "",
                                                           "hasNextPage": more}})

    @app.get("/fleet/vehicles")
    async def vehicles(request: Request) -> Response:
        return listing("vehicles", request, 512, "updatedAfterTime")

    @app.get("/trips/stream")
    async def trips(request: Request) -> Response:
        if request.query_params.get("queryBy", "updatedAtTime") not in ("updatedAtTime", "tripStartTime"):
            return samsara_error(400, "queryBy must be updatedAtTime or tripStartTime")
        if not request.query_params.get("startTime"):
            return samsara_error(400, "startTime is required")
        return listing("trips", request, 512, "startTime")

    @app.get("/fleet/vehicles/{vehicle_id}")
    async def get_vehicle(vehicle_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        rec = state.datasets["vehicles"].get(vehicle_id)
        if rec is None:
            return samsara_error(404, f"Vehicle {vehicle_id} not found")
        return JSONResponse({"data": rec})

    @app.patch("/fleet/vehicles/{vehicle_id}")
    async def update_vehicle(vehicle_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        data = state.datasets["vehicles"]
        current = data.get(vehicle_id)
        if current is None:
            return samsara_error(404, f"Vehicle {vehicle_id} not found")
        try:
            el = await request.json()
        except ValueError:
            return samsara_error(400, "Request body must be JSON")
        allowed = {"name", "licensePlate", "notes", "externalIds", "staticAssignedDriverId", "tagIds",
                   "harshAccelerationSettingType", "vin"}
        unknown = sorted(set(el) - allowed) if isinstance(el, dict) else ["<body>"]
        if unknown:
            return samsara_error(400, f"Unknown or read-only fields: {', '.join(unknown)}")
        rec = {**current, **{k: v for k, v in el.items() if k != "staticAssignedDriverId"}}
        if el.get("staticAssignedDriverId"):
            rec["staticAssignedDriver"] = {"id": str(el["staticAssignedDriverId"]), "name": ""}
        at = data.put(vehicle_id, rec)
        rec["updatedAtTime"] = _iso(at)
        if cfg.webhook_url:
            await emit("VehicleUpdated", {"vehicle": {"id": vehicle_id, "name": rec["name"]}})
        return JSONResponse({"data": rec})

    async def emit(event_type: str, data: dict[str, Any]) -> int:
        body = {"eventId": str(uuid.uuid4()), "eventTime": _iso(datetime.now(UTC)), "eventType": event_type,
                "orgId": 20936, "webhookId": "1411751028848270", "data": data}
        ts = str(int(time.time()))
        return await send_webhook(state, body, lambda raw: {
            "X-Samsara-Signature": samsara_signature(WEBHOOK_SECRET_B64, ts, raw), "X-Samsara-Timestamp": ts,
            "X-Samsara-Event-Type": event_type}, transport=getattr(app.state, "webhook_transport", None))

    app.state.emit = emit
    app.state.credentials = {"api_token": API_TOKEN}
    app.state.config = {}
    app.state.started = time.time()
    return app
