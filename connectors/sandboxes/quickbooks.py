"""QuickBooks Online sandbox: ``/v3/company/{realmId}/query`` (SQL-ish ``STARTPOSITION``/``MAXRESULTS``),
``/cdc``, single creates with ``requestid`` idempotency, ``/batch`` with per-item ``Fault`` replies, and
Intuit's error bodies (``Fault.Error[].Message/Detail/code``). Shapes follow Intuit's docs and SDK models
(no official OpenAPI exists).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    CARE_SERVICES,
    FUNDERS,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    add_oauth_routes,
    bearer,
    idempotent_replay,
    new_state,
    pools,
    remember,
    rng_for,
)

REALM_ID = "9341452215667890"


def qbo_time(dt: datetime) -> str:
    """QuickBooks timestamps: ``2024-01-01T10:00:00-00:00`` style (we use UTC offsets)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"


def _meta(at: datetime) -> dict[str, str]:
    return {"CreateTime": qbo_time(at - timedelta(days=3)), "LastUpdatedTime": qbo_time(at)}


def _customer(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "Customer", i)
    p = pools(seed)
    if r.random() < 0.7:
        first, last = r.choice(p.first_names), r.choice(p.last_names)
        display = f"{first} {last} ({i + 1})"
    else:
        first, last, display = "", "", f"{r.choice(FUNDERS)} ({i + 1})"
    return {"Id": str(i + 1), "SyncToken": "0", "DisplayName": display, "GivenName": first, "FamilyName": last,
            "CompanyName": display if not first else None, "Active": True, "Balance": round(r.uniform(0, 6000), 2),
            "PrimaryEmailAddr": {"Address": f"billing{i}@example.org"},
            "PrimaryPhone": {"FreeFormNumber": r.choice(p.phones)},
            "BillAddr": {"Line1": r.choice(p.streets), "City": r.choice(p.towns), "PostalCode": r.choice(p.postcodes),
                         "Country": "GB"},
            "CurrencyRef": {"value": "GBP", "name": "British Pound Sterling"}, "domain": "QBO", "sparse": False,
            "MetaData": _meta(at)}


def _invoice(seed: int, i: int, at: datetime, n_customers: int) -> dict[str, Any]:
    r = rng_for(seed, "Invoice", i)
    ci = r.randrange(max(1, n_customers))
    cust = _customer(seed, ci, at)
    amount = r.choice((1095.0, 1180.5, 1250.0, 1320.0, 1410.75))
    status_paid = r.random() < 0.4
    return {"Id": str(i + 1), "SyncToken": "0", "DocNumber": f"{1000 + i}", "TxnDate": f"{at.date()}",
            "DueDate": f"{(at + timedelta(days=14)).date()}",
            "CustomerRef": {"value": cust["Id"], "name": cust["DisplayName"]},
            "Line": [{"Id": "1", "LineNum": 1, "Amount": amount, "DetailType": "SalesItemLineDetail",
                      "Description": f"{r.choice(CARE_SERVICES)} - {r.choice(CARE_HOMES)}",
                      "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Care fees"}, "Qty": 1,
                                              "UnitPrice": amount, "TaxCodeRef": {"value": "4"}}},
                     {"Amount": amount, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}],
            "TxnTaxDetail": {"TotalTax": 0}, "TotalAmt": amount, "Balance": 0 if status_paid else amount,
            "CurrencyRef": {"value": "GBP", "name": "British Pound Sterling"}, "EmailStatus": "EmailSent",
            "domain": "QBO", "sparse": False, "MetaData": _meta(at)}


def _account(seed: int, i: int, at: datetime) -> dict[str, Any]:
    names = [("Care Fees Income", "Income", "SalesOfProductIncome"), ("Agency Staff", "Expense", "OtherBusinessExpenses"),
             ("Food and Catering", "Cost of Goods Sold", "SuppliesMaterialsCogs"), ("Current Account", "Bank", "Checking"),
             ("Wages", "Expense", "PayrollExpenses"), ("Utilities", "Expense", "Utilities"),
             ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable")]
    name, typ, sub = names[i % len(names)]
    if i >= len(names):
        name = f"{name} {i // len(names)}"
    return {"Id": str(i + 1), "SyncToken": "0", "Name": name, "AccountType": typ, "AccountSubType": sub,
            "Classification": "Revenue" if typ == "Income" else "Asset" if typ in ("Bank", "Accounts Receivable")
            else "Expense", "Active": True, "CurrentBalance": 0, "CurrencyRef": {"value": "GBP"},
            "FullyQualifiedName": name, "domain": "QBO", "MetaData": _meta(at)}


def _payment(seed: int, i: int, at: datetime, n_customers: int) -> dict[str, Any]:
    r = rng_for(seed, "Payment", i)
    cust = _customer(seed, r.randrange(max(1, n_customers)), at)
    amount = round(r.uniform(100, 3000), 2)
    return {"Id": str(i + 1), "SyncToken": "0", "TxnDate": f"{at.date()}", "TotalAmt": amount, "UnappliedAmt": 0,
            "CustomerRef": {"value": cust["Id"], "name": cust["DisplayName"]}, "CurrencyRef": {"value": "GBP"},
            "PaymentRefNum": f"BACS{i + 1:06d}", "domain": "QBO", "MetaData": _meta(at)}


ENTITIES = ("Customer", "Invoice", "Account", "Payment")
_QUERY = re.compile(
    r"select\s+\*\s+from\s+(\w+)"
    r"(?:\s+where\s+MetaData\.LastUpdatedTime\s*(>=|>)\s*'([^']+)')?"
    r"(?:\s+orderby\s+[\w.]+(?:\s+(?:asc|desc))?)?"
    r"(?:\s+startposition\s+(\d+))?"
    r"(?:\s+maxresults\s+(\d+))?\s*$",
    re.IGNORECASE,
)


def _fault(status: int, message: str, detail: str, code: str, typ: str = "ValidationFault") -> JSONResponse:
    return JSONResponse({"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": typ},
                         "time": qbo_time(datetime.now(UTC))}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _fault(429, "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                  "The request limit was reached.", "003001", "SERVICE")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _parse_ts(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The QuickBooks Online sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "QuickBooks Online")
    seed = cfg.seed
    ncust = cfg.count("customers")

    def ds(entity: str, stream: str, make: Callable[[int, datetime], dict[str, Any]], default: int | None = None) -> Dataset:
        def index_of(v: str) -> int | None:
            return int(v) - 1 if v.isdigit() else None
        return Dataset(cfg.count(stream, default), make, lambda i: str(i + 1), index_of)

    state.datasets = {
        "Customer": ds("Customer", "customers", lambda i, at: _customer(seed, i, at)),
        "Invoice": ds("Invoice", "invoices", lambda i, at: _invoice(seed, i, at, ncust)),
        "Account": ds("Account", "accounts", lambda i, at: _account(seed, i, at), 7),
        "Payment": ds("Payment", "payments", lambda i, at: _payment(seed, i, at, ncust)),
    }
    next_id = {e: 10_000_000 for e in ENTITIES}
    app = FastAPI(title="QuickBooks Online sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth2/", "/connect/"))
    add_control_routes(app, state)
    add_oauth_routes(app, state, authorize_path="/connect/oauth2", token_path="/oauth2/v1/tokens/bearer")
    base = "/v3/company/{realm}"

    def check(request: Request, realm: str) -> Response | None:
        if not state.token_valid(bearer(request)):
            return JSONResponse({"fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; "
                                                                 "statusCode=401", "detail": "Token expired or invalid",
                                                      "code": "3200"}], "type": "AUTHENTICATION"},
                                 "time": qbo_time(datetime.now(UTC))}, status_code=401)
        if realm != REALM_ID:
            return _fault(403, "ApplicationAuthorizationFailed", f"realm {realm} is not connected", "003100",
                          "AUTHORIZATION")
        return None

    @app.get(base + "/query")
    async def query(realm: str, request: Request) -> Response:
        denied = check(request, realm)
        if denied:
            return denied
        q = request.query_params.get("query", "")
        m = _QUERY.fullmatch(q.strip())
        if not m or m.group(1) not in ENTITIES:
            return _fault(400, "QueryParserError: Encountered an error while parsing the query",
                          f"QueryParserError: {q[:120]}", "4000")
        entity, op, ts, start, size = m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)
        since = _parse_ts(ts) if ts else None
        if ts and since is None:
            return _fault(400, "Invalid query", f"cannot parse time '{ts}'", "4001")
        if since is not None and op == ">":
            since = since + timedelta(microseconds=1)
        startpos = max(1, int(start or 1))
        maxres = min(1000, max(1, int(size or 100)))
        items, _total = state.datasets[entity].page(since, startpos - 1, maxres)
        resp: dict[str, Any] = {"startPosition": startpos, "maxResults": len(items)}
        if items:
            resp[entity] = items
        return JSONResponse({"QueryResponse": resp, "time": qbo_time(datetime.now(UTC))})

    @app.get(base + "/cdc")
    async def cdc(realm: str, request: Request) -> Response:
        denied = check(request, realm)
        if denied:
            return denied
        since = _parse_ts(request.query_params.get("changedSince", ""))
        if since is None:
            return _fault(400, "Invalid changedSince", "changedSince is required (ISO 8601)", "2010")
        if since < datetime.now(UTC) - timedelta(days=30):
            return _fault(400, "Invalid changedSince", "changedSince must be within the last 30 days", "2010")
        out = []
        for entity in request.query_params.get("entities", "").split(","):
            if entity in state.datasets:
                items, _ = state.datasets[entity].page(since, 0, 1000)
                out.append({entity: items, "startPosition": 1, "maxResults": len(items)})
        return JSONResponse({"CDCResponse": [{"QueryResponse": out}], "time": qbo_time(datetime.now(UTC))})

    def validate(entity: str, body: dict[str, Any]) -> tuple[str, str] | None:
        if entity == "Invoice":
            if not (body.get("CustomerRef") or {}).get("value"):
                return "Required param missing, need to supply the required value for the API", "Required parameter CustomerRef is missing"
            if not body.get("Line"):
                return "Required param missing, need to supply the required value for the API", "Required parameter Line is missing"
        if entity == "Customer" and not body.get("DisplayName"):
            return "Required param missing, need to supply the required value for the API", "Required parameter DisplayName is missing"
        return None

    def apply(entity: str, operation: str, body: dict[str, Any]) -> tuple[dict[str, Any] | None, tuple[str, str, str] | None]:
        err = validate(entity, body)
        if err:
            return None, (err[0], err[1], "2020")
        data = state.datasets[entity]
        if operation == "update":
            existing = data.get(str(body.get("Id", "")))
            if existing is None:
                return None, ("Object Not Found", f"{entity} {body.get('Id')} was not found", "610")
            if str(body.get("SyncToken")) != str(existing.get("SyncToken")):
                return None, ("Stale Object Error", "You and another user were working on the same thing.", "5010")
            rec = {**existing, **body, "SyncToken": str(int(existing["SyncToken"]) + 1)}
        else:
            next_id[entity] += 1
            rec = {**body, "Id": str(next_id[entity]), "SyncToken": "0", "domain": "QBO"}
            if entity == "Invoice":
                total = sum(float(li.get("Amount", 0)) for li in rec.get("Line", []))
                rec.setdefault("TotalAmt", round(total, 2))
                rec.setdefault("Balance", rec["TotalAmt"])
        at = data.put(rec["Id"], rec)
        rec["MetaData"] = _meta(at)
        return rec, None

    @app.post(base + "/batch")
    async def batch(realm: str, request: Request) -> Response:
        denied = check(request, realm)
        if denied:
            return denied
        rid = request.query_params.get("requestid")
        replay = idempotent_replay(state, f"batch:{rid}" if rid else None)
        if replay is not None:
            return replay
        body = await request.json()
        items = body.get("BatchItemRequest") or []
        if len(items) > 30:
            return _fault(400, "Batch size exceeded", "A batch may hold at most 30 items", "4002")
        out = []
        for item in items:
            entity = next((e for e in ENTITIES if e in item), None)
            if entity is None:
                out.append({"bId": item.get("bId"), "Fault": {"Error": [{"Message": "Unsupported entity",
                                                                         "code": "4003"}], "type": "ValidationFault"}})
                continue
            if state.faults.partial_batch_failure and state.rng.random() < state.faults.partial_batch_failure:
                out.append({"bId": item.get("bId"), "Fault": {"Error": [{"Message": "Sandbox injected failure",
                            "Detail": "Business Validation Error", "code": "6000"}], "type": "ValidationFault"}})
                continue
            rec, err = apply(entity, item.get("operation", "create"), item[entity])
            if err:
                out.append({"bId": item.get("bId"), "Fault": {"Error": [{"Message": err[0], "Detail": err[1],
                                                                         "code": err[2]}], "type": "ValidationFault"}})
            else:
                out.append({"bId": item.get("bId"), entity: rec})
        reply = {"BatchItemResponse": out, "time": qbo_time(datetime.now(UTC))}
        return remember(state, f"batch:{rid}" if rid else None, 200, reply)

    @app.post(base + "/{entity_lower}")
    async def create(realm: str, entity_lower: str, request: Request) -> Response:
        denied = check(request, realm)
        if denied:
            return denied
        entity = next((e for e in ENTITIES if e.lower() == entity_lower), None)
        if entity is None:
            return _fault(400, "Unsupported Operation", f"Operation {entity_lower} is not supported", "500")
        rid = request.query_params.get("requestid")
        key = f"{entity}:{rid}" if rid else None
        replay = idempotent_replay(state, key)
        if replay is not None:
            return replay
        body = await request.json()
        operation = "update" if request.query_params.get("operation") == "update" or body.get("Id") else "create"
        rec, err = apply(entity, operation, body)
        if err:
            return _fault(400, err[0], err[1], err[2])
        return remember(state, key, 200, {entity: rec, "time": qbo_time(datetime.now(UTC))})

    @app.get(base + "/{entity_lower}/{record_id}")
    async def read_one(realm: str, entity_lower: str, record_id: str, request: Request) -> Response:
        denied = check(request, realm)
        if denied:
            return denied
        entity = next((e for e in ENTITIES if e.lower() == entity_lower), None)
        rec = state.datasets[entity].get(record_id) if entity else None
        if rec is None or entity is None:
            return _fault(400, "Object Not Found", "Object Not Found : Something you're trying to use has been "
                                                  "made inactive or is otherwise unavailable", "610")
        return JSONResponse({entity: rec, "time": qbo_time(datetime.now(UTC))})

    return app
