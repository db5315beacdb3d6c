"""Paychex Flex sandbox: the partner REST API at ``https://api.paychex.com`` for one linked company.

From the vendor notes (vendors-finance-hr.md, Paychex rows and section) and the Paychex OpenAPI as published in
``konfig-sdks/paychex-python-sdk`` (paths, parameters, resources):

* ``POST /auth/oauth/v2/token`` (form: ``grant_type=client_credentials``, ``client_id``, ``client_secret``) gives
  ``{access_token, token_type: bearer, expires_in, scope}``; tokens expire (``token_ttl_seconds``);
* ``GET /companies`` (``displayid`` filter) and ``GET /companies/{companyId}``;
* ``GET /companies/{companyId}/workers``: either paging (``offset``, ``limit``) or one kind of filter
  (``givenname``+``familyname``+``legallastfour``, ``from``+``to`` on the creation date, ``employeeid``,
  ``locationid``) - "paging and filtering attributes cannot be applied together", so a filtered reply is whole;
* ``GET /workers/{workerId}``;
* ``POST /companies/{companyId}/workers`` (``application/vnd.paychex.workers.v1+json``) adds one or more
  ``IN_PROGRESS`` workers; ``givenName``, ``familyName`` and ``workerType`` are required, and several workers in
  one request each need a ``workerCorrelationId``;
* replies use the envelope ``{"metadata": {"contentItemCount", "pagination": {offset, limit, itemCount, total}},
  "content": [...], "links": [...]}``; errors are ``ErrorResource`` ``{code, description, resolution}``.

The default and largest page size (25 and 100), the 401/429 bodies and the 429 ``Retry-After`` are the sandbox's
choice: Paychex does not publish its limits.
"""

from __future__ import annotations

import secrets
import string
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
from connectors.sandboxes.handlers import client_credentials
from connectors.sandboxes.workforce import staff_member

CLIENT_ID = "l7xx5a1c0d2e3f4b5a6978"
CLIENT_SECRET = "paychex-sandbox-secret-4e6f"
COMPANY_ID = "99Z5V9BTI8J2FCGESC05"
DISPLAY_ID = "70125496"
DEFAULT_PAGE = 25
MAX_PAGE = 100
WORKER_TYPES = ("EMPLOYEE", "CONTRACTOR", "INDEPENDENT_CONTRACTOR")
MEDIA = "application/vnd.paychex.workers.v1+json"
_ALNUM = string.ascii_uppercase + string.digits


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def worker_id(i: int) -> str:
    """A Paychex-style 20-character worker id."""
    return f"00W{i:07d}PCX0SANDBX"[:20]


def worker(seed: int, i: int) -> dict[str, Any]:
    """Worker ``i`` of the sandbox company (a US operator of UK-style care homes, names from the shared pool)."""
    s = staff_member(seed, i)
    r = rng_for(seed, "paychex.workers", i)
    hired = datetime(s.start_date.year, s.start_date.month, s.start_date.day, tzinfo=UTC)
    left = s.leaving_date is not None
    return {
        "workerId": worker_id(i), "employeeId": str(1001 + i), "workerType": "EMPLOYEE",
        "employmentType": "FULL_TIME" if s.contract == "Full time" else "PART_TIME",
        "exemptionType": "NON_EXEMPT" if s.hourly else "EXEMPT",
        "birthDate": _stamp(datetime(s.date_of_birth.year, s.date_of_birth.month, s.date_of_birth.day, tzinfo=UTC)),
        "sex": "FEMALE" if s.gender == "Female" else "MALE", "hireDate": _stamp(hired),
        "clockId": str(4000 + i),
        "name": {"familyName": s.last_name.upper(), "givenName": s.first_name.upper(),
                 "preferredName": s.known_as if s.known_as != s.first_name else None},
        "locationId": "970001701620675",
        "job": {"title": s.job_title, "jobTitleId": f"00DWS906IMW2JSH8A{r.randrange(100, 999)}"},
        "organization": {"organizationId": "970000055981384", "name": s.department, "number": "2",
                         "level": "Level 2"},
        "currentStatus": {"workerStatusId": f"00DWS906IMW2JSH8B{i % 1000:03d}",
                          "statusType": "TERMINATED" if left else "ACTIVE",
                          "statusReason": "RESIGNED" if left else "HIRED"},
        "communications": [
            {"communicationId": f"00Z5V9BTINBT97UM{i % 10000:04d}", "type": "EMAIL", "usageType": "BUSINESS",
             "uri": s.email},
        ],
        "links": [{"rel": "self", "href": f"https://api.paychex.com/workers/{worker_id(i)}"}],
    }


def _error(status: int, code: str, description: str, resolution: str = "") -> JSONResponse:
    return JSONResponse({"code": code, "description": description, "resolution": resolution or
                         "Correct the request and try again."}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _error(429, "TOO_MANY_REQUESTS", "The request limit for this application has been exceeded",
                  "Wait for the time given in Retry-After, then retry.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _envelope(content: list[dict[str, Any]], *, links: list[dict[str, str]] | None = None,
              pagination: dict[str, int] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"contentItemCount": len(content)}
    if pagination is not None:
        meta["pagination"] = pagination
    return {"metadata": meta, "content": content, "links": links or []}


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Paychex Flex sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Paychex Flex")
    n = cfg.count("workers", 120)
    # (created at, worker): base workers were created on their hire date; API-created ones when posted.
    workers: list[tuple[datetime, dict[str, Any]]] = []
    for i in range(n):
        w = worker(cfg.seed, i)
        workers.append((_time(w["hireDate"]) or datetime(2012, 1, 1, tzinfo=UTC), w))
    creates: list[str] = []
    company = {"companyId": COMPANY_ID, "displayId": DISPLAY_ID, "legalName": "WILLOW COURT CARE US LLC",
               "legalId": {"legalIdType": "FEIN", "legalIdValue": "999999999"},
               "links": [{"rel": "self", "href": f"https://api.paychex.com/companies/{COMPANY_ID}"}]}
    app = FastAPI(title="Paychex Flex sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    app.state.config = {"company_id": COMPANY_ID, "display_id": DISPLAY_ID}
    app.state.creates = creates
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/auth/oauth/v2/token",))
    add_control_routes(app, state)

    @app.post("/auth/oauth/v2/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        cid, secret = client_credentials(form, request)
        if grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type", "error_description": "Only the "
                                 "client_credentials grant is supported"}, status_code=400)
        if cid != CLIENT_ID or secret != CLIENT_SECRET or state.faults.revoke_tokens:
            return JSONResponse({"error": "invalid_client", "error_description": "The given client credentials "
                                 "were not valid"}, status_code=401)
        issued = state.issue_tokens()
        return JSONResponse({"access_token": issued["access_token"], "token_type": "bearer",
                             "expires_in": cfg.token_ttl_seconds, "scope": "oob"})

    def unauthorised(request: Request) -> JSONResponse | None:
        if state.token_valid(bearer(request)):
            return None
        resp = _error(401, "UNAUTHORIZED", "The access token is missing, invalid or expired",
                      "Request a new access token from /auth/oauth/v2/token.")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="api.paychex.com", error="invalid_token"'
        return resp

    def media_ok(request: Request, kind: str) -> JSONResponse | None:
        accept = request.headers.get("accept", "*/*")
        if any(t in accept for t in ("*/*", "application/json", f"application/vnd.paychex.{kind}.v1+json")):
            return None
        return _error(406, "NOT_ACCEPTABLE", f"Media type {accept} is not supported",
                      f"Accept application/json or application/vnd.paychex.{kind}.v1+json.")

    def reply(body: dict[str, Any], kind: str, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, media_type=f"application/vnd.paychex.{kind}.v1+json")

    def company_or_404(company_id: str) -> JSONResponse | None:
        if company_id == COMPANY_ID:
            return None
        return _error(404, "NOT_FOUND", f"Company {company_id} is not linked to this application",
                      "Ask the company to grant your application access in Paychex Flex.")

    @app.get("/companies")
    async def companies(request: Request) -> Response:
        denied = unauthorised(request) or media_ok(request, "companies")
        if denied is not None:
            return denied
        display = request.query_params.get("displayid")
        found = [company] if not display or display == DISPLAY_ID else []
        return reply(_envelope(found), "companies")

    @app.get("/companies/{company_id}")
    async def one_company(company_id: str, request: Request) -> Response:
        denied = unauthorised(request) or media_ok(request, "companies") or company_or_404(company_id)
        return denied if denied is not None else reply(_envelope([company]), "companies")

    @app.get("/companies/{company_id}/workers")
    async def list_workers(company_id: str, request: Request) -> Response:
        denied = unauthorised(request) or media_ok(request, "workers") or company_or_404(company_id)
        if denied is not None:
            return denied
        q = request.query_params
        filters = {k: q[k] for k in ("givenname", "familyname", "legallastfour", "from", "to", "employeeid",
                                     "locationid") if q.get(k)}
        paging = {k: q[k] for k in ("offset", "limit") if q.get(k)}
        if filters and paging:
            return _error(400, "INVALID_REQUEST", "Paging and filtering attributes cannot be applied together",
                          "Send either offset/limit or one set of filters.")
        if filters:
            return reply(_envelope(_filtered(filters)), "workers")
        try:
            offset, limit = int(paging.get("offset", "0")), int(paging.get("limit", str(DEFAULT_PAGE)))
        except ValueError:
            return _error(400, "INVALID_REQUEST", "offset and limit must be whole numbers")
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            return _error(400, "INVALID_REQUEST", f"offset must be 0 or more and limit between 1 and {MAX_PAGE}")
        page = [w for _, w in workers[offset:offset + limit]]
        base = f"https://api.paychex.com/companies/{company_id}/workers"
        links = [{"rel": "self", "href": f"{base}?offset={offset}&limit={limit}"}]
        if offset + limit < len(workers):
            links.append({"rel": "next", "href": f"{base}?offset={offset + limit}&limit={limit}"})
        return reply(_envelope(page, links=links, pagination={"offset": offset, "limit": limit, "itemCount":
                                                              len(page), "total": len(workers)}), "workers")

    def _filtered(filters: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        start = _time(filters["from"]) if "from" in filters else None
        end = _time(filters["to"]) if "to" in filters else None
        for created, w in workers:
            if (start is not None and created < start) or (end is not None and created > end):
                continue
            if "employeeid" in filters and w.get("employeeId") != filters["employeeid"]:
                continue
            if "locationid" in filters and w.get("locationId") != filters["locationid"]:
                continue
            name = w.get("name") or {}
            if "givenname" in filters and str(name.get("givenName", "")).lower() != filters["givenname"].lower():
                continue
            if "familyname" in filters and str(name.get("familyName", "")).lower() != filters["familyname"].lower():
                continue
            out.append(w)
        return out

    @app.get("/workers/{wid}")
    async def one_worker(wid: str, request: Request) -> Response:
        denied = unauthorised(request) or media_ok(request, "workers")
        if denied is not None:
            return denied
        found = [w for _, w in workers if w["workerId"] == wid]
        if not found:
            return _error(404, "NOT_FOUND", f"Worker {wid} was not found")
        return reply(_envelope(found), "workers")

    @app.post("/companies/{company_id}/workers")
    async def add_workers(company_id: str, request: Request) -> Response:
        denied = unauthorised(request) or company_or_404(company_id)
        if denied is not None:
            return denied
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype not in ("application/json", MEDIA):
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", f"Content type {ctype or '(none)'} is not supported",
                          f"Send {MEDIA}.")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "INVALID_REQUEST", "The request body is not valid JSON")
        batch = body if isinstance(body, list) else [body]
        if not batch or not all(isinstance(b, dict) for b in batch):
            return _error(400, "INVALID_REQUEST", "The body must be a worker or a list of workers")
        problems = []
        for b in batch:
            name = b.get("name") if isinstance(b.get("name"), dict) else {}
            missing = [f for f, v in (("givenName", name.get("givenName")), ("familyName", name.get("familyName")),
                                      ("workerType", b.get("workerType"))) if not v]
            if missing:
                problems.append(f"{', '.join(missing)} required")
            elif b.get("workerType") not in WORKER_TYPES:
                problems.append(f"workerType must be one of {', '.join(WORKER_TYPES)}")
            if len(batch) > 1 and not b.get("workerCorrelationId"):
                problems.append("workerCorrelationId is required when adding several workers")
            if b.get("employeeId") and any(w.get("employeeId") == b["employeeId"] for _, w in workers):
                problems.append(f"employeeId {b['employeeId']} is already in use")
        if problems:
            return _error(400, "INVALID_WORKER", "; ".join(problems),
                          "Correct the worker data; Paychex Flex holds most other rules.")
        made = []
        now = datetime.now(UTC)
        for b in batch:
            wid = "00" + "".join(secrets.choice(_ALNUM) for _ in range(18))
            w = {k: v for k, v in b.items() if k not in ("workerId", "laborAssignmentId", "jobId", "locationId")}
            w.update(workerId=wid, currentStatus={"workerStatusId": "00DWS906IMW2JSH8AQJ9",
                                                  "statusType": "IN_PROGRESS", "statusReason": "NEW_HIRE"},
                     links=[{"rel": "self", "href": f"https://api.paychex.com/workers/{wid}"}])
            workers.append((now, w))
            creates.append(wid)
            made.append(w)
            now += timedelta(microseconds=1)
        return reply(_envelope(made), "workers", status=201)

    return app
