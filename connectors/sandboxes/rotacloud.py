"""RotaCloud sandbox: API v1 under ``/v1`` (production ``https://api.rotacloud.com/v1``).

Faithful to RotaCloud's published OpenAPI as relayed by third parties (``ChemicalLuck/rotacloud-mcp-node``
tool list, MindCloud action references, unified.to): the API key as a bearer token, with an optional
``User: {id}`` header to act as one user; plain JSON arrays of records; ``limit``/``offset`` paging
(with ``X-Total-Count``, ``X-Limit`` and ``X-Offset`` headers; without ``limit`` the whole list comes
back); shift and attendance times are **Unix seconds** and ``/shifts`` and ``/attendance`` require a
``start``/``end`` window in Unix seconds, while leave and users use ``YYYY-MM-DD`` dates; shifts are
created with ``POST /shifts`` and updated with ``POST /shifts/{id}``. RotaCloud publishes no rate limit;
the sandbox throttles with ``429`` + ``Retry-After``. Error bodies are ``{"error": "..."}``.

Shift dates are laid out around the day the sandbox starts (four weeks back, about seven ahead), so a
rolling-window read sees the whole rota; contents are deterministic for a seed.
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
from connectors.sandboxes.handlers import record_to_update
from connectors.sandboxes.workforce import FilterCache, day_window, staff_member

API_KEY = "rc-sandbox-7f4e2a9c1b3d5e6f8a0b2c4d6e8f0a1b"
FIRST_USER = 50001
FIRST_SHIFT = 9_100_001
FIRST_LEAVE = 770_001
FIRST_ATTENDANCE = 4_400_001
LOCATIONS = {8801 + i: name for i, name in enumerate(CARE_HOMES)}
ROLES = {6601: "Care Assistant", 6602: "Senior Care Assistant", 6603: "Registered Nurse", 6604: "Night Carer",
         6605: "Chef", 6606: "Domestic", 6607: "Activities Coordinator"}
SHIFT_PATTERNS = ((7, 0, 15, 0, 30), (8, 0, 20, 0, 60), (14, 0, 22, 0, 30), (20, 0, 8, 0, 0), (9, 0, 17, 0, 45))
LEAVE_TYPES = {1: "Holiday", 2: "Sickness", 3: "Unpaid Leave", 4: "Compassionate", 5: "Training"}
SHIFTS_PER_DAY = 12
SHIFT_FIELDS = frozenset({"user", "location", "role", "start_time", "end_time", "minutes_break", "notes",
                          "published", "open"})


def _epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def _user(seed: int, i: int, at: datetime) -> dict[str, Any]:
    s = staff_member(seed, i, "willowcourtcare.example")
    r = rng_for(seed, "rotacloud.users", i)
    role = next((rid for rid, name in ROLES.items() if name == s.job_title), 6601)
    loc = 8801 + CARE_HOMES.index(s.site)
    return {
        "id": FIRST_USER + i, "first_name": s.first_name, "last_name": s.last_name, "preferred_name": s.known_as,
        "email": s.email, "phone": s.mobile, "dob": s.date_of_birth.isoformat(), "gender": s.gender.lower(),
        "level": "admin" if i == 0 else "manager" if i % 25 == 1 else "employee",
        "locations": [loc], "roles": [role] + ([6604] if r.random() < 0.2 and role != 6604 else []),
        "default_role": role, "payroll_id": f"WC{i + 1:04d}",
        "salary": s.hourly_rate if s.hourly else float(s.salary), "salary_type": "hourly" if s.hourly else "annual",
        "weekly_hours": s.contracted_hours, "employment_start_date": s.start_date.isoformat(),
        "employment_end_date": s.leaving_date.isoformat() if s.leaving_date else None,
        "created_at": _epoch(at - timedelta(days=365)), "updated_at": _epoch(at), "deleted": not s.active,
    }


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The RotaCloud sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "RotaCloud")
    seed = cfg.seed
    n_users = cfg.count("users", 80)
    anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=28)
    now = datetime.now(UTC)

    def shift_window(i: int) -> tuple[datetime, datetime, int]:
        r = rng_for(seed, "rotacloud.shifts", i)
        h1, m1, h2, m2, brk = SHIFT_PATTERNS[r.randrange(len(SHIFT_PATTERNS))]
        day = anchor + timedelta(days=i // SHIFTS_PER_DAY)
        start = day.replace(hour=h1, minute=m1)
        end = day.replace(hour=h2, minute=m2) + (timedelta(days=1) if h2 <= h1 else timedelta())
        return start, end, brk

    def shift(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "rotacloud.shifts.who", i)
        start, end, brk = shift_window(i)
        open_ = r.random() < 0.06
        user = _user(seed, r.randrange(max(1, n_users)), at)
        published = start < now + timedelta(days=14)
        return {
            "id": FIRST_SHIFT + i, "deleted": False, "deleted_at": None, "deleted_by": None, "published": published,
            "open": open_, "start_time": _epoch(start), "end_time": _epoch(end), "minutes_break": brk,
            "user": None if open_ else user["id"], "location": user["locations"][0], "role": user["default_role"],
            "notes": r.choice((None, None, None, "Covering sickness", "Induction shadow shift", "Handover at 14:00")),
            "created_by": FIRST_USER, "created_at": _epoch(start - timedelta(days=21)), "updated_at": _epoch(at),
            "updated_by": FIRST_USER, "claimed": False, "claimed_at": None, "acknowledged": published,
            "acknowledged_at": _epoch(start - timedelta(days=7)) if published else None, "swap_requests": [],
            "unavailability_requests": [],
        }

    def leave(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "rotacloud.leave", i)
        type_id = r.choice((1, 1, 1, 1, 2, 2, 3, 4, 5))
        start = anchor.date() + timedelta(days=r.randrange(0, 84))
        days = r.choice((1, 1, 2, 3, 5, 7)) if type_id == 1 else r.choice((1, 1, 2, 3))
        dates = [{"date": (start + timedelta(days=d)).isoformat(), "hours": 7.5, "start_am_pm": "am",
                  "end_am_pm": "pm"} for d in range(days)]
        return {
            "id": FIRST_LEAVE + i, "deleted": False, "user": FIRST_USER + r.randrange(max(1, n_users)),
            "type": type_id, "status": r.choice(("approved", "approved", "approved", "requested", "denied")),
            "start_date": start.isoformat(), "start_am_pm": "am", "end_date": (start + timedelta(days=days - 1)).isoformat(),
            "end_am_pm": "pm", "paid": type_id in (1, 2, 4, 5), "hours": {"total": 7.5 * days, "per_day": 7.5},
            "dates": dates, "notes": "" if type_id != 1 else r.choice(("", "Family holiday", "Wedding")),
            "created_at": _epoch(at - timedelta(days=10)), "updated_at": _epoch(at),
        }

    n_shifts = cfg.count("shifts", 600)
    # Clock-in k belongs to shift k; every shift of a day before yesterday has ended (nights end next morning).
    n_past = min(n_shifts, max(0, ((now - anchor).days - 1) * SHIFTS_PER_DAY))

    def attendance(k: int, at: datetime) -> dict[str, Any]:
        sh = shift(k, at)
        r = rng_for(seed, "rotacloud.attendance", k)
        in_time = sh["start_time"] + r.randrange(-420, 300)
        out_time = sh["end_time"] + r.randrange(-300, 900)
        hours = round((out_time - in_time - sh["minutes_break"] * 60) / 3600, 2)
        return {
            "id": FIRST_ATTENDANCE + k, "deleted": False, "approved": r.random() < 0.8,
            "user": sh["user"] or FIRST_USER + 1, "shift": sh["id"], "location": sh["location"], "role": sh["role"],
            "in_time": in_time, "out_time": out_time, "minutes_break": sh["minutes_break"], "hours": hours,
            "in_method": r.choice(("terminal", "mobile")), "out_method": r.choice(("terminal", "mobile")),
            "in_location": {"lat": 53.8, "lng": -1.55, "accuracy": 20}, "out_location": None,
            "notes": None, "created_at": in_time, "updated_at": _epoch(at),
        }

    def index_of(first: int) -> Any:
        def f(value: str) -> int | None:
            return int(value) - first if value.lstrip("-").isdigit() else None
        return f

    state.datasets = {
        "users": Dataset(n_users, lambda i, at: _user(seed, i, at), lambda i: str(FIRST_USER + i), index_of(FIRST_USER)),
        "shifts": Dataset(n_shifts, shift, lambda i: str(FIRST_SHIFT + i), index_of(FIRST_SHIFT)),
        "leave": Dataset(cfg.count("leave", 150), leave, lambda i: str(FIRST_LEAVE + i), index_of(FIRST_LEAVE)),
        "attendance": Dataset(n_past, attendance, lambda i: str(FIRST_ATTENDANCE + i), index_of(FIRST_ATTENDANCE)),
    }
    next_shift = [FIRST_SHIFT + 5_000_000]
    app = FastAPI(title="RotaCloud sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"api_key": API_KEY}

    def throttle(st: SandboxState) -> Response:
        resp = JSONResponse({"error": "Too many requests, please slow down"}, status_code=429)
        if st.faults.retry_after is not None:
            resp.headers["Retry-After"] = st.faults.retry_after
        return resp

    app.add_middleware(FaultMiddleware, state=state, throttle=throttle)
    add_control_routes(app, state)

    def error(status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    def denied(request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {API_KEY}" or state.faults.revoke_tokens:
            return error(401, "Invalid API key")
        acting = request.headers.get("user")
        if acting is not None and state.datasets["users"].get(acting) is None:
            return error(403, f"User {acting} does not exist or you may not act as them")
        return None

    views = FilterCache()

    def paging(request: Request) -> tuple[int, int | None] | Response:
        q = request.query_params
        try:
            offset = max(0, int(q.get("offset", "0")))
            limit = int(q["limit"]) if "limit" in q else None
        except ValueError:
            return error(400, "limit and offset must be whole numbers")
        if limit is not None and not 1 <= limit <= 500:
            return error(400, "limit must be between 1 and 500")
        return offset, limit

    def respond(chunk: list[dict[str, Any]], total: int, offset: int, limit: int | None) -> Response:
        headers = {"X-Total-Count": str(total), "X-Offset": str(offset)}
        if limit is not None:
            headers["X-Limit"] = str(limit)
        return JSONResponse(chunk, headers=headers)

    def listing(request: Request, rows: list[dict[str, Any]]) -> Response:
        p = paging(request)
        if isinstance(p, Response):
            return p
        offset, limit = p
        chunk = rows[offset:offset + limit] if limit is not None else rows[offset:]
        return respond(chunk, len(rows), offset, limit)

    def epoch_window(request: Request) -> tuple[int, int] | Response:
        q = request.query_params
        if "start" not in q or "end" not in q:
            return error(400, "start and end are required (Unix timestamps in seconds)")
        try:
            lo, hi = int(q["start"]), int(q["end"])
        except ValueError:
            return error(400, "start and end must be Unix timestamps in seconds")
        if hi < lo:
            return error(400, "end must be after start")
        return lo, hi

    def common_filters(request: Request, row: dict[str, Any]) -> bool:
        q = request.query_params
        if q.get("users[]") and str(row.get("user")) not in q.getlist("users[]"):
            return False
        if q.get("locations[]") and str(row.get("location")) not in q.getlist("locations[]"):
            return False
        return q.get("include_deleted") == "true" or not row.get("deleted")

    @app.get("/v1/users")
    async def users(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        p = paging(request)
        if isinstance(p, Response):
            return p
        offset, limit = p
        data = state.datasets["users"]
        if request.query_params.get("include_deleted") == "true":
            chunk, total = data.page(None, offset, limit if limit is not None else data.n + len(data.overlay))
        else:
            chunk, total = views.page(data, "users:current", lambda u: not u["deleted"], lambda u: str(u["id"]),
                                      offset, limit)
        return respond(chunk, total, offset, limit)

    @app.get("/v1/users/{user_id}")
    async def user(user_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        rec = state.datasets["users"].get(user_id)
        return JSONResponse(rec) if rec else error(404, f"User {user_id} not found")

    @app.get("/v1/locations")
    async def locations(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return listing(request, [{"id": k, "name": v, "address": "", "timezone": "Europe/London", "deleted": False}
                                 for k, v in LOCATIONS.items()])

    @app.get("/v1/roles")
    async def roles(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return listing(request, [{"id": k, "name": v, "colour": "#3c8dbc", "pay_code": f"R{k}", "deleted": False}
                                 for k, v in ROLES.items()])

    @app.get("/v1/shifts")
    async def shifts(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        window = epoch_window(request)
        if isinstance(window, Response):
            return window
        lo, hi = window
        q = request.query_params
        rows = [s for s in day_window(state.datasets["shifts"], SHIFTS_PER_DAY, anchor, _dt(lo), _dt(hi),
                                      lambda x: _dt(int(x["start_time"])))
                if common_filters(request, s)
                and (q.get("published") is None or str(s["published"]).lower() == q["published"])]
        rows.sort(key=lambda s: (s["start_time"], s["id"]))
        return listing(request, rows)

    @app.get("/v1/shifts/{shift_id}")
    async def one_shift(shift_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        rec = state.datasets["shifts"].get(shift_id)
        return JSONResponse(rec) if rec else error(404, f"Shift {shift_id} not found")

    def check_shift(body: Any, existing: dict[str, Any] | None) -> str | None:
        if not isinstance(body, dict):
            return "Request body must be a JSON object"
        unknown = sorted(set(body) - SHIFT_FIELDS)
        if unknown:
            return f"Unknown field(s): {', '.join(unknown)}"
        merged = {**(existing or {}), **body}
        for key in ("location", "start_time", "end_time"):
            if merged.get(key) is None:
                return f"{key} is required"
        if int(merged["location"]) not in LOCATIONS:
            return f"Location {merged['location']} does not exist"
        if merged.get("user") is not None and state.datasets["users"].get(str(merged["user"])) is None:
            return f"User {merged['user']} does not exist"
        if int(merged["end_time"]) <= int(merged["start_time"]):
            return "end_time must be after start_time"
        return None

    @app.post("/v1/shifts")
    async def create_shift(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        try:
            body = await request.json()
        except ValueError:
            return error(400, "Request body is not valid JSON")
        problem = check_shift(body, None)
        if problem:
            return error(422, problem)
        next_shift[0] += 1
        rec: dict[str, Any] = {
            "id": next_shift[0], "deleted": False, "deleted_at": None, "deleted_by": None, "published": False,
            "open": body.get("user") is None, "minutes_break": 0, "user": None, "role": None, "notes": None,
            "created_by": FIRST_USER, "created_at": int(datetime.now(UTC).timestamp()), "updated_by": FIRST_USER,
            "claimed": False, "claimed_at": None, "acknowledged": False, "acknowledged_at": None,
            "swap_requests": [], "unavailability_requests": [], **body,
        }
        rec["updated_at"] = _epoch(state.datasets["shifts"].put(str(rec["id"]), rec))
        return JSONResponse(rec, status_code=201)

    @app.post("/v1/shifts/{shift_id}")
    async def update_shift(shift_id: str, request: Request) -> Response:
        data = state.datasets["shifts"]
        got = await record_to_update(request, denied=denied, error=error, find=lambda _: data.get(shift_id),
                                     not_found=f"Shift {shift_id} not found", bad_json="Request body is not valid JSON")
        if isinstance(got, Response):
            return got
        existing, body = got
        problem = check_shift(body, existing)
        if problem:
            return error(422, problem)
        new = {**existing, **body}
        if new == existing:
            return JSONResponse(existing)
        new["updated_at"] = _epoch(data.put(shift_id, new))
        return JSONResponse(new)

    @app.get("/v1/attendance")
    async def attendance_list(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        window = epoch_window(request)
        if isinstance(window, Response):
            return window
        lo, hi = window
        rows = [a for a in day_window(state.datasets["attendance"], SHIFTS_PER_DAY, anchor, _dt(lo), _dt(hi),
                                      lambda x: _dt(int(x["in_time"]))) if common_filters(request, a)]
        rows.sort(key=lambda a: (a["in_time"], a["id"]))
        return listing(request, rows)

    @app.get("/v1/leave")
    async def leave_list(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        try:
            lo = date.fromisoformat(q["start"]) if q.get("start") else None
            hi = date.fromisoformat(q["end"]) if q.get("end") else None
        except ValueError:
            return error(400, "start and end must be dates (YYYY-MM-DD)")
        p = paging(request)
        if isinstance(p, Response):
            return p
        offset, limit = p

        def keep(x: dict[str, Any]) -> bool:
            return (common_filters(request, x) and (lo is None or x["end_date"] >= lo.isoformat())
                    and (hi is None or x["start_date"] <= hi.isoformat())
                    and (not q.getlist("statuses[]") or x["status"] in q.getlist("statuses[]")))

        key = ("leave", str(lo), str(hi), tuple(q.getlist("users[]")), tuple(q.getlist("locations[]")),
               tuple(q.getlist("statuses[]")), q.get("include_deleted"))
        chunk, total = views.page(state.datasets["leave"], key, keep, lambda x: str(x["id"]), offset, limit,
                                  sort=lambda x: (x["start_date"], x["id"]))
        return respond(chunk, total, offset, limit)

    @app.get("/v1/leave_types")
    async def leave_types(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return listing(request, [{"id": k, "name": v, "short_name": v[:3].upper(), "paid": k != 3, "deleted": False}
                                 for k, v in LEAVE_TYPES.items()])

    return app
