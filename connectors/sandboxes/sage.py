"""Sage Business Cloud Accounting v3.1 sandbox: ``/v3.1/contacts``, ``/sales_invoices``, ``/ledger_accounts``,
``/bank_accounts``, ``/contact_payments`` with Sage's envelope (``$total $page $next $back $itemsPerPage
$items``), ``items_per_page`` (max 200; a page past the end returns the last page), ``updated_or_created_since``,
``search``, ``X-Business``, rotating refresh tokens and ``[{"$severity","$dataCode","$message","$source"}]``
error bodies. Shapes from developer.sage.com pages (no official OpenAPI is published).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_SERVICES,
    FUNDERS,
    SUPPLIERS,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    add_oauth_routes,
    bearer,
    new_state,
    pools,
    rng_for,
)

BUSINESS_ID = "b7a1d6f0c2e94f1a8e0b3c5d7f9a1b2c"
V = "/v3.1"


def _hex_id(seed: int, stream: str, i: int) -> str:
    prefix = hashlib.blake2b(f"{seed}:{stream}".encode(), digest_size=10).hexdigest()
    return prefix + f"{i:012x}"


def _index(value: str) -> int | None:
    try:
        return int(value[-12:], 16)
    except ValueError:
        return None


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _contact(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "contacts", i)
    p = pools(seed)
    kind = r.random()
    if kind < 0.6:
        name = f"{r.choice(p.first_names)} {r.choice(p.last_names)}"
        ctype = "CUSTOMER"
    elif kind < 0.8:
        name, ctype = r.choice(FUNDERS), "CUSTOMER"
    else:
        name, ctype = r.choice(SUPPLIERS), "VENDOR"
    cid = _hex_id(seed, "contacts", i)
    return {"id": cid, "displayed_as": f"{name} (R{i + 1:05d})", "$path": f"/contacts/{cid}", "name": name,
            "contact_types": [{"id": ctype, "displayed_as": ctype.title()}], "reference": f"R{i + 1:05d}",
            "email": f"accounts{i}@example.org", "telephone": r.choice(p.phones), "currency": {"id": "GBP"},
            "main_address": {"address_line_1": r.choice(p.streets), "city": r.choice(p.towns),
                             "postal_code": r.choice(p.postcodes), "country": {"id": "GB"}},
            "created_at": _ts(at - timedelta(days=2)), "updated_at": _ts(at)}


def _invoice(seed: int, i: int, at: datetime, n_contacts: int) -> dict[str, Any]:
    r = rng_for(seed, "sales_invoices", i)
    c = _contact(seed, r.randrange(max(1, n_contacts)), at)
    net = r.choice((1095.0, 1180.5, 1250.0, 1320.0))
    iid = _hex_id(seed, "sales_invoices", i)
    status = r.choice(("UNPAID", "UNPAID", "PAID", "PART_PAID"))
    return {"id": iid, "displayed_as": f"SI-{i + 1}", "$path": f"/sales_invoices/{iid}", "invoice_number": f"SI-{i + 1}",
            "contact": {"id": c["id"], "displayed_as": c["displayed_as"], "$path": c["$path"]},
            "date": f"{at.date()}", "due_date": f"{(at + timedelta(days=14)).date()}",
            "reference": f"Care fees {at:%b %Y}", "status": {"id": status, "displayed_as": status.replace("_", " ").title()},
            "net_amount": net, "tax_amount": 0.0, "total_amount": net,
            "outstanding_amount": 0.0 if status == "PAID" else net, "currency": {"id": "GBP"},
            "invoice_lines": [{"description": r.choice(CARE_SERVICES), "quantity": 1.0, "unit_price": net,
                               "ledger_account": {"id": _hex_id(seed, "ledger_accounts", 0)},
                               "tax_rate": {"id": "GB_EXEMPT"}, "net_amount": net}],
            "created_at": _ts(at - timedelta(hours=5)), "updated_at": _ts(at)}


LEDGER = [("4000", "Care Fees Income", "SALES"), ("4010", "Nursing Fees (FNC)", "SALES"),
          ("5000", "Food and Catering", "DIRECT_EXPENSES"), ("5010", "Agency Staff", "DIRECT_EXPENSES"),
          ("7000", "Gross Wages", "OVERHEADS"), ("7200", "Electricity", "OVERHEADS"), ("1200", "Bank Current Account", "BANK")]


def _ledger(seed: int, i: int, at: datetime) -> dict[str, Any]:
    code, name, typ = LEDGER[i % len(LEDGER)]
    lid = _hex_id(seed, "ledger_accounts", i)
    return {"id": lid, "displayed_as": f"{name} ({code})", "$path": f"/ledger_accounts/{lid}", "nominal_code": code,
            "name": name, "ledger_account_type": {"id": typ}, "visible_in_sales": typ == "SALES",
            "created_at": _ts(at), "updated_at": _ts(at)}


def _bank_account(seed: int, i: int, at: datetime) -> dict[str, Any]:
    bid = _hex_id(seed, "bank_accounts", i)
    return {"id": bid, "displayed_as": f"Current Account {i + 1}", "$path": f"/bank_accounts/{bid}",
            "bank_account_details": {"account_name": f"Care Home Current {i + 1}", "sort_code": "20-45-77",
                                     "account_number": f"{40000000 + i}"}, "balance": 12500.0 + i,
            "currency": {"id": "GBP"}, "created_at": _ts(at), "updated_at": _ts(at)}


def _payment(seed: int, i: int, at: datetime, n_contacts: int) -> dict[str, Any]:
    r = rng_for(seed, "contact_payments", i)
    c = _contact(seed, r.randrange(max(1, n_contacts)), at)
    pid = _hex_id(seed, "contact_payments", i)
    return {"id": pid, "displayed_as": f"Payment {i + 1}", "$path": f"/contact_payments/{pid}",
            "transaction_type": {"id": "CUSTOMER_RECEIPT"}, "date": f"{at.date()}",
            "contact": {"id": c["id"], "displayed_as": c["displayed_as"]}, "total_amount": round(r.uniform(100, 3000), 2),
            "reference": f"BACS{i + 1:06d}", "created_at": _ts(at), "updated_at": _ts(at)}


def _errors(status: int, code: str, message: str, source: str = "") -> JSONResponse:
    return JSONResponse([{"$severity": "error", "$dataCode": code, "$message": message, "$source": source}],
                        status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _errors(429, "TooManyRequests", "Too many requests. Please slow down and try again later.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


SINGULAR = {"contacts": "contact", "sales_invoices": "sales_invoice"}


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Sage Accounting v3.1 sandbox app (access tokens live 5 minutes by default, like Sage's)."""
    cfg = config or SandboxConfig(token_ttl_seconds=300)
    state = new_state(cfg, "Sage Accounting")
    seed = cfg.seed
    nc = cfg.count("contacts")

    def ds(stream: str, make: Callable[[int, datetime], dict[str, Any]], default: int | None = None) -> Dataset:
        return Dataset(cfg.count(stream, default), make, lambda i: _hex_id(seed, stream, i), _index)

    state.datasets = {
        "contacts": ds("contacts", lambda i, at: _contact(seed, i, at)),
        "sales_invoices": ds("sales_invoices", lambda i, at: _invoice(seed, i, at, nc)),
        "ledger_accounts": ds("ledger_accounts", lambda i, at: _ledger(seed, i, at), len(LEDGER)),
        "bank_accounts": ds("bank_accounts", lambda i, at: _bank_account(seed, i, at), 2),
        "contact_payments": ds("contact_payments", lambda i, at: _payment(seed, i, at, nc)),
    }
    app = FastAPI(title="Sage Accounting v3.1 sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth",))
    add_control_routes(app, state)
    add_oauth_routes(app, state, authorize_path="/oauth2/auth/central", token_path="/oauth/token")

    def check(request: Request) -> Response | None:
        if not state.token_valid(bearer(request)):
            return _errors(401, "Unauthorized", "You are not authorised to access this resource. The access token "
                                                "is invalid or has expired.")
        biz = request.headers.get("x-business")
        if biz and biz != BUSINESS_ID:
            return _errors(403, "BusinessNotFound", f"The business {biz} cannot be accessed with this token", "X-Business")
        return None

    @app.get(V + "/businesses")
    async def businesses(request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        return JSONResponse({"$total": 1, "$page": 1, "$next": None, "$back": None, "$itemsPerPage": 20,
                             "$items": [{"id": BUSINESS_ID, "displayed_as": "Willow Court Care Home Ltd",
                                         "$path": f"/businesses/{BUSINESS_ID}"}]})

    @app.get(V + "/{resource}")
    async def list_resource(resource: str, request: Request) -> Response:
        if resource not in state.datasets:
            return _errors(404, "RecordNotFound", f"Resource {resource} not found")
        denied = check(request)
        if denied:
            return denied
        q = request.query_params
        try:
            per = min(200, max(1, int(q.get("items_per_page") or 20)))
            page = max(1, int(q.get("page") or 1))
        except ValueError:
            return _errors(400, "InvalidParameter", "page and items_per_page must be integers", "page")
        since = None
        if q.get("updated_or_created_since"):
            try:
                since = datetime.fromisoformat(q["updated_or_created_since"].replace("Z", "+00:00"))
            except ValueError:
                return _errors(400, "InvalidParameter", "updated_or_created_since is not a valid date-time",
                               "updated_or_created_since")
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
        term = (q.get("search") or "").lower()
        where = None
        if term:
            def where(rec: dict[str, Any]) -> bool:
                return any(term in str(rec.get(k, "")).lower() for k in ("reference", "name", "displayed_as"))
        data = state.datasets[resource]
        _, total = data.page(since, 0, 0, where)
        pages = max(1, (total + per - 1) // per)
        page = min(page, pages)  # Sage: a page beyond the end returns the last page
        items, _ = data.page(since, (page - 1) * per, per, where)
        attrs = q.get("attributes")
        if attrs != "all":
            items = [{k: it[k] for k in ("id", "displayed_as", "$path") if k in it} for it in items]

        def link(p: int) -> str:
            params = {k: v for k, v in q.items() if k not in ("page",)}
            params.update(page=str(p), items_per_page=str(per))
            return f"/{resource}?{urlencode(params)}"

        return JSONResponse({"$total": total, "$page": page, "$next": link(page + 1) if page < pages else None,
                             "$back": link(page - 1) if page > 1 else None, "$itemsPerPage": per, "$items": items})

    @app.get(V + "/{resource}/{record_id}")
    async def get_one(resource: str, record_id: str, request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        rec = state.datasets[resource].get(record_id) if resource in state.datasets else None
        if rec is None:
            return _errors(404, "RecordNotFound", "The requested record could not be found")
        return JSONResponse(rec)

    @app.post(V + "/{resource}")
    async def create(resource: str, request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        key = SINGULAR.get(resource)
        if key is None:
            return _errors(405, "MethodNotAllowed", f"POST is not supported on {resource}")
        body = await request.json()
        el = body.get(key) if isinstance(body, dict) else None
        if not isinstance(el, dict):
            return _errors(422, "RecordInvalid", f"the request body must contain `{key}`", key)
        if resource == "contacts":
            if not el.get("name"):
                return _errors(422, "RecordInvalid", "Name can't be blank", "name")
            if not el.get("contact_type_ids"):
                return _errors(422, "RecordInvalid", "Contact type can't be blank", "contact_type_ids")
        else:
            if not el.get("contact_id"):
                return _errors(422, "RecordInvalid", "Contact can't be blank", "contact_id")
            if not el.get("invoice_lines"):
                return _errors(422, "RecordInvalid", "Invoice lines can't be blank", "invoice_lines")
        data = state.datasets[resource]
        rid = uuid.uuid4().hex
        rec = {**el, "id": rid, "$path": f"/{resource}/{rid}",
               "displayed_as": el.get("name") or el.get("reference") or rid}
        if resource == "sales_invoices":
            total = sum(float(li.get("quantity", 1)) * float(li.get("unit_price", 0)) for li in el["invoice_lines"])
            rec.update(total_amount=round(total, 2), outstanding_amount=round(total, 2),
                       status={"id": "UNPAID", "displayed_as": "Unpaid"}, contact={"id": el["contact_id"]})
        at = data.put(rid, rec)
        rec["created_at"] = rec["updated_at"] = _ts(at)
        return JSONResponse(rec, status_code=201)

    return app
