"""EMIS-X Partner API (PAPI) sandbox: the residents' GP records as EMIS Open ``MedicalRecord38`` JSON.

Faithful to the Partner API OpenAPI 1.2 as mirrored by ``api-evangelist/emis-health``
(``openapi/emis-health-partner-api-openapi.json``, a copy of ``…/partner/swagger/v1/swagger.json``):

* ``GET /api/v1/patient/GetPatientDemographics?patientNumber=`` (scope ``papi-subjects.read``): the
  ``registration`` part of the record (names, date of birth, sex, NHS number, address, practice);
* ``GET /api/v1/medicalRecord/GetCodedRecord?patientNumber=`` (``papi-cr.read``): the clinically coded
  items only, ``eventList`` (problems and values) and ``allergyList``; no medication and no registration,
  as the spec says;
* ``GET /api/v1/medicalRecord/GetMedicalRecord?patientNumber=`` (``papi-cr.read``): the whole record,
  registration and ``medicationList`` included;
* every call needs ``Authorization: Bearer <JWT>`` and the ``applicationId`` header (the "party key" the
  assurance lead gives a partner); ``patientNumber`` is an int32. Errors are the spec's
  ``PartnerApi.Service.Model.ErrorResponse`` (``messageId``, ``text``, ``issue{severity, code, details,
  diagnostics}``, ``legacyOutcome``) with 400, 401 or 404; throttling (not in the spec, unconfirmed) is a
  429 with ``Retry-After`` in the same envelope;
* ``POST /identity/b2c_1a_clientcredentials/oauth2/token``: the Azure AD B2C client-credentials grant of
  the EMIS-X identity provider (client id and secret, ``scope`` from ``papi-*``); access tokens are
  HS256 JWTs with ``scp`` and expire after ``token_ttl_seconds`` (an hour by default, as EMIS documents).

Codes are kept as EMIS Open gives them: ``code{value, scheme, term, mapCode, mapScheme}`` with scheme 8
(``SNOMED``, the ninth value of the EMIS Open scheme list) and the Read v2 code as the map code; drugs are an
``IntegerCodeType`` EMIS preparation id with the dm+d code as map code. Residents are patients of a practice
with EMIS patient numbers from :data:`FIRST_PATIENT_NUMBER`; their NHS numbers are from the 999 test range.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from typing import Any

import jwt
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
    nhs_number,
    pools,
    rng_for,
    stable_uuid,
)
from connectors.sandboxes.handlers import client_credentials

CLIENT_ID = "carehub-papi-sandbox-client"
CLIENT_SECRET = "papi-sandbox-secret-6c1f0e"
APPLICATION_ID = "b7d1e2f0-5a44-4c1e-9a1b-carehub0papi"
TOKEN_PATH = "/identity/b2c_1a_clientcredentials/oauth2/token"
ISSUER = "https://identity.stg.emis-x.uk/b205162c-c95a-4639-8076-bb1fcb152d2b/v2.0/"
SIGNING_KEY = "emis-sandbox-signing-key-not-a-secret-0123456789"
TOKEN_TTL = 3600
FIRST_PATIENT_NUMBER = 500101
SCOPES = ("papi-appt.read", "papi-appt.write", "papi-cr.read", "papi-cr.write", "papi-subjects.read",
          "papi-config.read", "papi-searches.read")
SNOMED = 8  # EMIS Open StringCodeType scheme: READ2, READ4, EMISCLINICAL, ..., SNOMED (index 8)
PRACTICE_ODS = "B86041"

# (SNOMED CT concept, Read v2 code, term)
PROBLEMS = (
    ("44054006", "C10F.", "Type 2 diabetes mellitus"),
    ("38341003", "G20..", "Hypertensive disorder"),
    ("52448006", "Eu02z", "Dementia"),
    ("49436004", "G573.", "Atrial fibrillation"),
    ("396275006", "N05..", "Osteoarthritis"),
    ("13645005", "H3...", "Chronic obstructive lung disease"),
)
# (SNOMED CT concept, Read v2 code, term, unit, low, high)
VALUES = (
    ("271649006", "2469.", "Systolic blood pressure", "mmHg", 105, 165),
    ("27113001", "22A..", "Body weight", "kg", 45, 95),
)
# (SNOMED CT concept, term, reaction)
ALLERGIES = (
    ("91936005", "Allergy to penicillin", "Rash"),
    ("300916003", "Latex allergy", "Contact dermatitis"),
    ("91935009", "Allergy to peanuts", "Swelling of lips"),
    ("294505008", "Allergy to amoxicillin", "Urticaria"),
)
# (EMIS preparation id, dm+d code, term, dosage, quantity, units)
MEDICINES = (
    ("4409", "322236009", "Paracetamol 500mg tablets", "Two tablets up to four times a day", 100.0, "tablet"),
    ("4713", "319283006", "Amlodipine 5mg tablets", "One tablet once a day", 28.0, "tablet"),
    ("2157", "317896006", "Digoxin 125microgram tablets", "One tablet once a day", 28.0, "tablet"),
    ("9834", "324357002", "Metformin 500mg tablets", "One tablet twice a day with food", 56.0, "tablet"),
    ("3120", "317335000", "Omeprazole 20mg gastro-resistant capsules", "One capsule each morning", 28.0, "capsule"),
)
MEDICATION_STATUS_ACTIVE = 3  # EMIS Open Status C, N, P, A, R, G: index 3 is "A"
PRESCRIPTION_REPEAT = 1  # ACUTE, REPEAT, AUTOMATIC, ""


def patient_numbers(config: SandboxConfig) -> list[str]:
    """The EMIS patient numbers of the sandbox's residents, in order."""
    return [str(FIRST_PATIENT_NUMBER + 3 * i) for i in range(config.count("patients", 12))]


def chart_sizes(i: int) -> dict[str, int]:
    """How many items resident ``i`` has on record (the tests count against this)."""
    return {"allergies": i % 3, "problems": 1 + i % 2, "values": 1 + (1 if i % 3 == 0 else 0),
            "medications": 1 + i % 4}


def _uk(d: date) -> str:
    return d.strftime("%d/%m/%Y")


def _ident(seed: int, kind: str, i: int) -> dict[str, Any]:
    return {"dbid": str(10_000 + i), "refID": str(i + 1), "guid": stable_uuid(seed, f"emis.{kind}", i).upper()}


def _clinician(seed: int, k: int) -> dict[str, Any]:
    return {"dbid": str(2001 + k % 4), "refID": str(2001 + k % 4),
            "guid": stable_uuid(seed, "emis.users", k % 4).upper()}


def registration(seed: int, i: int) -> dict[str, Any]:
    """The ``RegistrationType`` of resident ``i``."""
    r = rng_for(seed, "emis.patients", i)
    p = pools(seed)
    female = r.random() < 0.65
    born = date(1928, 1, 1) + timedelta(days=r.randrange(0, 33 * 365))
    home = CARE_HOMES[i % len(CARE_HOMES)]
    number = FIRST_PATIENT_NUMBER + 3 * i
    return {
        "dbid": str(number), "refID": str(number), "guid": stable_uuid(seed, "emis.patients", i).upper(),
        "title": r.choice(("Mrs", "Miss", "Ms")) if female else "Mr",
        "firstNames": r.choice(p.first_names), "callingName": "", "familyName": r.choice(p.last_names),
        "dateOfBirth": _uk(born), "sex": "F" if female else "M",
        "nhsNumber": nhs_number(rng_for(seed, "emis.nhs", i)),
        "address": {"houseNameFlat": home, "street": r.choice(p.streets).replace("\n", ", "),
                    "town": r.choice(p.towns), "county": "", "postCode": r.choice(p.postcodes)},
        "homeTelephone": r.choice(p.phones), "organisationNACS": PRACTICE_ODS,
        "usualGpID": _clinician(seed, i), "registeredGpID": _clinician(seed, i),
        "residentialInstitute": home, "dateAdded": _uk(date(2019, 1, 1) + timedelta(days=r.randrange(0, 2000))),
        "dead": 0, "deadSpecified": True,
    }


def _code(value: str, term: str, read2: str | None = None) -> dict[str, Any]:
    code: dict[str, Any] = {"value": value, "scheme": SNOMED, "schemeSpecified": True, "term": term}
    if read2:
        code.update(mapCode=read2, mapScheme="READ2")
    return code


def _events(seed: int, i: int) -> list[dict[str, Any]]:
    sizes = chart_sizes(i)
    r = rng_for(seed, "emis.events", i)
    out: list[dict[str, Any]] = []
    for k in range(sizes["problems"]):
        concept, read2, term = PROBLEMS[(i + 2 * k) % len(PROBLEMS)]
        onset = date(2010, 1, 1) + timedelta(days=r.randrange(0, 5000))
        out.append({**_ident(seed, "events", i * 10 + k), "assignedDate": _uk(onset), "datePart": 0,
                    "datePartSpecified": True, "authorID": _clinician(seed, k), "displayTerm": term,
                    "descriptiveText": "", "code": _code(concept, term, read2),
                    "problem": {"problemStatus": 1 if k == 0 else 0, "problemStatusSpecified": True,
                                "significance": 1 if k == 0 else 0, "significanceSpecified": True}})
    for k in range(sizes["values"]):
        concept, read2, term, unit, low, high = VALUES[k % len(VALUES)]
        taken = date(2024, 1, 1) + timedelta(days=r.randrange(0, 600))
        out.append({**_ident(seed, "events", i * 10 + 5 + k), "assignedDate": _uk(taken),
                    "assignedTime": f"{r.randrange(8, 18):02d}:{r.choice(('00', '15', '30', '45'))}",
                    "authorID": _clinician(seed, k + 1), "displayTerm": term, "code": _code(concept, term, read2),
                    "numericValue": {"value": float(r.randrange(low, high)), "valueSpecified": True,
                                     "units": unit}})
    return out


def _allergies(seed: int, i: int) -> list[dict[str, Any]]:
    r = rng_for(seed, "emis.allergies", i)
    out = []
    for k in range(chart_sizes(i)["allergies"]):
        concept, term, reaction = ALLERGIES[(i + k) % len(ALLERGIES)]
        out.append({**_ident(seed, "allergies", i * 10 + k),
                    "assignedDate": _uk(date(2005, 1, 1) + timedelta(days=r.randrange(0, 6000))),
                    "authorID": _clinician(seed, k), "displayTerm": term, "descriptiveText": reaction,
                    "code": _code(concept, term)})
    return out


def _medications(seed: int, i: int) -> list[dict[str, Any]]:
    r = rng_for(seed, "emis.medications", i)
    out = []
    for k in range(chart_sizes(i)["medications"]):
        prep, dmd, term, dosage, quantity, units = MEDICINES[(i + k) % len(MEDICINES)]
        started = date(2021, 1, 1) + timedelta(days=r.randrange(0, 900))
        out.append({**_ident(seed, "medications", i * 10 + k), "authorisedUserID": _clinician(seed, k),
                    "assignedDate": _uk(started), "dateLastIssue": _uk(started + timedelta(days=28 * (k + 1))),
                    "dosage": dosage, "quantity": quantity, "quantitySpecified": True, "quantityUnits": units,
                    "drug": {"item": {"value": prep, "scheme": "EMISPREPARATION", "term": term, "mapCode": dmd,
                                      "mapScheme": "SNOMED"}},
                    "prescriptionType": PRESCRIPTION_REPEAT, "prescriptionTypeSpecified": True,
                    "status": MEDICATION_STATUS_ACTIVE, "statusSpecified": True, "issueCount": str(k + 1),
                    "rxReviewDate": _uk(started + timedelta(days=365))})
    return out


def error_response(status: int, code: str, message: str, *, legacy: int = 0,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The spec's ``PartnerApi.Service.Model.ErrorResponse``."""
    body = {"messageId": str(uuid.uuid4()), "text": {"status": "generated", "div": f"<div>{message}</div>"},
            "issue": {"severity": 0, "code": code, "details": {"text": message}, "diagnostics": message},
            "legacyOutcome": legacy}
    return JSONResponse(body, status_code=status, headers=headers or {})


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return error_response(429, "throttled", "Too many requests for this application; retry after the "
                                            "period in Retry-After", headers=headers)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The PAPI sandbox app."""
    cfg = config or SandboxConfig(token_ttl_seconds=TOKEN_TTL)
    state = new_state(cfg, "EMIS-X Partner API")
    seed = cfg.seed
    numbers = patient_numbers(cfg)
    index = {int(n): i for i, n in enumerate(numbers)}
    scopes_of: dict[str, set[str]] = {}
    state.extra.update(patients=numbers, scopes=scopes_of, calls_by_path={})
    app = FastAPI(title="EMIS-X Partner API sandbox (CareHub)")
    app.state.sandbox = state
    # Practice mode: the settings and credentials a connection to this sandbox uses.
    app.state.config = {"application_id": APPLICATION_ID, "patient_numbers": ", ".join(numbers)}
    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/identity/",))
    add_control_routes(app, state)

    @app.post(TOKEN_PATH, response_model=None)
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        client_id, secret = client_credentials(form, request)
        if grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": f"AADB2C90086: The supplied grant_type [{grant}] is not "
                                                      "supported."}, status_code=400)
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client",
                                 "error_description": "AADB2C90081: The specified client_secret does not match "
                                                      "the expected value for this client."}, status_code=401)
        asked = set(str(form.get("scope", "")).split())
        granted = {s for s in asked if s in SCOPES}
        if not granted:
            return JSONResponse({"error": "invalid_scope",
                                 "error_description": "AADB2C90205: This application does not have sufficient "
                                                      "permissions against this web resource to perform the "
                                                      "operation."}, status_code=400)
        now = int(time.time())
        ttl = cfg.token_ttl_seconds
        access = jwt.encode({"iss": ISSUER, "aud": CLIENT_ID, "azp": CLIENT_ID, "sub": CLIENT_ID, "iat": now,
                             "nbf": now, "exp": now + ttl, "scp": " ".join(sorted(granted)),
                             "jti": str(uuid.uuid4())}, SIGNING_KEY, algorithm="HS256")
        state.access_tokens[access] = time.time() + ttl
        scopes_of[access] = granted
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": ttl,
                             "not_before": now, "expires_on": now + ttl})

    def check(request: Request, scope: str) -> tuple[Response | None, int]:
        """The caller's problem with this call (401/400/404 reply), or the resident's index."""
        calls: dict[str, int] = state.extra["calls_by_path"]
        calls[request.url.path] = calls.get(request.url.path, 0) + 1
        tok = bearer(request)
        if not state.token_valid(tok):
            return error_response(401, "security", "Authentication token not valid: the bearer token is "
                                                   "missing, expired or revoked", legacy=1), -1
        if request.headers.get("applicationId") != APPLICATION_ID:
            missing = "applicationId" not in request.headers
            return error_response(401, "security", "Authentication token not valid: the applicationId header "
                                  + ("is missing" if missing else "does not match a registered partner "
                                                                   "application"), legacy=1), -1
        if scope not in scopes_of.get(tok or "", set()):
            return error_response(401, "forbidden", f"Authentication token not valid: the token lacks the scope "
                                                    f"{scope}", legacy=1), -1
        raw = request.query_params.get("patientNumber", "")
        if not raw.lstrip("-").isdigit() or not -(2**31) <= int(raw) < 2**31:
            return error_response(400, "invalid", f"Bad request: patientNumber must be a 32-bit whole number, "
                                                  f"got '{raw}'", legacy=2), -1
        i = index.get(int(raw))
        if i is None:
            return error_response(404, "not-found", f"Not found: no patient with patientNumber {raw} at this "
                                                    f"organisation", legacy=3), -1
        return None, i

    @app.get("/api/v1/patient/GetPatientDemographics", response_model=None)
    async def demographics(request: Request) -> Response:
        problem, i = check(request, "papi-subjects.read")
        if problem is not None:
            return problem
        return JSONResponse({"registration": registration(seed, i), "patientID": numbers[i]})

    @app.get("/api/v1/medicalRecord/GetCodedRecord", response_model=None)
    async def coded(request: Request) -> Response:
        problem, i = check(request, "papi-cr.read")
        if problem is not None:
            return problem
        return JSONResponse({"patientID": numbers[i], "eventList": _events(seed, i),
                             "allergyList": _allergies(seed, i)})

    @app.get("/api/v1/medicalRecord/GetMedicalRecord", response_model=None)
    async def full(request: Request) -> Response:
        problem, i = check(request, "papi-cr.read")
        if problem is not None:
            return problem
        return JSONResponse({"registration": registration(seed, i), "patientID": numbers[i],
                             "eventList": _events(seed, i), "allergyList": _allergies(seed, i),
                             "medicationList": _medications(seed, i)})

    return app
