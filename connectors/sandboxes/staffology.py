"""IRIS Staffology Payroll sandbox (production ``https://api.staffology.co.uk``).

Faithful to what is public (Staffology's Swagger as mirrored by the generated ``staffology`` client on
PyPI, a public code sample ``requests.get("https://api.staffology.co.uk/employers", auth=("username",
key))``, community clients): HTTP basic auth with any user name and the API key as the password; lists
are arrays of ``Item`` summaries ``{id, name, metadata, url}`` paged with ``pageNum``/``pageSize``;
an employee is ``GET/PUT /employers/{employerId}/employees/{id}`` with ``personalDetails``,
``employmentDetails`` and ``payOptions``; pay runs live under
``/employers/{employerId}/payrun/{taxYear}/{payPeriod}`` (``taxYear`` like ``Year2026``, ``payPeriod``
like ``Monthly``) and the gross-to-net report under ``/employers/{employerId}/reports/{taxYear}/
{payPeriod}/{periodNumber}/gross-to-net`` wrapped as ``{type, content, model}``. Validation errors are
ASP.NET problem details (``title``, ``status``, ``detail``, ``errors``); a bad key is 401 with
``WWW-Authenticate: Basic``.

Chosen here and unconfirmed: the keys inside ``Item.metadata`` for employees, the exact line fields of
the gross-to-net model, and the throttle reply (429 + ``Retry-After``; Staffology publishes no limit).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    rng_for,
    stable_uuid,
    uuid_index,
)
from connectors.sandboxes.handlers import basic_auth
from connectors.sandboxes.workforce import FilterCache, staff_member

API_KEY = "staffology-sandbox-5b8e1d0c7a6f4e3d2c1b0a9f8e7d6c5b"
EMPLOYER_ID = "3f6c2b9e-8d41-4a7e-b0c5-1e2d3f4a5b6c"
TAX_YEAR = "Year2026"
PAY_PERIOD = "Monthly"
BASE = "https://api.staffology.co.uk"
EDITABLE_SECTIONS = frozenset({"personalDetails", "employmentDetails", "payOptions", "bankDetails", "status"})


def iso(dt: datetime) -> str:
    """Staffology date-times: ``2024-01-01T00:07:00``."""
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _employee(seed: int, i: int, at: datetime) -> dict[str, Any]:
    s = staff_member(seed, i)
    emp_id = stable_uuid(seed, "staffology.employees", i)
    annual = round(s.hourly_rate * 52 * max(s.contracted_hours, 20.0), 2) if s.hourly else float(s.salary)
    return {
        "id": emp_id,
        "personalDetails": {
            "address": {"line1": s.address1, "line2": s.town, "line3": s.county, "postCode": s.postcode,
                        "country": "England"},
            "title": "Ms" if s.gender == "Female" else "Mr", "firstName": s.first_name, "middleName": None,
            "knownAsName": s.known_as, "lastName": s.last_name, "email": s.email, "emailPayslip": True,
            "mobileNumber": s.mobile, "dateOfBirth": f"{s.date_of_birth.isoformat()}T00:00:00",
            "gender": s.gender, "niNumber": s.ni_number, "maritalStatus": "Unknown",
        },
        "employmentDetails": {
            "payrollCode": f"WC{i + 1:04d}", "jobTitle": s.job_title, "department": s.department,
            "onHold": False, "isApprentice": False,
            "starterDetails": {"startDate": f"{s.start_date.isoformat()}T00:00:00", "starterDeclaration": "A"},
            "leaverDetails": {"hasLeft": not s.active,
                              "leaveDate": f"{s.leaving_date.isoformat()}T00:00:00" if s.leaving_date else None},
            "workingPattern": None, "contractedHours": s.contracted_hours,
        },
        "payOptions": {
            "period": PAY_PERIOD, "ordinal": 1, "payAmount": round(annual / 12, 2),
            "basis": "Hourly" if s.hourly else "Monthly", "baseHourlyRate": s.hourly_rate if s.hourly else None,
            "payAmountMultiplier": 1, "nationalMinimumWage": s.hourly, "payCode": "BASIC",
            "taxAndNi": {"niTable": "A", "taxCode": "1257L", "week1Month1": False, "studentLoan": "None",
                         "postgradLoan": False},
        },
        "status": "Current" if s.active else "Former", "sourceSystemId": None,
        "lastModified": iso(at),
    }


def _item(rec: dict[str, Any], employer_id: str) -> dict[str, Any]:
    pd, ed = rec["personalDetails"], rec["employmentDetails"]
    return {"id": rec["id"], "name": f"{pd['firstName']} {pd['lastName']}",
            "metadata": {"payrollCode": ed["payrollCode"], "status": rec["status"], "department": ed["department"],
                         "jobTitle": ed["jobTitle"], "lastModified": rec["lastModified"]},
            "url": f"{BASE}/employers/{employer_id}/employees/{rec['id']}"}


def _payment_date(period: int) -> date:
    # Month 1 of the 2026/27 tax year pays on 25 April 2026; later months on the 25th.
    month = 3 + period
    year = 2026 + (month - 1) // 12
    return date(year, (month - 1) % 12 + 1, 25)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Staffology sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "IRIS Staffology")
    seed = cfg.seed
    n = cfg.count("employees", 120)
    emp_prefix = stable_uuid(seed, "staffology.employees", 0)[:-12]

    def index_of(value: str) -> int | None:
        return uuid_index(value) if value.startswith(emp_prefix) else None

    state.datasets = {"employees": Dataset(n, lambda i, at: _employee(seed, i, at),
                                           lambda i: stable_uuid(seed, "staffology.employees", i), index_of)}
    today = datetime.now(UTC).date()
    closed_periods = [p for p in range(1, 13) if _payment_date(p) <= today]
    views = FilterCache()
    app = FastAPI(title="IRIS Staffology sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"api_key": API_KEY}

    def problem(status: int, title: str, detail: str, errors: dict[str, list[str]] | None = None) -> JSONResponse:
        body: dict[str, Any] = {"type": "https://tools.ietf.org/html/rfc7231#section-6.5.1", "title": title,
                                "status": status, "detail": detail}
        if errors:
            body["errors"] = errors
        return JSONResponse(body, status_code=status, media_type="application/problem+json")

    def throttle(st: SandboxState) -> Response:
        resp = problem(429, "Too Many Requests", "Rate limit exceeded. Please retry later.")
        if st.faults.retry_after is not None:
            resp.headers["Retry-After"] = st.faults.retry_after
        return resp

    app.add_middleware(FaultMiddleware, state=state, throttle=throttle)
    add_control_routes(app, state)

    def denied(request: Request, employer_id: str | None = None) -> Response | None:
        _user, password = basic_auth(request)
        if password != API_KEY or state.faults.revoke_tokens:
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="Staffology"'})
        if employer_id is not None and employer_id != EMPLOYER_ID:
            return problem(404, "Not Found", f"Employer {employer_id} was not found")
        return None

    def page(request: Request, rows: list[dict[str, Any]]) -> Response:
        q = request.query_params
        try:
            num = max(1, int(q.get("pageNum", "1")))
            size = min(100, max(1, int(q.get("pageSize", "20"))))
        except ValueError:
            return problem(400, "Bad Request", "pageNum and pageSize must be whole numbers")
        return JSONResponse(rows[(num - 1) * size:num * size], headers={"X-Total-Count": str(len(rows))})

    @app.get("/employers")
    async def employers(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return page(request, [{"id": EMPLOYER_ID, "name": "Willow Court Care Home Ltd",
                               "metadata": {"payeReference": "123/WC45678", "employeeCount": n},
                               "url": f"{BASE}/employers/{EMPLOYER_ID}"}])

    @app.get("/employers/{employer_id}/employees")
    async def employees(employer_id: str, request: Request) -> Response:
        if (d := denied(request, employer_id)) is not None:
            return d
        q = request.query_params
        try:
            num = max(1, int(q.get("pageNum", "1")))
            size = min(100, max(1, int(q.get("pageSize", "20"))))
        except ValueError:
            return problem(400, "Bad Request", "pageNum and pageSize must be whole numbers")
        data = state.datasets["employees"]
        status = q.get("status")
        if status:
            chunk, total = views.page(data, ("status", status), lambda r: bool(r["status"] == status),
                                      lambda r: str(r["id"]), (num - 1) * size, size)
        else:
            chunk, total = data.page(None, (num - 1) * size, size)
        return JSONResponse([_item(r, employer_id) for r in chunk], headers={"X-Total-Count": str(total)})

    @app.get("/employers/{employer_id}/employees/{emp_id}")
    async def employee(employer_id: str, emp_id: str, request: Request) -> Response:
        if (d := denied(request, employer_id)) is not None:
            return d
        rec = state.datasets["employees"].get(emp_id)
        return JSONResponse(rec) if rec else problem(404, "Not Found", f"Employee {emp_id} was not found")

    @app.put("/employers/{employer_id}/employees/{emp_id}")
    async def update_employee(employer_id: str, emp_id: str, request: Request) -> Response:
        if (d := denied(request, employer_id)) is not None:
            return d
        data = state.datasets["employees"]
        rec = data.get(emp_id)
        if rec is None:
            return problem(404, "Not Found", f"Employee {emp_id} was not found")
        try:
            body = await request.json()
        except ValueError:
            return problem(400, "Bad Request", "The request body is not valid JSON")
        if not isinstance(body, dict):
            return problem(400, "Bad Request", "The request body must be an Employee object")
        new = dict(rec)
        for section, value in body.items():
            if section in ("id", "lastModified"):
                continue
            if section not in EDITABLE_SECTIONS:
                return problem(400, "One or more validation errors occurred.", f"Unknown field {section}",
                               {section: [f"{section} is not a field of Employee"]})
            new[section] = {**rec[section], **value} if isinstance(value, dict) and isinstance(rec.get(section), dict) \
                else value
        ni = (new.get("personalDetails") or {}).get("niNumber")
        if ni and (len(str(ni).replace(" ", "")) != 9):
            return problem(400, "One or more validation errors occurred.", "NI Number is not valid",
                           {"personalDetails.niNumber": ["NI Number is not valid"]})
        if new == rec:
            return JSONResponse(rec)
        new["lastModified"] = iso(data.put(emp_id, new))
        return JSONResponse(new)

    @app.get("/employers/{employer_id}/payrun/{tax_year}/{pay_period}")
    async def payruns(employer_id: str, tax_year: str, pay_period: str, request: Request) -> Response:
        if (d := denied(request, employer_id)) is not None:
            return d
        if tax_year != TAX_YEAR or pay_period != PAY_PERIOD:
            return JSONResponse([])
        rows = [{"id": stable_uuid(seed, "staffology.payruns", p), "name": f"Month {p}",
                 "metadata": {"periodNumber": p, "paymentDate": f"{_payment_date(p).isoformat()}T00:00:00",
                              "state": "Closed" if _payment_date(p) < today else "Open"},
                 "url": f"{BASE}/employers/{employer_id}/payrun/{tax_year}/{pay_period}/{p}"} for p in closed_periods]
        return page(request, rows)

    def gross_to_net_lines(period: int) -> list[dict[str, Any]]:
        lines = []
        for rec in state.datasets["employees"].iter():
            if rec["status"] != "Current":
                continue
            r = rng_for(seed, f"staffology.g2n.{period}", int(index_of(rec["id"]) or 0))
            po = rec["payOptions"]
            gross = po["payAmount"] if po["basis"] != "Hourly" else round(po["baseHourlyRate"] * r.choice(
                (96, 120, 138, 150, 162.5)), 2)
            tax = round(max(0.0, gross - 1047.5) * 0.2, 2)
            ni = round(max(0.0, gross - 1048) * 0.08, 2)
            pension = round(gross * 0.05, 2)
            lines.append({
                "employee": _item(rec, EMPLOYER_ID), "payrollCode": rec["employmentDetails"]["payrollCode"],
                "department": rec["employmentDetails"]["department"], "totalGross": gross,
                "hours": 0 if po["basis"] != "Hourly" else round(gross / po["baseHourlyRate"], 2),
                "rate": po["baseHourlyRate"], "tax": tax, "employeeNi": ni, "employerNi": round(ni * 1.875, 2),
                "employeePension": pension, "employerPension": round(gross * 0.03, 2),
                "netPay": round(gross - tax - ni - pension, 2), "taxCode": po["taxAndNi"]["taxCode"],
                "periodNumber": period, "paymentDate": f"{_payment_date(period).isoformat()}T00:00:00",
                "lineId": f"{period:02d}-{rec['id']}",
            })
        return lines

    @app.get("/employers/{employer_id}/reports/{tax_year}/{pay_period}/{period}/gross-to-net")
    async def gross_to_net(employer_id: str, tax_year: str, pay_period: str, period: int, request: Request) -> Response:
        if (d := denied(request, employer_id)) is not None:
            return d
        if tax_year != TAX_YEAR or pay_period != PAY_PERIOD or period not in closed_periods:
            return problem(404, "Not Found", f"No pay run for {tax_year} {pay_period} period {period}")
        start = _payment_date(period) - timedelta(days=30)
        return JSONResponse({"type": "json", "content": None, "model": {
            "taxYear": tax_year, "payPeriod": pay_period, "periodNumber": period, "startDate": f"{start}T00:00:00",
            "endDate": f"{_payment_date(period)}T00:00:00", "lines": gross_to_net_lines(period)}})

    return app
