"""Cin7 Core sandbox: External API v2 as described by the Apiary blueprint and Airbyte's ``source-cin7``.

Same paths (``/product``, ``/ref/productavailability``, ``/supplier``, ``/ref/location``, ``/purchaseList``,
``POST /purchase``, ``PUT /product``), header credentials ``api-auth-accountid`` and
``api-auth-applicationkey``, ``page`` (from 1) and ``limit`` (at most 1000) with ``Total``/``Page`` in every
list, ``ModifiedSince``/``UpdatedSince`` filters, a ``Search`` filter on purchases, error bodies as a list of
``{"ErrorCode", "Exception"}`` and 429 throttling at 60 calls a minute.
"""

from __future__ import annotations

import random
import time
import uuid
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
    stable_uuid,
    uuid_index,
)
from connectors.sandboxes.handlers import record_to_update

ACCOUNT_ID = "9c2e4a61-3b7d-4f0e-8a15-6d2c9b4e7f30"
APPLICATION_KEY = "b7e1c9d3-5a2f-4e8b-9c6d-0f1a2b3c4d5e-sandbox"
MAX_LIMIT = 1000

PRODUCTS = (  # (sku stem, name, category, uom, unit cost in pounds)
    ("PPE-GLV", "Nitrile gloves, powder free (box of 100)", "PPE", "Box", 4.25),
    ("PPE-APR", "Disposable aprons, white (roll of 200)", "PPE", "Roll", 6.80),
    ("PPE-MSK", "Fluid-resistant surgical masks IIR (box of 50)", "PPE", "Box", 5.10),
    ("INF-GEL", "Alcohol hand rub 500ml", "Infection control", "Each", 3.40),
    ("CON-PAD", "Incontinence pads, super (pack of 28)", "Continence", "Pack", 9.75),
    ("CON-WIP", "Cleansing wipes (pack of 100)", "Continence", "Pack", 2.15),
    ("SKN-BAR", "Barrier cream 100ml", "Skin care", "Each", 4.60),
    ("NUT-THK", "Food and drink thickener 175g", "Nutrition", "Each", 7.90),
    ("CAT-TEA", "Tea bags (catering pack of 1100)", "Catering", "Case", 18.50),
    ("CAT-MLK", "Semi-skimmed milk 2 litre", "Catering", "Each", 1.45),
    ("CLN-BLC", "Bleach-free disinfectant 5 litre", "Cleaning", "Each", 8.20),
    ("CLN-BAG", "Clinical waste bags, orange (roll of 50)", "Cleaning", "Roll", 5.95),
    ("MED-DRS", "Non-adherent dressings 10x10cm (box of 25)", "Medical consumables", "Box", 6.30),
    ("MED-THM", "Thermometer probe covers (box of 100)", "Medical consumables", "Box", 3.10),
)
STORE_ROOMS = tuple(f"{home} - Store Room" for home in CARE_HOMES)
PO_STATUSES = ("DRAFT", "AUTHORISED", "ORDERED", "RECEIVING", "COMPLETED", "COMPLETED", "VOIDED")


def uk_phone(r: random.Random) -> str:
    """A UK number from Ofcom's drama ranges (valid, never a real line): Leeds, Manchester or London."""
    return r.choice(("0113 496 0{:03d}", "0161 496 0{:03d}", "020 7946 0{:03d}")).format(r.randrange(1000))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def product_id(seed: int, i: int) -> str:
    """Cin7 id of seeded product ``i``."""
    return stable_uuid(seed, "products", i)


def supplier_id(seed: int, i: int) -> str:
    """Cin7 id of seeded supplier ``i``."""
    return stable_uuid(seed, "suppliers", i)


def _product(seed: int, i: int, at: datetime, n_suppliers: int) -> dict[str, Any]:
    r = rng_for(seed, "products", i)
    stem, name, category, uom, cost = PRODUCTS[i % len(PRODUCTS)]
    variant = i // len(PRODUCTS)
    sku = f"{stem}-{variant + 1:03d}"
    si = r.randrange(max(1, n_suppliers))
    reorder = float(r.choice((5, 10, 20, 30, 50)))
    location = STORE_ROOMS[i % len(STORE_ROOMS)]
    return {
        "ID": product_id(seed, i), "SKU": sku, "Name": name if variant == 0 else f"{name} - range {variant + 1}",
        "Category": category, "Brand": r.choice(("Medline", "Vernacare", "Tena", "Nutilis", "Brakes", "Robinsons")),
        "Type": "Stock", "CostingMethod": "FIFO", "DropShipMode": "No Drop Ship", "DefaultLocation": location,
        "UOM": uom, "Barcode": f"50{r.randrange(10**10, 10**11)}", "Status": "Active",
        "AverageCost": round(cost * r.uniform(0.95, 1.05), 4), "PriceTier1": round(cost * 1.2, 2),
        "MinimumBeforeReorder": reorder, "ReorderQuantity": reorder * 2,
        "ReorderLevels": [{"LocationID": stable_uuid(seed, "locations", i % len(STORE_ROOMS)),
                           "LocationName": location, "MinimumBeforeReorder": reorder, "ReorderQuantity": reorder * 2,
                           "StockLocator": f"Shelf {r.randrange(1, 12)}"}],
        "Suppliers": [{"SupplierID": supplier_id(seed, si), "SupplierName": _supplier_name(si),
                       "SupplierProductCode": f"S{r.randrange(10000, 99999)}", "Cost": cost, "Currency": "GBP"}],
        "Tags": category.lower(), "LastModifiedOn": _iso(at),
    }


def _supplier_name(i: int) -> str:
    return SUPPLIERS[i % len(SUPPLIERS)] + ("" if i < len(SUPPLIERS) else f" ({i // len(SUPPLIERS) + 1})")


def _supplier(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "suppliers", i)
    p = pools(seed)
    contact = f"{r.choice(p.first_names)} {r.choice(p.last_names)}"
    return {"ID": supplier_id(seed, i), "Name": _supplier_name(i), "Currency": "GBP", "PaymentTerm": "30 days",
            "AccountPayable": "800", "TaxRule": "20% (VAT on Expenses)", "Status": "Active", "TaxNumber":
            f"GB{r.randrange(100_000_000, 999_999_999)}",
            "Contacts": [{"Name": contact, "Phone": uk_phone(r), "Email":
                          f"orders{i}@example.co.uk", "Default": True}],
            "Addresses": [{"Line1": r.choice(p.streets), "City": r.choice(p.towns), "Postcode": r.choice(p.postcodes),
                           "Country": "United Kingdom", "Type": "Billing", "DefaultForType": True}],
            "LastModifiedOn": _iso(at)}


def _location(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "locations", i)
    p = pools(seed)
    name = STORE_ROOMS[i % len(STORE_ROOMS)] + ("" if i < len(STORE_ROOMS) else f" {i // len(STORE_ROOMS) + 1}")
    return {"ID": stable_uuid(seed, "locations", i), "Name": name, "IsDefault": i == 0, "Deprecated": False,
            "ParentID": None, "IsCoMan": False, "IsStaging": False, "AddressLine1": r.choice(p.streets),
            "AddressCitySuburb": r.choice(p.towns), "AddressZipPostCode": r.choice(p.postcodes),
            "AddressCountry": "United Kingdom"}


def _availability(seed: int, i: int, at: datetime, n_suppliers: int) -> dict[str, Any]:
    prod = _product(seed, i, at, n_suppliers)
    r = rng_for(seed, "stock", i)
    on_hand = float(r.randrange(0, 240))
    allocated = float(min(on_hand, r.randrange(0, 20)))
    on_order = float(r.choice((0, 0, prod["ReorderQuantity"])))
    return {"ID": prod["ID"], "SKU": prod["SKU"], "Name": prod["Name"], "Barcode": prod["Barcode"],
            "Location": prod["DefaultLocation"], "Bin": prod["ReorderLevels"][0]["StockLocator"], "Batch": None,
            "ExpiryDate": None, "OnHand": on_hand, "Allocated": allocated, "Available": on_hand - allocated,
            "OnOrder": on_order, "StockOnHand": round(on_hand * prod["AverageCost"], 2), "InTransit": 0.0,
            "NextDeliveryDate": _iso(at + timedelta(days=3)) if on_order else None}


def _purchase(seed: int, i: int, at: datetime, n_suppliers: int) -> dict[str, Any]:
    r = rng_for(seed, "purchase_orders", i)
    si = r.randrange(max(1, n_suppliers))
    status = r.choice(PO_STATUSES)
    amount = round(r.uniform(45, 1800), 2)
    invoiced = status in ("COMPLETED",)
    return {"ID": stable_uuid(seed, "purchase_orders", i), "BlindReceipt": False, "OrderNumber": f"PO-{i + 1:05d}",
            "Status": status, "OrderDate": f"{at:%Y-%m-%d}T00:00:00Z", "InvoiceDate": f"{at:%Y-%m-%d}T00:00:00Z"
            if invoiced else None, "Supplier": _supplier_name(si), "SupplierID": supplier_id(seed, si),
            "Location": STORE_ROOMS[i % len(STORE_ROOMS)], "InvoiceNumber": f"INV{r.randrange(10000, 99999)}"
            if invoiced else "", "InvoiceAmount": amount, "PaidAmount": amount if invoiced else 0.0,
            "InvoiceDueDate": f"{at + timedelta(days=30):%Y-%m-%d}T00:00:00Z" if invoiced else None,
            "RequiredBy": f"{at + timedelta(days=r.randrange(2, 10)):%Y-%m-%d}T00:00:00Z", "BaseCurrency": "GBP",
            "SupplierCurrency": "GBP", "OrderStatus": "AUTHORISED" if status != "DRAFT" else "DRAFT",
            "StockReceivedStatus": "AUTHORISED" if status == "COMPLETED" else "NOT AVAILABLE",
            "CombinedInvoiceStatus": "INVOICED" if invoiced else "NOT INVOICED", "Type": "Simple Purchase",
            "LastUpdatedDate": _iso(at)}


def cin7_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Cin7 Core's error body: a list of ``{ErrorCode, Exception}``."""
    return JSONResponse([{"ErrorCode": status, "Exception": message}], status_code=status, headers=headers or {})


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return cin7_error(429, "You have reached the API call limit of 60 calls per 60 seconds. Please try again later.",
                      headers)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Cin7 Core sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Cin7 Core")
    seed = cfg.seed
    ns = cfg.count("suppliers", 40)

    def ds(name: str, make: Callable[[int, datetime], dict[str, Any]], default: int | None = None) -> Dataset:
        return Dataset(cfg.count(name, default), make, lambda i: stable_uuid(seed, name, i), uuid_index)

    n_products = cfg.count("products")
    state.datasets = {
        "products": ds("products", lambda i, at: _product(seed, i, at, ns)),
        "suppliers": ds("suppliers", lambda i, at: _supplier(seed, i, at), 40),
        "locations": ds("locations", lambda i, at: _location(seed, i, at), len(STORE_ROOMS)),
        "purchase_orders": ds("purchase_orders", lambda i, at: _purchase(seed, i, at, ns)),
    }
    # one availability row per product, keyed by the product's id (its default store room)
    stock = Dataset(cfg.count("stock", n_products), lambda i, at: _availability(seed, i, at, ns),
                    lambda i: product_id(seed, i), uuid_index)
    app = FastAPI(title="Cin7 Core sandbox (CareHub)")
    app.state.sandbox = state
    app.state.stock = stock
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def denied(request: Request) -> Response | None:
        if (request.headers.get("api-auth-accountid") != ACCOUNT_ID
                or request.headers.get("api-auth-applicationkey") != APPLICATION_KEY or state.faults.revoke_tokens):
            return cin7_error(403, "Incorrect credentials!")
        return None

    def paging(request: Request) -> tuple[int, int] | Response:
        q = request.query_params
        try:
            page, limit = int(q.get("page") or 1), int(q.get("limit") or 100)
        except ValueError:
            return cin7_error(400, "Page and Limit must be whole numbers")
        if page < 1 or not 1 <= limit <= MAX_LIMIT:
            return cin7_error(400, f"Page must be 1 or more and Limit between 1 and {MAX_LIMIT}")
        return page, limit

    def listing(request: Request, data: Dataset, key: str, since_param: str | None = None,
                where: Callable[[dict[str, Any]], bool] | None = None) -> Response:
        if (d := denied(request)) is not None:
            return d
        pg = paging(request)
        if isinstance(pg, Response):
            return pg
        page, limit = pg
        since = _parse(request.query_params.get(since_param)) if since_param else None
        if since_param and request.query_params.get(since_param) and since is None:
            return cin7_error(400, f"{since_param} is not a valid date")
        items, total = data.page(since, (page - 1) * limit, limit, where)
        return JSONResponse({"Total": total, "Page": page, key: items})

    @app.get("/product")
    async def products(request: Request) -> Response:
        sku = request.query_params.get("Sku")
        return listing(request, state.datasets["products"], "Products", "ModifiedSince",
                       (lambda r: r["SKU"] == sku) if sku else None)

    @app.get("/ref/productavailability")
    async def availability(request: Request) -> Response:
        location = request.query_params.get("Location")
        return listing(request, stock, "ProductAvailabilityList", None,
                       (lambda r: r["Location"] == location) if location else None)

    @app.get("/supplier")
    async def suppliers(request: Request) -> Response:
        return listing(request, state.datasets["suppliers"], "SupplierList", "ModifiedSince")

    @app.get("/ref/location")
    async def locations(request: Request) -> Response:
        return listing(request, state.datasets["locations"], "LocationList")

    @app.get("/purchaseList")
    async def purchase_list(request: Request) -> Response:
        term = (request.query_params.get("Search") or "").lower()

        def match(r: dict[str, Any]) -> bool:
            return any(term in str(r.get(k) or "").lower() for k in ("OrderNumber", "Supplier", "InvoiceNumber"))

        return listing(request, state.datasets["purchase_orders"], "PurchaseList", "UpdatedSince",
                       match if term else None)

    @app.post("/purchase")
    async def create_purchase(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        try:
            body = await request.json()
        except ValueError:
            return cin7_error(400, "Request body is not valid JSON")
        if not isinstance(body, dict):
            return cin7_error(400, "Request body must be a purchase object")
        suppliers_ds = state.datasets["suppliers"]
        supplier = suppliers_ds.get(str(body.get("SupplierID") or ""))
        if supplier is None and body.get("Supplier"):
            supplier = next((s for s in suppliers_ds.iter() if s["Name"] == body["Supplier"]), None)
        if supplier is None:
            return cin7_error(400, "Supplier not found. SupplierID or Supplier name is required.")
        location = str(body.get("Location") or STORE_ROOMS[0])
        data = state.datasets["purchase_orders"]
        number = str(body.get("OrderNumber") or f"PO-S{len(data.overlay) + 1:05d}")
        if any(r["OrderNumber"] == number for r in data.iter()):
            return cin7_error(400, f"Order number {number} is already used by another purchase")
        now = datetime.now(UTC)
        rec = {"ID": str(uuid.uuid4()), "BlindReceipt": bool(body.get("BlindReceipt", False)), "OrderNumber": number,
               "Status": str(body.get("Status") or "DRAFT"), "OrderDate": f"{now:%Y-%m-%d}T00:00:00Z",
               "InvoiceDate": None, "Supplier": supplier["Name"], "SupplierID": supplier["ID"], "Location": location,
               "InvoiceNumber": "", "InvoiceAmount": float(body.get("Total") or 0.0), "PaidAmount": 0.0,
               "InvoiceDueDate": None, "RequiredBy": body.get("RequiredBy"), "BaseCurrency": "GBP",
               "SupplierCurrency": supplier["Currency"], "OrderStatus": "DRAFT", "StockReceivedStatus":
               "NOT AVAILABLE", "CombinedInvoiceStatus": "NOT INVOICED", "Type": "Simple Purchase",
               "Note": body.get("Note", "")}
        at = data.put(rec["ID"], rec)
        rec["LastUpdatedDate"] = _iso(at)
        return JSONResponse({**rec, "Approach": body.get("Approach", "INVOICE"), "TaxRule": supplier["TaxRule"],
                             "Terms": supplier["PaymentTerm"]})

    @app.put("/product")
    async def update_product(request: Request) -> Response:
        data = state.datasets["products"]
        got = await record_to_update(
            request, denied=denied, error=cin7_error, body_first=True,
            find=lambda body: data.get(str(body.get("ID") or "")) if isinstance(body, dict) else None,
            not_found="Product not found. ID is required to update a product.", bad_json="Request body is not valid JSON")
        if isinstance(got, Response):
            return got
        current, body = got
        readonly = sorted(set(body) & {"SKU", "LastModifiedOn", "AverageCost"})
        if readonly:
            return cin7_error(400, f"These fields cannot be changed here: {', '.join(readonly)}")
        rec = {**current, **body}
        at = data.put(rec["ID"], rec)
        rec["LastModifiedOn"] = _iso(at)
        return JSONResponse({"Products": [rec]})

    app.state.credentials = {"application_key": APPLICATION_KEY}
    app.state.config = {"account_id": ACCOUNT_ID}
    app.state.started = time.time()
    return app
