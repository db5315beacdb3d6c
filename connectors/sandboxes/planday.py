"""Planday sandbox: Open API (production ``https://openapi.planday.com``) and its token endpoint
(production ``https://id.planday.com/connect/token``, here ``/connect/token``).

Faithful to the public material (Planday's developer portal as summarised by ``api-evangelist/planday``
and ``borgels/mcp-server-planday``): an app has a client id and, per customer portal, a refresh token
that does not expire; ``POST /connect/token`` (form ``client_id``, ``grant_type=refresh_token``,
``refresh_token``) gives a one-hour access token and no new refresh token; every API call carries
``Authorization: Bearer`` and ``X-ClientId``; an app is authorised for a portal through ``/connect/authorize`` (authorization code),
which also hands out that refresh token; scopes are ``resource:action`` (``employee:read``,
``shift:update``); lists are ``{"paging": {"offset", "limit", "total"}, "data": [...]}`` with
``offset``/``limit`` and at most 50 a page; shifts are read for a ``from``/``to`` date window.

Chosen here and unconfirmed: field names inside employee and shift records beyond ``id``, ``firstName``,
``lastName``, ``startDateTime``, ``endDateTime``, ``employeeId``, ``departmentId``; error bodies
(``{"message": ...}``) and the throttle reply (429 + ``Retry-After``).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    bearer,
    new_state,
    rng_for,
)
from connectors.sandboxes.handlers import record_to_update
from connectors.sandboxes.workforce import FilterCache, day_window, staff_member

CLIENT_ID = "7c1d2e3f-planday-sandbox-app"
REFRESH_TOKEN = "planday-sandbox-refresh-token-0f9e8d7c6b5a"
FIRST_EMPLOYEE = 210_001
FIRST_SHIFT = 88_000_001
DEPARTMENTS = {5101 + i: name for i, name in enumerate(CARE_HOMES)}
GROUPS = {4201: "Care Assistants", 4202: "Senior Care Assistants", 4203: "Nurses", 4204: "Night Team",
          4205: "Kitchen", 4206: "Housekeeping"}
PATTERNS = ((7, 15), (8, 20), (14, 22), (20, 8), (9, 17))
MAX_LIMIT = 50
SHIFT_FIELDS = frozenset({"startDateTime", "endDateTime", "employeeId", "departmentId", "employeeGroupId",
                          "positionId", "shiftTypeId", "comment", "status"})
PER_DAY = 8


def local(dt: datetime) -> str:
    """Planday's shift times: local time without an offset, ``2026-11-28T07:00:00.000``."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000")


def stamp(dt: datetime) -> str:
    """Planday's record time stamps: ``2024-01-01T00:07:00.000Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Planday sandbox app."""
    cfg = config or SandboxConfig(token_ttl_seconds=3600)
    state = new_state(cfg, "Planday")
    seed = cfg.seed
    n_employees = cfg.count("employees", 90)
    anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None) - timedelta(days=21)

    def employee(i: int, at: datetime) -> dict[str, Any]:
        s = staff_member(seed, i)
        group = {"Registered Nurse": 4203, "Senior Care Assistant": 4202, "Night Care Assistant": 4204,
                 "Chef": 4205, "Domestic Assistant": 4206}.get(s.job_title, 4201)
        return {
            "id": FIRST_EMPLOYEE + i, "dateTimeCreated": stamp(at - timedelta(days=300)), "dateTimeModified": stamp(at),
            "employeeTypeId": 1 if s.contract == "Full time" else 2, "salaryIdentifier": f"WC{i + 1:04d}",
            "firstName": s.first_name, "lastName": s.last_name, "userName": s.email, "email": s.email,
            "cellPhone": s.mobile.replace(" ", "")[1:], "cellPhoneCountryCode": "44", "street1": s.address1,
            "zip": s.postcode, "city": s.town, "gender": s.gender, "birthDate": s.date_of_birth.isoformat(),
            "hiredFrom": s.start_date.isoformat(), "deactivationDate": s.leaving_date.isoformat() if s.leaving_date
            else None, "isActive": s.active, "departments": [5101 + CARE_HOMES.index(s.site)],
            "employeeGroups": [group], "jobTitle": s.job_title,
        }

    def window(i: int) -> tuple[datetime, datetime]:
        r = rng_for(seed, "planday.shifts", i)
        h1, h2 = PATTERNS[r.randrange(len(PATTERNS))]
        day = anchor + timedelta(days=i // PER_DAY)
        start = day.replace(hour=h1)
        end = day.replace(hour=h2) + (timedelta(days=1) if h2 <= h1 else timedelta())
        return start, end

    def shift(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "planday.shifts.who", i)
        start, end = window(i)
        who = employee(r.randrange(max(1, n_employees)), at)
        open_ = r.random() < 0.05
        return {
            "id": FIRST_SHIFT + i, "status": "Open" if open_ else "Assigned", "dateTimeCreated": stamp(at - timedelta(days=20)),
            "dateTimeModified": stamp(at), "startDateTime": local(start), "endDateTime": local(end),
            "date": start.date().isoformat(), "employeeId": None if open_ else who["id"],
            "departmentId": who["departments"][0], "employeeGroupId": who["employeeGroups"][0], "positionId": None,
            "shiftTypeId": 31 if start.hour >= 20 else 30, "comment": r.choice(("", "", "Covering sickness")),
        }

    def index_of(first: int) -> Any:
        def f(value: str) -> int | None:
            return int(value) - first if value.isdigit() else None
        return f

    state.datasets = {
        "employees": Dataset(n_employees, employee, lambda i: str(FIRST_EMPLOYEE + i), index_of(FIRST_EMPLOYEE)),
        "shifts": Dataset(cfg.count("shifts", 400), shift, lambda i: str(FIRST_SHIFT + i), index_of(FIRST_SHIFT)),
    }
    app = FastAPI(title="Planday sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"client_id": CLIENT_ID, "refresh_token": REFRESH_TOKEN}

    def message(status: int, text: str) -> JSONResponse:
        return JSONResponse({"message": text}, status_code=status)

    def throttle(st: SandboxState) -> Response:
        resp = message(429, "Rate limit is exceeded. Try again later.")
        if st.faults.retry_after is not None:
            resp.headers["Retry-After"] = st.faults.retry_after
        return resp

    app.add_middleware(FaultMiddleware, state=state, throttle=throttle, exempt=("/connect/",))
    add_control_routes(app, state)

    refresh_clients: dict[str, str] = {REFRESH_TOKEN: CLIENT_ID}  # refresh token -> the app it belongs to
    token_clients: dict[str, str] = {}
    codes: dict[str, tuple[str, str, float]] = {}

    @app.get("/connect/authorize", response_model=None)
    async def authorize(request: Request) -> Response:
        q = request.query_params
        if not q.get("redirect_uri") or not q.get("client_id"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        codes[code] = (str(q["client_id"]), str(q["redirect_uri"]), time.time() + 60)
        sep = "&" if "?" in q["redirect_uri"] else "?"
        target = f"{q['redirect_uri']}{sep}code={code}" + (f"&state={q['state']}" if q.get("state") else "")
        return RedirectResponse(target, status_code=302)

    def issue(client: str, with_refresh: bool) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        state.access_tokens[access] = time.time() + cfg.token_ttl_seconds
        token_clients[access] = client
        out: dict[str, Any] = {"access_token": access, "expires_in": cfg.token_ttl_seconds, "token_type": "Bearer",
                               "scope": "employee:read shift:read shift:update department:read"}
        if with_refresh:  # a portal's refresh token is handed out once and never expires
            refresh = secrets.token_urlsafe(32)
            refresh_clients[refresh] = client
            out["refresh_token"] = refresh
        return out

    @app.post("/connect/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        client = str(form.get("client_id", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if grant == "authorization_code":
            entry = codes.pop(str(form.get("code", "")), None)
            if entry is None or entry[2] < time.time() or entry[0] != client:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return JSONResponse(issue(client, with_refresh=True))
        if grant != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        owner = refresh_clients.get(str(form.get("refresh_token", "")))
        if owner is None or state.faults.revoke_tokens:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if owner != client:
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        return JSONResponse(issue(client, with_refresh=False))

    def denied(request: Request) -> Response | None:
        token_ = bearer(request)
        if not state.token_valid(token_):
            return message(401, "Authorization has been denied for this request.")
        if request.headers.get("x-clientid") != token_clients.get(token_ or ""):
            return message(401, "X-ClientId header is missing or does not match the token")
        return None

    views = FilterCache()

    def paged(request: Request, rows: list[dict[str, Any]] | None = None, ids: list[str] | None = None,
              data: Dataset | None = None) -> Response:
        q = request.query_params
        try:
            offset = max(0, int(q.get("offset", "0")))
            limit = int(q.get("limit", str(MAX_LIMIT)))
        except ValueError:
            return message(400, "offset and limit must be whole numbers")
        if not 1 <= limit <= MAX_LIMIT:
            return message(400, f"limit must be between 1 and {MAX_LIMIT}")
        if ids is not None and data is not None:
            chunk = [r for r in (data.get(i) for i in ids[offset:offset + limit]) if r is not None]
            total = len(ids)
        else:
            chunk, total = (rows or [])[offset:offset + limit], len(rows or [])
        return JSONResponse({"paging": {"offset": offset, "limit": limit, "total": total}, "data": chunk})

    @app.get("/hr/v1.0/employees")
    async def employees(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        special = request.query_params.get("special")  # Planday: special=Deactivated lists leavers
        leavers = special == "Deactivated"
        ids = views.ids(state.datasets["employees"], ("employees", leavers), lambda e: leavers != e["isActive"],
                        lambda e: str(e["id"]))
        return paged(request, ids=ids, data=state.datasets["employees"])

    @app.get("/hr/v1.0/departments")
    async def departments(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return paged(request, [{"id": k, "name": v, "number": str(k)} for k, v in DEPARTMENTS.items()])

    @app.get("/scheduling/v1.0/shifts")
    async def shifts(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        try:
            lo = date.fromisoformat(q["from"]) if q.get("from") else None
            hi = date.fromisoformat(q["to"]) if q.get("to") else None
        except ValueError:
            return message(400, "from and to must be dates (YYYY-MM-DD)")
        data = state.datasets["shifts"]
        if lo is None or hi is None:
            rows = [s for s in data.iter()
                    if (lo is None or s["date"] >= lo.isoformat()) and (hi is None or s["date"] <= hi.isoformat())]
        else:
            rows = day_window(data, PER_DAY, anchor, datetime.combine(lo, datetime.min.time()),
                              datetime.combine(hi, datetime.min.time()), lambda x: datetime.fromisoformat(str(x["date"])))
        rows.sort(key=lambda s: (s["startDateTime"], s["id"]))
        return paged(request, rows)

    @app.put("/scheduling/v1.0/shifts/{shift_id}")
    async def update_shift(shift_id: str, request: Request) -> Response:
        data = state.datasets["shifts"]
        got = await record_to_update(request, denied=denied, error=message, find=lambda _: data.get(shift_id),
                                     not_found=f"Shift {shift_id} was not found",
                                     bad_json="The request body is not valid JSON",
                                     not_object="The request body must be a shift")
        if isinstance(got, Response):
            return got
        rec, body = got
        unknown = sorted(set(body) - SHIFT_FIELDS)
        if unknown:
            return message(400, f"Unknown field(s): {', '.join(unknown)}")
        new = {**rec, **body}
        try:
            start = datetime.fromisoformat(str(new["startDateTime"]))
            end = datetime.fromisoformat(str(new["endDateTime"]))
        except ValueError:
            return message(400, "startDateTime and endDateTime must be date-times")
        if end <= start:
            return message(400, "The shift must end after it starts")
        if int(new["departmentId"]) not in DEPARTMENTS:
            return message(400, f"Department {new['departmentId']} does not exist")
        new["startDateTime"], new["endDateTime"], new["date"] = local(start), local(end), start.date().isoformat()
        if new != rec:
            new["dateTimeModified"] = stamp(data.put(shift_id, new))
        return Response(status_code=204)

    return app
