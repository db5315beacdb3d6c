"""Coupa sandbox: OAuth2 client credentials and the Core API's purchase orders and suppliers.

``POST /oauth2/token`` (form ``grant_type=client_credentials``, client id/secret, scopes such as
``core.purchase_order.read``); ``GET /api/purchase_orders`` and ``/api/suppliers`` answer JSON arrays with
hyphenated keys, ``limit`` at most 50 and ``offset``, filters with operators (``updated_at[gt_or_eq]``),
``order_by``/``dir``; a token without the resource's scope gets 403.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.cin7 import PRODUCTS, uk_phone
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

CLIENT_ID = "coupa-sandbox-client-7f3e"
CLIENT_SECRET = "coupa-sandbox-secret-1a2b3c4d5e"
SCOPES = {"core.purchase_order.read", "core.purchase_order.write", "core.supplier.read", "core.invoice.read"}
MAX_LIMIT = 50
PO_BASE, SUPPLIER_BASE = 3001, 101
STATUSES = ("issued", "issued", "issued", "closed", "draft", "buyer_hold", "cancelled")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def coupa_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Coupa's (OAuth-style) error body."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers=headers or {})


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return coupa_error(429, "too_many_requests", "Too many requests; slow down and retry.", headers)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Coupa sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Coupa")
    seed = cfg.seed
    n_suppliers = cfg.count("suppliers", 20)
    scopes_of: dict[str, set[str]] = {}

    def supplier(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "suppliers", i)
        p = pools(seed)
        name = SUPPLIERS[i % len(SUPPLIERS)] + ("" if i < len(SUPPLIERS) else f" ({i // len(SUPPLIERS) + 1})")
        first, last = r.choice(p.first_names), r.choice(p.last_names)
        return {"id": SUPPLIER_BASE + i, "created-at": _iso(at - timedelta(days=600)), "updated-at": _iso(at),
                "name": name, "display-name": name, "number": f"SUP-{i + 1:04d}", "status": "active",
                "po-method": r.choice(("email", "cxml", "prompt")), "po-email": f"orders{i}@example.co.uk",
                "primary-contact": {"name-given": first, "name-family": last, "email": f"{first}.{last}@example.co.uk"
                                    .lower(), "phone-work": {"number": uk_phone(r)}}}

    def order(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "purchase_orders", i)
        p = pools(seed)
        sup = supplier(r.randrange(max(1, n_suppliers)), at)
        home = CARE_HOMES[i % len(CARE_HOMES)]
        lines: list[dict[str, Any]] = []
        for n in range(1, r.randrange(2, 5)):
            _stem, desc, _cat, uom, cost = PRODUCTS[r.randrange(len(PRODUCTS))]
            qty = float(r.choice((5, 10, 20, 50)))
            lines.append({"id": 90000 + i * 10 + n, "line-num": n, "description": desc, "quantity": qty,
                          "price": cost, "total": round(qty * cost, 2), "uom": {"code": uom.upper()[:4]},
                          "need-by-date": _iso(at + timedelta(days=r.randrange(3, 10))), "status": "created",
                          "account": {"code": "311-Medical Supplies"}, "item": None})
        status = r.choice(STATUSES)
        return {"id": PO_BASE + i, "created-at": _iso(at), "updated-at": _iso(at), "po-number": str(PO_BASE + i),
                "status": status, "version": 1 + r.randrange(0, 3), "exported": False,
                "currency": {"id": 1, "code": "GBP"}, "supplier": {"id": sup["id"], "name": sup["name"],
                                                                   "number": sup["number"]},
                "ship-to-address": {"id": 500 + i % len(CARE_HOMES), "name": home, "street1": r.choice(p.streets),
                                    "city": r.choice(p.towns), "postal-code": r.choice(p.postcodes),
                                    "country": {"code": "GB", "name": "United Kingdom"}},
                "ship-to-attention": "Home manager", "total": round(sum(float(x["total"]) for x in lines), 2),
                "order-lines": lines, "requisition-header": {"id": 7000 + i},
                "created-by": {"login": f"{r.choice(p.first_names).lower()}.manager"}}

    def int_ids(base: int) -> tuple[Any, Any]:
        return (lambda i: str(base + i)), (lambda v: int(v) - base if v.isdigit() else None)

    state.datasets = {"suppliers": Dataset(n_suppliers, supplier, *int_ids(SUPPLIER_BASE)),
                      "purchase_orders": Dataset(cfg.count("purchase_orders"), order, *int_ids(PO_BASE))}
    app = FastAPI(title="Coupa sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth2/",))
    add_control_routes(app, state)

    @app.post("/oauth2/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if grant != "client_credentials":
            return coupa_error(400, "unsupported_grant_type", "The authorization grant type is not supported.")
        wrong_client = form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET
        if (cfg.require_valid_client and wrong_client) or state.faults.revoke_tokens:
            return coupa_error(401, "invalid_client", "Client authentication failed due to unknown client, no client "
                                                      "authentication included, or unsupported authentication method.")
        asked = set(str(form.get("scope", "")).split())
        if not asked or not asked <= SCOPES:
            return coupa_error(400, "invalid_scope", "The requested scope is invalid, unknown, or malformed.")
        issued = state.issue_tokens()
        scopes_of[issued["access_token"]] = asked
        return JSONResponse({"access_token": issued["access_token"], "token_type": "bearer",
                             "expires_in": issued["expires_in"], "scope": " ".join(sorted(asked))})

    def listing(name: str, scope: str, request: Request) -> Response:
        tok = bearer(request)
        if not state.token_valid(tok):
            return coupa_error(401, "invalid_token", "The access token is invalid or has expired",
                               {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if scope not in scopes_of.get(tok or "", set()):
            return coupa_error(403, "insufficient_scope", f"The request requires the {scope} scope")
        q = request.query_params
        try:
            limit, offset = min(MAX_LIMIT, int(q.get("limit") or MAX_LIMIT)), int(q.get("offset") or 0)
        except ValueError:
            return coupa_error(400, "invalid_request", "limit and offset must be whole numbers")
        since = None
        if q.get("updated_at[gt_or_eq]"):
            try:
                since = datetime.fromisoformat(q["updated_at[gt_or_eq]"].replace("Z", "+00:00"))
            except ValueError:
                return coupa_error(400, "invalid_request", "updated_at[gt_or_eq] must be a date-time")
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
        status = q.get("status")
        items, _ = state.datasets[name].page(since, offset, limit,
                                             (lambda r: r.get("status") == status) if status else None)
        return JSONResponse(items)

    @app.get("/api/purchase_orders")
    async def purchase_orders(request: Request) -> Response:
        return listing("purchase_orders", "core.purchase_order.read", request)

    @app.get("/api/suppliers")
    async def suppliers(request: Request) -> Response:
        return listing("suppliers", "core.supplier.read", request)

    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    app.state.config = {"instance": "willowcourt"}
    app.state.started = time.time()
    return app
