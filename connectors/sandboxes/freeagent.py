"""FreeAgent sandbox: API v2 under ``/v2`` (production ``https://api.freeagent.com/v2``, FreeAgent's own
sandbox ``https://api.sandbox.freeagent.com/v2``).

Faithful to dev.freeagent.com and FreeAgent's API forum as summarised in the vendor notes, and to the
Airbyte ``source-free-agent-connector`` manifest: OAuth2 authorization code (``/v2/approve_app``,
``/v2/token_endpoint``, client id and secret in basic auth); a ``User-Agent`` is mandatory; records are
identified by URL and cross-reference each other by URL; lists are keyed by resource
(``{"invoices": [...]}``) and paged with ``page``/``per_page`` (100 at most), announced in a ``Link``
header (``rel='next'``) and ``X-Total-Count``; ``updated_since`` filters contacts, invoices and bank
transactions; bank transactions are listed per account (``?bank_account=<url>``); money is sent as
decimal strings; creates and updates wrap the record (``{"invoice": {...}}``); a duplicate invoice
reference is refused with 422; throttling is 120 requests a minute per user with 429 and the message
"You must not exceed 120 requests per 60 seconds" (FreeAgent's sandbox lowers it to 5 a minute when a
request carries ``X-RateLimit-Test: true``). Errors are ``{"errors": {"error": {"message"}}}``
for a single error and ``{"errors": [{"message"}]}`` for validation.
"""

from __future__ import annotations

import time
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
    add_oauth_routes,
    bearer,
    new_state,
    pools,
    rng_for,
)
from connectors.sandboxes.workforce import FilterCache, uk_landline

BASE = "https://api.freeagent.com/v2"
FIRST_CONTACT = 3_100_001
FIRST_INVOICE = 8_200_001
FIRST_TRANSACTION = 55_000_001
BANK_ACCOUNTS = ((81, "Current Account", "Barclays", "20-45-77", "43917264"),
                 (82, "Residents' Monies Account", "Barclays", "20-45-77", "58102931"))
CONTACT_FIELDS = frozenset({"first_name", "last_name", "organisation_name", "email", "billing_email", "phone_number",
                            "mobile", "address1", "address2", "address3", "town", "region", "postcode", "country",
                            "contact_name_on_invoices", "default_payment_terms_in_days", "locale",
                            "charge_sales_tax", "sales_tax_registration_number", "status"})
INVOICE_FIELDS = frozenset({"contact", "dated_on", "due_on", "reference", "currency", "payment_terms_in_days",
                            "comments", "invoice_items", "status", "ec_status"})


def ts(dt: datetime) -> str:
    """FreeAgent time stamps: ``2024-01-01T00:07:00.000Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def money(value: float) -> str:
    """FreeAgent sends amounts as decimal strings."""
    return f"{value:.2f}"


def _contact(base: str, seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "freeagent.contacts", i)
    p = pools(seed)
    kind = r.random()
    first, last, org = "", "", ""
    if kind < 0.6:
        first, last = r.choice(p.first_names), r.choice(p.last_names)
    elif kind < 0.85:
        org = FUNDERS[i % len(FUNDERS)]
    else:
        org = SUPPLIERS[i % len(SUPPLIERS)]
    name = org or f"{first} {last}"
    return {
        "url": f"{base}/contacts/{FIRST_CONTACT + i}", "first_name": first, "last_name": last,
        "organisation_name": org, "email": f"accounts{i}@example.org", "billing_email": f"accounts{i}@example.org",
        "phone_number": uk_landline(r), "address1": r.choice(p.streets), "town": r.choice(p.towns),
        "region": "", "postcode": r.choice(p.postcodes), "country": "United Kingdom",
        "contact_name_on_invoices": True, "default_payment_terms_in_days": 30 if org else 14, "locale": "en",
        "account_balance": money(r.choice((0.0, 0.0, 1250.0, 2480.5))), "uses_contact_invoice_sequence": False,
        "charge_sales_tax": "Auto", "sales_tax_registration_number": "", "active_projects_count": 0,
        "status": "Active", "display_name": name, "created_at": ts(at - timedelta(days=90)), "updated_at": ts(at),
    }


def _invoice(base: str, seed: int, i: int, at: datetime, n_contacts: int) -> dict[str, Any]:
    r = rng_for(seed, "freeagent.invoices", i)
    ci = r.randrange(max(1, n_contacts))
    dated = date(2025, 1, 1) + timedelta(days=i // 3)
    fee = r.choice((1095.0, 1180.5, 1250.0, 1320.0, 1410.75))
    extras = r.choice((0, 0, 1))
    items = [{"description": f"{CARE_SERVICES[0]}: {CARE_HOMES[ci % len(CARE_HOMES)]}, weekly fee",
              "item_type": "Weeks", "quantity": "4.0", "price": money(fee), "sales_tax_rate": "0.0",
              "category": f"{base}/categories/001"}]
    if extras:
        items.append({"description": r.choice(CARE_SERVICES[4:]), "item_type": "Services", "quantity": "1.0",
                      "price": "28.00", "sales_tax_rate": "20.0", "category": f"{base}/categories/001"})
    net = sum(float(x["quantity"]) * float(x["price"]) for x in items)
    vat = sum(float(x["quantity"]) * float(x["price"]) * float(x["sales_tax_rate"]) / 100 for x in items)
    total = round(net + vat, 2)
    status = r.choice(("Paid", "Paid", "Open", "Overdue", "Draft"))
    paid = total if status == "Paid" else 0.0
    return {
        "url": f"{base}/invoices/{FIRST_INVOICE + i}", "contact": f"{base}/contacts/{FIRST_CONTACT + ci}",
        "dated_on": dated.isoformat(), "due_on": (dated + timedelta(days=14)).isoformat(),
        "reference": f"WC{1000 + i:05d}", "currency": "GBP", "exchange_rate": "1.0",
        "net_value": money(net), "sales_tax_value": money(vat), "total_value": money(total),
        "paid_value": money(paid), "due_value": money(total - paid), "status": status,
        "long_status": {"Paid": "Paid", "Open": "Open - due in 14 days", "Overdue": "Overdue",
                        "Draft": "Draft"}[status],
        "comments": "", "payment_terms_in_days": 14, "invoice_items": items,
        "created_at": ts(at - timedelta(days=1)), "updated_at": ts(at),
    }


def _transaction(base: str, seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "freeagent.bank_transactions", i)
    account = BANK_ACCOUNTS[0][0] if i % 5 else BANK_ACCOUNTS[1][0]
    if r.random() < 0.55:
        amount = r.choice((1095.0, 1250.0, 1320.0, 2480.5, 4721.0))
        desc = f"BACS {r.choice(FUNDERS).upper()[:18]} CARE FEES"
    else:
        amount = -r.choice((86.4, 312.5, 1290.0, 2650.0, 4480.0))
        desc = f"DD {r.choice(SUPPLIERS).upper()[:20]}"
    explained = r.random() < 0.7
    dated = date(2025, 1, 1) + timedelta(days=i // 4)
    return {
        "url": f"{base}/bank_transactions/{FIRST_TRANSACTION + i}", "bank_account": f"{base}/bank_accounts/{account}",
        "dated_on": dated.isoformat(), "amount": money(amount), "description": desc, "full_description": f"{desc}/{i:06d}",
        "unexplained_amount": "0.00" if explained else money(amount), "is_manual": False,
        "transaction_id": f"FA{FIRST_TRANSACTION + i}", "created_at": ts(at - timedelta(hours=6)), "updated_at": ts(at),
    }


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The FreeAgent sandbox app."""
    cfg = config or SandboxConfig(token_ttl_seconds=3600)
    state = new_state(cfg, "FreeAgent")
    seed = cfg.seed
    n_contacts = cfg.count("contacts", 120)

    def index_of(first: int) -> Any:
        def f(value: str) -> int | None:
            tail = value.rsplit("/", 1)[-1]
            return int(tail) - first if tail.isdigit() else None
        return f

    # FreeAgent's record URLs point at the host that served them (api.freeagent.com, api.sandbox...):
    # here, whatever address the sandbox is reached at (set from the first request).
    where: dict[str, str] = {"base": BASE}

    def base() -> str:
        return where["base"]

    state.datasets = {
        "contacts": Dataset(n_contacts, lambda i, at: _contact(base(), seed, i, at),
                            lambda i: f"{base()}/contacts/{FIRST_CONTACT + i}", index_of(FIRST_CONTACT)),
        "invoices": Dataset(cfg.count("invoices", 300), lambda i, at: _invoice(base(), seed, i, at, n_contacts),
                            lambda i: f"{base()}/invoices/{FIRST_INVOICE + i}", index_of(FIRST_INVOICE)),
        "bank_transactions": Dataset(cfg.count("bank_transactions", 400), lambda i, at: _transaction(base(), seed, i, at),
                                     lambda i: f"{base()}/bank_transactions/{FIRST_TRANSACTION + i}",
                                     index_of(FIRST_TRANSACTION)),
    }
    next_id = {"contacts": FIRST_CONTACT + 900_000, "invoices": FIRST_INVOICE + 900_000}
    app = FastAPI(title="FreeAgent sandbox (CareHub)")
    app.state.sandbox = state

    def one_error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"errors": {"error": {"message": message}}}, status_code=status)

    def throttle(st: SandboxState) -> Response:
        resp = one_error(429, "You must not exceed 120 requests per 60 seconds")
        if st.faults.retry_after is not None:
            resp.headers["Retry-After"] = st.faults.retry_after
        return resp

    app.add_middleware(FaultMiddleware, state=state, throttle=throttle, exempt=("/v2/token_endpoint", "/v2/approve_app"))
    add_control_routes(app, state)
    add_oauth_routes(app, state, authorize_path="/v2/approve_app", token_path="/v2/token_endpoint")

    def denied(request: Request) -> Response | None:
        if where["base"] == BASE:
            where["base"] = str(request.url).split("?")[0].split("/v2/")[0] + "/v2"
        if not request.headers.get("user-agent"):
            return one_error(400, "A User-Agent header is required")
        if not state.token_valid(bearer(request)):
            return one_error(401, "Access token not recognised")
        if request.headers.get("x-ratelimit-test", "").lower() == "true":
            # FreeAgent's sandbox: this header lowers the limit to 5 requests a minute, to test throttling.
            now = time.time()
            recent = [t for t in state.extra.get("rate_limit_test", []) if t > now - 60]
            if len(recent) >= 5:
                resp = one_error(429, "You must not exceed 5 requests per 60 seconds")
                resp.headers["Retry-After"] = str(max(1, int(60 - (now - recent[0])) + 1))
                return resp
            state.extra["rate_limit_test"] = [*recent, now]
        return None

    def since_of(request: Request) -> datetime | Response | None:
        raw = request.query_params.get("updated_since")
        if not raw:
            return None
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return one_error(400, f"updated_since '{raw}' is not an ISO 8601 date-time")
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

    views = FilterCache()

    def listing(request: Request, key: str, where: Any = None, tag: str = "") -> Response:
        q = request.query_params
        since = since_of(request)
        if isinstance(since, Response):
            return since
        try:
            page = max(1, int(q.get("page", "1")))
            per_page = min(100, max(1, int(q.get("per_page", "25"))))
        except ValueError:
            return one_error(400, "page and per_page must be whole numbers")
        data = state.datasets[key]
        newest_first = q.get("sort") == "-created_at"  # for a look-up after a lost reply
        if where is None and not newest_first:
            rows, total = data.page(since, (page - 1) * per_page, per_page)
        else:
            def keep(x: dict[str, Any]) -> bool:
                changed = since is None or (datetime.fromisoformat(str(x["updated_at"]).replace("Z", "+00:00"))
                                            >= since)
                return changed and (where is None or bool(where(x)))

            ids = views.ids(data, (key, tag, str(since), newest_first), keep, lambda x: str(x["url"]),
                            sort=(lambda x: x["created_at"]) if newest_first else None)
            ids = ids[::-1] if newest_first else ids
            rows = [r for r in (data.get(i) for i in ids[(page - 1) * per_page:page * per_page]) if r is not None]
            total = len(ids)
        last = max(1, -(-total // per_page))
        links = []
        for n, rel in ((page + 1, "next"), (page - 1, "prev"), (1, "first"), (last, "last")):
            if (rel == "next" and page >= last) or (rel == "prev" and page <= 1):
                continue
            links.append(f"<{request.url.include_query_params(page=n, per_page=per_page)}>; rel='{rel}'")
        return JSONResponse({key: rows}, headers={"Link": ", ".join(links), "X-Total-Count": str(total)})

    @app.get("/v2/company")
    async def company(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return JSONResponse({"company": {"url": f"{base()}/company", "name": "Willow Court Care Ltd", "type": "UkLimitedCompany",
                                         "currency": "GBP", "sales_tax_registration_status": "Registered",
                                         "sales_tax_registration_number": "GB123456789"}})

    @app.get("/v2/contacts")
    async def contacts(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return listing(request, "contacts")

    @app.get("/v2/invoices")
    async def invoices(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        view = request.query_params.get("view", "all")
        wanted = {"all": None, "open": {"Open", "Overdue"}, "overdue": {"Overdue"}, "paid": {"Paid"},
                  "draft": {"Draft"}}.get(view)
        return listing(request, "invoices", (lambda x: x["status"] in wanted) if wanted else None, view)

    @app.get("/v2/bank_accounts")
    async def bank_accounts(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        rows = [{"url": f"{base()}/bank_accounts/{aid}", "type": "StandardBankAccount", "name": name, "bank_name": bank,
                 "sort_code": sort_code, "account_number": number, "currency": "GBP", "is_personal": False,
                 "is_primary": aid == 81, "status": "active", "opening_balance": "0.00",
                 "current_balance": money(48210.55 if aid == 81 else 6120.0),
                 "created_at": "2023-04-01T09:00:00.000Z", "updated_at": "2024-01-01T00:00:00.000Z"}
                for aid, name, bank, sort_code, number in BANK_ACCOUNTS]
        return JSONResponse({"bank_accounts": rows})

    @app.get("/v2/bank_transactions")
    async def bank_transactions(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        account = request.query_params.get("bank_account")
        if not account:
            return one_error(400, "bank_account is required")
        if account.rsplit("/", 1)[-1] not in {str(a[0]) for a in BANK_ACCOUNTS}:
            return one_error(404, "Bank account not found")
        tail = account.rsplit("/", 1)[-1]
        return listing(request, "bank_transactions", lambda x: x["bank_account"].rsplit("/", 1)[-1] == tail, tail)

    async def body_of(request: Request, wrap: str) -> dict[str, Any] | Response:
        try:
            body = await request.json()
        except ValueError:
            return one_error(400, "The request body is not valid JSON")
        inner = body.get(wrap) if isinstance(body, dict) else None
        if not isinstance(inner, dict):
            return one_error(400, f"The request body must be {{\"{wrap}\": {{...}}}}")
        return inner

    def check_contact(c: dict[str, Any]) -> list[str]:
        errors = [f"{k} is not a contact attribute" for k in sorted(set(c) - CONTACT_FIELDS)]
        if not (c.get("organisation_name") or c.get("last_name") or c.get("first_name")):
            errors.append("Contact must have a first name, last name or organisation name")
        return errors

    @app.post("/v2/contacts")
    async def create_contact(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        c = await body_of(request, "contact")
        if isinstance(c, Response):
            return c
        if errors := check_contact(c):
            return JSONResponse({"errors": [{"message": e} for e in errors]}, status_code=422)
        next_id["contacts"] += 1
        url = f"{base()}/contacts/{next_id['contacts']}"
        now = datetime.now(UTC)
        rec = {"url": url, "first_name": "", "last_name": "", "organisation_name": "", "status": "Active",
               "account_balance": "0.00", "created_at": ts(now), **c}
        rec["updated_at"] = ts(state.datasets["contacts"].put(url, rec))
        return JSONResponse({"contact": rec}, status_code=201, headers={"Location": url})

    @app.put("/v2/contacts/{contact_id}")
    async def update_contact(contact_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        url = f"{base()}/contacts/{contact_id}"
        data = state.datasets["contacts"]
        rec = data.get(url)
        if rec is None:
            return one_error(404, "Contact not found")
        c = await body_of(request, "contact")
        if isinstance(c, Response):
            return c
        new = {**rec, **c}
        if errors := check_contact({k: v for k, v in new.items() if k in CONTACT_FIELDS}) + \
                [f"{k} is not a contact attribute" for k in sorted(set(c) - CONTACT_FIELDS)]:
            return JSONResponse({"errors": [{"message": e} for e in errors]}, status_code=422)
        if new != rec:
            new["updated_at"] = ts(data.put(url, new))
        return JSONResponse({"contact": new})

    @app.post("/v2/invoices")
    async def create_invoice(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        inv = await body_of(request, "invoice")
        if isinstance(inv, Response):
            return inv
        errors = [f"{k} is not an invoice attribute" for k in sorted(set(inv) - INVOICE_FIELDS)]
        if not inv.get("contact") or state.datasets["contacts"].get(str(inv.get("contact"))) is None:
            errors.append("Contact can't be blank")
        if not inv.get("dated_on"):
            errors.append("Dated on can't be blank")
        ref = inv.get("reference")
        if ref and any(x["reference"] == ref for x in state.datasets["invoices"].iter()):
            errors.append("Reference has already been taken")
        if errors:
            return JSONResponse({"errors": [{"message": e} for e in errors]}, status_code=422)
        items = inv.get("invoice_items") or []
        net = sum(float(x.get("quantity", 1)) * float(x.get("price", 0)) for x in items)
        vat = sum(float(x.get("quantity", 1)) * float(x.get("price", 0)) * float(x.get("sales_tax_rate", 0)) / 100
                  for x in items)
        next_id["invoices"] += 1
        url = f"{base()}/invoices/{next_id['invoices']}"
        now = datetime.now(UTC)
        rec = {"url": url, "currency": "GBP", "exchange_rate": "1.0", "status": "Draft", "comments": "",
               "payment_terms_in_days": 14, **inv, "reference": ref or f"WC{next_id['invoices']}",
               "net_value": money(net), "sales_tax_value": money(vat), "total_value": money(net + vat),
               "paid_value": "0.00", "due_value": money(net + vat), "created_at": ts(now)}
        rec.setdefault("due_on", (date.fromisoformat(str(rec["dated_on"])) + timedelta(
            days=int(rec["payment_terms_in_days"]))).isoformat())
        rec["updated_at"] = ts(state.datasets["invoices"].put(url, rec))
        return JSONResponse({"invoice": rec}, status_code=201, headers={"Location": url})

    return app
