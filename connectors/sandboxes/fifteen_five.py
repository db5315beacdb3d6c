"""15Five sandbox: the 15Five public API (``https://my.15five.com/api/public``).

From vendors-finance-hr.md 2.9 (third-party summaries: ``api-evangelist/15five``, osano): an API key from
15Five's integrations settings sent as a bearer token; Django REST Framework pages ``{"count", "next",
"previous", "results"}`` driven by ``page``/``page_size``, ``next`` being an absolute URL; 5 requests a second
per IP, with **429 and Retry-After** beyond it; plain HTTP answered with a 301 to HTTPS. Resources served:
``/user/`` and ``/report/`` (weekly check-ins: the person's pulse 1-5, submission and manager-review times,
the reviewer). Field names are as the third-party summaries give them and are not confirmed against 15Five's
own reference; DRF's ``{"detail": ...}`` error body is used for 401/404.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
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

API_KEY = "15five-sandbox-key-8b7c6d5e4f3a"
FIRST_USER = 4101
FIRST_REPORT = 900_001
MAX_PAGE_SIZE = 100
HIGHLIGHTS = ("Supported a new starter through their first night shift.",
              "Ran a reminiscence session that residents loved.", "Completed my medication competency.",
              "Short-staffed on Tuesday but every resident got their care on time.",
              "Helped a family settle their mum in on admission day.")


def user(seed: int, i: int) -> dict[str, Any]:
    """A 15Five user for staff member ``i``."""
    s = staff_member(seed, i)
    return {"id": FIRST_USER + i, "first_name": s.first_name, "last_name": s.last_name, "email": s.email,
            "title": s.job_title, "is_active": s.active, "employee_id": f"WC{i + 1:04d}",
            "reviewer": None if i == 0 else {"id": FIRST_USER, "url": f"/api/public/user/{FIRST_USER}/"},
            "location": s.site, "start_date": s.start_date.isoformat(),
            "create_ts": "2024-02-01T09:00:00Z"}


def report(seed: int, i: int, n_users: int) -> dict[str, Any]:
    """Check-in ``i``: one person's weekly report (users take turns week by week)."""
    r = rng_for(seed, "15five.report", i)
    u = 1 + i % max(1, n_users - 1)
    week = date(2026, 1, 5) + timedelta(weeks=i // max(1, n_users - 1))
    submitted = datetime.combine(week + timedelta(days=4), datetime.min.time(), UTC) + timedelta(hours=r.randrange(9, 20))
    reviewed = submitted + timedelta(days=r.randrange(1, 4)) if r.random() < 0.8 else None
    return {
        "id": FIRST_REPORT + i, "user": {"id": FIRST_USER + u, "url": f"/api/public/user/{FIRST_USER + u}/"},
        "reviewer": {"id": FIRST_USER, "url": f"/api/public/user/{FIRST_USER}/"},
        "start_date": week.isoformat(), "end_date": (week + timedelta(days=6)).isoformat(),
        "pulse": r.choice((3, 4, 4, 5, 2)), "submit_ts": submitted.isoformat().replace("+00:00", "Z"),
        "reviewed_ts": reviewed.isoformat().replace("+00:00", "Z") if reviewed else None,
        "is_draft": False, "highlights": r.choice(HIGHLIGHTS),
        "update_ts": (reviewed or submitted).isoformat().replace("+00:00", "Z"),
    }


def _throttle(state: SandboxState) -> Response:
    resp = JSONResponse({"detail": "Request was throttled. Expected available in 1 second."}, status_code=429)
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The 15Five public API sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "15Five")
    seed = cfg.seed
    n_users = cfg.count("users", 40)
    users = [user(seed, i) for i in range(n_users)]
    reports = [report(seed, i, n_users) for i in range(cfg.count("reports", 300))]
    app = FastAPI(title="15Five public API sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"api_key": API_KEY}
    app.state.config = {}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def page(request: Request, rows: list[dict[str, Any]]) -> Response:
        if request.headers.get("x-forwarded-proto") == "http":
            return Response(status_code=301, headers={"Location": str(request.url.replace(scheme="https"))})
        if bearer(request) != API_KEY or state.faults.revoke_tokens:
            return JSONResponse({"detail": "Invalid token."}, status_code=401)
        q = request.query_params
        try:
            number = max(1, int(q.get("page", "1")))
            size = min(MAX_PAGE_SIZE, max(1, int(q.get("page_size", "25"))))
        except ValueError:
            return JSONResponse({"detail": "Invalid page."}, status_code=404)
        last = max(1, -(-len(rows) // size))
        if number > last:
            return JSONResponse({"detail": "Invalid page."}, status_code=404)

        def link(n: int) -> str | None:
            return str(request.url.include_query_params(page=n, page_size=size)) if 1 <= n <= last else None

        return JSONResponse({"count": len(rows), "next": link(number + 1), "previous": link(number - 1),
                             "results": rows[(number - 1) * size:number * size]})

    @app.get("/api/public/user/")
    async def list_users(request: Request) -> Response:
        return page(request, users)

    @app.get("/api/public/report/")
    async def list_reports(request: Request) -> Response:
        return page(request, reports)

    return app
