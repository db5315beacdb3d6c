"""Culture Amp sandbox: the read-only Culture Amp Public API (``https://api.cultureamp.com/v1``).

From vendors-finance-hr.md 2.9 (third-party material: ``api-evangelist/culture-amp``, unified.to): OAuth 2.0
client credentials at ``/v1/oauth2/token`` (client id and secret from Culture Amp's API settings, Basic auth);
resources ``/employees``, ``/performance-cycles`` and ``/manager-reviews``; responses are paged (about 1 MB a
page) with a next-page path in the body; throttling answers 429 (or 503) with Retry-After. The body shape
(``{"data": [...], "pagination": {"nextPath": ...}}``), the manager review fields and the error body
(``{"errors": [{"status", "title", "detail"}]}``) are modelled on Culture Amp's JSON:API-like style and are not
confirmed field by field.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

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
from connectors.sandboxes.handlers import basic_auth
from connectors.sandboxes.workforce import staff_member

CLIENT_ID = "ca-carehub-sandbox-client"
CLIENT_SECRET = "ca-sandbox-secret-6e5d4c3b2a"
PAGE_SIZE = 50
CYCLES = (("2025 Annual Performance Review", "closed", datetime(2025, 4, 1, tzinfo=UTC)),
          ("2026 Mid-Year Review", "active", datetime(2026, 9, 1, tzinfo=UTC)))
RATINGS = (("Not yet meeting expectations", 1), ("Meeting expectations", 2), ("Meeting expectations", 2),
           ("Exceeding expectations", 3))
FEEDBACK = ("Brings warmth to every shift; residents ask for them by name.",
            "Reliable on medication rounds; next step is mentoring new carers.",
            "Care notes need to be completed before handover; agreed a plan in supervision.",
            "Has grown into the senior role and leads the floor calmly.")


def ca_id(kind: str, i: int) -> str:
    """A UUID as Culture Amp uses them."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cultureamp:{kind}:{i}"))


def employee(seed: int, i: int) -> dict[str, Any]:
    """An employee as the HRIS sync put them into Culture Amp."""
    s = staff_member(seed, i)
    return {"id": ca_id("employee", i), "employeeIdentifier": f"WC{i + 1:04d}", "name": s.full_name,
            "preferredName": s.known_as, "email": s.email, "startDate": s.start_date.isoformat(),
            "endDate": s.leaving_date.isoformat() if s.leaving_date else None,
            "demographics": [{"name": "Department", "value": s.department}, {"name": "Location", "value": s.site},
                             {"name": "Job Title", "value": s.job_title}],
            "updatedAt": "2026-10-01T09:00:00Z"}


def manager_review(seed: int, c: int, u: int) -> dict[str, Any]:
    """The manager review of employee ``u`` in cycle ``c``."""
    r = rng_for(seed, f"cultureamp.review.{c}", u)
    name, state, start = CYCLES[c]
    done = state == "closed" or r.random() < 0.55
    completed = start + timedelta(days=r.randrange(5, 30), hours=r.randrange(9, 17))
    title, value = r.choice(RATINGS)
    return {
        "id": ca_id(f"review.{c}", u), "employee": {"id": ca_id("employee", u)},
        "manager": {"id": ca_id("employee", 0)},
        "performanceCycle": {"id": ca_id("cycle", c), "name": name},
        "status": "complete" if done else "incomplete",
        "ratingQuestionResponses": [{"question": "Overall performance", "ratingBucket": {
            "title": title, "value": value}}] if done else [],
        "openTextResponses": [{"question": "What feedback do you have for them?", "text": r.choice(FEEDBACK)}]
        if done else [],
        "completedAt": completed.strftime("%Y-%m-%dT%H:%M:%SZ") if done else None,
        "updatedAt": (completed if done else start).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _errors(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse({"errors": [{"status": str(status), "title": title, "detail": detail}]}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _errors(429, "Too Many Requests", "Rate limit exceeded; retry after the time in Retry-After.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Culture Amp Public API sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Culture Amp")
    seed = cfg.seed
    n = cfg.count("employees", 70)
    employees = [employee(seed, i) for i in range(n)]
    cycles = [{"id": ca_id("cycle", c), "name": name, "state": st, "startDate": at.date().isoformat()}
              for c, (name, st, at) in enumerate(CYCLES)]
    reviews = [manager_review(seed, c, u) for c in range(len(CYCLES)) for u in range(1, n)]
    app = FastAPI(title="Culture Amp Public API sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    app.state.config = {}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/v1/oauth2/",))
    add_control_routes(app, state)

    @app.post("/v1/oauth2/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if basic_auth(request) != (CLIENT_ID, CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client", "error_description": "Client authentication failed"},
                                status_code=401)
        if grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        access = secrets.token_urlsafe(32)
        state.access_tokens[access] = time.time() + cfg.token_ttl_seconds
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": cfg.token_ttl_seconds})

    def page(request: Request, rows: list[dict[str, Any]], path: str) -> Response:
        if not state.token_valid(bearer(request)):
            return _errors(401, "Unauthorized", "The access token is missing, invalid or expired.")
        cursor = request.query_params.get("cursor")
        start = 0
        if cursor:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except ValueError:
                return _errors(400, "Bad Request", "The cursor is not valid.")
        chunk = rows[start:start + PAGE_SIZE]
        nxt = None
        if start + PAGE_SIZE < len(rows):
            token = base64.urlsafe_b64encode(str(start + PAGE_SIZE).encode()).decode()
            nxt = f"{path}?{urlencode({'cursor': token})}"
        return JSONResponse({"data": chunk, "pagination": {"nextPath": nxt}})

    @app.get("/v1/employees")
    async def list_employees(request: Request) -> Response:
        return page(request, employees, "/v1/employees")

    @app.get("/v1/performance-cycles")
    async def list_cycles(request: Request) -> Response:
        return page(request, cycles, "/v1/performance-cycles")

    @app.get("/v1/manager-reviews")
    async def list_reviews(request: Request) -> Response:
        return page(request, reviews, "/v1/manager-reviews")

    return app
