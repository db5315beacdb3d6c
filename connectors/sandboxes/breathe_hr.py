"""Breathe HR sandbox: API v1 under ``/v1`` (production ``https://api.breathehr.com/v1``).

Faithful to what is documented or recorded from the live API (``dxw/breathe_ruby`` README, fixtures and
VCR cassettes; community clients): ``X-API-KEY`` header; record lists keyed by resource
(``{"employees": [...]}``, ``{"absences": [...]}``, ``{"sicknesses": [...]}``); ``page``/``per_page``
paging (100 a page at most) announced in an RFC 8288 ``Link`` header (first, prev, next, last) with
``Total`` and ``Per-Page`` headers; a single record also comes back as a one-element list; a bad key is
``401 {"error":"401 Unauthorized"}``. Absences filter on ``start_date``/``end_date``/``employee_id``.
Throttling is 60 calls a minute (community client comment); the shape of the throttled reply is not
published, so the sandbox answers ``429`` with ``Retry-After`` and ``{"error": ...}``. There is no
``updated_since`` filter and no webhooks.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    rng_for,
)
from connectors.sandboxes.workforce import DEPARTMENTS, FilterCache, staff_member

API_KEY = "breathe-sandbox-3c1f0a9e8d7b6c5a4f3e2d1c0b9a8f7e"
ACCOUNT_ID = 4411
FIRST_EMPLOYEE = 72001
FIRST_ABSENCE = 690001
FIRST_SICKNESS = 111001
MAX_PER_PAGE = 100
SICKNESS_TYPES = ((95160, "*Please set on return to work"), (95161, "Cold or flu"), (95162, "Stomach upset"),
                  (95163, "Back pain"), (95164, "Stress or anxiety"), (95165, "COVID-19"))
LEAVE_REASONS = (None, None, None, {"id": 74245, "name": "Training course"}, {"id": 74246, "name": "Dependant leave"})
EDITABLE = frozenset({"first_name", "middle_name", "last_name", "known_as", "email", "personal_email",
                      "personal_mobile", "job_title", "employee_ref", "dob", "ni_number", "address",
                      "full_or_part_time", "leaving_date", "join_date", "status"})


def iso(dt: datetime) -> str:
    """Breathe's timestamp form: ``2015-12-07T12:09:02+00:00``."""
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def _named(items: tuple[str, ...], name: str, base: int) -> dict[str, Any]:
    return {"id": base + items.index(name), "name": name}


def _employee(seed: int, i: int, at: datetime) -> dict[str, Any]:
    s = staff_member(seed, i)
    boss = staff_member(seed, 0)
    return {
        "id": FIRST_EMPLOYEE + i, "account_id": ACCOUNT_ID, "employee_ref": f"WC{i + 1:04d}",
        "first_name": s.first_name, "middle_name": "", "last_name": s.last_name, "known_as": s.known_as,
        "email": s.email, "personal_email": s.personal_email, "personal_mobile": s.mobile,
        "dob": s.date_of_birth.isoformat(), "gender": s.gender, "ni_number": s.ni_number,
        "address": {"line1": s.address1, "line2": "", "town": s.town, "county": s.county, "postcode": s.postcode,
                    "country": "United Kingdom"},
        "join_date": s.start_date.isoformat(), "job_start_date": s.start_date.isoformat(),
        "probation_date": (s.start_date + timedelta(days=182)).isoformat(),
        "leaving_date": s.leaving_date.isoformat() if s.leaving_date else None,
        "length_of_service_in_months": str(max(0, ((s.leaving_date or date(2026, 11, 1)) - s.start_date).days // 30)),
        "job_title": s.job_title, "department": _named(DEPARTMENTS, s.department, 3100),
        "division": {"id": 3001, "name": "Willow Court Care Group"}, "location": _named(CARE_HOMES, s.site, 3200),
        "working_pattern": {"id": 2201, "name": "4 on 4 off (12h)" if s.contract == "Full time" else "Flexible"},
        "full_or_part_time": s.contract, "status": "Active" if s.active else "Inactive",
        "line_manager": None if i == 0 else {"id": FIRST_EMPLOYEE, "first_name": boss.first_name,
                                             "last_name": boss.last_name, "email": boss.email},
        "holiday_approver": None if i == 0 else {"id": FIRST_EMPLOYEE, "first_name": boss.first_name,
                                                 "last_name": boss.last_name},
        "photo_url": "", "created_at": iso(at - timedelta(days=30)), "updated_at": iso(at),
    }


def _who(seed: int, idx: int) -> dict[str, Any]:
    s = staff_member(seed, idx)
    return {"id": FIRST_EMPLOYEE + idx, "email": s.email, "first_name": s.first_name, "last_name": s.last_name}


def _absence(seed: int, i: int, at: datetime, n_employees: int) -> dict[str, Any]:
    r = rng_for(seed, "breathe_hr.absences", i)
    kind = r.choice(("Holiday", "Holiday", "Holiday", "OtherLeave"))
    start = date(2026, 1, 5) + timedelta(days=r.randrange(0, 330))
    days = r.choice((1, 1, 2, 3, 5, 7)) if kind == "Holiday" else 1
    half_start = days > 1 and r.random() < 0.15
    units = days - (0.5 if half_start else 0)
    return {
        "id": FIRST_ABSENCE + i, "employee": _who(seed, r.randrange(max(1, n_employees))),
        "approved_by": {k: v for k, v in _who(seed, 0).items() if k != "email"},
        "leave_reason": None if kind == "Holiday" else r.choice(LEAVE_REASONS[3:]),
        "deducted": f"{units if kind == 'Holiday' else 0.0:.1f}", "work_units": f"{units:.1f}",
        "start_date": start.isoformat(), "half_start": half_start, "half_start_am_pm": "pm" if half_start else None,
        "end_date": (start + timedelta(days=days - 1)).isoformat(), "half_end": False, "half_end_am_pm": None,
        "cancelled": r.random() < 0.07, "notes": r.choice(("", "", "Family holiday", "Wedding", "")),
        "type": kind, "created_at": iso(at - timedelta(days=r.randrange(1, 40))), "updated_at": iso(at),
    }


def _sickness(seed: int, i: int, at: datetime, n_employees: int) -> dict[str, Any]:
    r = rng_for(seed, "breathe_hr.sicknesses", i)
    start = date(2026, 1, 3) + timedelta(days=r.randrange(0, 320))
    days = r.choice((1, 1, 2, 3, 5, 10))
    open_ = r.random() < 0.05
    type_id, type_name = r.choice(SICKNESS_TYPES)
    return {
        "id": FIRST_SICKNESS + i, "company_sicknesstype": {"id": type_id, "name": type_name},
        "employee": {"id": _who(seed, r.randrange(max(1, n_employees)))["id"]},
        "start_date": start.isoformat(), "end_date": None if open_ else (start + timedelta(days=days - 1)).isoformat(),
        "half_start": False, "half_start_am_pm": None, "half_end": False, "half_end_am_pm": None,
        "deducted": f"{days:.1f}", "status": "open" if open_ else "returned",
        "reason": "" if type_id == 95160 else type_name, "review_notes": None,
        "fit_note_required": days > 7, "created_at": iso(at - timedelta(days=1)), "updated_at": iso(at),
    }


def _throttle(state: SandboxState) -> Response:
    resp = JSONResponse({"error": "Rate limit exceeded: 60 requests per 60 seconds"}, status_code=429)
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _int_index(first: int) -> Any:
    def index_of(value: str) -> int | None:
        return int(value) - first if value.isdigit() else None
    return index_of


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Breathe HR sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Breathe HR")
    seed = cfg.seed
    n_emp = cfg.count("employees", 120)
    state.datasets = {
        "employees": Dataset(n_emp, lambda i, at: _employee(seed, i, at), lambda i: str(FIRST_EMPLOYEE + i),
                             _int_index(FIRST_EMPLOYEE)),
        "absences": Dataset(cfg.count("absences", 300), lambda i, at: _absence(seed, i, at, n_emp),
                            lambda i: str(FIRST_ABSENCE + i), _int_index(FIRST_ABSENCE)),
        "sicknesses": Dataset(cfg.count("sicknesses", 150), lambda i, at: _sickness(seed, i, at, n_emp),
                              lambda i: str(FIRST_SICKNESS + i), _int_index(FIRST_SICKNESS)),
    }
    app = FastAPI(title="Breathe HR sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"api_key": API_KEY}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def denied(request: Request) -> Response | None:
        if request.headers.get("x-api-key") != API_KEY or state.faults.revoke_tokens:
            return JSONResponse({"error": "401 Unauthorized"}, status_code=401)
        return None

    views = FilterCache()

    def paged(request: Request, key: str, items: list[dict[str, Any]] | None = None,
              ids: list[str] | None = None) -> Response:
        q = request.query_params
        try:
            page = max(1, int(q.get("page", "1")))
            per_page = min(MAX_PER_PAGE, max(1, int(q.get("per_page", "25"))))
        except ValueError:
            return JSONResponse({"error": "page and per_page must be whole numbers"}, status_code=400)
        if ids is not None:
            data = state.datasets[key]
            chunk = [r for r in (data.get(i) for i in ids[(page - 1) * per_page:page * per_page]) if r is not None]
            total = len(ids)
        elif items is None:
            chunk, total = state.datasets[key].page(None, (page - 1) * per_page, per_page)
        else:
            chunk, total = items[(page - 1) * per_page:page * per_page], len(items)
        last = max(1, -(-total // per_page))

        def link(n: int) -> str:
            return str(request.url.include_query_params(page=n, per_page=per_page))

        rels = [(1, "first")]
        if page > 1:
            rels.append((page - 1, "prev"))
        rels.append((last, "last"))
        if page < last:
            rels.append((page + 1, "next"))
        headers = {"Link": ", ".join(f'<{link(n)}>; rel="{rel}"' for n, rel in rels), "Total": str(total),
                   "Per-Page": str(per_page)}
        return JSONResponse({key: chunk}, headers=headers)

    @app.get("/v1/account")
    async def account(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return JSONResponse({"account": [{"id": ACCOUNT_ID, "name": "Willow Court Care Group",
                                          "number_of_employees": n_emp, "holiday_year_start": "2026-04-01"}]})

    @app.get("/v1/employees")
    async def employees(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return paged(request, "employees")

    @app.get("/v1/employees/{emp_id}")
    async def employee(emp_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        rec = state.datasets["employees"].get(emp_id)
        if rec is None:
            return JSONResponse({"error": "Not found"}, status_code=404)
        return JSONResponse({"employees": [rec]})

    @app.put("/v1/employees/{emp_id}")
    async def update_employee(emp_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        data = state.datasets["employees"]
        rec = data.get(emp_id)
        if rec is None:
            return JSONResponse({"error": "Not found"}, status_code=404)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "Request body is not valid JSON"}, status_code=400)
        changes = body.get("employee") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            return JSONResponse({"error": "param is missing or the value is empty: employee"}, status_code=400)
        unknown = sorted(set(changes) - EDITABLE)
        if unknown:
            return JSONResponse({"error": f"Unpermitted parameters: {', '.join(unknown)}"}, status_code=422)
        email = changes.get("email")
        if email is not None and "@" not in str(email):
            return JSONResponse({"error": "Validation failed: Email is invalid"}, status_code=422)
        new = {**rec, **changes}
        if new == rec:  # nothing changed: Breathe keeps updated_at
            return JSONResponse({"employees": [rec]})
        at = data.put(emp_id, new)
        new["updated_at"] = iso(at)
        return JSONResponse({"employees": [new]})

    def absence_filter(request: Request, key: str) -> Response:
        q = request.query_params
        start, end, emp = q.get("start_date"), q.get("end_date"), q.get("employee_id")
        if not (start or end or emp or q.get("exclude_cancelled_absences") == "true"):
            return paged(request, key)
        try:
            lo = date.fromisoformat(start) if start else None
            hi = date.fromisoformat(end) if end else None
        except ValueError:
            return JSONResponse({"error": "start_date and end_date must be YYYY-MM-DD"}, status_code=400)

        def keep(r: dict[str, Any]) -> bool:
            if emp and str(r["employee"]["id"]) != emp:
                return False
            if q.get("exclude_cancelled_absences") == "true" and r.get("cancelled"):
                return False
            if lo and r["start_date"] < lo.isoformat():
                return False
            return not (hi and r["start_date"] > hi.isoformat())

        ids = views.ids(state.datasets[key], (key, start, end, emp, q.get("exclude_cancelled_absences")), keep,
                        lambda r: str(r["id"]))
        return paged(request, key, ids=ids)

    @app.get("/v1/absences")
    async def absences(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return absence_filter(request, "absences")

    @app.get("/v1/employees/{emp_id}/absences")
    async def employee_absences(emp_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        ids = views.ids(state.datasets["absences"], ("absences", "employee", emp_id),
                        lambda r: str(r["employee"]["id"]) == emp_id, lambda r: str(r["id"]))
        return paged(request, "absences", ids=ids)

    @app.get("/v1/sicknesses")
    async def sicknesses(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return absence_filter(request, "sicknesses")

    return app
