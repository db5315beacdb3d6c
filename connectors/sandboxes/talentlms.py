"""TalentLMS sandbox: REST API v1 on the customer's domain (``https://{domain}.talentlms.com/api/v1``).

From TalentLMS's API reference (eFront/Epignosis conventions, as summarised in vendors-finance-hr.md 2.8):
HTTP Basic auth with the API key as the user name and an empty password; ``id:{value}`` path arguments;
``GET /users`` and ``GET /courses`` return plain JSON arrays (v1 has no paging); ``GET /users/id:{id}`` adds
the user's ``courses`` (role, enrolled/completed/expired dates with ``*_timestamp`` twins, completion
percentage, time spent) and ``certifications``; ``GET /courses/id:{id}`` adds ``users``. Dates follow the
portal's format setting (``dd/mm/yyyy, HH:MM:SS`` for a UK portal); numbers come as strings. Errors are
``{"error": {"type": "invalid_request_error", "message": "..."}}`` with a 4xx status. The plan's limit is 200
calls per 5 seconds, announced in ``X-RateLimit-Limit``/``-Remaining``/``-Reset``; the throttled body is not
published, so the sandbox answers 429 with a ``rate_limit_error`` in the same envelope.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    rng_for,
)
from connectors.sandboxes.handlers import basic_auth
from connectors.sandboxes.workforce import staff_member

API_KEY = "TLMSsandboxKey7c4e2a91d0b8f6"
DOMAIN = "willowcourt"
FIRST_USER = 101
RATE_LIMIT = 200
COURSES = (
    ("CC01", "Care Certificate Standard 1: Understand your role", None),
    ("CC09", "Care Certificate Standard 9: Awareness of mental health, dementia and learning disabilities", None),
    ("SG2", "Safeguarding Adults Level 2", 36),
    ("MH", "Moving and Handling of People (theory)", 12),
    ("IPC", "Infection Prevention and Control", 12),
    ("FIRE", "Fire Safety Awareness", 12),
    ("MED", "Safe Handling and Administration of Medicines", 12),
    ("DEM", "Dementia Awareness", 36),
    ("FH2", "Food Hygiene Level 2", 36),
    ("BLS", "Basic Life Support", 12),
    ("MCA", "Mental Capacity Act and DoLS", 36),
    ("OMG", "Oliver McGowan Mandatory Training on Learning Disability and Autism (Tier 1)", 36),
    ("HS", "Health and Safety at Work", 36),
    ("IG", "Information Governance and Data Security (UK GDPR)", 12),
)


def tlms_time(dt: datetime) -> str:
    """A UK portal's date format: ``27/11/2026, 14:05:09``."""
    return dt.astimezone(UTC).strftime("%d/%m/%Y, %H:%M:%S")


def _stamp(dt: datetime | None) -> str | None:
    return None if dt is None else str(int(dt.timestamp()))


def course(i: int) -> dict[str, Any]:
    """One course of the portal's catalogue."""
    code, name, renew_months = COURSES[i]
    created = datetime(2024, 3, 1, 9, 0, tzinfo=UTC) + timedelta(days=3 * i)
    return {
        "id": str(100 + i), "name": name, "code": code, "category_id": "1" if code.startswith("CC") else "2",
        "description": f"{name}. Mandatory for all care staff; renew every {renew_months} months." if renew_months
        else f"{name}. Part of the Care Certificate for new starters.",
        "price": "&#163;0.00", "status": "active", "creation_date": tlms_time(created),
        "last_update_on": tlms_time(created + timedelta(days=30)), "creator_id": str(FIRST_USER), "hide_from_catalog": "0",
        "time_limit": "0", "level": None, "shared": "0", "shared_url": "", "avatar":
        f"https://{DOMAIN}.talentlms.com/pages/images/default_course.png", "big_avatar": "",
        "certification": "Willow Court certificate" if renew_months else None,
        "certification_duration": f"{renew_months} months" if renew_months else None,
    }


def enrolments(seed: int, u: int) -> list[dict[str, Any]]:
    """The courses of user ``u`` with their progress (deterministic)."""
    r = rng_for(seed, "talentlms.enrolments", u)
    picked = sorted(r.sample(range(len(COURSES)), r.randrange(5, 10)))
    out = []
    for c in picked:
        enrolled = datetime(2025, 1, 6, 8, tzinfo=UTC) + timedelta(days=r.randrange(0, 500), minutes=r.randrange(600))
        roll = r.random()
        pct = 100 if roll < 0.6 else (0 if roll < 0.75 else r.randrange(10, 95))
        done = enrolled + timedelta(days=r.randrange(1, 45), hours=r.randrange(1, 8)) if pct == 100 else None
        months = COURSES[c][2]
        expires = done + timedelta(days=30 * months) if done and months else None
        seconds = r.randrange(900, 4 * 3600) if pct else 0
        out.append({
            "id": str(100 + c), "name": COURSES[c][1], "role": "learner",
            "enrolled_on": tlms_time(enrolled), "enrolled_on_timestamp": _stamp(enrolled),
            "completed_on": tlms_time(done) if done else "", "completed_on_timestamp": _stamp(done) or "",
            "completion_percentage": str(pct), "expired_on": tlms_time(expires) if expires else "",
            "expired_on_timestamp": _stamp(expires) or "", "total_time": f"{seconds // 3600}h {seconds % 3600 // 60}m",
            "total_time_seconds": seconds,
            "last_accessed_unit_url": f"https://{DOMAIN}.talentlms.com/unit/view/id:{2000 + c}" if pct else "",
        })
    return out


def user(seed: int, u: int, at: datetime) -> dict[str, Any]:
    """One learner account (staff from the shared workforce)."""
    s = staff_member(seed, u)
    return {
        "id": str(FIRST_USER + u), "login": s.email.split("@")[0], "first_name": s.first_name, "last_name": s.last_name,
        "email": s.email, "restrict_email": "0", "user_type": "SuperAdmin" if u == 0 else "Learner-Type",
        "timezone": "(GMT) Greenwich Mean Time, London", "language": "en-GB", "status": "active" if s.active
        else "inactive", "deactivation_date": "", "level": str(1 + u % 4), "points": str((u * 37) % 500),
        "created_on": tlms_time(datetime.combine(s.start_date, datetime.min.time(), UTC)),
        "last_updated": tlms_time(at), "last_updated_timestamp": _stamp(at),
        "avatar": f"https://{DOMAIN}.talentlms.com/pages/images/default_user.png", "bio": "", "login_key":
        f"https://{DOMAIN}.talentlms.com/index/autologin/key:{abs(hash((seed, u))) % 10**12:012d}",
    }


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _error(429, "Rate limit exceeded: 200 API calls per 5 seconds", "rate_limit_error")
    resp.headers.update({"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": "0",
                         "X-RateLimit-Reset": str(int(time.time()) + 5)})
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The TalentLMS API v1 sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "TalentLMS")
    seed = cfg.seed
    n_users = cfg.count("users", 80)
    base = datetime(2026, 10, 1, tzinfo=UTC)
    users = [user(seed, u, base + timedelta(minutes=13 * u)) for u in range(n_users)]
    progress = [enrolments(seed, u) for u in range(n_users)]
    app = FastAPI(title="TalentLMS API sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"api_key": API_KEY}
    app.state.config = {"domain": DOMAIN}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def denied(request: Request) -> Response | None:
        key, _ = basic_auth(request)
        if key != API_KEY or state.faults.revoke_tokens:
            return _error(401, "Invalid API key provided")
        return None

    def ok(body: Any) -> Response:
        resp = JSONResponse(body)
        resp.headers.update({"X-RateLimit-Limit": str(RATE_LIMIT),
                             "X-RateLimit-Remaining": str(max(0, RATE_LIMIT - state.calls % RATE_LIMIT)),
                             "X-RateLimit-Reset": str(int(time.time()) + 5)})
        return resp

    def index(arg: str, prefix: str, first: int, n: int) -> int | None:
        if not arg.startswith(prefix) or not arg[len(prefix):].isdigit():
            return None
        i = int(arg[len(prefix):]) - first
        return i if 0 <= i < n else None

    @app.get("/api/v1/users")
    async def list_users(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return ok(users)

    @app.get("/api/v1/users/{arg}")
    async def get_user(arg: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        if not arg.startswith(("id:", "email:", "username:")):
            return _error(400, "Invalid arguments provided")
        u = index(arg, "id:", FIRST_USER, n_users)
        if u is None and arg.startswith(("email:", "username:")):
            value = arg.split(":", 1)[1]
            u = next((i for i, x in enumerate(users) if value in (x["email"], x["login"])), None)
        if u is None:
            return _error(404, "The requested user does not exist")
        certs = [{"course_id": c["id"], "course_name": c["name"], "unique_id": f"{users[u]['id']}-{c['id']}",
                  "issued_date": c["completed_on"], "expiration_date": c["expired_on"], "download_url":
                  f"https://{DOMAIN}.talentlms.com/user/downloadcertification/id:{users[u]['id']}-{c['id']}"}
                 for c in progress[u] if c["completion_percentage"] == "100" and c["expired_on"]]
        return ok({**users[u], "courses": progress[u], "certifications": certs, "badges": [], "custom_badges": [],
                   "groups": [], "branches": []})

    @app.get("/api/v1/courses")
    async def list_courses(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return ok([course(i) for i in range(len(COURSES))])

    @app.get("/api/v1/courses/{arg}")
    async def get_course(arg: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        c = index(arg, "id:", 100, len(COURSES))
        if c is None:
            return _error(404, "The requested course does not exist")
        cid = str(100 + c)
        learners = [{"id": users[u]["id"], "name": f"{users[u]['first_name']} {users[u]['last_name']}",
                     **{k: v for k, v in e.items() if k not in ("id", "name", "last_accessed_unit_url")}}
                    for u in range(n_users) for e in progress[u] if e["id"] == cid]
        return ok({**course(c), "prerequisites": [], "units": [], "rules": [], "users": learners})

    return app
