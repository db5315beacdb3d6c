"""Fiix sandbox: the CMMS RPC API at ``POST /api/`` with signed request URLs.

The URL carries ``service=cmms&appKey=…&accessKey=…&signatureMethod=HmacSHA256&signatureVersion=1``; the
``Authorization`` header is the lowercase hex HMAC-SHA256 of the URL without its scheme, keyed with the
secret key. Bodies are RPC messages: ``{"_maCn": "FindRequest", "className", "fields", "filters": [{"ql",
"parameters"}], "maxObjects", "startObjectIndex"}`` answered by ``{"_maCn": "FindResponse", "totalObjects",
"objects": [...]}``; RPC errors come back with HTTP 200 and ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    SUPPLIERS,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    pools,
    rng_for,
)
from connectors.sandboxes.upkeep import AREAS, ASSETS, JOBS

APP_KEY = "macmms-app-key-0f1e2d3c"
ACCESS_KEY = "macmms-access-key-4b5a6978"
SECRET_KEY = "macmms-secret-key-sandbox-9a8b7c6d5e4f"
MAX_OBJECTS = 1000
BASES = {"WorkOrder": 30001, "Asset": 20001, "PurchaseOrder": 40001, "Site": 101}
_FILTER = re.compile(r"^\s*dtmDateLastModified\s*(>=|>)\s*\?\s*$")


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _parse(value: Any) -> datetime | None:
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def signature(url_without_scheme: str, secret: str = SECRET_KEY) -> str:
    """The ``Authorization`` value of a request URL (without ``https://``)."""
    return hmac.new(secret.encode(), url_without_scheme.encode(), hashlib.sha256).hexdigest()


def rpc_error(code: int, message: str, status: int = 200) -> JSONResponse:
    """An RPC error reply (HTTP 200 with an ``error`` object, as Fiix answers)."""
    return JSONResponse({"_maCn": "FindResponse", "error": {"code": code, "message": message, "leg": "cmms"}},
                        status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = rpc_error(429, "Too many requests for this tenant; please retry later.", status=429)
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _int_ids(base: int) -> tuple[Callable[[int], str], Callable[[str], int | None]]:
    return (lambda i: str(base + i)), (lambda v: int(v) - base if v.isdigit() else None)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Fiix sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Fiix")
    seed = cfg.seed
    n_sites = cfg.count("sites", len(CARE_HOMES))
    n_assets = cfg.count("assets")

    def site(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "sites", i)
        p = pools(seed)
        name = CARE_HOMES[i % len(CARE_HOMES)] + ("" if i < len(CARE_HOMES) else f" {i // len(CARE_HOMES) + 1}")
        return {"className": "Site", "id": BASES["Site"] + i, "strName": name,
                "strCode": "".join(w[0] for w in name.split()[:3]).upper(), "strAddress": r.choice(p.streets),
                "strCity": r.choice(p.towns), "strPostalCode": r.choice(p.postcodes),
                "dtmDateLastModified": _stamp(at)}

    def asset(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "assets", i)
        name, category, model = ASSETS[i % len(ASSETS)]
        si = i % n_sites
        make, _, model_name = model.partition(" ")
        room = r.randrange(1, 60)
        return {"className": "Asset", "id": BASES["Asset"] + i, "strName": f"{name}, room {room}",
                "strCode": f"AST-{i + 1:05d}", "strDescription": f"{name} ({model})", "intCategoryID": 10 + i % 7,
                "strCategory": category, "intSiteID": BASES["Site"] + si, "strSite": site(si, at)["strName"],
                "strLocation": f"Room {room}" if category in ("Moving and handling", "Beds")
                else r.choice(AREAS).capitalize(), "bolIsOnline": r.random() < 0.93, "strMake": make,
                "strModel": model_name, "strSerialNumber": f"SN{r.randrange(10**7, 10**8)}",
                "dtmDateInstalled": _stamp(at - timedelta(days=r.randrange(200, 3000))),
                "dtmNextInspection": _stamp(at + timedelta(days=r.randrange(10, 180))),
                "dtmDateLastModified": _stamp(at)}

    def work_order(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "work_orders", i)
        p = pools(seed)
        a = asset(r.randrange(max(1, n_assets)), at)
        title, _ = r.choice(JOBS)
        status = r.choice((1, 2, 3, 4, 5, 5))
        return {"className": "WorkOrder", "id": BASES["WorkOrder"] + i, "strCode": f"WO-{i + 1:06d}",
                "strDescription": title.format(asset=a["strName"].split(",")[0], room=r.randrange(1, 60),
                                               area=r.choice(AREAS)),
                "intWorkOrderStatusID": status, "intPriorityID": r.randrange(1, 6),
                "intMaintenanceTypeID": r.randrange(1, 5), "intSiteID": a["intSiteID"], "strAssets": str(a["id"]),
                "strAssignedUsers": f"{r.choice(p.first_names)} {r.choice(p.last_names)}",
                "dtmDateCreated": _stamp(at), "dtmSuggestedCompletionDate": _stamp(at + timedelta(days=3)),
                "dtmDateCompleted": _stamp(at + timedelta(days=2)) if status == 5 else None,
                "dtmDateLastModified": _stamp(at)}

    def purchase_order(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "purchase_orders", i)
        si = r.randrange(len(SUPPLIERS))
        return {"className": "PurchaseOrder", "id": BASES["PurchaseOrder"] + i, "intCode": 1000 + i,
                "intPurchaseOrderStatusID": r.choice((1, 2, 3, 4, 5, 5, 6)), "intSupplierID": 501 + si,
                "strSupplier": SUPPLIERS[si], "intSiteID": BASES["Site"] + i % n_sites,
                "dblTotal": round(r.uniform(40, 2500), 2), "dtmDateCreated": _stamp(at),
                "dtmDateExpectedDelivery": _stamp(at + timedelta(days=r.randrange(2, 15))),
                "dtmDateLastModified": _stamp(at)}

    state.datasets = {
        "Site": Dataset(n_sites, site, *_int_ids(BASES["Site"])),
        "Asset": Dataset(n_assets, asset, *_int_ids(BASES["Asset"])),
        "WorkOrder": Dataset(cfg.count("work_orders"), work_order, *_int_ids(BASES["WorkOrder"])),
        "PurchaseOrder": Dataset(cfg.count("purchase_orders"), purchase_order, *_int_ids(BASES["PurchaseOrder"])),
    }
    app = FastAPI(title="Fiix sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    @app.post("/api/")
    async def rpc(request: Request) -> Response:
        q = request.query_params
        if (q.get("service") != "cmms" or q.get("appKey") != APP_KEY or q.get("accessKey") != ACCESS_KEY
                or q.get("signatureMethod") != "HmacSHA256" or q.get("signatureVersion") != "1"):
            return rpc_error(401, "Authentication failed: unknown application or access key")
        signed = str(request.url).split("://", 1)[-1]
        if not hmac.compare_digest(request.headers.get("authorization", "").encode(), signature(signed).encode()):
            return rpc_error(401, "Authentication failed: the request signature is not valid")
        if state.faults.revoke_tokens:
            return rpc_error(401, "Authentication failed: the access key has been revoked")
        try:
            body = await request.json()
        except ValueError:
            return rpc_error(400, "The request body is not a JSON RPC message")
        if not isinstance(body, dict) or body.get("_maCn") != "FindRequest":
            return rpc_error(400, f"Unsupported message {body.get('_maCn') if isinstance(body, dict) else body!r}")
        cls = str(body.get("className", ""))
        data = state.datasets.get(cls)
        if data is None:
            return rpc_error(404, f"Unknown className {cls!r}")
        try:
            start, size = int(body.get("startObjectIndex", 0)), int(body.get("maxObjects", 100))
        except (TypeError, ValueError):
            return rpc_error(400, "startObjectIndex and maxObjects must be whole numbers")
        if start < 0 or not 1 <= size <= MAX_OBJECTS:
            return rpc_error(400, f"maxObjects must be between 1 and {MAX_OBJECTS}")
        since: datetime | None = None
        for flt in body.get("filters") or []:
            m = _FILTER.match(str(flt.get("ql", ""))) if isinstance(flt, dict) else None
            params = flt.get("parameters") if isinstance(flt, dict) else None
            since = _parse(params[0]) if m and isinstance(params, list) and params else None
            if since is None:
                return rpc_error(400, "Only the filter 'dtmDateLastModified >= ?' with one date is supported here")
            if m and m.group(1) == ">":
                since += timedelta(seconds=1)
        wanted = [f.strip() for f in str(body.get("fields", "id")).split(",") if f.strip()]
        rows, total = data.page(since, start, size)
        objects = [{"className": cls, **{f: row.get(f) for f in wanted}} for row in rows]
        return JSONResponse({"_maCn": "FindResponse", "totalObjects": total, "objects": objects})

    app.state.credentials = {"app_key": APP_KEY, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
    app.state.config = {"tenant": "willowcourt"}
    app.state.started = time.time()
    return app
