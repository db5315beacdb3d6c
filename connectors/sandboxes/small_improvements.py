"""Small Improvements sandbox: the REST API v2 (``https://app.small-improvements.com/api/v2``).

Paths and auth from the vendor's springfox Swagger as split by ``api-evangelist/small-improvements``
(``review-cycles-resource``, ``reviews-resource``; BearerAuth "personal access token generated from user
profile settings"): ``GET /v2/users``, ``GET /v2/review-cycles`` and ``GET /v2/review-cycles/{cycleId}/reviews``,
each a plain JSON array without paging. The Swagger leaves the DTOs (``ReviewCycleListDto``, ``ReviewListDto``)
without properties, so the field names here are the sandbox's own reading of the product and are not confirmed.
API access is granted by Small Improvements on request; the API is offered as-is. Errors: Spring Boot's
``{"timestamp", "status", "error", "message", "path"}``; the 429 reply is the sandbox's choice.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    bearer,
    new_state,
    rng_for,
)
from connectors.sandboxes.workforce import staff_member

TOKEN = "si-pat-sandbox-3c2b1a0f9e8d"
CYCLES = (("Annual Review 2025", "ARCHIVED", datetime(2025, 2, 3, tzinfo=UTC)),
          ("Probation Reviews 2026", "ACTIVE", datetime(2026, 1, 12, tzinfo=UTC)),
          ("Annual Review 2026", "ACTIVE", datetime(2026, 2, 2, tzinfo=UTC)))
RATINGS = (("EXCEEDS", "Exceeds expectations"), ("MEETS", "Meets expectations"), ("MEETS", "Meets expectations"),
           ("PARTIALLY", "Partially meets expectations"))
SUMMARIES = ("A calm, caring presence on the unit; residents and families trust them.",
             "Strong on infection control; to develop confidence in care planning.",
             "Excellent handovers and record keeping; ready for senior training.",
             "Attendance has improved; keep building rapport with residents living with dementia.")


def si_id(kind: str, i: int) -> str:
    """A Small Improvements style id (22 characters)."""
    return hashlib.sha1(f"si:{kind}:{i}".encode(), usedforsecurity=False).hexdigest()[:22]


def si_user(seed: int, i: int) -> dict[str, Any]:
    """A user of the company account."""
    s = staff_member(seed, i)
    return {"id": si_id("user", i), "name": s.full_name, "firstName": s.first_name, "lastName": s.last_name,
            "email": s.email, "title": s.job_title, "department": s.department, "location": s.site,
            "employeeId": f"WC{i + 1:04d}", "managerId": None if i == 0 else si_id("user", 0),
            "hireDate": s.start_date.isoformat(), "active": s.active}


def si_review(seed: int, c: int, u: int) -> dict[str, Any]:
    """The review of user ``u`` in cycle ``c`` (manager and self parts)."""
    r = rng_for(seed, f"si.review.{c}", u)
    name, state, start = CYCLES[c]
    done = state == "ARCHIVED" or r.random() < 0.5
    completed = start + timedelta(days=r.randrange(7, 40), hours=r.randrange(9, 17))
    code, title = r.choice(RATINGS)
    return {
        "id": si_id(f"review.{c}", u), "cycleId": si_id("cycle", c), "cycleName": name,
        "reviewee": {"id": si_id("user", u), "name": staff_member(seed, u).full_name},
        "manager": {"id": si_id("user", 0), "name": staff_member(seed, 0).full_name},
        "status": "COMPLETED" if done else r.choice(("NOT_STARTED", "IN_PROGRESS")),
        "managerRating": {"code": code, "title": title} if done else None,
        "managerSummary": r.choice(SUMMARIES) if done else None,
        "selfReviewDone": done or r.random() < 0.5, "shared": done, "signed": done and r.random() < 0.8,
        "completedDate": completed.strftime("%Y-%m-%dT%H:%M:%S.000Z") if done else None,
    }


def _spring_error(request: Request, status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"), "status": status,
                         "error": error, "message": message, "path": request.url.path}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = JSONResponse({"status": 429, "error": "Too Many Requests", "message": "Slow down"}, status_code=429)
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Small Improvements API sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Small Improvements")
    seed = cfg.seed
    n = cfg.count("users", 50)
    users = [si_user(seed, i) for i in range(n)]
    cycles = [{"id": si_id("cycle", c), "name": name, "state": st, "startDate": at.date().isoformat(),
               "reviewCount": n - 1} for c, (name, st, at) in enumerate(CYCLES)]
    reviews = {si_id("cycle", c): [si_review(seed, c, u) for u in range(1, n)] for c in range(len(CYCLES))}
    app = FastAPI(title="Small Improvements API sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"token": TOKEN}
    app.state.config = {}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def denied(request: Request) -> Response | None:
        if bearer(request) != TOKEN or state.faults.revoke_tokens:
            return _spring_error(request, 401, "Unauthorized", "Invalid or revoked personal access token")
        return None

    @app.get("/api/v2/users")
    async def list_users(request: Request) -> Response:
        return denied(request) or JSONResponse(users)

    @app.get("/api/v2/review-cycles")
    async def list_cycles(request: Request) -> Response:
        return denied(request) or JSONResponse(cycles)

    @app.get("/api/v2/review-cycles/{cycle_id}/reviews")
    async def list_reviews(cycle_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        if cycle_id not in reviews:
            return _spring_error(request, 404, "Not Found", f"No review cycle {cycle_id}")
        return JSONResponse(reviews[cycle_id])

    return app
