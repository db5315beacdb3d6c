"""Procurement sandboxes: SAP Ariba (Purchase Orders API) and Oracle Fusion Cloud Procurement (REST).

SAP Ariba (from SAP's developer-portal documentation as summarised in the vendor notes; the exact path, list
envelope and filter syntax are unconfirmed because the specs download only after portal login):

* ``POST /v2/oauth/token`` on the OAuth server: ``client_credentials`` with HTTP Basic client id and secret;
  tokens last 1,440 seconds;
* every API call needs **both** the bearer token and the application's ``apiKey`` header, and the gateway
  checks they belong to the same application (401 otherwise), plus ``realm`` in the query;
* ``GET /api/purchase-orders-buyer/v1/prod/orders?realm=&$top=&$skip=&$filter=``: ``{"content": [...],
  "totalElements": n}``; ``$top`` at most 100; ``$filter=lastModifiedDate gt '<ISO>'``;
* rate limits per application: ``X-RateLimit-Limit-{second,minute,hour,day}`` and ``X-RateLimit-Remaining-*``
  headers on every reply, 429 with ``Retry-After`` when exceeded; errors ``{"error", "message"}``.

Oracle Fusion Cloud Procurement (REST framework, ``/fscmRestApi/resources/11.13.18.05``):

* HTTP Basic with a Fusion user; ``REST-Framework-Version`` header honoured;
* ``GET /purchaseOrders?limit=&offset=&totalResults=true&onlyData=true&q=&fields=``: ``{"items": [...],
  "count", "hasMore", "limit", "offset", "totalResults"}``; ``limit`` at most 500; ``q`` filters such as
  ``Status='OPEN'`` or ``LastUpdateDate>'<ISO>'`` (``;`` joins conditions); ``fields`` picks attributes;
* ``GET /purchaseOrders/{POHeaderId}/child/lines`` gives a PO's lines (``expand=lines`` inlines them);
* errors are plain text or ``{"title", "detail", "o:errorCode"}`` (REST framework 4) (unconfirmed).

Both serve deterministic UK care-home orders (PPE, continence, catering, cleaning) from real UK suppliers' names.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from connectors.sandboxes.cin7 import PRODUCTS
from connectors.sandboxes.common import (
    CARE_HOMES,
    SUPPLIERS,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    bearer,
    new_state,
    pools,
    rng_for,
)
from connectors.sandboxes.handlers import basic_auth

ARIBA_CLIENT_ID = "ariba-sandbox-oauth-client-4c1d"
ARIBA_CLIENT_SECRET = "ariba-sandbox-oauth-secret-8e2f0a"
ARIBA_API_KEY = "ariba-sandbox-application-key-93b7"
ARIBA_REALM = "willowcourt-T"
ARIBA_TOKEN_TTL = 1440
ARIBA_MAX_TOP = 100
ARIBA_ORDERS = "/api/purchase-orders-buyer/v1/prod/orders"
ORACLE_USER = "CAREHUB.INTEGRATION"
ORACLE_PASSWORD = "oracle-sandbox-Passw0rd!"
ORACLE_BASE = "/fscmRestApi/resources/11.13.18.05"
ORACLE_MAX_LIMIT = 500
ORACLE_PO_BASE = 300000001234001


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _lines(seed: int, stream: str, i: int, at: datetime) -> list[tuple[int, str, str, float, float, datetime]]:
    r = rng_for(seed, f"{stream}.lines", i)
    out = []
    for n in range(1, r.randrange(2, 6)):
        _stem, desc, _cat, uom, cost = PRODUCTS[r.randrange(len(PRODUCTS))]
        out.append((n, desc, uom, float(r.choice((5, 10, 20, 40))), cost, at + timedelta(days=r.randrange(2, 9))))
    return out


# ============================================================================================== SAP Ariba


def _ariba_throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    headers.update({"X-RateLimit-Limit-minute": "60", "X-RateLimit-Remaining-minute": "0"})
    return JSONResponse({"error": "Too Many Requests", "message": "API rate limit exceeded"}, status_code=429,
                        headers=headers)


def create_ariba_app(config: SandboxConfig | None = None) -> FastAPI:
    """The SAP Ariba sandbox (OAuth server and Purchase Orders API on one host)."""
    cfg = config or SandboxConfig()
    if cfg.token_ttl_seconds == SandboxConfig().token_ttl_seconds:  # not chosen by the caller: Ariba's 1,440 s
        cfg = cfg.model_copy(update={"token_ttl_seconds": ARIBA_TOKEN_TTL})
    state = new_state(cfg, "SAP Ariba")
    seed = cfg.seed
    statuses = ("Ordered", "Ordered", "Confirmed", "Shipped", "Received", "Cancelled", "Changed")

    def order(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "ariba.orders", i)
        p = pools(seed)
        lines = _lines(seed, "ariba", i, at)
        supplier = SUPPLIERS[r.randrange(len(SUPPLIERS))]
        items: list[dict[str, Any]] = [{"lineNumber": n, "description": desc, "quantity": qty, "unitOfMeasure": uom.upper()[:2],
                  "unitPrice": {"amount": cost, "currencyCode": "GBP"},
                  "subtotal": {"amount": round(qty * cost, 2), "currencyCode": "GBP"},
                  "needByDate": _iso(need)} for n, desc, uom, qty, cost, need in lines]
        home = CARE_HOMES[i % len(CARE_HOMES)]
        return {"documentNumber": f"PO{40000 + i}", "revision": 1 + r.randrange(0, 2),
                "orderDate": _iso(at - timedelta(hours=2)), "lastModifiedDate": _iso(at),
                "buyerANID": "AN01000000123-T", "supplierANID": f"AN0{1100000000 + i % 7 * 977}-T",
                "supplierName": supplier, "status": r.choice(statuses),
                "amount": {"amount": round(sum(qty * cost for _n, _d, _u, qty, cost, _w in lines), 2),
                           "currencyCode": "GBP"},
                "shipTo": {"name": home, "street": r.choice(p.streets), "city": r.choice(p.towns),
                           "postalCode": r.choice(p.postcodes), "country": "GB"},
                "requester": f"{r.choice(p.first_names)} {r.choice(p.last_names)}", "items": items}

    state.datasets = {"orders": Dataset(cfg.count("orders", 250), order, lambda i: f"PO{40000 + i}",
                                        lambda v: int(v[2:]) - 40000 if re.fullmatch(r"PO\d+", v) else None)}
    app = FastAPI(title="SAP Ariba sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_ariba_throttle, exempt=("/v2/oauth/",))
    add_control_routes(app, state)
    apps_of: dict[str, str] = {}  # access token -> application (client id)

    @app.post("/v2/oauth/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        cid, secret = basic_auth(request)
        if cid != ARIBA_CLIENT_ID or secret != ARIBA_CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client", "error_description": "Bad client credentials"},
                                status_code=401)
        if grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        issued = state.issue_tokens()
        apps_of[issued["access_token"]] = cid
        return JSONResponse({"access_token": issued["access_token"], "refresh_token": issued["refresh_token"],
                             "token_type": "bearer", "scope": "", "expires_in": cfg.token_ttl_seconds})

    limits = {"X-RateLimit-Limit-second": "1", "X-RateLimit-Limit-minute": "60", "X-RateLimit-Limit-hour": "1000",
              "X-RateLimit-Limit-day": "10000"}

    @app.get(ARIBA_ORDERS)
    async def orders(request: Request) -> Response:
        minute, day = state.minute_window[1], state.day_count
        headers = {**limits, "X-RateLimit-Remaining-minute": str(max(0, 60 - minute)),
                   "X-RateLimit-Remaining-day": str(max(0, 10000 - day))}
        tok = bearer(request)
        if not state.token_valid(tok):
            return JSONResponse({"error": "Unauthorized", "message": "Invalid or expired OAuth token"},
                                status_code=401, headers=headers)
        key = request.headers.get("apikey")
        if not key:
            return JSONResponse({"error": "Unauthorized", "message": "apiKey header is missing"}, status_code=401,
                                headers=headers)
        if key != ARIBA_API_KEY or apps_of.get(tok or "") != ARIBA_CLIENT_ID:
            return JSONResponse({"error": "Unauthorized", "message": "apiKey does not match the OAuth application"},
                                status_code=401, headers=headers)
        q = request.query_params
        if q.get("realm") != ARIBA_REALM:
            return JSONResponse({"error": "Bad Request", "message": f"Unknown realm '{q.get('realm')}'"},
                                status_code=400, headers=headers)
        try:
            top = int(q.get("$top") or 10)
            skip = int(q.get("$skip") or 0)
        except ValueError:
            return JSONResponse({"error": "Bad Request", "message": "$top and $skip must be integers"},
                                status_code=400, headers=headers)
        if not 1 <= top <= ARIBA_MAX_TOP:
            return JSONResponse({"error": "Bad Request", "message": f"$top must be between 1 and {ARIBA_MAX_TOP}"},
                                status_code=400, headers=headers)
        since = None
        flt = q.get("$filter")
        if flt:
            m = re.fullmatch(r"lastModifiedDate (gt|ge) '([^']+)'", flt)
            if not m:
                return JSONResponse({"error": "Bad Request", "message": f"Unsupported $filter: {flt}"},
                                    status_code=400, headers=headers)
            since = _parse(m.group(2)) + (timedelta(seconds=1) if m.group(1) == "gt" else timedelta(0))
        items, total = state.datasets["orders"].page(since, skip, top)
        return JSONResponse({"content": items, "totalElements": total, "numberOfElements": len(items),
                             "pageNumber": skip // top, "firstPage": skip == 0, "lastPage": skip + top >= total},
                            headers=headers)

    app.state.credentials = {"client_id": ARIBA_CLIENT_ID, "client_secret": ARIBA_CLIENT_SECRET,
                             "api_key": ARIBA_API_KEY}
    app.state.config = {"realm": ARIBA_REALM}
    return app


# ============================================================================================== Oracle


def _oracle_throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return PlainTextResponse("Too Many Requests", status_code=429, headers=headers)


_Q_COND = re.compile(r"^(\w+)\s*(=|>|<|>=|<=)\s*'([^']*)'$")


def create_oracle_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Oracle Fusion Cloud Procurement sandbox (purchaseOrders and their lines)."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Oracle Procurement Cloud")
    seed = cfg.seed
    statuses = ("OPEN", "OPEN", "OPEN", "CLOSED FOR RECEIVING", "CLOSED", "PENDING APPROVAL", "CANCELED")

    def order(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "oracle.orders", i)
        p = pools(seed)
        lines = _lines(seed, "oracle", i, at)
        return {"POHeaderId": ORACLE_PO_BASE + i, "OrderNumber": f"UK{100000 + i}",
                "Description": f"{CARE_HOMES[i % len(CARE_HOMES)]} weekly order",
                "Supplier": SUPPLIERS[r.randrange(len(SUPPLIERS))], "SupplierId": 300000047000 + r.randrange(40),
                "SupplierSite": "UK-MAIN", "ProcurementBU": "UK Care Homes BU", "SoldToLegalEntity": "Willow Care Ltd",
                "BillToLocation": "UK Head Office", "ShipToLocationCode": f"HOME-{i % len(CARE_HOMES) + 1:02d}",
                "ShipToLocation": CARE_HOMES[i % len(CARE_HOMES)],
                "Buyer": f"{r.choice(p.first_names)} {r.choice(p.last_names)}",
                "Total": round(sum(qty * cost for _n, _d, _u, qty, cost, _w in lines), 2), "CurrencyCode": "GBP",
                "Status": r.choice(statuses), "CreationDate": _iso(at - timedelta(hours=3)),
                "LastUpdateDate": _iso(at), "lines": [
                    {"POLineId": (ORACLE_PO_BASE + i) * 10 + n, "LineNumber": n, "Description": desc,
                     "Quantity": qty, "UOM": uom, "Price": cost, "Amount": round(qty * cost, 2),
                     "RequestedDeliveryDate": need.date().isoformat()}
                    for n, desc, uom, qty, cost, need in lines]}

    state.datasets = {"purchaseOrders": Dataset(
        cfg.count("purchaseOrders", 250), order, lambda i: str(ORACLE_PO_BASE + i),
        lambda v: int(v) - ORACLE_PO_BASE if v.isdigit() else None)}
    app = FastAPI(title="Oracle Procurement Cloud sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_oracle_throttle)
    add_control_routes(app, state)

    def authorised(request: Request) -> bool:
        user, pw = basic_auth(request)
        return not state.faults.revoke_tokens and user == ORACLE_USER and pw == ORACLE_PASSWORD

    def unauthorised() -> Response:
        return PlainTextResponse("Unauthorized", status_code=401,
                                 headers={"WWW-Authenticate": 'Basic realm="fscmRestApi"'})

    def bad(detail: str) -> Response:
        return JSONResponse({"title": "Bad Request", "status": "400", "detail": detail,
                             "o:errorCode": "27024"}, status_code=400)

    def view(po: dict[str, Any], fields: list[str] | None, expand: bool) -> dict[str, Any]:
        out = {k: v for k, v in po.items() if k != "lines" or expand}
        return {k: out[k] for k in fields if k in out} if fields else out

    @app.get(ORACLE_BASE + "/purchaseOrders")
    async def purchase_orders(request: Request) -> Response:
        if not authorised(request):
            return unauthorised()
        q = request.query_params
        try:
            limit = int(q.get("limit") or 25)
            offset = int(q.get("offset") or 0)
        except ValueError:
            return bad("limit and offset must be integers")
        if not 1 <= limit <= ORACLE_MAX_LIMIT:
            return bad(f"limit must be between 1 and {ORACLE_MAX_LIMIT}")
        conds = []
        for part in filter(None, (q.get("q") or "").split(";")):
            m = _Q_COND.match(part.strip())
            if not m:
                return bad(f"the q parameter is not valid: {part}")
            conds.append(m.groups())
        since = None
        rest = []
        for attr, op, value in conds:
            if attr == "LastUpdateDate" and op in (">", ">="):
                since = _parse(value) + (timedelta(seconds=1) if op == ">" else timedelta(0))
            else:
                rest.append((attr, op, value))

        def where(po: dict[str, Any]) -> bool:
            return all(str(po.get(a)) == v for a, op, v in rest if op == "=")

        fields = [f for f in (q.get("fields") or "").split(",") if f] or None
        items, total = state.datasets["purchaseOrders"].page(since, offset, limit, where if rest else None)
        expand = "lines" in (q.get("expand") or "").split(",") or q.get("expand") == "all"
        body: dict[str, Any] = {"items": [view(po, fields, expand) for po in items], "count": len(items),
                                "hasMore": offset + len(items) < total, "limit": limit, "offset": offset}
        if q.get("totalResults") == "true":
            body["totalResults"] = total
        if q.get("onlyData") != "true":
            body["links"] = [{"rel": "self", "href": str(request.url), "name": "purchaseOrders", "kind": "collection"}]
        return JSONResponse(body, headers={"REST-Framework-Version": request.headers.get("rest-framework-version", "1")})

    @app.get(ORACLE_BASE + "/purchaseOrders/{po_id}/child/lines")
    async def lines(po_id: str, request: Request) -> Response:
        if not authorised(request):
            return unauthorised()
        po = state.datasets["purchaseOrders"].get(po_id)
        if po is None:
            return PlainTextResponse(f"The requested resource purchaseOrders/{po_id} was not found.", status_code=404)
        items = po["lines"]
        return JSONResponse({"items": items, "count": len(items), "hasMore": False, "limit": 25, "offset": 0})

    app.state.credentials = {"username": ORACLE_USER, "password": ORACLE_PASSWORD}
    app.state.config = {"pod": "ehxk-test", "data_centre": "em2"}
    return app
