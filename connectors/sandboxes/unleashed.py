"""Unleashed sandbox: the Unleashed API's signed requests, path paging and list envelopes.

Every request must carry ``api-auth-id`` and ``api-auth-signature`` = base64(HMAC-SHA256(raw query string,
API key)); the page number is the last path segment (``/Products/2``) and is not signed; ``pageSize`` is at
most 1000 (default 200); lists answer ``{"Pagination": {NumberOfItems, PageSize, PageNumber,
NumberOfPages}, "Items": [...]}``; dates are Microsoft JSON dates ``/Date(ms)/``; ``modifiedSince`` filters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.cin7 import PRODUCTS, STORE_ROOMS, uk_phone
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
    stable_uuid,
    uuid_index,
)

API_ID = "4d7c1b2a-9e8f-4a3b-b6c5-d2e1f0a9b8c7"
API_KEY = "unleashed-sandbox-api-key-Zm9vYmFyYmF6cXV4"
MAX_PAGE_SIZE = 1000
STATUSES = ("Parked", "Placed", "Placed", "Costed", "Receipted", "Complete", "Complete")


def ms_json(dt: datetime) -> str:
    """Unleashed's Microsoft JSON date: ``/Date(1552002453000)/``."""
    return f"/Date({int(dt.timestamp() * 1000)})/"


def sign(query: bytes | str, key: str = API_KEY) -> str:
    """The ``api-auth-signature`` of a raw query string (the part after ``?``)."""
    raw = query.encode() if isinstance(query, str) else query
    return base64.b64encode(hmac.new(key.encode(), raw, hashlib.sha256).digest()).decode()


def _warehouse(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "warehouses", i)
    p = pools(seed)
    name = STORE_ROOMS[i % len(STORE_ROOMS)]
    code = "".join(w[0] for w in name.split(" - ")[0].split())[:3].upper() + (f"{i}" if i >= len(STORE_ROOMS) else "")
    return {"Guid": stable_uuid(seed, "warehouses", i), "WarehouseCode": code, "WarehouseName": name,
            "IsDefault": i == 0, "StreetNo": str(r.randrange(1, 120)), "AddressLine1": r.choice(p.streets),
            "City": r.choice(p.towns), "Region": "", "Country": "United Kingdom", "PostCode": r.choice(p.postcodes),
            "PhoneNumber": r.choice(p.phones), "Obsolete": False, "LastModifiedOn": ms_json(at)}


def _supplier(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "suppliers", i)
    name = SUPPLIERS[i % len(SUPPLIERS)] + ("" if i < len(SUPPLIERS) else f" ({i // len(SUPPLIERS) + 1})")
    return {"Guid": stable_uuid(seed, "suppliers", i), "SupplierCode": f"SUP{i + 1:04d}", "SupplierName": name,
            "GSTVATNumber": f"GB{r.randrange(100_000_000, 999_999_999)}", "Email": f"orders{i}@example.co.uk",
            "PhoneNumber": uk_phone(r), "Currency": {"CurrencyCode": "GBP", "Description": "United Kingdom, "
                                                            "Pounds"}, "Obsolete": False, "LastModifiedOn": ms_json(at)}


def _product(seed: int, i: int, at: datetime, n_suppliers: int) -> dict[str, Any]:
    r = rng_for(seed, "products", i)
    stem, name, group, uom, cost = PRODUCTS[i % len(PRODUCTS)]
    variant = i // len(PRODUCTS)
    si = r.randrange(max(1, n_suppliers))
    supplier = _supplier(seed, si, at)
    return {"Guid": stable_uuid(seed, "products", i), "ProductCode": f"{stem}-{variant + 1:03d}",
            "ProductDescription": name if variant == 0 else f"{name} - range {variant + 1}",
            "Barcode": f"50{r.randrange(10**10, 10**11)}", "PackSize": None, "Width": None, "Height": None,
            "Depth": None, "Weight": None, "MinStockAlertLevel": float(r.choice((5, 10, 20))),
            "MaxStockAlertLevel": None, "ReOrderPoint": float(r.choice((10, 20, 40))), "UnitOfMeasure":
            {"Guid": stable_uuid(seed, "uom", len(uom)), "Name": uom}, "NeverDiminishing": False,
            "LastCost": cost, "DefaultPurchasePrice": cost, "DefaultSellPrice": round(cost * 1.2, 2),
            "AverageLandPrice": round(cost * r.uniform(0.97, 1.04), 4), "Obsolete": False, "IsComponent": False,
            "IsAssembledProduct": False, "ProductGroup": {"GroupName": group, "Guid": stable_uuid(seed, "groups",
                                                                                                 len(group))},
            "Supplier": {"Guid": supplier["Guid"], "SupplierCode": supplier["SupplierCode"],
                         "SupplierName": supplier["SupplierName"], "SupplierProductCode": f"S{r.randrange(10**4, 10**5)}",
                         "SupplierProductPrice": cost},
            "CreatedOn": ms_json(at - timedelta(days=400)), "LastModifiedOn": ms_json(at)}


def _stock(seed: int, i: int, at: datetime, n_suppliers: int) -> dict[str, Any]:
    prod = _product(seed, i, at, n_suppliers)
    wh = _warehouse(seed, i % len(STORE_ROOMS), at)
    r = rng_for(seed, "stock_on_hand", i)
    on_hand = float(r.randrange(0, 300))
    allocated = float(min(on_hand, r.randrange(0, 25)))
    avg = prod["AverageLandPrice"]
    return {"Guid": stable_uuid(seed, "stock_on_hand", i), "ProductGuid": prod["Guid"],
            "ProductCode": prod["ProductCode"], "ProductDescription": prod["ProductDescription"],
            "ProductGroupName": prod["ProductGroup"]["GroupName"], "ProductSourceId": None,
            "WarehouseId": wh["Guid"], "WarehouseCode": wh["WarehouseCode"], "Warehouse": wh["WarehouseName"],
            "DaysSinceLastSale": r.randrange(0, 30), "OnPurchase": float(r.choice((0, 0, 20))),
            "AllocatedQty": allocated, "AvailableQty": on_hand - allocated, "QtyOnHand": on_hand, "AvgCost": avg,
            "TotalCost": round(on_hand * avg, 2), "LastModifiedOn": ms_json(at)}


def _purchase(seed: int, i: int, at: datetime, n_suppliers: int, n_products: int) -> dict[str, Any]:
    r = rng_for(seed, "purchase_orders", i)
    supplier = _supplier(seed, r.randrange(max(1, n_suppliers)), at)
    wh = _warehouse(seed, i % len(STORE_ROOMS), at)
    lines = []
    for n in range(1, r.randrange(2, 5)):
        prod = _product(seed, r.randrange(max(1, n_products)), at, n_suppliers)
        qty = float(r.choice((5, 10, 20, 40)))
        price = prod["DefaultPurchasePrice"]
        lines.append({"Guid": stable_uuid(seed, f"po-lines-{i}", n), "LineNumber": n,
                      "Product": {"Guid": prod["Guid"], "ProductCode": prod["ProductCode"],
                                  "ProductDescription": prod["ProductDescription"]},
                      "DueDate": ms_json(at + timedelta(days=5)), "OrderQuantity": qty, "UnitPrice": price,
                      "LineTotal": round(qty * price, 2), "LineTax": round(qty * price * 0.2, 2), "Comments": None})
    sub = round(sum(line["LineTotal"] for line in lines), 2)
    tax = round(sum(line["LineTax"] for line in lines), 2)
    status = r.choice(STATUSES)
    return {"Guid": stable_uuid(seed, "purchase_orders", i), "OrderNumber": f"PO-{i + 1:08d}",
            "OrderDate": ms_json(at), "RequiredDate": ms_json(at + timedelta(days=5)),
            "DeliveryDate": ms_json(at + timedelta(days=5)),
            "ReceivedDate": ms_json(at + timedelta(days=5)) if status in ("Receipted", "Complete") else None,
            "CompletedDate": ms_json(at + timedelta(days=6)) if status == "Complete" else None,
            "OrderStatus": status, "Supplier": {"Guid": supplier["Guid"], "SupplierCode": supplier["SupplierCode"],
                                                "SupplierName": supplier["SupplierName"]},
            "SupplierRef": f"REF{r.randrange(1000, 9999)}", "Comments": "Weekly care consumables order",
            "Printed": False, "Warehouse": {"Guid": wh["Guid"], "WarehouseCode": wh["WarehouseCode"],
                                            "WarehouseName": wh["WarehouseName"]},
            "Currency": {"CurrencyCode": "GBP"}, "ExchangeRate": 1.0, "Tax": {"TaxCode": "G.S.T.", "TaxRate": 0.2},
            "TaxRate": 0.2, "SubTotal": sub, "TaxTotal": tax, "Total": round(sub + tax, 2),
            "PurchaseOrderLines": lines, "CreatedOn": ms_json(at), "LastModifiedOn": ms_json(at)}


def unleashed_error(status: int, description: str) -> JSONResponse:
    """Unleashed's error body."""
    return JSONResponse({"Description": description, "DebugInformation": None}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = unleashed_error(429, "Too many requests, please slow down and try again shortly.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Unleashed sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Unleashed")
    seed = cfg.seed
    ns = cfg.count("suppliers", 30)
    n_products = cfg.count("products")

    def ds(name: str, make: Callable[[int, datetime], dict[str, Any]], default: int | None = None) -> Dataset:
        return Dataset(cfg.count(name, default), make, lambda i: stable_uuid(seed, name, i), uuid_index)

    state.datasets = {
        "products": ds("products", lambda i, at: _product(seed, i, at, ns)),
        "stock_on_hand": ds("stock_on_hand", lambda i, at: _stock(seed, i, at, ns), n_products),
        "purchase_orders": ds("purchase_orders", lambda i, at: _purchase(seed, i, at, ns, n_products)),
        "suppliers": ds("suppliers", lambda i, at: _supplier(seed, i, at), 30),
        "warehouses": ds("warehouses", lambda i, at: _warehouse(seed, i, at), len(STORE_ROOMS)),
    }
    app = FastAPI(title="Unleashed sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)
    resources = {"Products": "products", "StockOnHand": "stock_on_hand", "PurchaseOrders": "purchase_orders",
                 "Suppliers": "suppliers", "Warehouses": "warehouses"}

    def denied(request: Request) -> Response | None:
        if request.headers.get("api-auth-id") != API_ID:
            return unleashed_error(403, "Forbidden: api-auth-id is missing or unknown")
        given = request.headers.get("api-auth-signature", "")
        if not hmac.compare_digest(given.encode(), sign(request.scope.get("query_string", b"")).encode()):
            return unleashed_error(403, "Forbidden: the api-auth-signature does not match the query string")
        if not request.headers.get("client-type"):
            return unleashed_error(400, "The client-type header is required (company/app)")
        return None

    async def listing(resource: str, page: int, request: Request) -> Response:
        name = resources.get(resource)
        if name is None:
            return unleashed_error(404, f"Resource '{resource}' was not found")
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        try:
            size = int(q.get("pageSize") or 200)
        except ValueError:
            return unleashed_error(400, "pageSize must be a whole number")
        if not 1 <= size <= MAX_PAGE_SIZE or page < 1:
            return unleashed_error(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE} and the page 1 or more")
        since = _since(q.get("modifiedSince"))
        if q.get("modifiedSince") and since is None:
            return unleashed_error(400, "modifiedSince is not a valid date (yyyy-MM-ddTHH:mm:ss)")
        items, total = state.datasets[name].page(since, (page - 1) * size, size)
        return JSONResponse({"Pagination": {"NumberOfItems": total, "PageSize": size, "PageNumber": page,
                                            "NumberOfPages": max(1, math.ceil(total / size))}, "Items": items})

    @app.get("/{resource}")
    async def first_page(resource: str, request: Request) -> Response:
        return await listing(resource, 1, request)

    @app.get("/{resource}/{page}")
    async def nth_page(resource: str, page: str, request: Request) -> Response:
        if page.isdigit():
            return await listing(resource, int(page), request)
        name = resources.get(resource)
        if name is None:
            return unleashed_error(404, f"Resource '{resource}' was not found")
        if (d := denied(request)) is not None:
            return d
        rec = state.datasets[name].get(page)
        if rec is None:
            return unleashed_error(404, f"No {resource} record with Guid {page}")
        return JSONResponse(rec)

    app.state.credentials = {"api_id": API_ID, "api_key": API_KEY}
    app.state.config = {}
    app.state.started = time.time()
    return app
