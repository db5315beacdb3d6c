"""GP Connect (FHIR STU3) provider sandbox, after ``nhsconnect/gpconnect-swagger`` (structured, appointments)
and the behaviour of ``nhsconnect/gpconnect-demonstrator``:

* every call needs ``Ssp-TraceID``, ``Ssp-From``, ``Ssp-To`` (this provider's ASID) and the operation's
  ``Ssp-InteractionID``, plus ``Authorization: Bearer <unsigned JWT>`` whose claims are checked
  (``reason_for_request=directcare``, ``requested_scope``, the requesting device, organisation and
  practitioner, ``exp`` at most 5 minutes after ``iat``);
* ``POST /structured/fhir/Patient/$gpc.getstructuredrecord`` with a ``Parameters`` body
  (``patientNHSNumber``, ``includeAllergies``, ``includeMedication`` ...) returns a ``collection`` Bundle
  (Patient, Organization, Practitioner, List, MedicationStatement, MedicationRequest, Medication with dm+d
  codes, AllergyIntolerance with SNOMED CT codes);
* ``GET /fhir/Patient?identifier=``, ``GET /fhir/Patient/{id}/Appointment?start=ge..&start=le..``;
* ``GET /structured/fhir/metadata``;
* errors are GP Connect ``OperationOutcome`` resources with Spine error codes (INVALID_NHS_NUMBER 400,
  ACCESS_DENIED/NO_PATIENT_CONSENT 403, PATIENT_NOT_FOUND 404, INVALID_PARAMETER/INVALID_RESOURCE 422,
  BAD_REQUEST 400); throttling is ``429`` with ``Retry-After``.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    nhs_check_digit,
    nhs_number,
    pools,
    rng_for,
)

PROVIDER_ASID = "918999198738"
PROVIDER_ODS = "B82617"
FHIR_JSON = "application/fhir+json"
STRUCTURED = "/structured/fhir"
APPOINTMENTS = "/fhir"
INTERACTIONS = {
    "structured": "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1",
    "metadata": "urn:nhs:names:services:gpconnect:structured:fhir:rest:read:metadata-1",
    "patient_search": "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1",
    "appointments": "urn:nhs:names:services:gpconnect:fhir:rest:search:patient_appointments-1",
}
ERROR_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1"
NO_CONSENT_INDEX = 7  # this resident has dissented from record sharing (NO_PATIENT_CONSENT)

# (dm+d/SNOMED CT code, medicine, dosage text): sandbox data with valid SNOMED check digits; verify in the dm+d
# browser before reusing a code anywhere else.
MEDICINES = [
    ("322236009", "Paracetamol 500mg tablets", "Two tablets up to four times a day"),
    ("319283006", "Amlodipine 5mg tablets", "One tablet once a day"),
    ("320000009", "Simvastatin 40mg tablets", "One tablet at night"),
    ("317896006", "Donepezil 10mg tablets", "One tablet at night"),
    ("325072002", "Lansoprazole 15mg gastro-resistant capsules", "One capsule in the morning"),
    ("376701008", "Adcal-D3 chewable tablets", "One tablet twice a day"),
]
ALLERGENS = [
    ("91936005", "Allergy to penicillin", "271807003", "Eruption of skin", "moderate", "medication"),
    ("294505008", "Allergy to amoxicillin", "267036007", "Dyspnoea", "severe", "medication"),
    ("300916003", "Latex allergy", "271807003", "Eruption of skin", "mild", "environment"),
    ("91935009", "Allergy to peanut", "39579001", "Anaphylaxis", "severe", "food"),
]


def _b64url_json(part: str) -> dict[str, Any]:
    padded = part + "=" * (-len(part) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def outcome(status: int, code: str, display: str, diagnostics: str, issue_code: str = "invalid",
            headers: dict[str, str] | None = None) -> JSONResponse:
    """A GP Connect OperationOutcome error."""
    body = {"resourceType": "OperationOutcome",
            "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-OperationOutcome-1"]},
            "issue": [{"severity": "error", "code": issue_code,
                       "details": {"coding": [{"system": ERROR_SYSTEM, "code": code, "display": display}]},
                       "diagnostics": diagnostics}]}
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers or {})


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return outcome(429, "TOO_MANY_REQUESTS", "Too many requests", "Spine Secure Proxy rate limit exceeded",
                   "throttled", headers)


def check_jwt(token: str, scope: str) -> str | None:
    """Why the GP Connect access token is unacceptable, or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return "the bearer token is not a JWT"
    try:
        header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
    except ValueError:
        return "the JWT header or claims are not base64url JSON"
    if header.get("alg") != "none" or parts[2] != "":
        return "GP Connect JWTs are unsigned (alg none, empty signature)"
    for key in ("iss", "sub", "aud", "exp", "iat", "reason_for_request", "requested_scope", "requesting_device",
                "requesting_organization", "requesting_practitioner"):
        if key not in claims:
            return f"JWT claim `{key}` is missing"
    if claims["reason_for_request"] != "directcare":
        return "reason_for_request must be directcare"
    if claims["requested_scope"] != scope:
        return f"requested_scope must be {scope}"
    if int(claims["exp"]) - int(claims["iat"]) > 300 or int(claims["exp"]) < time.time():
        return "the JWT is expired or lives longer than 5 minutes"
    if claims["requesting_device"].get("resourceType") != "Device":
        return "requesting_device must be a Device resource"
    org = claims["requesting_organization"]
    if org.get("resourceType") != "Organization" or not any(
            i.get("system") == "https://fhir.nhs.uk/Id/ods-organization-code" for i in org.get("identifier", [])):
        return "requesting_organization must be an Organization with an ODS code"
    prac = claims["requesting_practitioner"]
    systems = {i.get("system") for i in prac.get("identifier", [])}
    if prac.get("resourceType") != "Practitioner" or "https://fhir.nhs.uk/Id/sds-user-id" not in systems \
            or "https://fhir.nhs.uk/Id/sds-role-profile-id" not in systems:
        return "requesting_practitioner needs sds-user-id and sds-role-profile-id identifiers"
    return None


def patient_nhs_numbers(seed: int, n: int) -> list[str]:
    """The NHS numbers the sandbox practice holds (the care home's residents; 999 test range)."""
    return [nhs_number(rng_for(seed, "residents", i)) for i in range(n)]


def structured_record(seed: int, index: int, nhs: str, *, allergies: bool, resolved: bool, medication: bool,
                      med_from: str | None) -> dict[str, Any]:
    """A GP Connect Access Record Structured Bundle for resident ``index``."""
    r = rng_for(seed, "gpc-record", index)
    p = pools(seed)
    pid, org_id, prac_id = str(index + 1), "1", "2"
    family, given = r.choice(p.last_names), r.choice(p.first_names)
    born = date(1925, 1, 1) + timedelta(days=r.randrange(0, 25 * 365))
    gp = {"resourceType": "Practitioner", "id": prac_id,
          "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Practitioner-1"]},
          "identifier": [{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "G13579135"}],
          "name": [{"use": "usual", "family": "Patel", "given": ["Anita"], "prefix": ["Dr"]}], "gender": "female"}
    entries: list[dict[str, Any]] = [
        {"resource": {"resourceType": "Patient", "id": pid,
                      "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Patient-1"]},
                      "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
                      "name": [{"use": "official", "family": family, "given": [given]}],
                      "gender": r.choice(("female", "male")), "birthDate": born.isoformat(),
                      "generalPractitioner": [{"reference": f"Practitioner/{prac_id}"}],
                      "managingOrganization": {"reference": f"Organization/{org_id}"}}},
        {"resource": {"resourceType": "Organization", "id": org_id,
                      "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Organization-1"]},
                      "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": PROVIDER_ODS}],
                      "name": "Headingley Medical Practice"}},
        {"resource": gp},
    ]
    asserted = datetime(2025, 1, 15, 10, 30)
    if medication:
        items = []
        for k, (code, name, dose) in enumerate(r.sample(MEDICINES, r.randrange(2, 6))):
            start = date(2023, 1, 1) + timedelta(days=r.randrange(0, 700))
            if med_from and start.isoformat() < med_from and k % 2:
                continue
            ms_id, mr_id, med_id = f"ms-{pid}-{k}", f"mr-{pid}-{k}", f"med-{code}"
            status = "completed" if r.random() < 0.15 else "active"
            entries.append({"resource": {
                "resourceType": "Medication", "id": med_id,
                "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Medication-1"]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": name}]}}})
            entries.append({"resource": {
                "resourceType": "MedicationRequest", "id": mr_id, "intent": "plan", "status": status,
                "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-MedicationRequest-1"]},
                "medicationReference": {"reference": f"Medication/{med_id}"},
                "subject": {"reference": f"Patient/{pid}"}, "authoredOn": start.isoformat(),
                "requester": {"agent": {"reference": f"Practitioner/{prac_id}"}},
                "dosageInstruction": [{"text": dose}],
                "dispenseRequest": {"validityPeriod": {"start": start.isoformat()},
                                    "quantity": {"value": 56, "unit": "tablet"}, "expectedSupplyDuration":
                                    {"value": 28, "unit": "day", "system": "http://unitsofmeasure.org", "code": "d"}}}})
            ms: dict[str, Any] = {
                "resourceType": "MedicationStatement", "id": ms_id,
                "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-MedicationStatement-1"]},
                "extension": [
                    {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationStatementLastIssueDate-1",
                     "valueDateTime": (start + timedelta(days=28 * r.randrange(1, 12))).isoformat()},
                    {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescribingAgency-1",
                     "valueCodeableConcept": {"coding": [{"system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescribingAgency-1",
                                                          "code": "prescribed-at-gp-practice",
                                                          "display": "Prescribed at GP practice"}]}}],
                "identifier": [{"system": "https://fhir.nhs.uk/Id/cross-care-setting-identifier",
                                "value": f"{index:04d}{k:04d}-0000-4000-8000-000000000000"}],
                "basedOn": [{"reference": f"MedicationRequest/{mr_id}"}], "status": status,
                "medicationReference": {"reference": f"Medication/{med_id}"},
                "effectivePeriod": {"start": start.isoformat()}, "dateAsserted": asserted.isoformat(),
                "subject": {"reference": f"Patient/{pid}"}, "taken": "unk",
                "dosage": [{"text": dose, "patientInstruction": "Give with water"}]}
            if status == "completed":
                ms["effectivePeriod"]["end"] = (start + timedelta(days=90)).isoformat()
            entries.append({"resource": ms})
            items.append({"item": {"reference": f"MedicationStatement/{ms_id}"}})
        entries.append({"resource": {
            "resourceType": "List", "id": f"list-med-{pid}", "status": "current", "mode": "snapshot",
            "title": "Medications and medical devices", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "933361000000108",
                                 "display": "Medications and medical devices"}]}, "entry": items}})
    if allergies:
        items = []
        for k, (code, name, reaction, rdisplay, severity, category) in enumerate(
                r.sample(ALLERGENS, r.randrange(0, 3))):
            resolved_one = k == 1
            if resolved_one and not resolved:
                continue
            ai_id = f"ai-{pid}-{k}"
            entries.append({"resource": {
                "resourceType": "AllergyIntolerance", "id": ai_id,
                "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-AllergyIntolerance-1"]},
                "clinicalStatus": "resolved" if resolved_one else "active", "verificationStatus": "confirmed",
                "category": [category], "code": {"coding": [{"system": "http://snomed.info/sct", "code": code,
                                                             "display": name}]},
                "patient": {"reference": f"Patient/{pid}"}, "assertedDate": asserted.isoformat(),
                "onsetDateTime": f"{2000 + r.randrange(0, 24)}-0{r.randrange(1, 9)}-1{r.randrange(0, 9)}",
                "reaction": [{"manifestation": [{"coding": [{"system": "http://snomed.info/sct", "code": reaction,
                                                             "display": rdisplay}]}], "severity": severity}]}})
            items.append({"item": {"reference": f"AllergyIntolerance/{ai_id}"}})
        lst: dict[str, Any] = {
            "resourceType": "List", "id": f"list-all-{pid}", "status": "current", "mode": "snapshot",
            "title": "Allergies and adverse reactions", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "886921000000105",
                                 "display": "Allergies and adverse reactions"}]}, "entry": items}
        if not items:
            lst["emptyReason"] = {"coding": [{"system": "http://hl7.org/fhir/special-values", "code": "nil-known",
                                              "display": "Nil Known"}]}
            lst["note"] = [{"text": "No known allergies"}]
        entries.append({"resource": lst})
    return {"resourceType": "Bundle",
            "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-StructuredRecord-Bundle-1"]},
            "type": "collection", "entry": entries}


def appointments_for(seed: int, index: int, today: date) -> list[dict[str, Any]]:
    """Past and future GP appointments of resident ``index``."""
    r = rng_for(seed, "gpc-appointments", index)
    out = []
    for k in range(r.randrange(1, 4)):
        day = today + timedelta(days=r.randrange(-60, 90))
        start = datetime(day.year, day.month, day.day, r.choice((9, 10, 11, 14, 15)), r.choice((0, 15, 30, 45)))
        status = "booked" if day >= today else r.choice(("fulfilled", "fulfilled", "cancelled"))
        out.append({"resourceType": "Appointment", "id": f"appt-{index + 1}-{k}",
                    "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-Appointment-1"]},
                    "status": status, "description": r.choice(("Medication review", "Care home ward round",
                                                              "Chronic disease review", "Flu vaccination")),
                    "start": start.isoformat() + "+00:00",
                    "end": (start + timedelta(minutes=15)).isoformat() + "+00:00",
                    "created": (start - timedelta(days=7)).isoformat() + "+00:00",
                    "participant": [{"actor": {"reference": f"Patient/{index + 1}"}, "status": "accepted"},
                                    {"actor": {"reference": "Practitioner/2"}, "status": "accepted"},
                                    {"actor": {"reference": "Location/1"}, "status": "accepted"}]})
    return out


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The GP Connect provider sandbox; ``config.records`` is the number of registered residents."""
    cfg = config or SandboxConfig(records=20)
    state = new_state(cfg, "GP Connect (provider)")
    n = min(cfg.count("patients", 20), 500)
    nhs_list = patient_nhs_numbers(cfg.seed, n)
    index_of = {nhs: i for i, nhs in enumerate(nhs_list)}
    seen: list[dict[str, Any]] = []
    state.extra.update(patients=nhs_list, requests=seen)
    app = FastAPI(title="GP Connect provider sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def check(request: Request, interaction: str, scope: str) -> JSONResponse | None:
        h = request.headers
        seen.append({"path": request.url.path, "headers": {k.lower(): v for k, v in h.items()}})
        for name in ("Ssp-TraceID", "Ssp-From", "Ssp-To", "Ssp-InteractionID"):
            if not h.get(name):
                return outcome(400, "BAD_REQUEST", "Bad request", f"{name} header is missing")
        if h.get("Ssp-To") != PROVIDER_ASID:
            return outcome(403, "ACCESS_DENIED", "Access denied", "Ssp-To is not this provider's ASID", "forbidden")
        if h.get("Ssp-InteractionID") != INTERACTIONS[interaction]:
            return outcome(400, "BAD_REQUEST", "Bad request",
                           f"Ssp-InteractionID must be {INTERACTIONS[interaction]} for this request")
        auth = h.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return outcome(400, "BAD_REQUEST", "Bad request", "Authorization Bearer JWT is missing")
        reason = check_jwt(auth[7:], scope)
        if reason:
            return outcome(400, "BAD_REQUEST", "Bad request", reason)
        return None

    @app.get(STRUCTURED + "/metadata")
    async def metadata(request: Request) -> Response:
        denied = check(request, "metadata", "organization/*.read")
        if denied:
            return denied
        return JSONResponse({"resourceType": "CapabilityStatement", "version": "1.5.0", "status": "active",
                             "date": "2025-01-01", "publisher": "CareHub sandbox", "kind": "capability",
                             "fhirVersion": "3.0.1", "acceptUnknown": "both", "format": [FHIR_JSON],
                             "rest": [{"mode": "server", "operation": [
                                 {"name": "gpc.getstructuredrecord",
                                  "definition": {"reference": "https://fhir.nhs.uk/STU3/OperationDefinition/GPConnect-GetStructuredRecord-Operation-1"}}]}]},
                            media_type=FHIR_JSON)

    @app.post(STRUCTURED + "/Patient/$gpc.getstructuredrecord")
    async def structured(request: Request) -> Response:
        denied = check(request, "structured", "patient/*.read")
        if denied:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return outcome(422, "INVALID_RESOURCE", "Invalid resource", "the body is not JSON")
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            return outcome(422, "INVALID_RESOURCE", "Invalid resource", "the body must be a Parameters resource")
        params = {p.get("name"): p for p in body.get("parameter") or [] if isinstance(p, dict)}
        known = {"patientNHSNumber", "includeAllergies", "includeMedication", "includeConsultations",
                 "includeProblems", "includeImmunisations", "includeUncategorisedData", "includeInvestigations",
                 "includeReferrals"}
        unknown = set(params) - known
        if unknown:
            return outcome(422, "INVALID_PARAMETER", "Invalid parameter", f"unknown parameter(s): {sorted(map(str, unknown))}")
        ident = (params.get("patientNHSNumber") or {}).get("valueIdentifier") or {}
        nhs = str(ident.get("value", ""))
        if ident.get("system") != "https://fhir.nhs.uk/Id/nhs-number" or len(nhs) != 10 or not nhs.isdigit() \
                or nhs_check_digit(nhs[:9]) != int(nhs[9]):
            return outcome(400, "INVALID_NHS_NUMBER", "Invalid NHS number",
                           f"NHS number {nhs!r} is not valid (system https://fhir.nhs.uk/Id/nhs-number, mod 11)",
                           "value")
        if nhs not in index_of:
            return outcome(404, "PATIENT_NOT_FOUND", "Patient not found",
                           f"no patient with NHS number {nhs} is registered here", "not-found")
        if index_of[nhs] == NO_CONSENT_INDEX:
            return outcome(403, "NO_PATIENT_CONSENT", "Patient has not provided consent to share data",
                           "the patient has dissented from sharing their record", "forbidden")
        parts = {p.get("name"): p.get("valueBoolean", p.get("valueDate")) for p in
                 (params.get("includeAllergies") or {}).get("part", []) + (params.get("includeMedication") or {})
                 .get("part", [])}
        record = structured_record(cfg.seed, index_of[nhs], nhs, allergies="includeAllergies" in params,
                                   resolved=bool(parts.get("includeResolvedAllergies")),
                                   medication="includeMedication" in params,
                                   med_from=str(parts["medicationSearchFromDate"]) if parts.get(
                                       "medicationSearchFromDate") else None)
        return JSONResponse(record, media_type=FHIR_JSON)

    @app.get(APPOINTMENTS + "/Patient")
    async def patient_search(request: Request) -> Response:
        denied = check(request, "patient_search", "patient/*.read")
        if denied:
            return denied
        ident = request.query_params.get("identifier", "")
        system, _, nhs = ident.partition("|")
        if system != "https://fhir.nhs.uk/Id/nhs-number":
            return outcome(422, "INVALID_PARAMETER", "Invalid parameter", "identifier must be nhs-number|<NHS number>")
        entries = []
        if nhs in index_of and index_of[nhs] != NO_CONSENT_INDEX:
            entries.append({"resource": {"resourceType": "Patient", "id": str(index_of[nhs] + 1),
                                         "identifier": [{"system": system, "value": nhs}]}})
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "entry": entries}, media_type=FHIR_JSON)

    @app.get(APPOINTMENTS + "/Patient/{pid}/Appointment")
    async def patient_appointments(pid: str, request: Request) -> Response:
        denied = check(request, "appointments", "patient/*.read")
        if denied:
            return denied
        bounds = request.query_params.getlist("start")
        lo = next((b[2:] for b in bounds if b.startswith("ge")), None)
        hi = next((b[2:] for b in bounds if b.startswith("le")), None)
        if not lo or not hi:
            return outcome(422, "INVALID_PARAMETER", "Invalid parameter",
                           "start must be given twice: start=geYYYY-MM-DD&start=leYYYY-MM-DD")
        try:
            index = int(pid) - 1
        except ValueError:
            index = -1
        if not 0 <= index < n:
            return outcome(404, "PATIENT_NOT_FOUND", "Patient not found", f"no patient {pid}", "not-found")
        today = date.fromisoformat(str(state.extra.get("today") or date.today().isoformat()))
        items = [a for a in appointments_for(cfg.seed, index, today) if lo <= a["start"][:10] <= hi]
        entries = [{"resource": a} for a in items]
        if items:
            entries.append({"resource": {"resourceType": "Practitioner", "id": "2",
                                         "name": [{"family": "Patel", "given": ["Anita"], "prefix": ["Dr"]}]}})
            entries.append({"resource": {"resourceType": "Location", "id": "1", "name": "Headingley Medical Practice"}})
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "entry": entries}, media_type=FHIR_JSON)

    return app
