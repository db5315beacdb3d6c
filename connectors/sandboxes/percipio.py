"""Skillsoft Percipio sandbox: one organisation's API (``https://api.percipio.com``, EU ``dew1-api.percipio.com``).

From the vendor notes (vendors-finance-hr.md, Percipio rows) and public clients of the API
(``martinholden-skillsoft/node-percipio-learneractivityreport``: report request body and polling;
``conductorone/baton-percipio``: users, catalog and report shapes, ``x-total-count`` and ``x-paging-request-id``):

* every call carries ``Authorization: Bearer <service account token>``; the organisation id is in the path;
* ``GET /user-management/v1/organizations/{orgId}/users?offset&max`` answers a bare array of users, the total in
  ``x-total-count``; ``updatedSince`` narrows to users changed since then (unconfirmed);
* ``GET /content-discovery/v2/organizations/{orgId}/catalog-content?offset&max&pagingRequestId`` answers a bare
  array of content items; the first page answers ``x-paging-request-id``, which later pages send back (a
  request id the sandbox does not know is refused); ``updatedSince`` as for users (unconfirmed);
* ``POST /reporting/v1/organizations/{orgId}/report-requests/learning-activity`` with ``{start, end, formatType:
  JSON, ...}`` answers ``{id, status: IN_PROGRESS}``; ``GET /reporting/v1/organizations/{orgId}/report-requests/
  {id}`` answers ``{id, status}`` while the report is built (here: the first ``report_polls`` polls) and then the
  array of learning-activity rows whose ``lastAccessDate`` falls in the window. ``/_sandbox/report`` sets how many
  polls a report takes and whether it fails (``{id, status: FAILED, error}``).

Error bodies (``{"errorCode", "message"}``), the 401 reply and the 429 reply (``Retry-After``) are the sandbox's
choice: Percipio does not publish them.
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

ORG_ID = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
TOKEN = "percipio-sandbox-service-account-7c41d2"
MAX_PAGE = 1000
DATA_FROM = datetime(2026, 9, 1, tzinfo=UTC)
DATA_DAYS = 60
COURSES = (
    ("Safeguarding Adults in Care", "Course"), ("Moving and Handling People", "Course"),
    ("Infection Prevention and Control", "Course"), ("Fire Safety Awareness", "Video"),
    ("Medication Administration Essentials", "Course"), ("Understanding Dementia", "Book"),
    ("Food Hygiene for Care Settings", "Course"), ("Basic Life Support", "Video"),
    ("Mental Capacity Act in Practice", "Course"), ("Communicating with Compassion", "Audiobook"),
    ("Equality, Diversity and Inclusion", "Course"), ("Information Governance and GDPR", "Course"),
)
STATUSES = ("COMPLETED", "COMPLETED", "COMPLETED", "STARTED", "ACTIVE", "WATCHED", "ACHIEVED")


def content_uuid(c: int) -> str:
    """A stable content UUID."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://api.percipio.com/content/{c}"))


def user_uuid(u: int) -> str:
    """A stable user UUID."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://api.percipio.com/{ORG_ID}/users/{u}"))


def _stamp(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def user(seed: int, u: int, n_users: int) -> dict[str, Any]:
    """User ``u`` of the organisation (changed inside the data window, ordered by index)."""
    s = staff_member(seed, u)
    updated = DATA_FROM + timedelta(seconds=int(u * DATA_DAYS * 86400 / max(1, n_users)))
    return {
        "id": user_uuid(u), "externalUserId": f"WC{u + 1:04d}", "loginName": s.email, "email": s.email,
        "firstName": s.first_name, "lastName": s.last_name, "jobTitle": s.job_title, "isActive": s.leaving_date is None,
        "role": "Learner", "isInstructor": False, "hasCoaching": False,
        "approvalManager": {"id": None, "email": None, "externalUserId": None},
        "customAttributes": [{"id": "site", "name": "Care home", "value": s.site}],
        "updatedAt": _stamp(updated),
    }


def activity(seed: int, i: int, n: int, n_users: int) -> dict[str, Any]:
    """Learning-activity row ``i`` (one learner and one content item), last accessed inside the data window."""
    r = rng_for(seed, "percipio.activity", i)
    u = i % n_users  # one row per (learner, content): unique while n <= n_users * len(COURSES)
    c = (i // n_users + u) % len(COURSES)
    s = staff_member(seed, u)
    title, kind = COURSES[c]
    last = DATA_FROM + timedelta(seconds=int(i * DATA_DAYS * 86400 / max(1, n)))
    first = last - timedelta(days=r.randrange(0, 20))
    status = r.choice(STATUSES)
    completed = last if status in ("COMPLETED", "ACHIEVED", "WATCHED") else None
    return {
        "userUuid": user_uuid(u), "userId": s.email, "employeeId": f"WC{u + 1:04d}", "firstName": s.first_name,
        "lastName": s.last_name, "emailAddress": s.email, "userStatus": "Active", "contentUuid": content_uuid(c),
        "contentTitle": title, "contentType": kind, "status": status, "firstAccess": _stamp(first),
        "lastAccessDate": _stamp(last), "completedDate": _stamp(completed),
        "highScore": r.choice((None, 80, 90, 100)) if completed and kind == "Course" else None,
        "durationHms": f"00:{r.randrange(5, 59):02d}:00", "languageCode": "en-GB", "audience": "ALL",
    }


def catalog_item(c: int) -> dict[str, Any]:
    """Content item ``c`` of the organisation's catalog."""
    title, kind = COURSES[c % len(COURSES)]
    edition = c // len(COURSES)
    updated = DATA_FROM - timedelta(days=200) + timedelta(hours=c * 5)
    return {
        "id": content_uuid(c), "code": f"CARE_{c:04d}", "xapiActivityId": f"https://xapi.percipio.com/xapi/{c}",
        "contentType": {"percipioType": kind.upper(), "category": kind.upper(), "displayLabel": kind,
                        "source": "Skillsoft"},
        "localeCodes": ["en-GB"],
        "localizedMetadata": [{"localeCode": "en-GB", "title": title + (f" ({edition + 1})" if edition else ""),
                               "description": f"{title} for adult social care staff."}],
        "lifecycle": {"status": "ACTIVE", "publishDate": _stamp(updated - timedelta(days=30)),
                      "lastUpdatedDate": _stamp(updated)},
        "duration": f"PT{20 + (c % 5) * 10}M", "link": f"https://willowcourt.percipio.com/courses/{content_uuid(c)}",
        "characteristics": {"isCompliance": c % 3 == 0, "hasAssessment": kind == "Course", "earnsBadge": False},
    }


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errorCode": code, "message": message}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _error(429, "TOO_MANY_REQUESTS", "Rate limit exceeded for this organization; retry later.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _page(request: Request) -> tuple[int, int] | JSONResponse:
    q = request.query_params
    try:
        offset, size = int(q.get("offset", "0")), int(q.get("max", "1000"))
    except ValueError:
        return _error(400, "INVALID_PARAMETER", "offset and max must be whole numbers")
    if offset < 0 or not 1 <= size <= MAX_PAGE:
        return _error(400, "INVALID_PARAMETER", f"offset must be 0 or more and max between 1 and {MAX_PAGE}")
    return offset, size


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Skillsoft Percipio sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Skillsoft Percipio")
    seed = cfg.seed
    n_users = cfg.count("users", 60)
    n_activity = cfg.count("learning_activity", 400)
    n_catalog = cfg.count("catalog_content", 120)
    users = [user(seed, u, n_users) for u in range(n_users)]
    rows = [activity(seed, i, n_activity, n_users) for i in range(n_activity)]
    items = [catalog_item(c) for c in range(n_catalog)]
    reports: dict[str, dict[str, Any]] = {}
    paging: set[str] = set()
    mode: dict[str, Any] = {"polls": 1, "fail": False}
    app = FastAPI(title="Skillsoft Percipio sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"bearer_token": TOKEN}
    app.state.config = {"org_id": ORG_ID, "activity_from": DATA_FROM.date().isoformat()}
    app.state.reports = reports
    app.state.paging = paging
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    @app.post("/_sandbox/report")
    async def report_mode(request: Request) -> dict[str, Any]:
        """How many polls a report stays IN_PROGRESS, and whether it ends FAILED."""
        mode.update({k: v for k, v in (await request.json()).items() if k in ("polls", "fail")})
        return dict(mode)

    @app.post("/_sandbox/touch-users")
    async def touch_users(request: Request) -> dict[str, Any]:
        """The first ``count`` users change now (a new job title), so ``updatedSince`` finds them."""
        count = int((await request.json()).get("count", 1))
        now = _stamp(datetime.now(UTC))
        for u in users[:count]:
            u.update(jobTitle="Senior Care Assistant", updatedAt=now)
        return {"touched": [u["id"] for u in users[:count]]}

    @app.post("/_sandbox/learn")
    async def learn(request: Request) -> dict[str, Any]:
        """The first ``count`` unfinished rows are completed now (learners finishing courses)."""
        count = int((await request.json()).get("count", 1))
        done: list[str] = []
        now = datetime.now(UTC)
        for row in rows:
            if len(done) >= count:
                break
            if row["completedDate"] is None:
                row.update(status="COMPLETED", completedDate=_stamp(now), lastAccessDate=_stamp(now))
                done.append(f"{row['userUuid']}:{row['contentUuid']}")
        return {"completed": done}

    def guard(request: Request, org_id: str) -> JSONResponse | None:
        if bearer(request) != TOKEN or state.faults.revoke_tokens:
            return _error(401, "UNAUTHORIZED", "Invalid or expired service account token")
        if org_id != ORG_ID:
            return _error(403, "FORBIDDEN", f"The service account has no access to organization {org_id}")
        return None

    def since_filter(request: Request) -> datetime | JSONResponse | None:
        raw = request.query_params.get("updatedSince")
        if not raw:
            return None
        parsed = _time(raw)
        return parsed if parsed is not None else _error(400, "INVALID_PARAMETER", "updatedSince must be ISO 8601")

    @app.get("/user-management/v1/organizations/{org_id}/users")
    async def list_users(org_id: str, request: Request) -> Response:
        denied = guard(request, org_id)
        if denied is not None:
            return denied
        paged = _page(request)
        if isinstance(paged, JSONResponse):
            return paged
        since = since_filter(request)
        if isinstance(since, JSONResponse):
            return since
        matching = [u for u in users if since is None or (_time(u["updatedAt"]) or DATA_FROM) >= since]
        offset, size = paged
        return JSONResponse(matching[offset:offset + size], headers={"x-total-count": str(len(matching))})

    @app.get("/content-discovery/v2/organizations/{org_id}/catalog-content")
    async def catalog(org_id: str, request: Request) -> Response:
        denied = guard(request, org_id)
        if denied is not None:
            return denied
        paged = _page(request)
        if isinstance(paged, JSONResponse):
            return paged
        since = since_filter(request)
        if isinstance(since, JSONResponse):
            return since
        request_id = request.query_params.get("pagingRequestId")
        if request_id and request_id not in paging:
            return _error(400, "INVALID_PAGING_REQUEST", f"pagingRequestId {request_id} is unknown or expired")
        if not request_id:
            request_id = str(uuid.uuid4())
            paging.add(request_id)
        matching = [c for c in items if since is None or (_time(c["lifecycle"]["lastUpdatedDate"]) or DATA_FROM) >= since]
        offset, size = paged
        return JSONResponse(matching[offset:offset + size], headers={"x-total-count": str(len(matching)),
                                                                     "x-paging-request-id": request_id})

    @app.post("/reporting/v1/organizations/{org_id}/report-requests/learning-activity")
    async def request_report(org_id: str, request: Request) -> Response:
        denied = guard(request, org_id)
        if denied is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "INVALID_REQUEST", "The request body must be JSON")
        start = _time(str(body.get("start") or "")) if isinstance(body, dict) else None
        end = _time(str(body.get("end") or "")) if isinstance(body, dict) else None
        if isinstance(body, dict) and body.get("timeFrame") and (body.get("start") or body.get("end")):
            return _error(400, "INVALID_REQUEST", "Give either start/end or timeFrame, not both")
        if start is None or end is None or end <= start:
            return _error(400, "INVALID_REQUEST", "start and end must be ISO 8601 date-times with start before end")
        if str(body.get("formatType", "JSON")).upper() != "JSON":
            return _error(400, "INVALID_REQUEST", "Only formatType JSON is answered through the API")
        report_id = str(uuid.uuid4())
        reports[report_id] = {"start": start, "end": end, "polls": 0, "need": int(mode["polls"]),
                              "fail": bool(mode["fail"])}
        return JSONResponse({"id": report_id, "status": "IN_PROGRESS"}, status_code=202)

    @app.get("/reporting/v1/organizations/{org_id}/report-requests/{report_id}")
    async def poll_report(org_id: str, report_id: str, request: Request) -> Response:
        denied = guard(request, org_id)
        if denied is not None:
            return denied
        rep = reports.get(report_id)
        if rep is None:
            return _error(404, "NOT_FOUND", f"Report request {report_id} was not found")
        rep["polls"] += 1
        if rep["polls"] <= rep["need"]:
            return JSONResponse({"id": report_id, "status": "IN_PROGRESS"})
        if rep["fail"]:
            return JSONResponse({"id": report_id, "status": "FAILED",
                                 "error": "Report generation failed: the reporting service timed out"})
        start, end = rep["start"], rep["end"]
        out = [r for r in rows if start <= (_time(r["lastAccessDate"]) or DATA_FROM) < end]
        return JSONResponse(out)

    return app
