"""ADP Workforce Now sandbox: the Marketplace Workers API (``https://api.adp.com``) and token service
(``https://accounts.adp.com/auth/oauth/v2/token``).

From ADP's public material (vendors-finance-hr.md 2.2: Nango and Jitterbit ADP pages, the community OpenAPI
``ballerina-platform/openapi-connectors`` ``adp.workers``, ``adpllc/marketplace-sample-payloads``): every call,
the token call included, presents the ADP-signed client certificate (mutual TLS); the token is a
``client_credentials`` grant with ``client_id``/``client_secret`` (no scopes: the API products enabled for the
client decide access); ``GET /hr/v2/workers`` is OData-style (``$top``, ``$skip``, ``$count``, ``$filter``,
``$select``) and answers ``{"workers": [...], "meta": {"totalNumber": n}}``, with **204 No Content** once
``$skip`` passes the end; workers carry ``associateOID``, ``workerID``, ``person.legalName``, ``workerDates``,
``workerStatus``, ``workAssignments`` and ``businessCommunication``; the ``roleCode`` header says whose view
the caller takes (``practitioner``).

Mutual TLS is enforced by the server the app runs in: :func:`connectors.sandboxes.mtls.serve_mtls` runs this
app under uvicorn with ``CERT_REQUIRED`` and a test CA, so a caller without the certificate never completes the
handshake. Mounted in process (demo mode, ``httpx.ASGITransport``) there is no TLS and no certificate check.
The error body (``confirmMessage`` with ``resourceMessages[].processMessages[].userMessage.messageTxt``) follows
ADP's published samples in shape; codes and texts are the sandbox's.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime
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
)
from connectors.sandboxes.workforce import staff_member

CLIENT_ID = "9f0c3b5e-adp1-4c2d-8e7f-carehubsbx01"
CLIENT_SECRET = "adp-sandbox-secret-2b4d6f8h"
MAX_TOP = 100


def aoid(i: int) -> str:
    """An associate OID as ADP writes them (``G3`` plus 14 characters)."""
    return "G3" + hashlib.sha1(f"aoid:{i}".encode(), usedforsecurity=False).hexdigest()[:14].upper()


def adp_worker(seed: int, i: int) -> dict[str, Any]:
    """Worker ``i`` in ADP's shape."""
    s = staff_member(seed, i)
    status = "Active" if s.active else "Terminated"
    pay = ({"hourlyRateAmount": {"amountValue": s.hourly_rate, "currencyCode": "GBP"}} if s.hourly
           else {"annualRateAmount": {"amountValue": s.salary, "currencyCode": "GBP"}})
    return {
        "associateOID": aoid(i),
        "workerID": {"idValue": f"WC{i + 1:04d}", "schemeCode": {"codeValue": "Employee Number"}},
        "person": {
            "legalName": {"givenName": s.first_name, "familyName1": s.last_name, "formattedName":
                          f"{s.last_name}, {s.first_name}", "nickName": s.known_as},
            "birthDate": s.date_of_birth.isoformat(),
            "genderCode": {"codeValue": s.gender[:1].upper(), "shortName": s.gender},
            "governmentIDs": [{"idValue": s.ni_number, "nameCode": {"codeValue": "NIN",
                                                                   "shortName": "National Insurance Number"}}],
            "legalAddress": {"lineOne": s.address1, "cityName": s.town, "countrySubdivisionLevel1": {
                "codeValue": s.county}, "postalCode": s.postcode, "countryCode": "GB"},
        },
        "workerDates": {"originalHireDate": s.start_date.isoformat(),
                        **({"terminationDate": s.leaving_date.isoformat()} if s.leaving_date else {})},
        "workerStatus": {"statusCode": {"codeValue": status}},
        "businessCommunication": {"emails": [{"emailUri": s.email}],
                                  "mobiles": [{"formattedNumber": s.mobile}]},
        "workAssignments": [{
            "itemID": f"{aoid(i)}-1", "primaryIndicator": True, "positionID": f"POS{i + 1:05d}",
            "jobTitle": s.job_title, "hireDate": s.start_date.isoformat(),
            "assignmentStatus": {"statusCode": {"codeValue": "A" if s.active else "T",
                                                "shortName": status}},
            "workerTypeCode": {"codeValue": "F" if s.contract == "Full time" else "P", "shortName": s.contract},
            "standardHours": {"hoursQuantity": s.contracted_hours, "unitCode": {"codeValue": "W"}},
            "payCycleCode": {"codeValue": "04", "shortName": "Monthly"},
            "baseRemuneration": {**pay, "effectiveDate": s.start_date.isoformat()},
            "homeWorkLocation": {"nameCode": {"codeValue": s.site[:10].upper().replace(" ", ""),
                                              "shortName": s.site}},
            "homeOrganizationalUnits": [{"nameCode": {"codeValue": s.department.upper(), "shortName": s.department},
                                         "typeCode": {"codeValue": "Department"}}],
        }],
    }


def _confirm(status: int, text: str) -> JSONResponse:
    body = {"confirmMessage": {
        "confirmMessageID": {"idValue": str(uuid.uuid4())},
        "createDateTime": datetime.now(UTC).isoformat(timespec="seconds"),
        "requestStatusCode": {"codeValue": "failed"},
        "protocolStatusCode": {"codeValue": str(status)},
        "resourceMessages": [{"processMessages": [{"userMessage": {"messageTxt": text}}]}],
    }}
    return JSONResponse(body, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _confirm(429, "Too many requests. Please retry after some time.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The ADP Workforce Now sandbox app (mutual TLS comes from the server it runs in)."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "ADP")
    seed = cfg.seed
    workers = [adp_worker(seed, i) for i in range(cfg.count("workers", 150))]
    app = FastAPI(title="ADP Workforce Now sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    app.state.config = {}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/auth/",))
    add_control_routes(app, state)

    @app.post("/auth/oauth/v2/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type", "error_description":
                                 "grant_type must be client_credentials"}, status_code=400)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client", "error_description": "The given client credentials "
                                 "were not valid"}, status_code=401)
        access = secrets.token_hex(16)
        state.access_tokens[access] = time.time() + 3600
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "scope": "api"})

    def denied(request: Request) -> Response | None:
        if not state.token_valid(bearer(request)):
            return _confirm(401, "Invalid or expired access token")
        return None

    @app.get("/hr/v2/workers")
    async def list_workers(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        try:
            top = int(q.get("$top", str(MAX_TOP)))
            skip = max(0, int(q.get("$skip", "0")))
        except ValueError:
            return _confirm(400, "$top and $skip must be whole numbers")
        if not 1 <= top <= MAX_TOP:
            return _confirm(400, f"$top must be between 1 and {MAX_TOP}")
        found = workers
        if q.get("$filter"):
            wanted = q["$filter"].replace(" ", "")
            if wanted not in ("workers/workerStatus/statusCode/codeValueeq'Active'",
                              "workers/workerStatus/statusCode/codeValueeq'Terminated'"):
                return _confirm(400, f"Unsupported $filter: {q['$filter']}")
            code = wanted.rsplit("'", 2)[1]
            found = [w for w in workers if w["workerStatus"]["statusCode"]["codeValue"] == code]
        page = found[skip:skip + top]
        if not page:
            return Response(status_code=204)  # ADP answers an exhausted list with No Content
        meta = {"totalNumber": len(found)} if q.get("$count") == "true" else {}
        return JSONResponse({"workers": page, "meta": meta})

    @app.get("/hr/v2/workers/{associate_oid}")
    async def get_worker(associate_oid: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        found = next((w for w in workers if w["associateOID"] == associate_oid), None)
        return JSONResponse({"workers": [found]}) if found else _confirm(404, "Worker not found")

    return app
