"""When I Work sandbox: API v2 under ``/2`` (production ``https://api.wheniwork.com/2``) and the log-in
service (production ``https://api.login.wheniwork.com/login``, here ``/login``).

Faithful to the public material (apidocs.wheniwork.com as summarised in the vendor notes; the Swagger 2.0
gist ``chrismanderson/942baf6c46ff585c52f48e6b2ed18cd4``: host ``api.wheniwork.com``, base path ``/2``,
``W-Token``; Airbyte ``source-when-i-work``: record lists keyed by resource, ``page`` from 0 plus
``limit``, 429 when throttled): log in with the developer key in ``W-Key`` and ``{email, password}`` to
get a token (valid about a week); send it as ``W-Token`` and pick the account with ``W-UserId``; shifts,
times and requests are listed for a ``start``/``end`` window; dates are RFC 2822 (``Fri, 27 Nov 2026
07:00:00 +0000``); shift breaks are hours (``break_time``). Errors are ``{"error": "...", "code": n}``.

Chosen here and unconfirmed: the log-in reply beyond ``token`` (``person``), the request ``status`` numbers
(0 pending, 1 cancelled, 2 approved, 3 expired, 4 declined), and the ``Retry-After`` on 429.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
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
from connectors.sandboxes.workforce import FilterCache, day_window, staff_member

DEVELOPER_KEY = "wiw-dev-key-2f6a9c1e4b7d0a3f"
EMAIL = "manager@willowcourtcare.example"
PASSWORD = "sandbox-password-1"
ACCOUNT_ID = 610042
FIRST_USER = 4_100_001
FIRST_SHIFT = 2_900_000_001
FIRST_TIME = 1_300_000_001
FIRST_REQUEST = 77_000_001
LOCATIONS = {7701 + i: name for i, name in enumerate(CARE_HOMES)}
POSITIONS = {3301: "Care Assistant", 3302: "Senior Care Assistant", 3303: "Registered Nurse", 3304: "Night Carer",
             3305: "Chef", 3306: "Domestic"}
PATTERNS = ((7, 15, 0.5), (8, 20, 1.0), (14, 22, 0.5), (20, 8, 0.0), (9, 17, 0.75))
SHIFT_FIELDS = frozenset({"user_id", "location_id", "position_id", "site_id", "start_time", "end_time", "break_time",
                          "notes", "color", "published", "is_open"})
PER_DAY = 10


def rfc(dt: datetime) -> str:
    """When I Work's dates: ``Fri, 27 Nov 2026 07:00:00 +0000``."""
    return format_datetime(dt.astimezone(UTC)).replace("-0000", "+0000")


def parse_when(text: str) -> datetime | None:
    """Accept RFC 2822 or ISO 8601, as When I Work does."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The When I Work sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "When I Work")
    seed = cfg.seed
    n_users = cfg.count("users", 70)
    anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=21)
    now = datetime.now(UTC)
    tokens: dict[str, float] = {}
    state.extra["tokens"] = tokens
    state.extra["logins"] = 0

    def user(i: int, at: datetime) -> dict[str, Any]:
        s = staff_member(seed, i)
        pos = next((pid for pid, name in POSITIONS.items() if name == s.job_title), 3301)
        return {
            "id": FIRST_USER + i, "account_id": ACCOUNT_ID, "login_id": 9_000_000 + i,
            "role": 1 if i == 0 else 2 if i % 20 == 1 else 3, "email": s.email, "first_name": s.first_name,
            "last_name": s.last_name, "phone_number": s.mobile.replace(" ", ""), "employee_code": f"WC{i + 1:04d}",
            "activated": True, "is_deleted": not s.active, "is_hidden": False, "hourly_rate": s.hourly_rate,
            "hours_max": s.contracted_hours, "hours_preferred": s.contracted_hours, "type": 1,
            "locations": [7701 + CARE_HOMES.index(s.site)], "positions": [pos], "notes": "",
            "created_at": rfc(at - timedelta(days=200)), "updated_at": rfc(at),
        }

    def window(i: int) -> tuple[datetime, datetime, float]:
        r = rng_for(seed, "wiw.shifts", i)
        h1, h2, brk = PATTERNS[r.randrange(len(PATTERNS))]
        day = anchor + timedelta(days=i // PER_DAY)
        start = day.replace(hour=h1)
        end = day.replace(hour=h2) + (timedelta(days=1) if h2 <= h1 else timedelta())
        return start, end, brk

    def shift(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "wiw.shifts.who", i)
        start, end, brk = window(i)
        u = user(r.randrange(max(1, n_users)), at)
        open_ = r.random() < 0.05
        return {
            "id": FIRST_SHIFT + i, "account_id": ACCOUNT_ID, "user_id": 0 if open_ else u["id"],
            "location_id": u["locations"][0], "position_id": u["positions"][0], "site_id": 0,
            "start_time": rfc(start), "end_time": rfc(end), "break_time": brk, "color": "cccccc",
            "notes": r.choice(("", "", "Covering sickness", "Handover at 14:00")), "alerted": False,
            "linked_users": None, "shiftchain_key": "", "published": start < now + timedelta(days=14),
            "published_date": rfc(start - timedelta(days=10)), "notified_at": rfc(start - timedelta(days=10)),
            "instances": 1, "is_open": open_, "acknowledged": 0, "acknowledged_at": None, "creator_id": FIRST_USER,
            "created_at": rfc(start - timedelta(days=21)), "updated_at": rfc(at),
        }

    n_shifts = cfg.count("shifts", 420)
    # Time entry k belongs to shift k; every shift of a day before yesterday has ended.
    n_past = min(n_shifts, max(0, ((now - anchor).days - 1) * PER_DAY))

    def worked(k: int, at: datetime) -> dict[str, Any]:
        sh = shift(k, at)
        r = rng_for(seed, "wiw.times", k)
        start = parse_when(sh["start_time"]) or now
        end = parse_when(sh["end_time"]) or now
        clock_in = start + timedelta(minutes=r.randrange(-8, 6))
        clock_out = end + timedelta(minutes=r.randrange(-5, 20))
        length = round((clock_out - clock_in).total_seconds() / 3600 - sh["break_time"], 2)
        return {"id": FIRST_TIME + k, "account_id": ACCOUNT_ID, "user_id": sh["user_id"] or FIRST_USER + 1,
                "creator_id": sh["user_id"] or FIRST_USER + 1, "position_id": sh["position_id"],
                "location_id": sh["location_id"], "site_id": 0, "shift_id": sh["id"], "start_time": rfc(clock_in),
                "end_time": rfc(clock_out), "length": length, "break_hours": sh["break_time"],
                "is_approved": r.random() < 0.75, "is_alerted": False, "notes": "", "hourly_rate": 0,
                "created_at": rfc(clock_in), "updated_at": rfc(at)}

    def request_(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "wiw.requests", i)
        start = anchor + timedelta(days=r.randrange(0, 90), hours=0)
        days = r.choice((1, 1, 2, 3, 5))
        return {"id": FIRST_REQUEST + i, "account_id": ACCOUNT_ID, "user_id": FIRST_USER + r.randrange(max(1, n_users)),
                "creator_id": FIRST_USER, "status": r.choice((0, 2, 2, 2, 4, 1)), "type": r.choice((0, 1, 1, 2)),
                "type_label": None, "hours": 7.5 * days, "start_time": rfc(start),
                "end_time": rfc(start + timedelta(days=days) - timedelta(seconds=1)),
                "canceled_by": 0, "updated_by": FIRST_USER, "created_at": rfc(start - timedelta(days=14)),
                "updated_at": rfc(at)}

    def index_of(first: int) -> Any:
        def f(value: str) -> int | None:
            return int(value) - first if value.isdigit() else None
        return f

    state.datasets = {
        "users": Dataset(n_users, user, lambda i: str(FIRST_USER + i), index_of(FIRST_USER)),
        "shifts": Dataset(n_shifts, shift, lambda i: str(FIRST_SHIFT + i), index_of(FIRST_SHIFT)),
        "times": Dataset(n_past, worked, lambda i: str(FIRST_TIME + i), index_of(FIRST_TIME)),
        "requests": Dataset(cfg.count("requests", 90), request_, lambda i: str(FIRST_REQUEST + i),
                            index_of(FIRST_REQUEST)),
    }
    next_shift = [FIRST_SHIFT + 900_000_000]
    views = FilterCache()
    app = FastAPI(title="When I Work sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"developer_key": DEVELOPER_KEY, "email": EMAIL, "password": PASSWORD}

    def error(status: int, message: str, code: int) -> JSONResponse:
        return JSONResponse({"error": message, "code": code}, status_code=status)

    def throttle(st: SandboxState) -> Response:
        resp = error(429, "Too many requests", 1070)
        if st.faults.retry_after is not None:
            resp.headers["Retry-After"] = st.faults.retry_after
        return resp

    app.add_middleware(FaultMiddleware, state=state, throttle=throttle, exempt=("/login",))
    add_control_routes(app, state)

    @app.post("/login")
    async def login(request: Request) -> Response:
        if request.headers.get("w-key") != DEVELOPER_KEY:
            return error(401, "Invalid developer key", 1100)
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The request body is not valid JSON", 1000)
        if not isinstance(body, dict) or body.get("email") != EMAIL or body.get("password") != PASSWORD:
            return error(401, "Incorrect email or password", 1110)
        token = secrets.token_urlsafe(32)
        tokens[token] = time.time() + 7 * 24 * 3600
        state.extra["logins"] += 1
        return JSONResponse({"token": token, "person": {"id": 9_000_000, "email": EMAIL, "first_name": "Priya",
                                                        "last_name": "Shah"}})

    @app.post("/_sandbox/expire-login-tokens")
    async def expire() -> dict[str, int]:
        for tok in tokens:
            tokens[tok] = 0.0
        return {"expired": len(tokens)}

    def denied(request: Request) -> Response | None:
        tok = request.headers.get("w-token", "")
        if tokens.get(tok, 0.0) <= time.time() or state.faults.revoke_tokens:
            return error(401, "Invalid or expired token", 1000)
        uid = request.headers.get("w-userid")
        if uid and state.datasets["users"].get(uid) is None:
            return error(403, f"User {uid} is not part of this login", 1005)
        return None

    def paged(request: Request, key: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Response:
        q = request.query_params
        try:
            page = max(0, int(q.get("page", "0")))
            limit = int(q["limit"]) if "limit" in q else None
        except ValueError:
            return error(400, "page and limit must be whole numbers", 1000)
        chunk = rows if limit is None else rows[page * limit:(page + 1) * limit]
        return JSONResponse({**(extra or {}), key: chunk})

    def window_of(request: Request) -> tuple[datetime, datetime] | Response:
        q = request.query_params
        lo = parse_when(q.get("start", "")) if q.get("start") else now - timedelta(days=1)
        hi = parse_when(q.get("end", "")) if q.get("end") else now + timedelta(days=3)
        if lo is None or hi is None:
            return error(400, "start and end must be dates", 1000)
        return lo, hi

    @app.get("/2/users")
    async def users(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        try:
            page = max(0, int(q.get("page", "0")))
            limit = int(q["limit"]) if "limit" in q else None
        except ValueError:
            return error(400, "page and limit must be whole numbers", 1000)
        data = state.datasets["users"]
        offset = page * (limit or 0)
        if q.get("show_deleted") == "true":
            chunk, _ = data.page(None, offset, limit if limit is not None else data.n + len(data.overlay))
        else:
            chunk, _ = views.page(data, "users:current", lambda u: not u["is_deleted"], lambda u: str(u["id"]),
                                  offset, limit)
        return JSONResponse({"users": chunk})

    def in_window(key: str, request: Request) -> Response:
        w = window_of(request)
        if isinstance(w, Response):
            return w
        lo, hi = w
        data = state.datasets[key]

        def start_of(x: dict[str, Any]) -> datetime:
            return parse_when(str(x["start_time"])) or now

        if key == "requests":  # time off is not laid out by day: a cached filtered view
            ids = views.ids(data, ("requests", rfc(lo), rfc(hi)), lambda x: lo <= start_of(x) <= hi,
                            lambda x: str(x["id"]), sort=lambda x: (start_of(x), x["id"]))
            rows = [r for r in (data.get(i) for i in ids) if r is not None]
        else:
            rows = day_window(data, PER_DAY, anchor, lo, hi, start_of)
            rows.sort(key=lambda x: (start_of(x), x["id"]))
        return paged(request, key, rows, {"start": rfc(lo), "end": rfc(hi)})

    @app.get("/2/shifts")
    async def shifts(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return in_window("shifts", request)

    @app.get("/2/times")
    async def times(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return in_window("times", request)

    @app.get("/2/requests")
    async def requests(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return in_window("requests", request)

    def check(body: Any, existing: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
        if not isinstance(body, dict):
            return None, "The request body must be a shift object"
        unknown = sorted(set(body) - SHIFT_FIELDS)
        if unknown:
            return None, f"Unknown shift field(s): {', '.join(unknown)}"
        merged = {**(existing or {}), **body}
        start = parse_when(str(merged.get("start_time", "")))
        end = parse_when(str(merged.get("end_time", "")))
        if start is None or end is None:
            return None, "start_time and end_time are required"
        if end <= start:
            return None, "Shift end time must be after the start time"
        if int(merged.get("location_id") or 0) not in LOCATIONS:
            return None, "A valid location_id is required"
        merged["start_time"], merged["end_time"] = rfc(start), rfc(end)
        return merged, None

    @app.post("/2/shifts")
    async def create_shift(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The request body is not valid JSON", 1000)
        merged, problem = check(body, None)
        if problem or merged is None:
            return error(400, problem or "invalid shift", 1010)
        next_shift[0] += 1
        rec = {"id": next_shift[0], "account_id": ACCOUNT_ID, "user_id": 0, "position_id": 0, "site_id": 0,
               "break_time": 0.0, "notes": "", "color": "cccccc", "published": False, "is_open": not merged.get("user_id"),
               "creator_id": FIRST_USER, "created_at": rfc(datetime.now(UTC)), **merged}
        rec["updated_at"] = rfc(state.datasets["shifts"].put(str(rec["id"]), rec))
        return JSONResponse({"shift": rec})

    @app.put("/2/shifts/{shift_id}")
    async def update_shift(shift_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        data = state.datasets["shifts"]
        existing = data.get(shift_id)
        if existing is None:
            return error(404, "Shift not found", 1020)
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The request body is not valid JSON", 1000)
        merged, problem = check(body, existing)
        if problem or merged is None:
            return error(400, problem or "invalid shift", 1010)
        if merged != existing:
            merged["updated_at"] = rfc(data.put(shift_id, merged))
        return JSONResponse({"shift": merged})

    return app
