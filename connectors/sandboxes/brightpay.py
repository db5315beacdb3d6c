"""BrightPay Cloud sandbox: Payroll API v1.0 (production ``https://external.brightpay.com``).

Faithful to devdocs.brightpay.com ("Payroll API V1.0 Methods", "Retrieving a Refresh and Access Token",
"Mapping Hourly Rates and Employees", "Creating Hourly Payments in BrightPay"): OAuth2 authorization code
against the Bright identity provider (Azure AD B2C ``.../oauth2/v2.0/authorize`` and ``/token``) with
5-minute access tokens and refresh tokens; ``GET /api/v1/Payroll/GetCurrentUserSummary``,
``GetEmployers``, ``GetEmployerHourlyRates`` and ``GetEmployees`` (optional ``organisationId``/``employerId``
query; the sandbox's Bright ID sees one employer, used when both are left out) answering ``{"isSuccess": ..., "apiErrors": [{errorCode, financialYear, errorId, errorHint}],
<list>}``; ``POST .../CreateEmployeeHourlyPayments`` loading one employee's hours into the current open
payslip, with ``isRunValidationOnly`` and ``isRemoveExistingHourlyPayments`` (replace, which makes a
repeated load harmless). Errors are 400 (Bad Request) or 409 (Conflict) with the same envelope.

Not published, so chosen here and marked as such: the field names inside employee and hourly-rate
records beyond ``employeeId``/``fullNameWithHint`` and ``rateName``/``rateNameWithHint``, the
``hourlyPayments`` item shape (``rateName``, ``numberOfUnits``, ``date``), the endpoint name
``CreateEmployeeHourlyPayments`` and the throttle reply (429 + ``Retry-After``). The API has no paging
and no payslip, pay run or journal reads; those leave BrightPay as CSV or journal exports.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    add_oauth_routes,
    bearer,
    new_state,
    stable_uuid,
    uuid_index,
)
from connectors.sandboxes.workforce import staff_member

API = "/api/v1/Payroll"
ORGANISATION_ID = "a45272c5-14e0-42a3-833d-c30804dec81b"
EMPLOYER_ID = "ad8dbe0e-3023-49a2-9fdc-0703a408c445"
FINANCIAL_YEAR = "26/27"
HOURLY_RATES = (("Basic Hours", 12.60), ("Night Hours", 13.85), ("Weekend Hours", 13.40), ("Overtime", 18.90),
                ("Bank Holiday", 25.20), ("Sleep-in", 11.44), ("Training", 12.60))
TAX_WEEK_ONE = date(2026, 4, 6)


def _error(code: str, hint: str) -> dict[str, Any]:
    return {"errorCode": code, "financialYear": FINANCIAL_YEAR, "errorId": str(uuid.uuid4()), "errorHint": hint}


def envelope(status: int, errors: list[dict[str, Any]], **lists: Any) -> JSONResponse:
    """BrightPay's reply: ``isSuccess``, ``apiErrors`` and the payload lists."""
    return JSONResponse({"isSuccess": not errors, "apiErrors": errors, **lists}, status_code=status)


def _employee(seed: int, i: int) -> dict[str, Any]:
    s = staff_member(seed, i)
    full = s.full_name
    return {
        "employeeId": stable_uuid(seed, "brightpay.employees", i), "firstName": s.first_name,
        "lastName": s.last_name, "fullName": full, "fullNameWithHint": full, "worksNumber": f"WC{i + 1:04d}",
        "niNumber": s.ni_number, "dateOfBirth": s.date_of_birth.isoformat(), "startDate": s.start_date.isoformat(),
        "leaveDate": s.leaving_date.isoformat() if s.leaving_date else None, "isLeaver": not s.active,
        "payFrequency": "Monthly" if not s.hourly else "Fortnightly", "department": s.department,
        "jobTitle": s.job_title, "financialYear": FINANCIAL_YEAR,
    }


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The BrightPay Cloud sandbox app."""
    cfg = config or SandboxConfig(token_ttl_seconds=300)
    state = new_state(cfg, "BrightPay")
    n = cfg.count("employees", 90)
    prefix = stable_uuid(cfg.seed, "brightpay.employees", 0)[:-12]

    def employee_by_id(value: str) -> dict[str, Any] | None:
        i = uuid_index(value) if value.startswith(prefix) else None
        return _employee(cfg.seed, i) if i is not None and 0 <= i < n else None
    rates = [{"rateName": name, "rateNameWithHint": name, "rate": rate, "financialYear": FINANCIAL_YEAR}
             for name, rate in HOURLY_RATES]
    payslips: dict[str, list[dict[str, Any]]] = {}
    state.extra["payslips"] = payslips
    state.extra["loads"] = 0
    app = FastAPI(title="BrightPay Cloud sandbox (CareHub)")
    app.state.sandbox = state

    def throttle(st: SandboxState) -> Response:
        resp = envelope(429, [_error("TOOMANYREQUESTS", "Too many requests: wait before calling again.")])
        if st.faults.retry_after is not None:
            resp.headers["Retry-After"] = st.faults.retry_after
        return resp

    app.add_middleware(FaultMiddleware, state=state, throttle=throttle, exempt=("/oauth2/",))
    add_control_routes(app, state)
    add_oauth_routes(app, state, authorize_path="/oauth2/v2.0/authorize", token_path="/oauth2/v2.0/token")

    def denied(request: Request) -> Response | None:
        if not state.token_valid(bearer(request)):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token", '
                                                                          'error_description="The token is expired"'})
        return None

    def employer_check(org: Any, emp: Any) -> Response | None:
        if not org and not emp:  # both optional: a Bright ID with access to one employer means that one
            return None
        if not org or not emp:
            return envelope(400, [_error("MISSINGORGANISATIONOREMPLOYER",
                                         "Give both organisationId and employerId, or neither.")])
        if str(org) != ORGANISATION_ID or str(emp) != EMPLOYER_ID:
            return envelope(409, [_error("USERHASNOACCESSTOEMPLOYER",
                                         "The user account you are connecting with does not have access to the "
                                         "Employer.")])
        return None

    @app.get(f"{API}/GetCurrentUserSummary")
    async def user_summary(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return envelope(200, [], name="Priya Shah", emailAddress="payroll@willowcourtcare.example")

    @app.get(f"{API}/GetEmployers")
    async def employers(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return envelope(200, [], employers=[{
            "organisationId": ORGANISATION_ID, "organisationName": "Willow Court Care Group Ltd",
            "employerId": EMPLOYER_ID, "employerName": "Willow Court Care Home",
            "employerNameWithHint": "Willow Court Care Home", "financialYears": ["25/26", FINANCIAL_YEAR]}])

    @app.get(f"{API}/GetEmployerHourlyRates")
    async def hourly_rates(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        if (bad := employer_check(q.get("organisationId"), q.get("employerId"))) is not None:
            return bad
        return envelope(200, [], hourlyRates=rates)

    @app.get(f"{API}/GetEmployees")
    async def get_employees(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        if (bad := employer_check(q.get("organisationId"), q.get("employerId"))) is not None:
            return bad
        return envelope(200, [], employees=[_employee(cfg.seed, i) for i in range(n)])

    @app.post(f"{API}/CreateEmployeeHourlyPayments")
    async def create_hourly_payments(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        try:
            body = await request.json()
        except ValueError:
            return envelope(400, [_error("INVALIDREQUEST", "The request body is not valid JSON.")])
        if not isinstance(body, dict):
            return envelope(400, [_error("INVALIDREQUEST", "The request body must be a JSON object.")])
        if (bad := employer_check(body.get("organisationId"), body.get("employerId"))) is not None:
            return bad
        missing = [k for k in ("organisationId", "employerId", "employeeId", "isRunValidationOnly",
                               "isRemoveExistingHourlyPayments")
                   if body.get(k) in (None, "")]
        if missing:
            return envelope(400, [_error("MISSINGMANDATORYFIELD", f"Mandatory field(s) missing: {', '.join(missing)}.")])
        emp = employee_by_id(str(body["employeeId"]))
        if emp is None:
            return envelope(409, [_error("EMPLOYEENOTFOUND", "The employee was not found for this Employer.")])
        if emp["isLeaver"]:
            return envelope(409, [_error("NOOPENPAYSLIP", f"{emp['fullName']} has left: there is no open payslip "
                                                          "to load hours into.")])
        known = {r["rateName"] for r in rates}
        errors = []
        lines = body.get("hourlyPayments") or []
        for line in lines:
            if line.get("rateName") not in known:
                errors.append(_error("HOURLYRATENOTFOUND", f"Hourly rate '{line.get('rateName')}' is not set up "
                                                           "for this Employer."))
            try:
                units = float(line.get("numberOfUnits"))
            except (TypeError, ValueError):
                units = -1.0
            if not 0 < units <= 200:
                errors.append(_error("INVALIDNUMBEROFUNITS", "numberOfUnits must be more than 0 and at most 200."))
        if errors:
            return envelope(400, errors)
        if body["isRunValidationOnly"] is True:
            return envelope(200, [])
        period_end = TAX_WEEK_ONE + timedelta(days=((datetime.now(UTC).date() - TAX_WEEK_ONE).days // 14 + 1) * 14 - 1)
        current = [] if body["isRemoveExistingHourlyPayments"] is True else payslips.get(emp["employeeId"], [])
        payslips[emp["employeeId"]] = current + [
            {**line, "employeeId": emp["employeeId"], "payPeriodEnd": period_end.isoformat(),
             "rate": next(r["rate"] for r in rates if r["rateName"] == line["rateName"])} for line in lines]
        state.extra["loads"] += 1
        return envelope(200, [])

    return app
