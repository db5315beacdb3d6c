"""Access PeopleHR sandbox (production ``https://api.peoplehr.net``).

Faithful to what is public (apidocs.peoplehr.com as used by the community client
``dave-nicholas/peoplehr-api``): every call is ``POST /{Endpoint}`` with a JSON body carrying ``APIKey``
and ``Action`` (``/Employee`` ``GetAllEmployeeDetail`` with ``IncludeLeavers``, ``GetEmployeeDetailById``,
``UpdateEmployeeDetail``; ``/Query`` ``GetQueryResultByQueryName`` runs a saved query, the usual way to
read holidays and absences for everyone at once); the reply is always HTTP 200 with the envelope
``{"isError", "Status", "Message", "Result"}``; employee fields are objects ``{"DisplayValue": ...}``. No
paging, no change filter, no webhooks.

Chosen here and unconfirmed: the ``Status`` numbers (0 success, 10 invalid API key, 8 missing or bad
parameter, 5 not found, 11 too many requests), the employee field names beyond ``EmployeeId``/
``FirstName``, the saved queries' column names, and throttling (an HTTP 429 with ``Retry-After`` and the
same envelope; PeopleHR documents no limit).
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
)
from connectors.sandboxes.workforce import staff_member

API_KEY = "phr-sandbox-8c2d4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f"
HOLIDAY_QUERY = "CareHub holidays"
ABSENCE_QUERY = "CareHub sickness and other absence"
EDITABLE = frozenset({"FirstName", "LastName", "KnownAs", "EmailId", "JobRole", "Department", "Location",
                      "PersonalPhoneNumber", "WorkPhoneNumber", "EmploymentType"})
ABSENCE_REASONS = ("Sickness - cold/flu", "Sickness - stomach upset", "Sickness - back pain", "Dependant leave",
                   "Compassionate leave", "Medical appointment")


def ok(result: Any, message: str = "Success") -> JSONResponse:
    """A successful PeopleHR reply."""
    return JSONResponse({"isError": False, "Status": 0, "Message": message, "Result": result})


def failed(status: int, message: str, http: int = 200) -> JSONResponse:
    """A PeopleHR error: HTTP 200 (unless throttled) with ``isError: true``."""
    return JSONResponse({"isError": True, "Status": status, "Message": message, "Result": None}, status_code=http)


def _v(value: Any) -> dict[str, Any]:
    return {"DisplayValue": "" if value is None else value, "FieldHistory": []}


def _employee(seed: int, i: int, at: datetime) -> dict[str, Any]:
    s = staff_member(seed, i)
    boss = staff_member(seed, 0)
    return {
        "EmployeeId": _v(f"PW{i + 1}"), "Title": _v("Ms" if s.gender == "Female" else "Mr"),
        "FirstName": _v(s.first_name), "LastName": _v(s.last_name), "OtherName": _v(""), "KnownAs": _v(s.known_as),
        "EmailId": _v(s.email), "StartDate": _v(s.start_date.isoformat()),
        "DateOfBirth": _v(s.date_of_birth.isoformat()), "JobRole": _v(s.job_title), "Company": _v("Willow Court Care Ltd"),
        "Location": _v(s.site), "Department": _v(s.department),
        "ReportsTo": _v("" if i == 0 else f"{boss.first_name} {boss.last_name}"), "ReportsToEmployeeId": _v("" if i == 0 else "PW1"),
        "Gender": _v(s.gender), "NiNumber": _v(s.ni_number), "EmploymentType": _v(s.contract),
        "PersonalPhoneNumber": _v(s.mobile), "WorkPhoneNumber": _v(""),
        "Address": _v(f"{s.address1}, {s.town}, {s.postcode}"), "PostCode": _v(s.postcode),
        "LeavingDate": _v(s.leaving_date.isoformat() if s.leaving_date else ""),
        "ContractedHours": _v(s.contracted_hours), "LastModified": _v(at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")),
    }


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The PeopleHR sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "PeopleHR")
    seed = cfg.seed
    n = cfg.count("employees", 110)

    def index_of(value: str) -> int | None:
        return int(value[2:]) - 1 if value.startswith("PW") and value[2:].isdigit() else None

    state.datasets = {"employees": Dataset(n, lambda i, at: _employee(seed, i, at), lambda i: f"PW{i + 1}", index_of)}
    n_holidays = cfg.count("holidays", 260)
    n_absences = cfg.count("absences", 120)

    def holiday_row(i: int) -> dict[str, Any]:
        r = rng_for(seed, "peoplehr.holidays", i)
        who = r.randrange(n)
        s = staff_member(seed, who)
        start = date(2026, 1, 5) + timedelta(days=r.randrange(0, 330))
        days = r.choice((0.5, 1, 1, 2, 3, 5, 7))
        end = start + timedelta(days=max(0, int(days) - 1))
        return {"Holiday Id": str(900001 + i), "Employee Id": f"PW{who + 1}", "First Name": s.first_name,
                "Last Name": s.last_name, "Start Date": start.isoformat(), "End Date": end.isoformat(),
                "Duration Days": days, "Duration Hours": days * 7.5,
                "Status": r.choice(("Approved", "Approved", "Approved", "Pending", "Rejected", "Cancelled")),
                "Comments": r.choice(("", "", "Family holiday", "Wedding"))}

    def absence_row(i: int) -> dict[str, Any]:
        r = rng_for(seed, "peoplehr.absences", i)
        who = r.randrange(n)
        s = staff_member(seed, who)
        start = date(2026, 1, 3) + timedelta(days=r.randrange(0, 320))
        days = r.choice((1, 1, 2, 3, 5, 10))
        reason = r.choice(ABSENCE_REASONS)
        return {"Absence Id": str(700001 + i), "Employee Id": f"PW{who + 1}", "First Name": s.first_name,
                "Last Name": s.last_name, "Absence Type": "Sickness" if reason.startswith("Sickness") else "Other",
                "Reason": reason, "Start Date": start.isoformat(),
                "End Date": (start + timedelta(days=days - 1)).isoformat(), "Duration Days": days,
                "Duration Hours": days * 7.5, "Status": "Approved", "Self Certified": days <= 7}

    queries = {HOLIDAY_QUERY: lambda: [holiday_row(i) for i in range(n_holidays)],
               ABSENCE_QUERY: lambda: [absence_row(i) for i in range(n_absences)]}
    app = FastAPI(title="PeopleHR sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"api_key": API_KEY}

    def throttle(st: SandboxState) -> Response:
        resp = failed(11, "Too many requests. Please try again later.", http=429)
        if st.faults.retry_after is not None:
            resp.headers["Retry-After"] = st.faults.retry_after
        return resp

    app.add_middleware(FaultMiddleware, state=state, throttle=throttle)
    add_control_routes(app, state)

    async def parse(request: Request) -> dict[str, Any] | Response:
        try:
            body = await request.json()
        except ValueError:
            return failed(8, "Invalid request: the body must be JSON")
        if not isinstance(body, dict):
            return failed(8, "Invalid request: the body must be a JSON object")
        if body.get("APIKey") != API_KEY or state.faults.revoke_tokens:
            return failed(10, "Invalid API key")
        return body

    @app.post("/Employee")
    async def employee(request: Request) -> Response:
        body = await parse(request)
        if isinstance(body, Response):
            return body
        action = body.get("Action")
        data = state.datasets["employees"]
        if action == "GetAllEmployeeDetail":
            leavers = str(body.get("IncludeLeavers", "false")).lower() == "true"
            rows = [e for e in data.iter() if leavers or not e["LeavingDate"]["DisplayValue"]]
            return ok(rows)
        if action == "GetEmployeeDetailById":
            rec = data.get(str(body.get("EmployeeId", "")))
            return ok([rec]) if rec else failed(5, f"Employee {body.get('EmployeeId')} not found")
        if action == "CheckAuthentication":
            return ok(None, "Authenticated")
        if action == "UpdateEmployeeDetail":
            emp_id = str(body.get("EmployeeId", ""))
            rec = data.get(emp_id)
            if rec is None:
                return failed(5, f"Employee {emp_id} not found")
            changes = {k: v for k, v in body.items() if k not in ("APIKey", "Action", "EmployeeId")}
            unknown = sorted(set(changes) - EDITABLE)
            if unknown:
                return failed(8, f"Invalid parameter(s): {', '.join(unknown)}")
            if "EmailId" in changes and "@" not in str(changes["EmailId"]):
                return failed(8, "Invalid email address")
            new = {**rec, **{k: _v(v) for k, v in changes.items()}}
            if new != rec:
                at = data.put(emp_id, new)
                new["LastModified"] = _v(at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))
            return ok({"EmployeeId": emp_id}, "Employee details updated successfully")
        return failed(8, f"Invalid Action: {action}")

    @app.post("/Query")
    async def query(request: Request) -> Response:
        body = await parse(request)
        if isinstance(body, Response):
            return body
        if body.get("Action") != "GetQueryResultByQueryName":
            return failed(8, f"Invalid Action: {body.get('Action')}")
        name = str(body.get("QueryName", ""))
        if name not in queries:
            return failed(5, f"Query '{name}' not found. Create it in PeopleHR under Query and share it with the API key.")
        return ok(queries[name]())

    return app
