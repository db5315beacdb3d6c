"""KashFlow (IRIS) sandbox: REST API under ``/v2`` (production ``https://api.kashflow.com/v2``).

Faithful to the public material (KashFlow's Swagger at ``/v2/swagger/ui/index`` as indexed by a community
document, community clients, make.com and unified.to help pages): the session-token log-in
``POST /v2/sessiontoken {UserName, Password}`` -> ``{TemporaryToken, MemorableWordList: [{Position}]}``,
then ``PUT /v2/sessiontoken`` with the asked-for characters of the memorable word -> ``{SessionToken}``,
``DELETE /v2/sessiontoken/{token}`` revokes; calls carry ``Authorization: KfToken {token}``; lists are
``{"MetaData": {...}, "Data": [...]}``; customers are addressed by their ``Code``; invoices carry
``Number, IssuedDate, DueDate, PaidDate, CustomerId, CustomerCode, CustomerName, NetAmount, VATAmount,
GrossAmount, TotalPaidAmount, DueAmount, Status, Currency, LineItems, Id, PaymentLines``; bank
transactions are listed per bank account (``/v2/bankaccounts/{id}/transactions``).

Chosen here and unconfirmed: the paging parameters (``page``, ``perpage``) and ``MetaData`` keys
(``NextPageUrl``, ``TotalRecords``), sorting (``sortby``, ``order``), the error body (``{"Message": ...}``,
as ASP.NET Web API sends), the session life (sessions lapse after an hour idle) and throttling (429 +
``Retry-After``; KashFlow documents no limit).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    CARE_SERVICES,
    FUNDERS,
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
from connectors.sandboxes.handlers import record_to_update
from connectors.sandboxes.workforce import FilterCache, uk_landline

USERNAME = "willowcourt"
PASSWORD = "sandbox-kf-password"
MEMORABLE_WORD = "rosewood"
FIRST_CUSTOMER = 1001
FIRST_INVOICE = 30001
FIRST_TRANSACTION = 600_001
BANK_ACCOUNTS = {1: ("Current Account", "1200"), 2: ("Residents' Monies", "1210")}
CUSTOMER_FIELDS = frozenset({"Code", "Name", "Email", "Telephone", "Mobile", "Address", "Note", "VATNumber",
                             "IsArchived", "PaymentTerms", "ContactFirstName", "ContactLastName"})
INVOICE_FIELDS = frozenset({"CustomerCode", "IssuedDate", "DueDate", "LineItems", "CustomerReference",
                            "Currency", "Status"})
SESSION_IDLE_SECONDS = 3600.0
IDENT: dict[str, Callable[[dict[str, Any]], str]] = {
    "customers": lambda x: str(x["Code"]), "invoices": lambda x: str(x["Number"]), "bank": lambda x: str(x["Id"])}


def kf_date(dt: datetime) -> str:
    """KashFlow's date-times: ``2024-01-01T00:07:00``."""
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _customer(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "kashflow.customers", i)
    p = pools(seed)
    person = i % 4 != 0
    first, last = r.choice(p.first_names), r.choice(p.last_names)
    name = f"{first} {last}" if person else FUNDERS[i % len(FUNDERS)]
    code = f"{(last if person else name)[:3].upper()}{i + 1:03d}"
    return {
        "Id": FIRST_CUSTOMER + i, "Code": code, "Name": name, "Email": f"billing{i}@example.org",
        "Telephone": uk_landline(r), "Mobile": "", "ContactFirstName": first if person else "",
        "ContactLastName": last if person else "Finance Team",
        "Address": {"Line1": r.choice(p.streets), "Line2": "", "Line3": r.choice(p.towns), "Line4": "",
                    "PostCode": r.choice(p.postcodes), "CountryCode": "GB", "CountryName": "United Kingdom"},
        "VATNumber": "", "Note": f"Resident at {r.choice(CARE_HOMES)}" if person else "Local authority funder",
        "OutstandingBalance": round(r.choice((0.0, 0.0, 1250.0, 2480.5)), 2), "TotalPaidAmount": round(r.uniform(0, 40000), 2),
        "PaymentTerms": 14 if person else 30, "IsArchived": False, "CreatedDate": kf_date(at - timedelta(days=400)),
        "LastUpdatedDate": kf_date(at), "Currency": {"Code": "GBP", "Name": "Pound Sterling", "Symbol": "£"},
    }


def _invoice(seed: int, i: int, at: datetime, n_customers: int) -> dict[str, Any]:
    r = rng_for(seed, "kashflow.invoices", i)
    cust = _customer(seed, r.randrange(max(1, n_customers)), at)
    issued = date(2025, 1, 1) + timedelta(days=i // 3)
    weekly = r.choice((1095.0, 1180.5, 1250.0, 1320.0))
    lines: list[dict[str, Any]] = [{"Number": 1, "Description": f"{CARE_SERVICES[0]} - 4 weeks", "Quantity": 4.0, "Rate": weekly,
              "VATRate": 0.0, "VATAmount": 0.0, "NominalCode": 4000, "ProductCode": "CAREFEES"}]
    if r.random() < 0.3:
        lines.append({"Number": 2, "Description": r.choice(CARE_SERVICES[4:]), "Quantity": 1.0, "Rate": 28.0,
                      "VATRate": 20.0, "VATAmount": 5.6, "NominalCode": 4010, "ProductCode": "SUNDRY"})
    net = round(sum(float(x["Quantity"]) * float(x["Rate"]) for x in lines), 2)
    vat = round(sum(float(x["VATAmount"]) for x in lines), 2)
    status = r.choice(("Paid", "Paid", "Unpaid", "Overdue"))
    paid = net + vat if status == "Paid" else 0.0
    due = issued + timedelta(days=int(cust["PaymentTerms"]))
    return {
        "Id": FIRST_INVOICE + i, "Number": FIRST_INVOICE + i, "IssuedDate": f"{issued}T00:00:00",
        "DueDate": f"{due}T00:00:00", "PaidDate": f"{due - timedelta(days=3)}T00:00:00" if status == "Paid" else None,
        "CustomerId": cust["Id"], "CustomerCode": cust["Code"], "CustomerName": cust["Name"],
        "CustomerReference": "", "NetAmount": net, "VATAmount": vat, "GrossAmount": round(net + vat, 2),
        "TotalPaidAmount": round(paid, 2), "DueAmount": round(net + vat - paid, 2), "Status": status,
        "Currency": {"Code": "GBP", "Name": "Pound Sterling", "Symbol": "£", "ExchangeRate": 1.0},
        "LineItems": lines, "Address": cust["Address"],
        "PaymentLines": [{"Date": f"{due - timedelta(days=3)}T00:00:00", "Amount": round(paid, 2), "Method": 2,
                          "Reference": f"BACS {cust['Code']}"}] if paid else [],
        "LastUpdatedDate": kf_date(at),
    }


def _transaction(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "kashflow.bank", i)
    account = 2 if i % 6 == 0 else 1
    receipt = r.random() < 0.5
    amount = r.choice((1095.0, 1250.0, 2480.5, 4721.0)) if receipt else r.choice((86.4, 312.5, 1290.0, 2650.0))
    return {
        "Id": FIRST_TRANSACTION + i, "BankAccountId": account, "Date": f"{date(2025, 1, 2) + timedelta(days=i // 4)}T00:00:00",
        "TransactionType": "Receipt" if receipt else "Payment", "Amount": amount, "VATAmount": 0.0,
        "NominalCode": 4000 if receipt else 5000,
        "Reference": (f"BACS {r.choice(FUNDERS)[:20]}" if receipt else f"DD {r.choice(SUPPLIERS)[:20]}"),
        "Description": "Care fees received" if receipt else "Supplier payment", "Reconciled": r.random() < 0.8,
        "LastUpdatedDate": kf_date(at),
    }


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The KashFlow sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "KashFlow")
    seed = cfg.seed
    n_customers = cfg.count("customers", 120)
    created = [0]
    views = FilterCache()

    def code_of(i: int) -> str:
        return str(_customer(seed, i, datetime(2024, 1, 1, tzinfo=UTC))["Code"])

    def index_of_code(code: str) -> int | None:
        digits = code[len(code.rstrip("0123456789")):]
        return int(digits) - 1 if digits else None
    temporary: dict[str, list[int]] = {}
    sessions: dict[str, float] = {}
    state.extra.update(sessions=sessions, logins=0)

    def index_of(first: int) -> Any:
        def f(value: str) -> int | None:
            return int(value) - first if value.isdigit() else None
        return f

    state.datasets = {
        "customers": Dataset(n_customers, lambda i, at: _customer(seed, i, at), code_of, index_of_code),
        "invoices": Dataset(cfg.count("invoices", 300), lambda i, at: _invoice(seed, i, at, n_customers),
                            lambda i: str(FIRST_INVOICE + i), index_of(FIRST_INVOICE)),
        "bank": Dataset(cfg.count("bank_transactions", 360), lambda i, at: _transaction(seed, i, at),
                        lambda i: str(FIRST_TRANSACTION + i), index_of(FIRST_TRANSACTION)),
    }
    next_invoice = [FIRST_INVOICE + 500_000]
    app = FastAPI(title="KashFlow sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"username": USERNAME, "password": PASSWORD, "memorable_word": MEMORABLE_WORD}

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"Message": message}, status_code=status)

    def throttle(st: SandboxState) -> Response:
        resp = error(429, "Too many requests")
        if st.faults.retry_after is not None:
            resp.headers["Retry-After"] = st.faults.retry_after
        return resp

    app.add_middleware(FaultMiddleware, state=state, throttle=throttle, exempt=("/v2/sessiontoken",))
    add_control_routes(app, state)

    @app.post("/v2/sessiontoken")
    async def start_session(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The request is invalid.")
        if not isinstance(body, dict) or body.get("UserName") != USERNAME or body.get("Password") != PASSWORD:
            return error(401, "Incorrect username or password")
        temp = secrets.token_hex(16)
        positions = sorted(state.rng.sample(range(1, len(MEMORABLE_WORD) + 1), 3))
        temporary[temp] = positions
        return JSONResponse({"TemporaryToken": temp,
                             "MemorableWordList": [{"Position": p, "Value": None} for p in positions]})

    @app.put("/v2/sessiontoken")
    async def finish_session(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The request is invalid.")
        positions = temporary.pop(str((body or {}).get("TemporaryToken", "")), None)
        if positions is None:
            return error(401, "Temporary token is invalid or has expired")
        given = {int(x.get("Position", 0)): str(x.get("Value", "")) for x in body.get("MemorableWordList") or []}
        if any(given.get(p, "").lower() != MEMORABLE_WORD[p - 1] for p in positions):
            return error(401, "Memorable word characters are incorrect")
        token = secrets.token_hex(20)
        sessions[token] = time.time() + SESSION_IDLE_SECONDS
        state.extra["logins"] += 1
        return JSONResponse({"SessionToken": token})

    @app.delete("/v2/sessiontoken/{token}")
    async def end_session(token: str) -> Response:
        sessions.pop(token, None)
        return Response(status_code=200)

    @app.post("/_sandbox/expire-sessions")
    async def expire() -> dict[str, int]:
        for t in sessions:
            sessions[t] = 0.0
        return {"expired": len(sessions)}

    def denied(request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        token = auth[8:].strip() if auth.startswith("KfToken ") else ""
        if sessions.get(token, 0.0) <= time.time() or state.faults.revoke_tokens:
            return error(401, "Authorization has been denied for this request.")
        sessions[token] = time.time() + SESSION_IDLE_SECONDS
        return None

    def listing(request: Request, source: str | list[dict[str, Any]],
                keep: Callable[[dict[str, Any]], bool] | None = None, tag: str = "") -> Response:
        q = request.query_params
        try:
            page = max(1, int(q.get("page", "1")))
            per = min(250, max(1, int(q.get("perpage", "20"))))
        except ValueError:
            return error(400, "page and perpage must be whole numbers")
        offset = (page - 1) * per
        sortby, desc = q.get("sortby"), q.get("order") == "Desc"

        def order(x: dict[str, Any]) -> tuple[bool, Any]:
            return x.get(sortby or "") is None, x.get(sortby or "")

        if isinstance(source, list):
            rows = sorted(source, key=order, reverse=desc) if sortby else source
            chunk, total = rows[offset:offset + per], len(rows)
        else:
            data = state.datasets[source]
            if keep is None and not sortby:
                chunk, total = data.page(None, offset, per)
            else:
                ids = views.ids(data, (source, tag, sortby), keep or (lambda _x: True), IDENT[source],
                                sort=order if sortby else None)
                ids = ids[::-1] if desc else ids
                chunk = [r for r in (data.get(i) for i in ids[offset:offset + per]) if r is not None]
                total = len(ids)
        last = max(1, -(-total // per))

        def url(n: int) -> str:
            return str(request.url.include_query_params(page=n, perpage=per))

        meta = {"FirstPageUrl": url(1), "LastPageUrl": url(last), "NextPageUrl": url(page + 1) if page < last else None,
                "PrevPageUrl": url(page - 1) if page > 1 else None, "TotalRecords": total}
        return JSONResponse({"MetaData": meta, "Data": chunk})

    @app.get("/v2/customers")
    async def list_customers(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return listing(request, "customers")

    @app.get("/v2/customers/{code}")
    async def get_customer(code: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        rec = state.datasets["customers"].get(code)
        return JSONResponse(rec) if rec else error(404, f"Customer {code} not found")

    def customer_problems(body: dict[str, Any]) -> list[str]:
        problems = [f"{k} is not a customer field" for k in sorted(set(body) - CUSTOMER_FIELDS)]
        if not str(body.get("Name", "")).strip():
            problems.append("Name is required")
        code = str(body.get("Code", ""))
        if code and (len(code) > 20 or not code.replace("-", "").isalnum()):
            problems.append("Code must be at most 20 letters or digits")
        return problems

    @app.post("/v2/customers")
    async def create_customer(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The request is invalid.")
        if problems := customer_problems(body if isinstance(body, dict) else {}):
            return error(400, "; ".join(problems))
        created[0] += 1
        code = str(body.get("Code") or f"{str(body['Name'])[:3].upper()}{n_customers + created[0]:03d}")
        if state.datasets["customers"].get(code) is not None:
            return error(400, f"Customer code {code} already exists")
        now = datetime.now(UTC)
        rec = {"Id": FIRST_CUSTOMER + 100_000 + created[0], "OutstandingBalance": 0.0, "TotalPaidAmount": 0.0,
               "IsArchived": False, "PaymentTerms": 30, "CreatedDate": kf_date(now), **body, "Code": code}
        rec["LastUpdatedDate"] = kf_date(state.datasets["customers"].put(code, rec))
        return JSONResponse(rec, status_code=201)

    @app.put("/v2/customers/{code}")
    async def update_customer(code: str, request: Request) -> Response:
        data = state.datasets["customers"]
        got = await record_to_update(request, denied=denied, error=error, find=lambda _: data.get(code),
                                     not_found=f"Customer {code} not found", bad_json="The request is invalid.")
        if isinstance(got, Response):
            return got
        rec, body = got
        new = {**rec, **(body if isinstance(body, dict) else {}), "Code": code}
        if problems := customer_problems({k: v for k, v in new.items() if k in CUSTOMER_FIELDS or k in (body or {})}):
            return error(400, "; ".join(problems))
        if new != rec:
            new["LastUpdatedDate"] = kf_date(data.put(code, new))
        return JSONResponse(new)

    @app.get("/v2/invoices")
    async def list_invoices(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        status = request.query_params.get("status")
        return listing(request, "invoices", (lambda x: x["Status"] == status) if status else None, status or "")

    @app.post("/v2/invoices")
    async def create_invoice(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The request is invalid.")
        if not isinstance(body, dict):
            return error(400, "The request is invalid.")
        problems = [f"{k} is not an invoice field" for k in sorted(set(body) - INVOICE_FIELDS)]
        cust = state.datasets["customers"].get(str(body.get("CustomerCode", "")))
        if cust is None:
            problems.append(f"Customer {body.get('CustomerCode')} not found")
        lines = body.get("LineItems") or []
        if not lines:
            problems.append("At least one line item is required")
        if problems or cust is None:
            return error(400, "; ".join(problems))
        net = round(sum(float(x.get("Quantity", 1)) * float(x.get("Rate", 0)) for x in lines), 2)
        vat = round(sum(float(x.get("Quantity", 1)) * float(x.get("Rate", 0)) * float(x.get("VATRate", 0)) / 100
                        for x in lines), 2)
        next_invoice[0] += 1
        issued = str(body.get("IssuedDate") or f"{date.today()}T00:00:00")
        rec = {"Id": next_invoice[0], "Number": next_invoice[0], "IssuedDate": issued,
               "DueDate": body.get("DueDate") or issued, "PaidDate": None, "CustomerId": cust["Id"],
               "CustomerCode": cust["Code"], "CustomerName": cust["Name"],
               "CustomerReference": body.get("CustomerReference", ""), "NetAmount": net, "VATAmount": vat,
               "GrossAmount": round(net + vat, 2), "TotalPaidAmount": 0.0, "DueAmount": round(net + vat, 2),
               "Status": "Unpaid", "Currency": {"Code": "GBP", "Name": "Pound Sterling", "Symbol": "£",
                                                "ExchangeRate": 1.0},
               "LineItems": lines, "Address": cust["Address"], "PaymentLines": []}
        rec["LastUpdatedDate"] = kf_date(state.datasets["invoices"].put(str(rec["Number"]), rec))
        return JSONResponse(rec, status_code=201)

    @app.get("/v2/bankaccounts")
    async def bank_accounts(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return listing(request, [{"Id": k, "Name": v[0], "NominalCode": v[1], "Currency": {"Code": "GBP"},
                                  "AccountType": "Current"} for k, v in BANK_ACCOUNTS.items()])

    @app.get("/v2/bankaccounts/{account_id}/transactions")
    async def bank_transactions(account_id: int, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        if account_id not in BANK_ACCOUNTS:
            return error(404, f"Bank account {account_id} not found")
        return listing(request, "bank", lambda x: bool(x["BankAccountId"] == account_id), str(account_id))

    return app
