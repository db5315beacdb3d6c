"""Xero sandbox: Accounting API 2.0 (contacts, invoices, accounts, bank transactions, payments) and
Payroll UK (employees), shaped by ``XeroAPI/Xero-OpenAPI``: same paths, ``xero-tenant-id`` header, wrapped
collections with ``pagination``, ``If-Modified-Since``, ``where``, ``Idempotency-Key``, per-element
``ValidationErrors`` (``summarizeErrors=false``), rate-limit headers and signed webhooks.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    CARE_SERVICES,
    FUNDERS,
    JOB_TITLES,
    SUPPLIERS,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    add_oauth_routes,
    bearer,
    hmac_b64,
    idempotent_replay,
    new_state,
    ni_number,
    pools,
    remember,
    rng_for,
    send_webhook,
    stable_uuid,
    uuid_index,
)

TENANT_ID = "7e3c5b1a-0f4d-4a9e-9c1b-2d8f6a4e5c01"
ACC = "/api.xro/2.0"
PAY = "/payroll.xro/2.0"


def ms_json(dt: datetime) -> str:
    """Xero's MS-JSON date: ``/Date(1518685950940+0000)/``."""
    return f"/Date({int(dt.timestamp() * 1000)}+0000)/"


ACCOUNTS = [
    ("090", "Business Bank Account", "BANK"), ("091", "Care Fees Deposit Account", "BANK"),
    ("200", "Residential Care Fees", "REVENUE"), ("201", "Nursing Care Fees (FNC)", "REVENUE"),
    ("202", "Local Authority Top-ups", "REVENUE"), ("260", "Other Revenue", "OTHERINCOME"),
    ("310", "Food and Catering", "DIRECTCOSTS"), ("311", "Medical Supplies", "DIRECTCOSTS"),
    ("320", "Agency Staff", "DIRECTCOSTS"), ("400", "Care Staff Wages", "EXPENSE"),
    ("401", "Nursing Staff Wages", "EXPENSE"), ("429", "General Expenses", "EXPENSE"),
    ("445", "Light, Power, Heating", "OVERHEADS"), ("461", "Printing & Stationery", "OVERHEADS"),
    ("473", "Repairs and Maintenance", "OVERHEADS"), ("610", "Accounts Receivable", "CURRENT"),
    ("800", "Accounts Payable", "CURRLIAB"), ("820", "VAT", "CURRLIAB"), ("825", "PAYE Payable", "CURRLIAB"),
]


def _contact(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "contacts", i)
    p = pools(seed)
    kind = r.random()
    if kind < 0.55:
        first, last = r.choice(p.first_names), r.choice(p.last_names)
        name = f"{first} {last} (resident account {i + 1})"
        email = f"{first}.{last}{i}@example.org".lower().replace(" ", "")
        is_supplier, is_customer = False, True
    elif kind < 0.8:
        name, first, last = f"{r.choice(FUNDERS)} #{i + 1}", "", ""
        email, is_supplier, is_customer = f"carefinance{i}@example.gov.uk", False, True
    else:
        name, first, last = f"{r.choice(SUPPLIERS)} #{i + 1}", "", ""
        email, is_supplier, is_customer = f"accounts{i}@example.co.uk", True, False
    return {
        "ContactID": stable_uuid(seed, "contacts", i), "ContactNumber": f"C{i + 1:06d}",
        "AccountNumber": f"RES{i + 1:05d}", "ContactStatus": "ACTIVE", "Name": name,
        "FirstName": first, "LastName": last, "EmailAddress": email,
        "Addresses": [{"AddressType": "POBOX", "AddressLine1": r.choice(p.streets), "City": r.choice(p.towns),
                       "PostalCode": r.choice(p.postcodes), "Country": "United Kingdom"}],
        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": r.choice(p.phones)}],
        "IsSupplier": is_supplier, "IsCustomer": is_customer, "DefaultCurrency": "GBP",
        "UpdatedDateUTC": ms_json(at), "HasAttachments": False,
    }


def _invoice(seed: int, i: int, at: datetime, n_contacts: int) -> dict[str, Any]:
    r = rng_for(seed, "invoices", i)
    ci = r.randrange(max(1, n_contacts))
    contact = _contact(seed, ci, at)
    accrec = contact["IsCustomer"]
    weekly = r.choice((1095.0, 1180.5, 1250.0, 1320.0, 1410.75, 1575.0))
    lines: list[dict[str, Any]] = [{"LineItemID": str(uuid.UUID(int=r.getrandbits(128))), "Description":
              f"{r.choice(CARE_SERVICES)} - week commencing {(at - timedelta(days=7)).date():%d/%m/%Y}, "
              f"{r.choice(CARE_HOMES)}, Room {r.randrange(1, 60)}",
              "Quantity": 1.0, "UnitAmount": weekly, "AccountCode": "200" if accrec else "310",
              "TaxType": "EXEMPTOUTPUT" if accrec else "INPUT2", "TaxAmount": 0.0 if accrec else round(weekly * .2, 2),
              "LineAmount": weekly}]
    tax = sum(line["TaxAmount"] for line in lines)
    total = round(weekly + tax, 2)
    status = r.choice(("AUTHORISED", "AUTHORISED", "PAID", "DRAFT", "SUBMITTED"))
    paid = total if status == "PAID" else 0.0
    return {
        "Type": "ACCREC" if accrec else "ACCPAY", "InvoiceID": stable_uuid(seed, "invoices", i),
        "InvoiceNumber": f"INV-{i + 1:06d}", "Reference": f"Care fees {at:%b %Y}",
        "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
        "DateString": f"{at.date()}T00:00:00", "Date": ms_json(at),
        "DueDateString": f"{(at + timedelta(days=14)).date()}T00:00:00", "DueDate": ms_json(at + timedelta(days=14)),
        "Status": status, "LineAmountTypes": "Exclusive", "LineItems": lines,
        "SubTotal": weekly, "TotalTax": tax, "Total": total, "AmountDue": round(total - paid, 2),
        "AmountPaid": paid, "AmountCredited": 0.0, "CurrencyCode": "GBP", "CurrencyRate": 1.0,
        "UpdatedDateUTC": ms_json(at), "HasAttachments": False, "HasErrors": False, "IsDiscounted": False,
    }


def _account(seed: int, i: int, at: datetime) -> dict[str, Any]:
    code, name, typ = ACCOUNTS[i % len(ACCOUNTS)]
    if i >= len(ACCOUNTS):
        code, name = f"{code}{i // len(ACCOUNTS)}", f"{name} {i // len(ACCOUNTS)}"
    rec = {"AccountID": stable_uuid(seed, "accounts", i), "Code": code, "Name": name, "Type": typ,
            "Status": "ACTIVE", "TaxType": "NONE" if typ == "BANK" else "INPUT2",
            "Class": "ASSET" if typ in ("BANK", "CURRENT") else "LIABILITY" if "LIAB" in typ else
            "REVENUE" if typ in ("REVENUE", "OTHERINCOME") else "EXPENSE",
            "EnablePaymentsToAccount": False, "BankAccountNumber": f"20-45-77 {i:08d}" if typ == "BANK" else None,
            "CurrencyCode": "GBP" if typ == "BANK" else None, "UpdatedDateUTC": ms_json(at)}
    return {k: v for k, v in rec.items() if v is not None}  # Xero omits empty fields


def _bank_transaction(seed: int, i: int, at: datetime, n_contacts: int) -> dict[str, Any]:
    r = rng_for(seed, "bank_transactions", i)
    contact = _contact(seed, r.randrange(max(1, n_contacts)), at)
    spend = contact["IsSupplier"]
    amount = round(r.uniform(25, 2400), 2)
    return {"BankTransactionID": stable_uuid(seed, "bank_transactions", i), "Type": "SPEND" if spend else "RECEIVE",
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "BankAccount": {"AccountID": stable_uuid(seed, "accounts", 0), "Code": "090", "Name": "Business Bank Account"},
            "LineItems": [{"Description": "Supplier payment" if spend else "Care fees received", "Quantity": 1.0,
                           "UnitAmount": amount, "AccountCode": "310" if spend else "200", "LineAmount": amount}],
            "Date": ms_json(at), "Reference": f"BT{i + 1:06d}", "Status": "AUTHORISED", "IsReconciled": r.random() < .7,
            "LineAmountTypes": "NoTax", "SubTotal": amount, "TotalTax": 0.0, "Total": amount, "CurrencyCode": "GBP",
            "UpdatedDateUTC": ms_json(at)}


def _payment(seed: int, i: int, at: datetime, n_invoices: int) -> dict[str, Any]:
    r = rng_for(seed, "payments", i)
    inv = _invoice(seed, r.randrange(max(1, n_invoices)), at, 50)
    return {"PaymentID": stable_uuid(seed, "payments", i), "Date": ms_json(at), "Amount": inv["Total"],
            "Reference": f"BACS {inv['InvoiceNumber']}", "Status": "AUTHORISED", "PaymentType":
            "ACCRECPAYMENT" if inv["Type"] == "ACCREC" else "ACCPAYPAYMENT", "IsReconciled": True,
            "Account": {"AccountID": stable_uuid(seed, "accounts", 0), "Code": "090"},
            "Invoice": {"InvoiceID": inv["InvoiceID"], "InvoiceNumber": inv["InvoiceNumber"]},
            "CurrencyRate": 1.0, "UpdatedDateUTC": ms_json(at)}


def _employee(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "employees", i)
    p = pools(seed)
    first, last = r.choice(p.first_names), r.choice(p.last_names)
    dob = datetime(1960, 1, 1) + timedelta(days=r.randrange(0, 40 * 365))
    start = datetime(2015, 1, 1) + timedelta(days=r.randrange(0, 9 * 365))
    return {"employeeID": stable_uuid(seed, "employees", i), "title": r.choice(("Mr", "Mrs", "Ms", "Miss")),
            "firstName": first, "lastName": last, "dateOfBirth": f"{dob:%Y-%m-%d}T00:00:00",
            "gender": r.choice("MF"), "email": f"{first}.{last}{i}@example.org".lower().replace(" ", ""),
            "phoneNumber": r.choice(p.phones), "startDate": f"{start:%Y-%m-%d}T00:00:00",
            "address": {"addressLine1": r.choice(p.streets), "city": r.choice(p.towns), "postCode": r.choice(p.postcodes),
                        "countryName": "UNITED KINGDOM"},
            "nationalInsuranceNumber": ni_number(r), "jobTitle": r.choice(JOB_TITLES),
            "payrollCalendarID": stable_uuid(seed, "calendars", 0), "isOffPayrollWorker": False,
            "updatedDateUTC": f"{at:%Y-%m-%dT%H:%M:%S}", "createdDateUTC": f"{at:%Y-%m-%dT%H:%M:%S}"}


RESOURCES = {  # path segment -> (dataset, wrapper key, id field, paged)
    "Contacts": ("contacts", "Contacts", "ContactID", True),
    "Invoices": ("invoices", "Invoices", "InvoiceID", True),
    "Accounts": ("accounts", "Accounts", "AccountID", False),
    "BankTransactions": ("bank_transactions", "BankTransactions", "BankTransactionID", True),
    "Payments": ("payments", "Payments", "PaymentID", True),
}

_WHERE = re.compile(r'\s*([A-Za-z.]+)\s*==\s*"([^"]*)"\s*')


def _where(expr: str | None) -> Callable[[dict[str, Any]], bool] | None:
    """Xero ``where``: equality clauses joined by AND (``Status=="AUTHORISED" AND Type=="ACCREC"``)."""
    if not expr:
        return None
    clauses = []
    for part in re.split(r"\s+AND\s+", expr):
        m = _WHERE.fullmatch(part)
        if m:
            clauses.append((m.group(1).split("."), m.group(2)))

    def match(rec: dict[str, Any]) -> bool:
        for path, want in clauses:
            val: Any = rec
            for key in path:
                val = val.get(key) if isinstance(val, dict) else None
            if str(val) != want:
                return False
        return True

    return match


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _unauthorised() -> JSONResponse:
    return JSONResponse({"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": "AuthenticationUnsuccessful",
                         "Instance": str(uuid.uuid4()), "Extensions": {}}, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _throttle(state: SandboxState) -> Response:
    headers = {"X-Rate-Limit-Problem": state.faults.rate_limit_problem, "X-MinLimit-Remaining": "0"}
    if state.faults.retry_after is not None:
        headers["Retry-After"] = state.faults.retry_after
    return Response(status_code=429, headers=headers)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Xero sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Xero")
    seed = cfg.seed
    nc = cfg.count("contacts")
    ninv = cfg.count("invoices")

    def ds(name: str, make: Callable[[int, datetime], dict[str, Any]], default: int | None = None) -> Dataset:
        return Dataset(cfg.count(name, default), make, lambda i: stable_uuid(seed, name, i), uuid_index)

    state.datasets = {
        "contacts": ds("contacts", lambda i, at: _contact(seed, i, at)),
        "invoices": ds("invoices", lambda i, at: _invoice(seed, i, at, nc)),
        "accounts": ds("accounts", lambda i, at: _account(seed, i, at), len(ACCOUNTS)),
        "bank_transactions": ds("bank_transactions", lambda i, at: _bank_transaction(seed, i, at, nc)),
        "payments": ds("payments", lambda i, at: _payment(seed, i, at, ninv)),
        "employees": ds("employees", lambda i, at: _employee(seed, i, at)),
    }
    app = FastAPI(title="Xero sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle,
                       exempt=("/identity/", "/connections"))
    add_control_routes(app, state)
    add_oauth_routes(app, state, authorize_path="/identity/connect/authorize", token_path="/identity/connect/token")

    def limit_headers() -> dict[str, str]:
        minute = state.minute_window[1]
        per_min = cfg.rate_limit_per_minute or 60
        return {"X-MinLimit-Remaining": str(max(0, per_min - minute)),
                "X-DayLimit-Remaining": str(max(0, 5000 - state.day_count)),
                "X-AppMinLimit-Remaining": str(max(0, 10000 - minute))}

    def check(request: Request) -> Response | None:
        if not state.token_valid(bearer(request)):
            return _unauthorised()
        if request.headers.get("xero-tenant-id") != TENANT_ID:
            return JSONResponse({"Type": None, "Title": "Forbidden", "Status": 403,
                                 "Detail": "AuthorizationUnsuccessful"}, status_code=403)
        return None

    def envelope(key: str, items: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": "CareHub Sandbox",
                "DateTimeUTC": ms_json(datetime.now(UTC)), **(extra or {}), key: items}

    @app.get("/connections")
    async def connections(request: Request) -> Response:
        if not state.token_valid(bearer(request)):
            return _unauthorised()
        return JSONResponse([{"id": str(uuid.uuid4()), "tenantId": TENANT_ID, "tenantType": "ORGANISATION",
                              "tenantName": "Willow Court Care Home Ltd", "createdDateUtc": "2024-01-01T00:00:00",
                              "updatedDateUtc": "2024-01-01T00:00:00"}])

    @app.get(ACC + "/{resource}")
    async def list_resource(resource: str, request: Request) -> Response:
        if resource not in RESOURCES:
            return JSONResponse({"Title": "Not Found", "Status": 404, "Detail": f"Resource {resource} not found"}, 404)
        denied = check(request)
        if denied:
            return denied
        name, key, _idf, paged = RESOURCES[resource]
        q = request.query_params
        since = _since(request.headers.get("if-modified-since"))
        where = _where(q.get("where"))
        data = state.datasets[name]
        if not paged:
            items, _ = data.page(since, 0, 10_000, where)
            return JSONResponse(envelope(key, items), headers=limit_headers())
        page = max(1, int(q.get("page") or 1))
        size = min(1000, max(1, int(q.get("pageSize") or 100)))
        items, total = data.page(since, (page - 1) * size, size, where)
        pagination = {"page": page, "pageSize": size, "pageCount": (total + size - 1) // size, "itemCount": total}
        return JSONResponse(envelope(key, items, {"pagination": pagination}), headers=limit_headers())

    @app.get(ACC + "/{resource}/{record_id}")
    async def get_one(resource: str, record_id: str, request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        if resource not in RESOURCES:
            return JSONResponse({"Title": "Not Found", "Status": 404}, 404)
        name, key, _idf, _ = RESOURCES[resource]
        rec = state.datasets[name].get(record_id)
        if rec is None:
            return JSONResponse({"Title": "Not Found", "Status": 404, "Detail": "Resource not found"}, 404)
        return JSONResponse(envelope(key, [rec]), headers=limit_headers())

    def validate(resource: str, el: dict[str, Any]) -> list[str]:
        errs = []
        if resource == "Invoices":
            if el.get("Type") not in ("ACCREC", "ACCPAY"):
                errs.append("Invoice Type must be specified (ACCREC or ACCPAY)")
            contact = el.get("Contact") or {}
            if not (contact.get("ContactID") or contact.get("Name")):
                errs.append("A Contact must be specified for this type of transaction")
            if not el.get("LineItems") and el.get("Status", "DRAFT") != "DRAFT":
                errs.append("Invoices must have at least one line item")
        if resource == "Contacts" and not el.get("Name") and not el.get("ContactID"):
            # Like Xero: an update names the contact by ContactID and sends only what changes.
            errs.append("The contact name must be specified")
        if state.faults.partial_batch_failure and state.rng.random() < state.faults.partial_batch_failure:
            errs.append("Sandbox: injected validation failure for this element")
        return errs

    async def upsert(resource: str, request: Request, create_only: bool) -> Response:
        denied = check(request)
        if denied:
            return denied
        if resource not in ("Invoices", "Contacts"):
            return JSONResponse({"Title": "Not Found", "Status": 404}, 404)
        idem = request.headers.get("idempotency-key")
        replay = idempotent_replay(state, idem)
        if replay is not None:
            return replay
        name, key, idf, _ = RESOURCES[resource]
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"ErrorNumber": 14, "Type": "PostDataInvalidException",
                                 "Message": "The string '' is not a valid JSON request"}, 400)
        elements = (body.get(key) if isinstance(body, dict) and key in body else [body]) or []
        summarize = request.query_params.get("summarizeErrors", "true").lower() != "false"
        data = state.datasets[name]
        out, any_err = [], False
        events = []
        for el in elements:
            errs = validate(resource, el)
            rid = el.get(idf)
            if rid and create_only:
                errs.append(f"{idf} must not be set when creating with PUT")
            existing = data.get(rid) if rid else None
            if rid and existing is None and not errs:
                errs.append(f"{resource[:-1]} not found: {rid}")
            if errs:
                any_err = True
                out.append({**el, "StatusAttributeString": "ERROR", "HasValidationErrors": True,
                            "ValidationErrors": [{"Message": m} for m in errs]})
                continue
            rec = {**(existing or {}), **el}
            rec[idf] = rid or str(uuid.uuid4())
            if resource == "Invoices":
                rec.setdefault("InvoiceNumber", f"INV-S{len(data.overlay) + 1:05d}")
                rec.setdefault("Status", "DRAFT")
                total = sum(float(li.get("Quantity", 1)) * float(li.get("UnitAmount", 0)) for li in rec.get("LineItems", []))
                rec.setdefault("Total", round(total, 2))
                rec.setdefault("AmountDue", rec["Total"])
                rec.setdefault("CurrencyCode", "GBP")
            else:
                rec.setdefault("ContactStatus", "ACTIVE")
            at = data.put(rec[idf], rec)
            rec["UpdatedDateUTC"] = ms_json(at)
            out.append({**rec, "StatusAttributeString": "OK"})
            events.append({"resourceUrl": f"https://api.xero.com{ACC}/{resource}/{rec[idf]}", "resourceId": rec[idf],
                           "eventDateUtc": f"{at:%Y-%m-%dT%H:%M:%S.%f}", "eventType": "UPDATE" if rid else "CREATE",
                           "eventCategory": "INVOICE" if resource == "Invoices" else "CONTACT",
                           "tenantId": TENANT_ID, "tenantType": "ORGANISATION"})
        if any_err and summarize:
            body_err = {"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
                        "Elements": [e for e in out if e.get("ValidationErrors")]}
            return remember(state, idem, 400, body_err)
        if events and cfg.webhook_url:
            await emit(events)
        return remember(state, idem, 200, envelope(key, out), limit_headers())

    async def emit(events: list[dict[str, Any]]) -> int:
        seq = len(state.webhooks_sent) + 1
        body = {"events": events, "firstEventSequence": seq, "lastEventSequence": seq + max(0, len(events) - 1),
                "entropy": uuid.uuid4().hex.upper()[:20]}
        return await send_webhook(state, body, lambda raw: {"x-xero-signature": hmac_b64(cfg.webhook_key, raw)})

    @app.put(ACC + "/{resource}")
    async def create(resource: str, request: Request) -> Response:
        return await upsert(resource, request, create_only=True)

    @app.post(ACC + "/{resource}")
    async def create_or_update(resource: str, request: Request) -> Response:
        return await upsert(resource, request, create_only=False)

    @app.post("/_sandbox/webhooks/intent-to-receive")
    async def intent_to_receive() -> dict[str, Any]:
        """Xero's setup check: one correctly and one incorrectly signed empty delivery."""
        body = {"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": uuid.uuid4().hex[:20]}
        good = await send_webhook(state, body, lambda raw: {"x-xero-signature": hmac_b64(cfg.webhook_key, raw)})
        bad = await send_webhook(state, body, lambda raw: {"x-xero-signature": hmac_b64("wrong-key", raw)})
        return {"valid_signature_status": good, "invalid_signature_status": bad, "passed": good == 200 and bad == 401}

    @app.get(PAY + "/Employees")
    async def employees(request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        page = max(1, int(request.query_params.get("page") or 1))
        size = 100
        items, total = state.datasets["employees"].page(None, (page - 1) * size, size)
        return JSONResponse({"id": str(uuid.uuid4()), "providerName": "CareHub Sandbox",
                             "dateTimeUTC": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
                             "httpStatusCode": "OK",
                             "pagination": {"page": page, "pageSize": size, "pageCount": (total + size - 1) // size,
                                            "itemCount": total}, "employees": items},
                            headers=limit_headers())

    @app.post(PAY + "/Employees")
    async def create_employee(request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        idem = request.headers.get("idempotency-key")
        replay = idempotent_replay(state, idem)
        if replay is not None:
            return replay
        el = await request.json()
        missing = [f for f in ("title", "firstName", "lastName", "dateOfBirth", "gender", "address") if not el.get(f)]
        if missing:
            problem = {"type": "application/problem+json", "title": "BadRequest", "status": 400,
                       "detail": "Validation error occurred.",
                       "invalidFields": [{"name": f, "reason": f"The {f} is required."} for f in missing]}
            return remember(state, idem, 400, {"problem": problem})
        rec = {**el, "employeeID": str(uuid.uuid4())}
        at = state.datasets["employees"].put(rec["employeeID"], rec)
        rec["updatedDateUTC"] = f"{at:%Y-%m-%dT%H:%M:%S}"
        return remember(state, idem, 200, {"id": str(uuid.uuid4()), "providerName": "CareHub Sandbox",
                                           "dateTimeUTC": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}",
                                           "httpStatusCode": "OK",
                                           "employee": rec})

    app.state.emit = emit
    app.state.started = time.time()
    return app
