"""UpKeep sandbox: API v2 session login, assets, locations and work orders.

``POST /auth`` with ``{email, password}`` answers ``{"success": true, "result": {"sessionToken", "expiresAt"}}``;
every other call needs the ``Session-Token`` header. Lists answer ``{"success": true, "results": [...]}`` with
``limit`` (at most 100) and ``offset``, ``orderBy`` and ``updatedAtGreaterThan``/``workOrderNo`` filters;
creates and updates answer ``{"success": true, "result": {...}}``; errors ``{"success": false, "message"}``.
"""

from __future__ import annotations

import hashlib
import string
import time
from collections.abc import Callable
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
    new_state,
    pools,
    rng_for,
)

EMAIL = "maintenance@willowcourt.example.org"
PASSWORD = "upkeep-sandbox-Passw0rd!"
MAX_LIMIT = 100
STATUSES = ("open", "onHold", "inProgress", "complete")
ASSETS = (  # (name, category, model)
    ("Ceiling hoist", "Moving and handling", "Arjo Maxi Sky 2"),
    ("Mobile hoist", "Moving and handling", "Invacare Birdie Evo"),
    ("Profiling bed", "Beds", "Invacare Medley Ergo"),
    ("Pressure-relieving mattress pump", "Beds", "Dyna-Form Mercury Advance"),
    ("Nurse call panel", "Nurse call", "Courtney Thorne C-Strip"),
    ("Gas boiler", "Heating and hot water", "Worcester Bosch GB162"),
    ("Passenger lift", "Lifts", "Stannah Midilift"),
    ("Fire alarm panel", "Fire safety", "Advanced MxPro 5"),
    ("Emergency lighting circuit", "Fire safety", "Eaton CS Series"),
    ("Commercial dishwasher", "Kitchen", "Winterhalter PT-M"),
    ("Assisted bath", "Bathing", "Arjo Rhapsody"),
    ("Minibus tail lift", "Transport", "Ratcliff Palfinger"),
)
JOBS = (
    ("{asset} not working in room {room}", "Reported by the night team; resident moved to a spare room meanwhile."),
    ("Service due: {asset}", "Six-monthly LOLER or manufacturer service."),
    ("Weekly fire alarm test", "Test a different call point each week and log the result."),
    ("Monthly legionella flush of little-used outlets", "Run each outlet for two minutes and record temperatures."),
    ("Radiator cold in the {area}", "Bleed and check the valve; report if the boiler pressure is low."),
    ("Replace bulb in emergency light, {area}", "Check the battery after replacing the lamp."),
)
AREAS = ("ground floor lounge", "first floor corridor", "dining room", "garden room", "laundry", "kitchen")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _ids(seed: int, stream: str) -> tuple[Callable[[int], str], Callable[[str], int | None]]:
    """UpKeep-style 10-character ids: a 5-letter prefix per stream, then the index."""
    digest = hashlib.blake2b(f"{seed}:{stream}".encode(), digest_size=5).digest()
    prefix = "".join(string.ascii_letters[b % 52] for b in digest)

    def id_of(i: int) -> str:
        return f"{prefix}{i:05d}"

    def index_of(value: str) -> int | None:
        return int(value[5:]) if len(value) == 10 and value.startswith(prefix) and value[5:].isdigit() else None

    return id_of, index_of


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The UpKeep sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "UpKeep")
    seed = cfg.seed
    loc_id, loc_index = _ids(seed, "locations")
    asset_id, asset_index = _ids(seed, "assets")
    wo_id, wo_index = _ids(seed, "work_orders")
    n_locations = cfg.count("locations", len(CARE_HOMES))
    n_assets = cfg.count("assets")

    def location(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "locations", i)
        p = pools(seed)
        name = CARE_HOMES[i % len(CARE_HOMES)] + ("" if i < len(CARE_HOMES) else f" {i // len(CARE_HOMES) + 1}")
        return {"id": loc_id(i), "name": name, "address": f"{r.choice(p.streets)}, {r.choice(p.towns)}, "
                                                           f"{r.choice(p.postcodes)}",
                "longitude": None, "latitude": None, "createdAt": _iso(at), "updatedAt": _iso(at)}

    def asset(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "assets", i)
        name, category, model = ASSETS[i % len(ASSETS)]
        li = i % n_locations
        room = r.randrange(1, 60)
        return {"id": asset_id(i), "name": f"{name}, room {room}" if category in ("Moving and handling", "Beds")
                else name, "barcode": f"WCH-{i + 1:05d}", "serial": f"SN{r.randrange(10**7, 10**8)}",
                "model": model, "category": category, "area": f"Room {room}" if category in
                ("Moving and handling", "Beds") else r.choice(AREAS).capitalize(),
                "location": loc_id(li), "locationName": location(li, at)["name"],
                "status": "active" if r.random() < 0.95 else "inactive", "parentAsset": None,
                "purchaseDate": f"{at - timedelta(days=r.randrange(200, 3000)):%Y-%m-%d}",
                "nextServiceDate": f"{at + timedelta(days=r.randrange(10, 180)):%Y-%m-%d}",
                "createdAt": _iso(at - timedelta(days=100)), "updatedAt": _iso(at)}

    def work_order(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "work_orders", i)
        p = pools(seed)
        ai = r.randrange(max(1, n_assets))
        a = asset(ai, at)
        title, description = r.choice(JOBS)
        status = r.choice(STATUSES)
        done = status == "complete"
        return {"id": wo_id(i), "workOrderNo": f"{i + 1:06d}",
                "title": title.format(asset=a["name"].split(",")[0], room=r.randrange(1, 60), area=r.choice(AREAS)),
                "description": description, "priority": r.choice((0, 1, 1, 2, 2, 3)), "status": status,
                "category": r.choice(("Damage", "Electrical", "Safety", "Preventive", "Inspection")),
                "asset": a["id"], "location": a["location"], "assignedToUser": f"usr{r.randrange(100, 999)}",
                "assignedToUserName": f"{r.choice(p.first_names)} {r.choice(p.last_names)}", "teamAssigned": None,
                "dueDate": _iso(at + timedelta(days=r.randrange(1, 14))),
                "completedDate": _iso(at + timedelta(hours=r.randrange(2, 72))) if done else None,
                "createdAt": _iso(at), "updatedAt": _iso(at)}

    state.datasets = {
        "locations": Dataset(n_locations, location, loc_id, loc_index),
        "assets": Dataset(n_assets, asset, asset_id, asset_index),
        "work_orders": Dataset(cfg.count("work_orders"), work_order, wo_id, wo_index),
    }
    app = FastAPI(title="UpKeep sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/auth",))
    add_control_routes(app, state)

    @app.post("/auth")
    async def login(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return upkeep_error(400, "Request body must be JSON with email and password.")
        if not isinstance(body, dict) or body.get("email") != EMAIL or body.get("password") != PASSWORD:
            return upkeep_error(400, "Invalid username/password.")
        issued = state.issue_tokens()
        state.token_grants["login"] = state.token_grants.get("login", 0) + 1
        expires = datetime.now(UTC) + timedelta(seconds=issued["expires_in"])
        return JSONResponse({"success": True, "result": {"sessionToken": "r:" + issued["access_token"],
                                                         "expiresAt": _iso(expires)}})

    def denied(request: Request) -> Response | None:
        token = request.headers.get("session-token", "")
        if not token.startswith("r:") or not state.token_valid(token[2:]):
            return upkeep_error(401, "Invalid session token. Please log in again.")
        return None

    def listing(name: str, request: Request, extra: Callable[[dict[str, Any]], bool] | None = None) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        try:
            limit, offset = int(q.get("limit") or MAX_LIMIT), int(q.get("offset") or 0)
        except ValueError:
            return upkeep_error(400, "limit and offset must be whole numbers")
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            return upkeep_error(400, f"limit must be between 1 and {MAX_LIMIT}")
        since = None
        if q.get("updatedAtGreaterThan"):
            since = _parse(q["updatedAtGreaterThan"])
            if since is None:
                return upkeep_error(400, "updatedAtGreaterThan must be an ISO 8601 date")
            since += timedelta(microseconds=1)  # strictly greater
        items, _ = state.datasets[name].page(since, offset, limit, extra)
        return JSONResponse({"success": True, "results": items})

    @app.get("/locations")
    async def locations(request: Request) -> Response:
        return listing("locations", request)

    @app.get("/assets")
    async def assets(request: Request) -> Response:
        return listing("assets", request)

    @app.get("/work-orders")
    async def work_orders(request: Request) -> Response:
        q = request.query_params
        filters = {k: q[k] for k in ("workOrderNo", "status", "asset", "location") if q.get(k)}
        where = (lambda r: all(str(r.get(k)) == v for k, v in filters.items())) if filters else None
        return listing("work_orders", request, where)

    def validate(el: Any, *, creating: bool) -> str | None:
        if not isinstance(el, dict):
            return "Request body must be a work order object."
        if creating and not str(el.get("title") or "").strip():
            return "title is required."
        if "status" in el and el["status"] not in STATUSES:
            return f"status must be one of {', '.join(STATUSES)}."
        if "priority" in el and el["priority"] not in (0, 1, 2, 3):
            return "priority must be 0, 1, 2 or 3."
        if el.get("asset") and state.datasets["assets"].get(str(el["asset"])) is None:
            return f"Asset {el['asset']} not found."
        return None

    @app.post("/work-orders")
    async def create(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        try:
            el = await request.json()
        except ValueError:
            return upkeep_error(400, "Request body must be JSON.")
        if (msg := validate(el, creating=True)) is not None:
            return upkeep_error(400, msg)
        data = state.datasets["work_orders"]
        new_id = f"NEW{len(data.overlay) + 1:07d}"
        now = datetime.now(UTC)
        rec = {"id": new_id, "workOrderNo": str(el.get("workOrderNo") or f"N{len(data.overlay) + 1:05d}"),
               "title": el["title"], "description": el.get("description", ""), "priority": el.get("priority", 0),
               "status": el.get("status", "open"), "category": el.get("category"), "asset": el.get("asset"),
               "location": el.get("location"), "assignedToUser": el.get("assignedToUser"),
               "assignedToUserName": None, "teamAssigned": None, "dueDate": el.get("dueDate"),
               "completedDate": None, "createdAt": _iso(now)}
        at = data.put(new_id, rec)
        rec["updatedAt"] = _iso(at)
        return JSONResponse({"success": True, "result": rec})

    @app.patch("/work-orders/{work_order_id}")
    async def update(work_order_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        data = state.datasets["work_orders"]
        current = data.get(work_order_id)
        if current is None:
            return upkeep_error(404, f"Work order {work_order_id} not found.")
        try:
            el = await request.json()
        except ValueError:
            return upkeep_error(400, "Request body must be JSON.")
        if (msg := validate(el, creating=False)) is not None:
            return upkeep_error(400, msg)
        rec = {**current, **{k: v for k, v in el.items() if k not in ("id", "createdAt", "updatedAt")}}
        if el.get("status") == "complete" and not rec.get("completedDate"):
            rec["completedDate"] = _iso(datetime.now(UTC))
        at = data.put(work_order_id, rec)
        rec["updatedAt"] = _iso(at)
        return JSONResponse({"success": True, "result": rec})

    app.state.credentials = {"email": EMAIL, "password": PASSWORD}
    app.state.config = {}
    app.state.started = time.time()
    return app


def upkeep_error(status: int, message: str) -> JSONResponse:
    """UpKeep's error body."""
    return JSONResponse({"success": False, "message": message}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = upkeep_error(429, "Too many requests. Please slow down.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp
