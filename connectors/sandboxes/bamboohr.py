"""BambooHR sandbox: API v1 under ``/api/gateway.php/{companyDomain}/v1``.

Faithful to BambooHR where it is documented: HTTP basic auth with the API key as the user name (any
password); ``POST reports/custom?format=JSON`` with ``{title, fields, filters.lastChanged}`` as the bulk
read; ``GET employees/directory``; ``GET employees/changed?since=`` (an object keyed by employee id);
``GET time_off/requests/?start&end`` (a bare JSON array); ``POST employees/{id}`` and
``PUT time_off/requests/{id}/status`` (empty 200 replies); errors carried in ``X-BambooHR-Error-Message``;
throttling as 429 + ``Retry-After`` (BambooHR's behaviour from 16 Sep 2026; 503 before); webhooks signed
with hex HMAC-SHA256 over the raw body followed by ``X-BambooHR-Timestamp``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    JOB_TITLES,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    pools,
    rng_for,
    send_webhook,
)
from connectors.sandboxes.handlers import basic_auth

COMPANY_DOMAIN = "willowcourt"
API_KEY = "bhr-sandbox-0f3a9c2e7d4b1a6058e9c3d2b7a41f6e"
PREFIX = "/api/gateway.php/{domain}/v1"
FIRST_ID = 100
DEPARTMENTS = ("Care", "Nursing", "Kitchen", "Housekeeping", "Activities", "Maintenance", "Management")
CONTRACTS = ("Full-Time", "Part-Time", "Bank", "Zero Hours")
LEAVE_TYPES = ((78, "Annual Leave", "palm-trees"), (79, "Sickness", "medical"), (80, "Compassionate Leave", "heart"),
               (81, "Training Day", "graduation-cap"))
FIELD_NAMES = {
    "id": ("int", "ID"), "employeeNumber": ("text", "Employee #"), "firstName": ("text", "First Name"),
    "lastName": ("text", "Last Name"), "preferredName": ("text", "Preferred Name"),
    "dateOfBirth": ("date", "Birth Date"), "gender": ("gender", "Gender"), "workEmail": ("email", "Work Email"),
    "homeEmail": ("email", "Home Email"), "mobilePhone": ("phone", "Mobile Phone"),
    "workPhone": ("phone", "Work Phone"), "homePhone": ("phone", "Home Phone"), "address1": ("text", "Address Line 1"),
    "address2": ("text", "Address Line 2"), "city": ("text", "City"), "state": ("state", "County"),
    "zipcode": ("text", "Postcode"), "country": ("country", "Country"), "hireDate": ("date", "Hire Date"),
    "terminationDate": ("date", "Termination Date"), "jobTitle": ("list", "Job Title"),
    "department": ("list", "Department"), "division": ("list", "Division"), "location": ("list", "Location"),
    "supervisorEId": ("int", "Supervisor EID"), "employmentHistoryStatus": ("list", "Employment Status"),
    "payRate": ("currency", "Pay Rate"), "payType": ("pay_type", "Pay Type"), "status": ("status", "Status"),
    "lastChanged": ("timestamp", "Last Changed"), "displayName": ("text", "Display Name"),
    "supervisor": ("text", "Supervisor"), "photoUrl": ("url", "Photo URL"),
}
DIRECTORY_FIELDS = ("displayName", "firstName", "lastName", "preferredName", "jobTitle", "workPhone", "mobilePhone",
                    "workEmail", "department", "location", "division", "supervisor", "photoUrl")
EDITABLE = frozenset(FIELD_NAMES) - {"id", "lastChanged", "displayName", "supervisor", "photoUrl"}


def iso(dt: datetime) -> str:
    """BambooHR's timestamp form: ``2024-01-01T00:07:00+00:00``."""
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def employee_id(i: int) -> str:
    """Employee id of base record ``i`` (BambooHR ids are small integers, sent as strings)."""
    return str(FIRST_ID + i)


def _index(value: str) -> int | None:
    try:
        return int(value) - FIRST_ID
    except ValueError:
        return None


def _employee(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "bamboohr.employees", i)
    p = pools(seed)
    first, last = r.choice(p.first_names), r.choice(p.last_names)
    job = r.choice(JOB_TITLES)
    hired = date(2012, 1, 1) + timedelta(days=r.randrange(0, 12 * 365))
    left = r.random() < 0.08
    hourly = job not in ("Deputy Manager", "Registered Nurse")
    rate = f"{r.choice((11.44, 11.90, 12.21, 12.60, 13.15, 14.00)):.2f} GBP" if hourly else \
        f"{r.choice((34500, 38200, 41250, 44800))}.00 GBP"
    town = r.choice(p.towns)
    return {
        "id": employee_id(i), "employeeNumber": f"WC{i + 1:05d}", "firstName": first, "lastName": last,
        "preferredName": first if r.random() < 0.8 else "", "dateOfBirth": f"{date(1960, 1, 1) + timedelta(days=r.randrange(0, 42 * 365))}",
        "gender": r.choice(("Female", "Female", "Female", "Male")),
        "workEmail": f"{first}.{last}{i}@willowcourtcare.example".lower().replace(" ", "").replace("'", ""),
        "homeEmail": f"{first}{i}@example.org".lower().replace(" ", "").replace("'", ""),
        "mobilePhone": f"07700 9{r.randrange(0, 100000):05d}", "workPhone": "0113 496 0" + f"{r.randrange(0, 1000):03d}",
        "homePhone": r.choice(p.phones), "address1": r.choice(p.streets), "address2": "", "city": town,
        "state": r.choice(("West Yorkshire", "Greater Manchester", "Kent", "Surrey", "West Midlands")),
        "zipcode": r.choice(p.postcodes), "country": "United Kingdom", "hireDate": f"{hired}",
        "terminationDate": f"{hired + timedelta(days=r.randrange(200, 2000))}" if left else "0000-00-00",
        "jobTitle": job, "department": "Nursing" if job == "Registered Nurse" else r.choice(DEPARTMENTS),
        "division": "Willow Court Care Group", "location": r.choice(CARE_HOMES),
        "supervisorEId": employee_id(0) if i else "", "employmentHistoryStatus": r.choice(CONTRACTS),
        "payRate": rate, "payType": "Hourly" if hourly else "Salary", "status": "Inactive" if left else "Active",
        "lastChanged": iso(at),
    }


def _directory_entry(rec: dict[str, Any], boss: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": rec["id"], "displayName": f"{rec['firstName']} {rec['lastName']}", "firstName": rec["firstName"],
            "lastName": rec["lastName"], "preferredName": rec.get("preferredName") or None,
            "jobTitle": rec.get("jobTitle"), "workPhone": rec.get("workPhone"), "mobilePhone": rec.get("mobilePhone"),
            "workEmail": rec.get("workEmail"), "department": rec.get("department"), "location": rec.get("location"),
            "division": rec.get("division"),
            "supervisor": f"{boss['firstName']} {boss['lastName']}" if boss and boss["id"] != rec["id"] else None,
            "photoUploaded": False,
            "photoUrl": f"https://resources.bamboohr.com/images/photo_person_150x150.png?e={rec['id']}"}


def _time_off(seed: int, i: int, n_employees: int) -> dict[str, Any]:
    r = rng_for(seed, "bamboohr.time_off", i)
    emp = _employee(seed, r.randrange(max(1, n_employees)), datetime(2024, 1, 1, tzinfo=UTC))
    type_id, type_name, icon = r.choice(LEAVE_TYPES)
    start = date(2026, 1, 5) + timedelta(days=r.randrange(0, 360))
    days = r.choice((1, 1, 2, 3, 5, 10)) if type_name == "Annual Leave" else r.choice((1, 2, 3))
    end = start + timedelta(days=days - 1)
    status = r.choice(("approved", "approved", "approved", "requested", "denied", "canceled"))
    created = start - timedelta(days=r.randrange(1, 60))
    return {
        "id": str(5000 + i), "employeeId": emp["id"], "name": f"{emp['firstName']} {emp['lastName']}",
        "status": {"lastChanged": f"{created}", "lastChangedByUserId": "2369", "status": status},
        "start": f"{start}", "end": f"{end}", "created": f"{created}",
        "type": {"id": str(type_id), "name": type_name, "icon": icon},
        "amount": {"unit": "days", "amount": str(days)},
        "actions": {"view": True, "edit": True, "cancel": status == "requested", "approve": status == "requested",
                    "deny": status == "requested", "bypass": True},
        "dates": {f"{start + timedelta(days=d)}": "1" for d in range(days)},
        "notes": {"employee": "Family holiday" if type_name == "Annual Leave" else "", "manager": ""},
    }


def _error(status: int, message: str) -> Response:
    """BambooHR puts the reason in ``X-BambooHR-Error-Message``; bodies are usually empty."""
    return Response(status_code=status, headers={"X-BambooHR-Error-Message": message})


def _throttle(state: SandboxState) -> Response:
    headers = {"X-BambooHR-Error-Message": "Rate limit exceeded"}
    if state.faults.retry_after is not None:
        headers["Retry-After"] = state.faults.retry_after
    return Response(status_code=429, headers=headers)


def sign_webhook(key: str, body: bytes, timestamp: str) -> str:
    """``X-BambooHR-Signature``: hex HMAC-SHA256 of the raw body followed by the timestamp."""
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The BambooHR sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "BambooHR")
    seed = cfg.seed
    n_emp = cfg.count("employees")
    n_off = cfg.count("time_off", max(1, n_emp // 2))
    employees = Dataset(n_emp, lambda i, at: _employee(seed, i, at), employee_id, _index)
    time_off = Dataset(n_off, lambda i, at: _time_off(seed, i, n_emp), lambda i: str(5000 + i),
                       lambda v: int(v) - 5000 if v.isdigit() else None)
    state.datasets = {"employees": employees, "time_off": time_off}
    app = FastAPI(title="BambooHR sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def check(request: Request, domain: str) -> Response | None:
        user, _ = basic_auth(request)
        if not hmac.compare_digest(user.encode(), API_KEY.encode()) or state.faults.revoke_tokens:
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="BambooHR API"',
                                                      "X-BambooHR-Error-Message": "Invalid API key"})
        if domain != COMPANY_DOMAIN:
            return _error(404, f"Company '{domain}' not found")
        return None

    def since_of(value: str | None) -> datetime | None:
        if not value:
            return None
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

    @app.post(PREFIX + "/reports/custom")
    async def custom_report(domain: str, request: Request) -> Response:
        denied = check(request, domain)
        if denied:
            return denied
        if request.query_params.get("format", "").upper() != "JSON":
            return _error(400, "This sandbox answers format=JSON only")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Request body must be JSON")
        fields = [f for f in body.get("fields") or [] if isinstance(f, str)]
        unknown = [f for f in fields if f not in FIELD_NAMES]
        if not fields or unknown:
            return _error(400, f"Unknown or missing fields: {', '.join(unknown) or '(none given)'}")
        last_changed = ((body.get("filters") or {}).get("lastChanged") or {})
        since = since_of(last_changed.get("value"))
        if last_changed and since is None:
            return _error(400, "filters.lastChanged.value must be an ISO 8601 timestamp")
        only_current = request.query_params.get("onlyCurrent", "true").lower() != "false"
        rows = []
        for rec in employees.iter(since):
            if only_current and rec.get("status") == "Inactive":
                continue
            rows.append({"id": rec["id"], **{f: rec.get(f) for f in fields}})
        field_meta = [{"id": f, "type": FIELD_NAMES[f][0], "name": FIELD_NAMES[f][1]} for f in fields]
        return JSONResponse({"title": body.get("title", "Custom report"), "fields": field_meta, "employees": rows})

    @app.get(PREFIX + "/employees/directory")
    async def directory(domain: str, request: Request) -> Response:
        denied = check(request, domain)
        if denied:
            return denied
        boss = employees.get(employee_id(0))
        rows = [_directory_entry(rec, boss) for rec in employees.iter() if rec.get("status") != "Inactive"]
        fields = [{"id": f, "type": FIELD_NAMES[f][0], "name": FIELD_NAMES[f][1]} for f in DIRECTORY_FIELDS]
        return JSONResponse({"fields": fields, "employees": rows})

    @app.get(PREFIX + "/employees/changed")
    async def changed(domain: str, request: Request) -> Response:
        denied = check(request, domain)
        if denied:
            return denied
        since = since_of(request.query_params.get("since"))
        if since is None:
            return _error(400, "The 'since' parameter is required and must be ISO 8601")
        kind = request.query_params.get("type", "all").lower()
        out: dict[str, dict[str, Any]] = {}
        for rec in employees.iter(since):
            action = rec.get("_action", "Updated")
            if kind != "all" and action.lower() != kind:
                continue
            out[rec["id"]] = {"id": rec["id"], "action": action, "lastChanged": rec["lastChanged"]}
        latest = max((v["lastChanged"] for v in out.values()), default=iso(datetime.now(UTC)))
        return JSONResponse({"latest": latest, "employees": out})

    @app.get(PREFIX + "/employees/{emp_id}")
    async def get_employee(domain: str, emp_id: str, request: Request) -> Response:
        denied = check(request, domain)
        if denied:
            return denied
        rec = employees.get(emp_id)
        if rec is None:
            return _error(404, "Employee not found")
        fields = [f for f in (request.query_params.get("fields") or "firstName,lastName").split(",") if f]
        return JSONResponse({"id": rec["id"], **{f: rec.get(f) for f in fields}})

    async def emit(items: list[dict[str, Any]]) -> int:
        ts = str(int(time.time()))

        def headers(raw: bytes) -> dict[str, str]:
            return {"X-BambooHR-Signature": sign_webhook(cfg.webhook_key, raw, ts), "X-BambooHR-Timestamp": ts}

        return await send_webhook(state, {"employees": items}, headers,
                                  transport=getattr(app.state, "webhook_transport", None))

    @app.post(PREFIX + "/employees/{emp_id}")
    async def update_employee(domain: str, emp_id: str, request: Request) -> Response:
        denied = check(request, domain)
        if denied:
            return denied
        rec = employees.get(emp_id)
        if rec is None:
            return _error(404, "Employee not found")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Request body must be JSON")
        if not isinstance(body, dict) or not body:
            return _error(400, "No fields to update")
        bad = sorted(k for k in body if k not in EDITABLE)
        if bad:
            return _error(400, f"Fields cannot be updated: {', '.join(bad)}")
        changed_fields = sorted(k for k, v in body.items() if rec.get(k) != v)
        new = {**rec, **{k: ("" if v is None else str(v)) for k, v in body.items()}}
        at = employees.put(emp_id, new)
        new["lastChanged"] = iso(at)
        if cfg.webhook_url and changed_fields:
            await emit([{"id": emp_id, "action": "Updated", "timestamp": iso(at), "changedFields": changed_fields,
                         "fields": {k: new.get(k) for k in changed_fields}}])
        return Response(status_code=200)

    @app.get(PREFIX + "/time_off/requests/")
    async def time_off_requests(domain: str, request: Request) -> Response:
        denied = check(request, domain)
        if denied:
            return denied
        q = request.query_params
        try:
            start, end = date.fromisoformat(q.get("start", "")), date.fromisoformat(q.get("end", ""))
        except ValueError:
            return _error(400, "start and end are required, as YYYY-MM-DD")
        status = {s for s in (q.get("status") or "").split(",") if s}
        emp = q.get("employeeId")
        rows = []
        for rec in time_off.iter():
            if rec["end"] < f"{start}" or rec["start"] > f"{end}":
                continue
            if status and rec["status"]["status"] not in status:
                continue
            if emp and rec["employeeId"] != emp:
                continue
            rows.append(rec)
        return JSONResponse(rows)

    @app.put(PREFIX + "/time_off/requests/{request_id}/status")
    async def time_off_status(domain: str, request_id: str, request: Request) -> Response:
        denied = check(request, domain)
        if denied:
            return denied
        rec = time_off.get(request_id)
        if rec is None:
            return _error(404, "Time off request not found")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Request body must be JSON")
        status = str(body.get("status", "")).lower()
        if status not in ("approved", "denied", "declined", "canceled", "cancelled"):
            return _error(400, "status must be approved, denied or canceled")
        status = {"declined": "denied", "cancelled": "canceled"}.get(status, status)
        new = json.loads(json.dumps(rec))
        new["status"] = {"lastChanged": f"{datetime.now(UTC).date()}", "lastChangedByUserId": "2369", "status": status}
        if body.get("note"):
            new["notes"]["manager"] = str(body["note"])
        time_off.put(request_id, new)
        return Response(status_code=200)

    @app.post("/_sandbox/webhooks/send")
    async def send_test_webhook(request: Request) -> dict[str, Any]:
        """Send one signed delivery for an employee (demo and tests)."""
        body = await request.json() if await request.body() else {}
        emp = employees.get(str(body.get("id", employee_id(0)))) or {}
        status = await emit([{"id": emp.get("id"), "action": "Updated", "timestamp": iso(datetime.now(UTC)),
                              "changedFields": ["jobTitle"], "fields": {"jobTitle": emp.get("jobTitle")}}])
        return {"status": status}

    app.state.emit = emit
    app.state.credentials = {"api_key": API_KEY}
    app.state.config = {"company_domain": COMPANY_DOMAIN}
    return app

