"""SAP SuccessFactors sandbox: the OData v2 API of a customer tenant (``https://{api-server}/odata/v2``).

OData v2 as SuccessFactors serves it (SAP Business Accelerator Hub; vendors-finance-hr.md 2.5): JSON replies
``{"d": {"results": [...], "__next": "..."}}`` with ``__metadata`` per entity and MS-JSON dates
(``/Date(1514764800000)/``, ``/Date(1514764800000+0000)/`` for ``lastModifiedDateTime``); ``$top``/``$skip``
with server-driven paging (``__next`` carrying a ``$skiptoken``) when more remain, at most 1000 a page;
``$filter=lastModifiedDateTime gt datetimeoffset'2026-10-01T00:00:00Z'``, ``$orderby``, ``$select``; updates by
``MERGE`` (``POST`` with ``X-HTTP-Method: MERGE``) answered ``204``. Errors are OData errors,
``{"error": {"code": "...", "message": {"lang": "en-US", "value": "..."}}}``.

Auth here is HTTP Basic with ``user@companyId`` (SuccessFactors' legacy scheme, still accepted by many tenants);
production tenants normally use OAuth 2.0 with a SAML 2.0 bearer assertion, which this sandbox does not issue.
The 401 and 429 bodies are the sandbox's choice in the OData error shape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
)
from connectors.sandboxes.handlers import basic_auth
from connectors.sandboxes.workforce import staff_member

COMPANY_ID = "WILLOWCOUR"
USERNAME = "carehub_api"
PASSWORD = "Sandbox-SF-2026!"
FIRST_USER = 10001
MAX_TOP = 1000
MERGEABLE = frozenset({"firstName", "lastName", "email", "title", "department", "location", "division",
                       "cellPhone", "nickname", "status"})
_FILTER = re.compile(r"^\s*lastModifiedDateTime\s+(gt|ge)\s+datetime(?:offset)?'([^']+)'\s*$")


def ms_json(dt: datetime, offset: bool = False) -> str:
    """``/Date(ms)/`` (``/Date(ms+0000)/`` for DateTimeOffset properties)."""
    ms = int(dt.timestamp() * 1000)
    return f"/Date({ms}+0000)/" if offset else f"/Date({ms})/"


def sf_user(seed: int, i: int, at: datetime, base: str) -> dict[str, Any]:
    """Entity ``User`` for staff member ``i``."""
    s = staff_member(seed, i)
    uid = str(FIRST_USER + i)
    day = datetime.combine(s.start_date, datetime.min.time(), UTC)
    return {
        "__metadata": {"uri": f"{base}/odata/v2/User('{uid}')", "type": "SFOData.User"},
        "userId": uid, "username": s.email.split("@")[0], "empId": f"WC{i + 1:04d}", "firstName": s.first_name,
        "lastName": s.last_name, "nickname": s.known_as, "email": s.email, "cellPhone": s.mobile,
        "gender": "M" if s.gender == "Male" else "F", "dateOfBirth": ms_json(datetime.combine(s.date_of_birth,
                                                                                               datetime.min.time(), UTC)),
        "hireDate": ms_json(day), "title": s.job_title, "department": s.department, "division": "Care Services",
        "location": s.site, "city": s.town, "zipCode": s.postcode, "country": "United Kingdom",
        "status": "t" if s.active else "f", "timeZone": "Europe/London", "defaultLocale": "en_GB",
        "manager": {"__deferred": {"uri": f"{base}/odata/v2/User('{uid}')/manager"}},
        "lastModifiedDateTime": ms_json(at, offset=True),
    }


EMPLOYMENT_TYPES = {"Full time": "FT", "Part time": "PT", "Bank": "BANK", "Zero hours": "ZH"}


def sf_empjob(seed: int, i: int, at: datetime, base: str) -> dict[str, Any]:
    """Entity ``EmpJob``: the current job information record of staff member ``i``."""
    s = staff_member(seed, i)
    uid = str(FIRST_USER + i)
    start = datetime.combine(s.start_date, datetime.min.time(), UTC)
    return {
        "__metadata": {"uri": f"{base}/odata/v2/EmpJob(seqNumber=1L,startDate=datetime'{start:%Y-%m-%dT%H:%M:%S}',"
                              f"userId='{uid}')", "type": "SFOData.EmpJob"},
        "userId": uid, "startDate": ms_json(start), "seqNumber": "1", "jobTitle": s.job_title,
        "department": s.department, "division": "Care Services", "location": s.site, "company": "WCCG_UK",
        "costCenter": f"CC-{s.site[:3].upper()}", "employmentType": EMPLOYMENT_TYPES.get(s.contract, "PT"),
        "standardHours": f"{s.contracted_hours:.2f}", "fte": f"{min(1.0, s.contracted_hours / 37.5):.2f}",
        "managerId": None if i == 0 else str(FIRST_USER), "emplStatus": "A" if s.active else "T",
        "endDate": ms_json(datetime(9999, 12, 31, tzinfo=UTC)), "lastModifiedDateTime": ms_json(at, offset=True),
    }


def _odata_error(status: int, code: str, value: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": {"lang": "en-US", "value": value}}}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _odata_error(429, "TOO_MANY_REQUESTS", "Too many requests for this tenant. Retry later.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The SuccessFactors OData v2 sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "SAP SuccessFactors")
    seed = cfg.seed
    host = "https://api.successfactors.sandbox"
    users = Dataset(cfg.count("users", 250), lambda i, at: sf_user(seed, i, at, host), lambda i: str(FIRST_USER + i),
                    lambda v: int(v) - FIRST_USER if v.isdigit() else None, step=timedelta(minutes=11))
    jobs = Dataset(cfg.count("users", 250), lambda i, at: sf_empjob(seed, i, at, host), lambda i: str(FIRST_USER + i),
                   lambda v: int(v) - FIRST_USER if v.isdigit() else None, step=timedelta(minutes=13))
    state.datasets = {"users": users, "jobs": jobs}
    skiptokens: dict[str, tuple[int, str, str]] = {}  # token -> (next offset, filter, entity)
    app = FastAPI(title="SAP SuccessFactors OData v2 sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"username": USERNAME, "password": PASSWORD}
    app.state.config = {"api_server": "api.successfactors.sandbox", "company_id": COMPANY_ID}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def denied(request: Request) -> Response | None:
        if basic_auth(request) != (f"{USERNAME}@{COMPANY_ID}", PASSWORD) or state.faults.revoke_tokens:
            return _odata_error(401, "LGN0011", "[LGN0011]Invalid user name or password, or the user is locked.")
        return None

    def since_of(text: str) -> datetime | Response | None:
        if not text:
            return None
        m = _FILTER.match(text)
        if not m:
            return _odata_error(400, "COE_PROPERTY_NOT_FILTERABLE",
                                f"[COE0021]Invalid filter expression: {text}")
        try:
            when = datetime.fromisoformat(m.group(2).replace("Z", "+00:00"))
        except ValueError:
            return _odata_error(400, "COE_GENERAL_BAD_REQUEST", f"Invalid DateTimeOffset literal: {m.group(2)}")
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return when + timedelta(milliseconds=1) if m.group(1) == "gt" else when

    @app.get("/odata/v2/User")
    async def list_users(request: Request) -> Response:
        return listing(request, users, "User")

    @app.get("/odata/v2/EmpJob")
    async def list_jobs(request: Request) -> Response:
        return listing(request, jobs, "EmpJob")

    def listing(request: Request, data: Dataset, entity: str) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        token = q.get("$skiptoken")
        try:
            top = min(MAX_TOP, max(1, int(q.get("$top", str(MAX_TOP)))))
            skip = max(0, int(q.get("$skip", "0")))
        except ValueError:
            return _odata_error(400, "COE_GENERAL_BAD_REQUEST", "$top and $skip must be whole numbers")
        filt = q.get("$filter", "")
        if token is not None:
            if token not in skiptokens or skiptokens[token][2] != entity:
                return _odata_error(400, "COE_INVALID_SKIPTOKEN", "The $skiptoken is invalid or has expired")
            skip, filt, _ = skiptokens[token]
        since = since_of(filt)
        if isinstance(since, Response):
            return since
        rows, total = data.page(since, skip, top)
        fields = [f for f in q.get("$select", "").split(",") if f]
        if fields:
            rows = [{k: v for k, v in r.items() if k in fields or k == "__metadata"} for r in rows]
        body: dict[str, Any] = {"results": rows}
        if q.get("$inlinecount") == "allpages":
            body["__count"] = str(total)
        if skip + len(rows) < total:
            nxt = f"sf{len(skiptokens) + 1:06d}"
            skiptokens[nxt] = (skip + len(rows), filt, entity)
            keep = {k: v for k, v in q.items() if k in ("$format", "$select", "$orderby")}
            body["__next"] = f"{request.base_url}odata/v2/{entity}?" + urlencode({**keep, "$top": str(top),
                                                                                 "$skiptoken": nxt}, safe="$")
        return JSONResponse({"d": body})

    @app.get("/odata/v2/User('{user_id}')")
    async def get_user(user_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        rec = users.get(user_id)
        if rec is None:
            return _odata_error(404, "COE_RESOURCE_NOT_FOUND", f"[COE0018]Entity User with key {user_id} not found")
        return JSONResponse({"d": rec})

    @app.post("/odata/v2/User('{user_id}')")
    async def merge_user(user_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        if request.headers.get("x-http-method", "").upper() != "MERGE":
            return _odata_error(405, "COE_METHOD_NOT_ALLOWED", "POST on an entity needs X-HTTP-Method: MERGE")
        rec = users.get(user_id)
        if rec is None:
            return _odata_error(404, "COE_RESOURCE_NOT_FOUND", f"[COE0018]Entity User with key {user_id} not found")
        try:
            changes = await request.json()
        except ValueError:
            return _odata_error(400, "COE_GENERAL_BAD_REQUEST", "The request body is not valid JSON")
        if not isinstance(changes, dict):
            return _odata_error(400, "COE_GENERAL_BAD_REQUEST", "The request body must be one entity")
        changes = {k: v for k, v in changes.items() if k != "__metadata"}
        unknown = sorted(set(changes) - MERGEABLE)
        if unknown:
            return _odata_error(400, "COE_PROPERTY_NOT_UPDATABLE", f"[COE0019]Property {unknown[0]} of entity User "
                                "cannot be updated")
        if "email" in changes and "@" not in str(changes["email"]):
            return _odata_error(400, "COE_INVALID_VALUE", f"[COE0007]Invalid email address: {changes['email']}")
        new = {**rec, **changes}
        if new != rec:
            at = users.put(user_id, new)
            new["lastModifiedDateTime"] = ms_json(at, offset=True)
        return Response(status_code=204)

    return app
