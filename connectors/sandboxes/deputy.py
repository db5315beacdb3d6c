"""Deputy sandbox: the resource API under ``/api/v1`` on a per-install host.

* OAuth2: ``/my/oauth/login`` (authorize) and ``/oauth/access_token`` (code and rotating refresh tokens;
  Deputy's reply also names the install's ``endpoint``).
* ``POST /api/v1/resource/{Object}/QUERY`` with ``{search: {name: {field, type, data}}, sort, start, max}``
  (``max`` at most 500) answering a bare JSON array; ``GET /api/v1/resource/{Object}`` (first 500) and
  ``GET /api/v1/resource/{Object}/{Id}``.
* ``POST /api/v1/resource/{Object}`` creates, ``POST /api/v1/resource/{Object}/{Id}`` updates.
* Errors as ``{"error": {"code", "message"}}``; throttling as 429 + ``Retry-After``.
* Webhooks: ``POST /api/v1/resource/Webhook`` subscribes an address to a topic (``Timesheet.Insert``,
  ``Roster.Update``...); deliveries are ``{"topic", "data"}``, unsigned (Deputy publishes no signature).
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
    add_oauth_routes,
    bearer,
    new_state,
    pools,
    rng_for,
    send_webhook,
)

INSTALL = "willowcourt"
GEO = "uk"
MAX_PAGE = 500
AREAS = ("Residential Floor", "Nursing Floor", "Dementia Unit", "Kitchen", "Housekeeping", "Activities")
OBJECTS = {"Employee": "employees", "Roster": "rosters", "Timesheet": "timesheets", "OperationalUnit": "locations"}
FIRST_ID = {"employees": 1, "rosters": 10_001, "timesheets": 50_001, "locations": 1}
SHIFT_PATTERNS = ((7, 0, 15, 0), (7, 30, 19, 30), (14, 0, 22, 0), (19, 30, 7, 30), (8, 0, 16, 0))
WEEK0 = date(2026, 11, 2)  # a Monday


def iso(dt: datetime) -> str:
    """Deputy's timestamp form: ``2026-11-02T07:00:00+00:00``."""
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def _meta(at: datetime) -> dict[str, Any]:
    return {"Creator": 1, "Created": iso(at - timedelta(days=30)), "Modified": iso(at)}


def _employee(seed: int, i: int, at: datetime, n_locations: int) -> dict[str, Any]:
    r = rng_for(seed, "deputy.employees", i)
    p = pools(seed)
    first, last = r.choice(p.first_names), r.choice(p.last_names)
    started = date(2014, 1, 1) + timedelta(days=r.randrange(0, 11 * 365))
    active = r.random() > 0.07
    return {"Id": FIRST_ID["employees"] + i, "Company": 1 + (i % 4), "FirstName": first, "LastName": last,
            "DisplayName": f"{first} {last}", "OtherName": None, "Salutation": r.choice(("Mrs", "Ms", "Mr", "Miss")),
            "MainAddress": 1000 + i, "PostalAddress": None, "Contact": 2000 + i, "EmergencyAddress": None,
            "DateOfBirth": f"{date(1962, 1, 1) + timedelta(days=r.randrange(0, 40 * 365))}",
            "Gender": r.choice((1, 2, 2, 2)), "Photo": 0, "UserId": 500 + i, "JobAppId": None, "Active": active,
            "StartDate": f"{started}", "TerminationDate": None if active else f"{started + timedelta(days=400)}",
            "StressProfile": 1, "Position": r.choice(JOB_TITLES), "HigherDuty": None, "Role": 50,
            "AllowAppraisal": True, "HistoryId": 3000 + i, "CustomFieldData": None,
            "_DPMetaData": {"System": "Employee", "CreatorInfo": {"Id": 1, "DisplayName": "Deputy Admin"}},
            **_meta(at)}


def _location(i: int, at: datetime) -> dict[str, Any]:
    home = CARE_HOMES[i % len(CARE_HOMES)]
    area = AREAS[(i // len(CARE_HOMES)) % len(AREAS)]
    return {"Id": FIRST_ID["locations"] + i, "Company": 1 + (i % len(CARE_HOMES)), "WorkType": None,
            "ParentOperationalUnit": 0, "OperationalUnitName": f"{area} - {home}", "Active": True,
            "PayrollExportName": f"CC{100 + i}", "Address": 1 + (i % len(CARE_HOMES)), "Contact": None,
            "RosterSortOrder": i, "ShowOnRoster": True, "Colour": "#4b8bbe", "RosterActiveHoursSchedule": None,
            "DailyRosterBudget": None, "OperationalUnitType": 1, "CompanyCode": f"WC{1 + i % 4}",
            "CompanyName": home, **_meta(at)}


def _shift_times(r: Any, day: date) -> tuple[int, int, float]:
    sh, sm, eh, em = r.choice(SHIFT_PATTERNS)
    start = datetime(day.year, day.month, day.day, sh, sm, tzinfo=UTC)
    end = datetime(day.year, day.month, day.day, eh, em, tzinfo=UTC)
    if end <= start:
        end += timedelta(days=1)
    hours = (end - start).total_seconds() / 3600 - 0.5
    return int(start.timestamp()), int(end.timestamp()), hours


def _roster(seed: int, i: int, at: datetime, n_emp: int, n_loc: int) -> dict[str, Any]:
    r = rng_for(seed, "deputy.rosters", i)
    day = WEEK0 + timedelta(days=i % 28)
    start, end, hours = _shift_times(r, day)
    open_shift = r.random() < 0.05
    rate = r.choice((11.44, 12.21, 12.60, 17.80))
    return {"Id": FIRST_ID["rosters"] + i, "Date": f"{day}T00:00:00+00:00", "StartTime": start, "EndTime": end,
            "Mealbreak": f"{day}T00:30:00+00:00", "Slots": [], "TotalTime": hours, "Cost": round(hours * rate, 2),
            "OperationalUnit": FIRST_ID["locations"] + r.randrange(max(1, n_loc)),
            "Employee": 0 if open_shift else FIRST_ID["employees"] + r.randrange(max(1, n_emp)), "Comment": "",
            "Warning": "", "WarningOverrideComment": "", "Published": r.random() < 0.9, "MatchedByTimesheet": 0,
            "Open": open_shift, "ConfirmStatus": 0, "ConfirmComment": "", "ConfirmBy": 0, "ConfirmTime": 0,
            "SwapStatus": 0, "SwapManageBy": None, "ShiftTemplate": None, "ConnectStatus": None,
            "StartTimeLocalized": iso(datetime.fromtimestamp(start, UTC)),
            "EndTimeLocalized": iso(datetime.fromtimestamp(end, UTC)), **_meta(at)}


def _timesheet(seed: int, i: int, at: datetime, n_emp: int, n_loc: int, n_rost: int) -> dict[str, Any]:
    r = rng_for(seed, "deputy.timesheets", i)
    day = WEEK0 + timedelta(days=i % 21)
    start, end, hours = _shift_times(r, day)
    start += r.randrange(-300, 420)
    in_progress = r.random() < 0.03
    return {"Id": FIRST_ID["timesheets"] + i, "Employee": FIRST_ID["employees"] + r.randrange(max(1, n_emp)),
            "EmployeeHistory": None, "EmployeeAgreement": None, "Date": f"{day}T00:00:00+00:00",
            "StartTime": start, "EndTime": 0 if in_progress else end, "Mealbreak": f"{day}T00:30:00+00:00",
            "MealbreakSlots": None, "Slots": [], "TotalTime": 0 if in_progress else round(hours, 2),
            "TotalTimeInv": None, "Cost": round(hours * 12.21, 2),
            "Roster": FIRST_ID["rosters"] + r.randrange(max(1, n_rost)) if r.random() < 0.85 else 0,
            "EmployeeComment": "", "SupervisorComment": "", "Supervisor": None, "Disputed": False,
            "TimeApproved": r.random() < 0.7, "TimeApprover": None, "Discarded": False, "ValidationFlag": 0,
            "OperationalUnit": FIRST_ID["locations"] + r.randrange(max(1, n_loc)), "IsInProgress": in_progress,
            "IsLeave": False, "LeaveId": None, "LeaveRule": None, "Invoiced": False, "InvoiceComment": None,
            "PayRuleApproved": r.random() < 0.5, "Exported": None, "StagingId": None, "PayStaged": False,
            "PaycycleId": None, "File": None, "CustomFieldData": None, "RealTime": True, "AutoProcessed": False,
            "AutoRounded": False, "AutoTimeApproved": False, "AutoPayRuleApproved": False, **_meta(at)}


DEFAULTS: dict[str, dict[str, Any]] = {
    "Roster": {"Comment": "", "Warning": "", "Published": False, "Open": False, "ConfirmStatus": 0, "Employee": 0,
               "TotalTime": 0, "Cost": 0},
    "Timesheet": {"EmployeeComment": "", "SupervisorComment": "", "TimeApproved": False, "PayRuleApproved": False,
                  "IsInProgress": False, "Discarded": False, "Roster": 0, "TotalTime": 0, "Cost": 0},
    "Employee": {"Active": True, "Role": 50},
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message}}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    headers = {}
    if state.faults.retry_after is not None:
        headers["Retry-After"] = state.faults.retry_after
    return JSONResponse({"error": {"code": 429, "message": "Too many requests"}}, status_code=429, headers=headers)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a is not None and a > b,
    "ge": lambda a, b: a is not None and a >= b, "lt": lambda a, b: a is not None and a < b,
    "le": lambda a, b: a is not None and a <= b, "lk": lambda a, b: str(b).strip("%").lower() in str(a).lower(),
    "nk": lambda a, b: str(b).strip("%").lower() not in str(a).lower(), "in": lambda a, b: a in (b or []),
    "nn": lambda a, b: a is not None, "is": lambda a, b: a is None,
}


def _coerce(value: Any, like: Any) -> Any:
    """Compare like with like: numbers as numbers, timestamps as aware datetimes, the rest as given."""
    if isinstance(like, bool) or value is None:
        return value
    if isinstance(like, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    if isinstance(like, str) and isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        except ValueError:
            return value
    return value


def _field_value(rec: dict[str, Any], field: str) -> Any:
    value = rec.get(field)
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        return _coerce(value, value)
    return value


def _sort_key(field: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    def key(rec: dict[str, Any]) -> tuple[bool, Any]:
        value = rec.get(field)
        if value is None:
            return (True, 0)
        return (False, value if isinstance(value, int | float) else str(value))

    return key


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Deputy sandbox app."""
    cfg = config or SandboxConfig(token_ttl_seconds=86400)
    state = new_state(cfg, "Deputy")
    seed = cfg.seed
    n_emp, n_loc = cfg.count("employees"), cfg.count("locations", 12)
    n_rost, n_ts = cfg.count("rosters"), cfg.count("timesheets")
    makers: dict[str, Callable[[int, datetime], dict[str, Any]]] = {
        "employees": lambda i, at: _employee(seed, i, at, n_loc),
        "locations": lambda i, at: _location(i, at),
        "rosters": lambda i, at: _roster(seed, i, at, n_emp, n_loc),
        "timesheets": lambda i, at: _timesheet(seed, i, at, n_emp, n_loc, n_rost),
    }
    counts = {"employees": n_emp, "locations": n_loc, "rosters": n_rost, "timesheets": n_ts}

    def dataset(name: str) -> Dataset:
        first = FIRST_ID[name]
        return Dataset(counts[name], makers[name], lambda i: str(first + i),
                       lambda v: int(v) - first if v.lstrip("-").isdigit() else None)

    state.datasets = {name: dataset(name) for name in counts}
    next_id = {name: FIRST_ID[name] + counts[name] + 10_000 for name in counts}
    hooks: list[dict[str, Any]] = []
    state.extra["webhooks"] = hooks
    app = FastAPI(title="Deputy sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth/", "/my/oauth/"))
    add_control_routes(app, state)
    add_oauth_routes(app, state, authorize_path="/my/oauth/login", token_path="/oauth/access_token")

    def check(request: Request) -> Response | None:
        if not state.token_valid(bearer(request)):
            return _error(401, "OAuth token is invalid or has expired")
        return None

    def dataset_of(obj: str) -> Dataset | None:
        name = OBJECTS.get(obj)
        return state.datasets.get(name) if name else None

    def query(data: Dataset, body: dict[str, Any]) -> list[dict[str, Any]] | str:
        search = body.get("search") or {}
        if not isinstance(search, dict):
            return "search must be an object of named conditions"
        conditions = []
        since: datetime | None = None
        for cond in search.values():
            if not isinstance(cond, dict) or cond.get("type", "eq") not in _OPS or "field" not in cond:
                return f"invalid search condition: {json.dumps(cond)}"
            conditions.append(cond)
            if cond["field"] == "Modified" and cond.get("type") in ("ge", "gt"):
                parsed = _coerce(cond.get("data"), "2000-01-01T00:00:00")
                if isinstance(parsed, datetime):
                    since = parsed if since is None else max(since, parsed)
        rows = []
        for rec in data.iter(since):
            ok = True
            for cond in conditions:
                have = _field_value(rec, cond["field"])
                want = _coerce(cond.get("data"), rec.get(cond["field"]))
                try:
                    ok = _OPS[cond.get("type", "eq")](have, want)
                except TypeError:
                    ok = False
                if not ok:
                    break
            if ok:
                rows.append(rec)
        sort = body.get("sort") or {}
        for key, direction in reversed(list(sort.items()) if isinstance(sort, dict) else []):
            rows.sort(key=_sort_key(str(key)), reverse=str(direction).lower() == "desc")
        return rows

    @app.post("/api/v1/resource/{obj}/QUERY")
    async def resource_query(obj: str, request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        data = dataset_of(obj)
        if data is None:
            return _error(404, f"Resource {obj} not found")
        try:
            body = await request.json() if await request.body() else {}
        except ValueError:
            return _error(400, "Request body is not valid JSON")
        try:
            start, size = int(body.get("start", 0)), int(body.get("max", MAX_PAGE))
        except (TypeError, ValueError):
            return _error(400, "start and max must be integers")
        if size > MAX_PAGE or size < 1 or start < 0:
            return _error(400, f"max must be between 1 and {MAX_PAGE}; start must not be negative")
        rows = query(data, body)
        if isinstance(rows, str):
            return _error(400, rows)
        return JSONResponse(rows[start:start + size])

    @app.get("/api/v1/resource/{obj}")
    async def resource_list(obj: str, request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        data = dataset_of(obj)
        if data is None:
            return _error(404, f"Resource {obj} not found")
        rows, _ = data.page(None, 0, MAX_PAGE)
        return JSONResponse(rows)

    @app.get("/api/v1/resource/{obj}/{record_id}")
    async def resource_get(obj: str, record_id: str, request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        data = dataset_of(obj)
        rec = data.get(record_id) if data is not None else None
        if rec is None:
            return _error(404, f"{obj} {record_id} not found")
        return JSONResponse(rec)

    def validate(obj: str, rec: dict[str, Any]) -> str | None:
        if obj in ("Roster", "Timesheet"):
            for f in ("StartTime", "OperationalUnit"):
                if not rec.get(f):
                    return f"{f} is required"
            if obj == "Timesheet" and not rec.get("Employee"):
                return "Employee is required"
            end = rec.get("EndTime") or 0
            if end and int(end) <= int(rec["StartTime"]):
                return "EndTime must be after StartTime"
            if state.datasets["locations"].get(str(rec["OperationalUnit"])) is None:
                return f"OperationalUnit {rec['OperationalUnit']} does not exist"
        if obj == "Employee" and not (rec.get("FirstName") and rec.get("LastName")):
            return "FirstName and LastName are required"
        return None

    async def emit(topic: str, data: dict[str, Any]) -> None:
        for hook in hooks:
            if hook["Topic"] == topic and hook.get("Enabled", True):
                await send_webhook(state, {"topic": topic, "data": data}, lambda raw: {}, url=hook["Address"],
                                   transport=getattr(app.state, "webhook_transport", None))

    async def save(obj: str, record_id: str | None, request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        if obj == "Webhook":
            body = await request.json()
            hook = {"Id": len(hooks) + 1, "Topic": body.get("Topic"), "Address": body.get("Address"),
                    "Type": body.get("Type", "URL"), "Enabled": bool(body.get("Enabled", 1))}
            hooks.append(hook)
            return JSONResponse(hook)
        data = dataset_of(obj)
        if data is None or (obj == "OperationalUnit" and record_id is None):
            return _error(404, f"Resource {obj} not found")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "Request body must be an object")
        existing = data.get(record_id) if record_id else None
        if record_id and existing is None:
            return _error(404, f"{obj} {record_id} not found")
        name = OBJECTS[obj]
        if existing is None:
            new_id = next_id[name]
            next_id[name] += 1
            blank: dict[str, Any] = {k: ([] if k == "Slots" else None) for k in makers[name](0, datetime.now(UTC))}
            rec = {**blank, **DEFAULTS.get(obj, {}), **body, "Id": new_id, "Creator": 1,
                   "Created": iso(datetime.now(UTC))}
        else:
            rec = {**existing, **body, "Id": existing["Id"]}
        problem = validate(obj, rec)
        if problem:
            return _error(400, problem)
        if obj in ("Roster", "Timesheet") and rec.get("EndTime"):
            rec["TotalTime"] = round((int(rec["EndTime"]) - int(rec["StartTime"])) / 3600, 2)
            rec["StartTimeLocalized"] = iso(datetime.fromtimestamp(int(rec["StartTime"]), UTC))
            rec["EndTimeLocalized"] = iso(datetime.fromtimestamp(int(rec["EndTime"]), UTC))
        at = data.put(str(rec["Id"]), rec)
        rec["Modified"] = iso(at)
        await emit(f"{obj}.{'Update' if existing else 'Insert'}", rec)
        if state.extra.get("lose_replies", 0) > 0:  # saved, but the reply never reaches the caller
            state.extra["lose_replies"] -= 1
            return _error(502, "Bad gateway")
        return JSONResponse(rec)

    @app.post("/api/v1/resource/{obj}")
    async def resource_create(obj: str, request: Request) -> Response:
        return await save(obj, None, request)

    @app.post("/api/v1/resource/{obj}/{record_id}")
    async def resource_update(obj: str, record_id: str, request: Request) -> Response:
        return await save(obj, record_id, request)

    @app.get("/api/v1/me")
    async def me(request: Request) -> Response:
        denied = check(request)
        if denied:
            return denied
        return JSONResponse({"Login": "carehub", "Name": "CareHub Integration", "UserId": 1, "EmployeeId": 1,
                             "Company": 1, "Portfolio": INSTALL, "DeputyVersion": "3.0"})

    @app.post("/_sandbox/deputy/lose-replies")
    async def lose_replies(request: Request) -> dict[str, int]:
        """The next N writes are saved but answered with 502, as if the reply were lost on the way."""
        body = await request.json()
        state.extra["lose_replies"] = int(body.get("count", 1))
        return {"lose_replies": state.extra["lose_replies"]}

    app.state.config = {"install": INSTALL, "geo": GEO}
    return app
