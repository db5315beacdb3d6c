"""Brightpearl sandbox: the public API's private-app auth, search resources and 503 throttling.

Paths ``/public-api/{account}/product-service/product-search``, ``order-service/order-search`` and
``contact-service/contact-search``; headers ``brightpearl-app-ref`` and ``brightpearl-account-token``;
search replies ``{"response": {"metaData": {resultsAvailable, resultsReturned, firstResult, lastResult,
morePagesAvailable, columns}, "results": [[...], ...]}, "reference": {}}`` in the order of the ``columns``
asked for; ``firstResult`` is 1-based, ``pageSize`` at most 500; date filters are ranges ``from/to`` (either
side open). Every reply carries ``brightpearl-requests-remaining``; over 200 a minute the reply is
**503** with ``brightpearl-next-throttle-period`` (milliseconds), not 429. Errors are
``{"errors": [{"code", "message"}]}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.cin7 import PRODUCTS
from connectors.sandboxes.common import (
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

ACCOUNT = "willowcourt"
APP_REF = "willowcourt_carehub"
ACCOUNT_TOKEN = "bp-sandbox-account-token-7d1e9c3a"
PER_MINUTE = 200
MAX_PAGE = 500
PRODUCT_BASE, ORDER_BASE, CONTACT_BASE = 1001, 5001, 201
ORDER_STATUSES = (6, 7, 7, 8, 8, 9)  # pending, placed with supplier, received, cancelled


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _int_ids(base: int) -> tuple[Callable[[int], str], Callable[[str], int | None]]:
    def id_of(i: int) -> str:
        return str(base + i)

    def index_of(value: str) -> int | None:
        return int(value) - base if value.isdigit() else None

    return id_of, index_of


def _contact(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "suppliers", i)
    p = pools(seed)
    company = SUPPLIERS[i % len(SUPPLIERS)] + ("" if i < len(SUPPLIERS) else f" ({i // len(SUPPLIERS) + 1})")
    return {"contactId": CONTACT_BASE + i, "companyName": company, "primaryEmail": f"orders{i}@example.co.uk",
            "firstName": r.choice(p.first_names), "lastName": r.choice(p.last_names), "isSupplier": True,
            "createdOn": _iso(at - timedelta(days=500)), "updatedOn": _iso(at)}


def _product(seed: int, i: int, at: datetime, n_contacts: int) -> dict[str, Any]:
    r = rng_for(seed, "products", i)
    stem, name, category, _uom, _cost = PRODUCTS[i % len(PRODUCTS)]
    variant = i // len(PRODUCTS)
    return {"productId": PRODUCT_BASE + i, "productName": name if variant == 0 else f"{name} - range {variant + 1}",
            "SKU": f"{stem}-{variant + 1:03d}", "barcode": f"50{r.randrange(10**10, 10**11)}",
            "productStatus": "LIVE", "stockTracked": True,
            "primarySupplierId": CONTACT_BASE + r.randrange(max(1, n_contacts)),
            "brightpearlCategoryCode": category.upper().replace(" ", "_"),
            "createdOn": _iso(at - timedelta(days=300)), "updatedOn": _iso(at)}


def _order(seed: int, i: int, at: datetime, n_contacts: int) -> dict[str, Any]:
    r = rng_for(seed, "purchase_orders", i)
    status = r.choice(ORDER_STATUSES)
    return {"orderId": ORDER_BASE + i, "orderTypeId": 2, "contactId": CONTACT_BASE + r.randrange(max(1, n_contacts)),
            "orderStatusId": status, "orderStockStatusId": 3 if status == 8 else 1,
            "customerRef": f"WCH-PO-{i + 1:05d}", "placedOn": _iso(at),
            "deliveryDate": _iso(at + timedelta(days=r.randrange(2, 8))), "createdOn": _iso(at), "updatedOn": _iso(at)}


def bp_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Brightpearl's error body."""
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=status, headers=headers or {})


def _throttle(state: SandboxState) -> Response:
    # The wait until the minute window resets; the ``retry_after`` fault (seconds) overrides it in tests.
    if state.faults.retry_after is not None:
        period_ms = str(int(float(state.faults.retry_after) * 1000))
    else:
        period_ms = str(int(60_000 - (time.time() * 1000) % 60_000))
    return JSONResponse({"response": "You have sent too many requests. Please wait before sending another request"},
                        status_code=503, headers={"brightpearl-next-throttle-period": period_ms,
                                                  "brightpearl-requests-remaining": "0"})


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Brightpearl sandbox app (enforces 200 requests a minute unless the config says otherwise)."""
    cfg = config or SandboxConfig()
    if cfg.rate_limit_per_minute is None:
        cfg = cfg.model_copy(update={"rate_limit_per_minute": PER_MINUTE})
    state = new_state(cfg, "Brightpearl")
    seed = cfg.seed
    nc = cfg.count("suppliers", 25)
    state.datasets = {
        "products": Dataset(cfg.count("products"), lambda i, at: _product(seed, i, at, nc), *_int_ids(PRODUCT_BASE)),
        "purchase_orders": Dataset(cfg.count("purchase_orders"), lambda i, at: _order(seed, i, at, nc),
                                   *_int_ids(ORDER_BASE)),
        "suppliers": Dataset(nc, lambda i, at: _contact(seed, i, at), *_int_ids(CONTACT_BASE)),
    }
    app = FastAPI(title="Brightpearl sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)
    columns = {
        "products": ("productId", "productName", "SKU", "barcode", "productStatus", "stockTracked",
                     "primarySupplierId", "brightpearlCategoryCode", "createdOn", "updatedOn"),
        "purchase_orders": ("orderId", "orderTypeId", "contactId", "orderStatusId", "orderStockStatusId",
                            "customerRef", "placedOn", "deliveryDate", "createdOn", "updatedOn"),
        "suppliers": ("contactId", "companyName", "primaryEmail", "firstName", "lastName", "isSupplier",
                      "createdOn", "updatedOn"),
    }

    def remaining() -> dict[str, str]:
        limit = cfg.rate_limit_per_minute or PER_MINUTE
        return {"brightpearl-requests-remaining": str(max(0, limit - state.minute_window[1]))}

    def denied(account: str, request: Request) -> Response | None:
        if account != ACCOUNT:
            return bp_error(404, "CMNC-404", f"Account {account} not found")
        if (request.headers.get("brightpearl-app-ref") != APP_REF
                or request.headers.get("brightpearl-account-token") != ACCOUNT_TOKEN or state.faults.revoke_tokens):
            return bp_error(401, "CMNC-002", "Not authenticated: the app reference or account token is not valid")
        return None

    def search(name: str, account: str, request: Request, where: Callable[[dict[str, Any]], bool] | None) -> Response:
        if (d := denied(account, request)) is not None:
            return d
        q = request.query_params
        asked = [c for c in (q.get("columns") or ",".join(columns[name])).split(",") if c]
        unknown = [c for c in asked if c not in columns[name]]
        if unknown:
            return bp_error(400, "CMNC-400", f"Unknown column(s): {', '.join(unknown)}")
        try:
            first, size = int(q.get("firstResult") or 1), int(q.get("pageSize") or 200)
        except ValueError:
            return bp_error(400, "CMNC-400", "firstResult and pageSize must be whole numbers")
        if first < 1 or not 1 <= size <= MAX_PAGE:
            return bp_error(400, "CMNC-400", f"firstResult starts at 1 and pageSize is at most {MAX_PAGE}")
        since = None
        if q.get("updatedOn"):
            lower, _, upper = q["updatedOn"].partition("/")
            since = _parse(lower) if lower else None
            if (lower and since is None) or upper:
                return bp_error(400, "CMNC-400", "updatedOn must be a date range 'from/' (open-ended)")
        rows, total = state.datasets[name].page(since, first - 1, size, where)
        meta = {"resultsAvailable": total, "resultsReturned": len(rows), "firstResult": first,
                "lastResult": first + len(rows) - 1, "morePagesAvailable": first - 1 + len(rows) < total,
                "columns": [{"name": c, "sortable": True, "filterable": True} for c in asked],
                "sorting": [{"filterable": {"name": "updatedOn"}, "direction": "ASC"}]}
        return JSONResponse({"response": {"metaData": meta, "results": [[r.get(c) for c in asked] for r in rows]},
                             "reference": {}}, headers=remaining())

    @app.get("/public-api/{account}/product-service/product-search")
    async def product_search(account: str, request: Request) -> Response:
        return search("products", account, request, None)

    @app.get("/public-api/{account}/order-service/order-search")
    async def order_search(account: str, request: Request) -> Response:
        type_id = request.query_params.get("orderTypeId")
        return search("purchase_orders", account, request,
                      (lambda r: str(r["orderTypeId"]) == type_id) if type_id and type_id != "2" else None)

    @app.get("/public-api/{account}/contact-service/contact-search")
    async def contact_search(account: str, request: Request) -> Response:
        return search("suppliers", account, request, None)

    app.state.credentials = {"account_token": ACCOUNT_TOKEN}
    app.state.config = {"datacentre": "euw1", "account_code": ACCOUNT, "app_ref": APP_REF}
    app.state.started = time.time()
    return app
