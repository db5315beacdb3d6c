"""Workday sandbox: a customer tenant's REST API and RaaS custom reports (``https://{host}``).

From the Airbyte Workday connector (``source-workday`` manifest, REST fixtures ``workers.json``,
``workers_time_off_entries.json``, RaaS samples) and vendors-finance-hr.md 2.5:

* ``POST /ccx/oauth2/{tenant}/token``: an *API Client for Integrations* refreshes its access token with the
  non-expiring refresh token it was issued (``grant_type=refresh_token``, client id/secret in Basic); the refresh
  token does not rotate.
* ``GET /ccx/api/v1/{tenant}/workers?limit=100&offset=0`` (``limit`` at most 100): ``{"data": [...], "total": n}``,
  each worker ``{id, descriptor, href, isManager, primaryWorkEmail, primaryWorkPhone, businessTitle,
  primarySupervisoryOrganization{id, descriptor, href}}``; ``GET .../workers/{id}`` one worker.
* ``GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json``: a custom report as
  ``{"Report_Entry": [...]}``, all rows in one reply; prompts are the report's own (here ``Updated_From``).

Error bodies follow Workday REST's ``{"error": "...", "errors": [{"error": "..."}]}``; the 429 reply (Workday
publishes no limits) is the sandbox's choice.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    bearer,
    new_state,
    rng_for,
)
from connectors.sandboxes.handlers import basic_auth
from connectors.sandboxes.workforce import staff_member

TENANT = "willowcourt_preview1"
CLIENT_ID = "MzQ5ZTc0YjEtY2FyZWh1Yi13b3JrZGF5"
CLIENT_SECRET = "wd-sandbox-secret-7f3e9a1c5b"
REFRESH_TOKEN = "wd-refresh-integration-0c9b8a7d6e5f"
REPORT_OWNER = "ISU_CareHub"
REPORT = "CareHub_Time_Off_Entries"
MAX_LIMIT = 100
TIME_OFF_TYPES = (("Holiday (Days)", "Days"), ("Holiday (Days)", "Days"), ("Sickness (Hours)", "Hours"),
                  ("Compassionate Leave (Days)", "Days"), ("Training Leave (Hours)", "Hours"))
STATUSES = ("Approved", "Approved", "Approved", "Submitted", "Cancelled")


def wid(kind: str, i: int) -> str:
    """A Workday ID: 32 hex characters."""
    return hashlib.md5(f"{kind}:{i}".encode(), usedforsecurity=False).hexdigest()


def worker(seed: int, i: int, host: str) -> dict[str, Any]:
    """A worker as the REST ``workers`` resource shows it."""
    s = staff_member(seed, i)
    home = CARE_HOMES.index(s.site) if s.site in CARE_HOMES else 0
    org = wid("org", home)
    return {
        "id": wid("worker", i), "descriptor": s.full_name, "href": f"{host}/ccx/api/v1/{TENANT}/workers/"
        f"{wid('worker', i)}", "isManager": i % 15 == 0, "primaryWorkEmail": s.email, "primaryWorkPhone": s.mobile,
        "businessTitle": s.job_title, "primarySupervisoryOrganization": {
            "id": org, "descriptor": f"{s.site} ({s.department})",
            "href": f"{host}/ccx/api/v1/{TENANT}/supervisoryOrganizations/{org}"},
    }


def time_off_entry(seed: int, i: int, n_workers: int) -> dict[str, Any]:
    """Row ``i`` of the time-off report (one row per day or part day of leave); updated in index order."""
    r = rng_for(seed, "workday.timeoff", i)
    w = r.randrange(n_workers)
    s = staff_member(seed, w)
    kind, unit = r.choice(TIME_OFF_TYPES)
    day = date(2026, 1, 5) + timedelta(days=r.randrange(0, 320))
    updated = datetime(2026, 9, 1, 8, tzinfo=UTC) + timedelta(minutes=17 * i)
    return {
        "Time_Off_Entry_ID": wid("timeoff", i), "Worker": s.full_name, "Worker_WID": wid("worker", w),
        "Employee_ID": f"{21000 + w}", "Time_Off_Type": kind, "Date": day.isoformat(),
        "Units": str(r.choice((1, 1, 0.5)) if unit == "Days" else r.choice((4, 6, 7.5, 12))), "Unit_of_Time": unit,
        "Status": r.choice(STATUSES), "Comment": r.choice(("", "", "Family wedding", "GP appointment", "")),
        "Last_Updated": updated.strftime("%Y-%m-%dT%H:%M:%S.000+00:00"),
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "errors": [{"error": message}]}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _error(429, "Too many requests; retry later")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Workday tenant sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Workday")
    seed = cfg.seed
    host = "https://wd3-impl-services1.workday.com"
    n_workers = cfg.count("workers", 180)
    workers = [worker(seed, i, host) for i in range(n_workers)]
    entries = [time_off_entry(seed, i, n_workers) for i in range(cfg.count("time_off", 400))]
    app = FastAPI(title="Workday tenant sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
    app.state.config = {"host": host.removeprefix("https://"), "tenant": TENANT, "report_owner": REPORT_OWNER,
                        "report_name": REPORT}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/ccx/oauth2/",))
    add_control_routes(app, state)

    @app.post("/ccx/oauth2/{tenant}/token")
    async def token(tenant: str, request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if tenant != TENANT or basic_auth(request) != (CLIENT_ID, CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if grant != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if form.get("refresh_token") != REFRESH_TOKEN or state.faults.revoke_tokens:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid refresh token"},
                                status_code=400)
        access = secrets.token_urlsafe(32)
        state.access_tokens[access] = time.time() + cfg.token_ttl_seconds
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": cfg.token_ttl_seconds,
                             "refresh_token": REFRESH_TOKEN})

    def denied(request: Request, tenant: str) -> Response | None:
        if not state.token_valid(bearer(request)):
            return _error(401, "Invalid access token")
        if tenant != TENANT:
            return _error(404, f"Tenant {tenant} not found")
        return None

    @app.get("/ccx/api/v1/{tenant}/workers")
    async def list_workers(tenant: str, request: Request) -> Response:
        if (d := denied(request, tenant)) is not None:
            return d
        q = request.query_params
        try:
            limit = int(q.get("limit", "20"))
            offset = max(0, int(q.get("offset", "0")))
        except ValueError:
            return _error(400, "Invalid request: limit and offset must be numbers")
        if not 1 <= limit <= MAX_LIMIT:
            return _error(400, f"Invalid request: limit must be between 1 and {MAX_LIMIT}")
        term = q.get("search", "").lower()
        found = [w for w in workers if term in w["descriptor"].lower()] if term else workers
        return JSONResponse({"data": found[offset:offset + limit], "total": len(found)})

    @app.get("/ccx/api/v1/{tenant}/workers/{worker_id}")
    async def get_worker(tenant: str, worker_id: str, request: Request) -> Response:
        if (d := denied(request, tenant)) is not None:
            return d
        found = next((w for w in workers if w["id"] == worker_id), None)
        return JSONResponse(found) if found else _error(404, f"Invalid ID: {worker_id}")

    @app.get("/ccx/service/customreport2/{tenant}/{owner}/{report}")
    async def custom_report(tenant: str, owner: str, report: str, request: Request) -> Response:
        if (d := denied(request, tenant)) is not None:
            return d
        if (owner, report) != (REPORT_OWNER, REPORT):
            return _error(404, f"Report {owner}/{report} not found or not shared with this account")
        q = request.query_params
        if q.get("format") != "json":
            return Response('<?xml version="1.0" encoding="UTF-8"?><wd:Report_Data xmlns:wd="urn:com.workday.report/'
                            f'{REPORT}"/>', media_type="application/xml")
        rows = entries
        if q.get("Updated_From"):
            try:
                since = datetime.fromisoformat(q["Updated_From"].replace("Z", "+00:00"))
            except ValueError:
                return _error(400, "Invalid request: Updated_From must be a date and time")
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            rows = [e for e in entries if datetime.fromisoformat(e["Last_Updated"]) > since]
        return JSONResponse({"Report_Entry": rows})

    return app
