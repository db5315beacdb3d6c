"""Cornerstone OnDemand sandbox: a portal's REST services (``https://{corp}.csod.com/services/api``).

From csod.dev (Authentication; Transcript Search; Transcript and Task (Legacy)) and the notes in
vendors-finance-hr.md 2.8:

* ``POST /services/api/oauth2/token`` with a JSON body ``{clientId, clientSecret, grantType: client_credentials,
  scope}`` gives ``{access_token, expires_in: 3600, scope, token_type: "Bearer"}``; the app acts as the portal
  user it is bound to, and each API needs its scope (``transcript:read``).
* ``GET /services/api/LOTranscript/TranscriptSearch`` with ``ModificationStartDate``/``ModificationEndDate``
  (UTC; at most 24 hours apart; the last 24 hours when both are left out), optional ``UserId`` and ``LOType``,
  ``pageNumber`` from 1, 50 records a page; only active users' transcripts.

The reply envelope (``{"status": "200", "timeStamp", "data": [...]}``), the transcript field names and the error
bodies (``{"status", "timeStamp", "error": {"errorId", "message", "code", "description"}}``) follow the legacy
REST services' style but are not confirmed field by field; the 429 reply is the sandbox's choice.
"""

from __future__ import annotations

import uuid
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

CLIENT_ID = "csod-carehub-4f1b2c"
CLIENT_SECRET = "csod-sandbox-secret-9d8e7f6a"
CORP = "willowcourt"
SCOPES = ("transcript:read", "employee:read")
PAGE_SIZE = 50
DATA_FROM = datetime(2026, 10, 1, tzinfo=UTC)
DATA_DAYS = 10
TRAINING = (
    ("Safeguarding Adults Level 2", "Online Course", 36), ("Moving and Handling Practical", "Event", 12),
    ("Infection Prevention and Control", "Online Course", 12), ("Fire Marshal Training", "Event", 12),
    ("Medication Competency Assessment", "Online Course", 12), ("Dementia Care Pathway", "Curriculum", 36),
    ("Food Safety Level 2", "Online Course", 36), ("Basic Life Support and Choking", "Event", 12),
    ("Mental Capacity Act and DoLS", "Online Course", 36), ("Care Certificate", "Curriculum", None),
)
STATUSES = ("Completed", "Completed", "Completed", "In Progress", "Registered", "Past Due")


def lo_id(t: int) -> str:
    """A stable learning object id (Cornerstone uses GUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://{CORP}.csod.com/lo/{t}"))


def transcript(seed: int, i: int, n: int, n_users: int) -> dict[str, Any]:
    """Transcript row ``i``, last modified inside the sandbox's ten-day data window (ordered by index)."""
    r = rng_for(seed, "csod.transcripts", i)
    u = r.randrange(n_users)
    s = staff_member(seed, u)
    t = r.randrange(len(TRAINING))
    title, kind, months = TRAINING[t]
    modified = DATA_FROM + timedelta(seconds=int(i * DATA_DAYS * 86400 / max(1, n)))
    registered = modified - timedelta(days=r.randrange(5, 90))
    status = r.choice(STATUSES)
    completed = modified if status == "Completed" else None
    due = registered + timedelta(days=30)

    def stamp(dt: datetime | None) -> str | None:
        return None if dt is None else dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    return {
        "UserId": f"WC{u + 1:04d}", "UserFirstName": s.first_name, "UserLastName": s.last_name, "UserEmail": s.email,
        "LoId": lo_id(t), "Title": title, "LoType": kind, "Status": status,
        "RegistrationDate": stamp(registered), "DueDate": stamp(due), "CompletionDate": stamp(completed),
        "ExpiryDate": stamp(completed + timedelta(days=30 * months)) if completed and months else None,
        "Score": r.choice((None, 80, 85, 90, 100)) if completed and kind == "Online Course" else None,
        "TrainingHours": round(r.choice((0.5, 1, 1.5, 3, 6)), 1), "IsRemoved": False, "IsArchived": False,
        "LastModifiedDate": stamp(modified),
    }


def _envelope(data: Any, status: int = 200) -> dict[str, Any]:
    return {"status": str(status), "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "data": data}


def _error(status: int, message: str, description: str = "") -> JSONResponse:
    body = {"status": str(status), "timeStamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "error": {"errorId": str(uuid.uuid4()), "message": message, "code": str(status),
                      "description": description or message}}
    return JSONResponse(body, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _error(429, "Too many requests", "The API call limit for this portal has been reached; retry later.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Cornerstone OnDemand sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Cornerstone OnDemand")
    seed = cfg.seed
    n = cfg.count("transcripts", 600)
    n_users = cfg.count("users", 80)
    rows = [transcript(seed, i, n, n_users) for i in range(n)]
    stamps = [_time(r["LastModifiedDate"]) for r in rows]
    app = FastAPI(title="Cornerstone OnDemand sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    app.state.config = {"corp": CORP, "transcripts_from": DATA_FROM.date().isoformat()}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/services/api/oauth2/",))
    add_control_routes(app, state)
    scopes: dict[str, set[str]] = {}

    @app.post("/_sandbox/complete")
    async def complete(request: Request) -> dict[str, Any]:
        """Mark the first ``count`` unfinished transcripts completed now (a learner finishing training)."""
        count = int((await request.json()).get("count", 1))
        done: list[str] = []
        for i, row in enumerate(rows):
            if len(done) >= count:
                break
            if row["Status"] != "Completed":
                now = datetime.now(UTC)
                row.update(Status="Completed", CompletionDate=now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                           LastModifiedDate=now.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
                stamps[i] = _time(row["LastModifiedDate"])
                done.append(f"{row['UserId']}:{row['LoId']}")
        return {"completed": done}

    @app.post("/services/api/oauth2/token")
    async def token(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid_request", "error_description": "Request body must be JSON"},
                                status_code=400)
        grant = str(body.get("grantType", "")) if isinstance(body, dict) else ""
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type", "error_description": "grantType must be "
                                 "client_credentials"}, status_code=400)
        if body.get("clientId") != CLIENT_ID or body.get("clientSecret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client", "error_description": "Client authentication failed"},
                                status_code=401)
        asked = set(str(body.get("scope", "")).split())
        if asked - set(SCOPES):
            return JSONResponse({"error": "invalid_scope", "error_description": f"Scopes not granted to this "
                                 f"application: {' '.join(sorted(asked - set(SCOPES)))}"}, status_code=400)
        issued = state.issue_tokens()
        scopes[issued["access_token"]] = asked
        return JSONResponse({"access_token": issued["access_token"], "expires_in": 3600,
                             "scope": " ".join(sorted(asked)), "token_type": "Bearer"})

    @app.get("/services/api/LOTranscript/TranscriptSearch")
    async def transcript_search(request: Request) -> Response:
        tok = bearer(request)
        if not state.token_valid(tok):
            return _error(401, "Invalid or expired access token")
        if "transcript:read" not in scopes.get(tok or "", set()):
            return _error(403, "Insufficient scope", "This call needs the transcript:read scope.")
        q = request.query_params
        try:
            start = _time(q["ModificationStartDate"]) if q.get("ModificationStartDate") else None
            end = _time(q["ModificationEndDate"]) if q.get("ModificationEndDate") else None
            page = max(1, int(q.get("pageNumber", "1")))
        except ValueError:
            return _error(400, "Invalid request parameter", "Dates must be ISO 8601 in UTC; pageNumber a number.")
        now = datetime.now(UTC)
        if start is None and end is None:
            start, end = now - timedelta(hours=24), now
        elif end is None:
            assert start is not None
            end = start + timedelta(hours=24)
        elif start is None:
            start = end - timedelta(hours=24)
        if end - start > timedelta(hours=24) or end < start:
            return _error(400, "Invalid date range", "The time range cannot exceed 24 hours.")
        user, kind = q.get("UserId"), q.get("LOType")
        found = [r for r, ts in zip(rows, stamps, strict=True) if start <= ts < end
                 and (not user or r["UserId"] == user) and (not kind or r["LoType"] == kind)]
        return JSONResponse(_envelope(found[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]))

    return app
