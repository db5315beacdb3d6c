"""NHS Summary Care Record FHIR R4 API sandbox, after ``NHSDigital/summary-care-record-api``
(``specification/summary-care-record.yaml`` and its component schemas and examples):

* ``POST /oauth2/token``: NHS API platform signed-JWT client assertion (RS512, ``kid``; ``iss = sub =`` API
  key, ``aud`` = the token URL, ``exp`` at most 5 minutes ahead, ``jti`` used once; the signature is checked
  once a public key is registered) → a 10-minute bearer token;
* ``GET /DocumentReference?patient=https://fhir.nhs.uk/Id/nhs-number|{nhs}`` (``type``, ``_sort=date`` and
  ``_count=1`` only): the latest SCR id (``masterIdentifier``) and the consent label (Yes/No/Ask);
* ``GET /Bundle?composition.identifier=&composition.subject:Patient.identifier=``: the SCR (Composition with
  XHTML sections, Patient, coded Conditions and Observations, authors); an out-of-date id gives an empty Bundle;
* ``POST /Bundle`` (upload) and ``POST /$setPermission`` with the spec's sandbox scenarios;
* ``X-Request-ID``/``X-Correlation-ID`` echoed; errors as ``OperationOutcome``; 429 "You have exceeded your
  application's rate limit".

The spec's own sandbox patients behave as documented (9000000009 has an SCR, 9000000033 has none); the care
home's residents (999 test range, the same people as the GP Connect sandbox) have generated records.
"""

from __future__ import annotations

import secrets
import time
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
    nhs_check_digit,
    nhs_number,
    pools,
    rng_for,
)
from connectors.sandboxes.nhs_auth import UNCHECKED, AssertionPolicy, add_signed_jwt_token_route

FHIR_JSON = "application/fhir+json"
BASE = "https://api.service.nhs.uk/summary-care-record/FHIR/R4"
GP_SUMMARY = {"system": "http://snomed.info/sct", "code": "196981000000101", "display": "General Practice Summary"}
NO_SCR = "9000000033"
NO_CONSENT_UPLOAD = "9111231130"
RATE_LIMIT_TEXT = ("You have exceeded your application's rate limit. Please see: https://digital.nhs.uk/developer/"
                   "guides-and-documentation/reference-guide#rate-limits for more details.")
CONDITIONS = [
    ("52448006", "Dementia"), ("38341003", "Hypertensive disorder"), ("44054006", "Diabetes mellitus type 2"),
    ("13645005", "Chronic obstructive lung disease"), ("49436004", "Atrial fibrillation"),
    ("1240751000000100", "COVID-19"),
]
COVID_POSITIVE = ("1240581000000104", "SARS-CoV-2 (severe acute respiratory syndrome coronavirus 2) RNA "
                  "(ribonucleic acid) detection result positive")


def outcome(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An SCR ``OperationOutcome``."""
    return JSONResponse({"resourceType": "OperationOutcome",
                         "issue": [{"severity": "error", "code": code, "details": {"text": text}}]},
                        status_code=status, media_type=FHIR_JSON, headers=headers or {})


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return outcome(429, "throttled", RATE_LIMIT_TEXT, headers)


def _uuid(*parts: Any) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "carehub-scr:" + ":".join(map(str, parts)))).upper()


def _valid_nhs(value: str) -> bool:
    return len(value) == 10 and value.isdigit() and nhs_check_digit(value[:9]) == int(value[9])


def _table(summary: str, heads: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in heads)
    body = "".join(
        f'<tr class="{"oddRow" if i % 2 == 0 else "evenRow"}">' + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows))
    return (f'<div xmlns="http://www.w3.org/1999/xhtml"><table summary="{summary}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def scr_bundle(seed: int, index: int, nhs: str, scr_id: str, version: int) -> dict[str, Any]:
    """A Get-SCR Bundle for resident ``index`` in the spec's shape."""
    from connectors.sandboxes.gp_connect import ALLERGENS, MEDICINES

    r = rng_for(seed, f"scr-{version}", index)
    p = pools(seed)
    updated = datetime(2025, 1, 6, 9, 0, tzinfo=UTC) + timedelta(days=index, hours=version)
    stamp = updated.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    patient_id, role_id, prac_id, org_id = (_uuid(nhs, "patient"), _uuid(nhs, "role"), _uuid(nhs, "prac"),
                                            _uuid(nhs, "org"))
    allergies = r.sample(ALLERGENS, r.randrange(0, 3))
    meds = r.sample(MEDICINES, r.randrange(1, 5))
    sections = [
        {"title": "General Practice Summary", "code": {"coding": [{"code": "Title"}]},
         "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><h3 id="Disclaimer">'
                  "Sourced from the patient's General Practice record. This summary may not include all the "
                  f'information pertinent to this patient.</h3><p id="CreateTime">Summary Created: '
                  f"{updated:%d-%b-%Y %H:%M}</p></div>"}},
        {"title": "Allergies and Adverse Reactions", "code": {"coding": [{"code": "AllergiesHeader"}]},
         "text": {"status": "generated", "div": _table(
             "This table includes information about this patient's allergies and adverse reactions.",
             ["Date", "Description", "Certainty", "Severity", "Supporting Information"],
             [[f"{updated - timedelta(days=400):%d-%b-%Y}", name, "Confirmed", sev.title(), "Problem; First"]
              for _c, name, _rc, _rd, sev, _cat in allergies] or [["", "No known allergies", "", "", ""]])}},
        {"title": "Current Repeat Medications", "code": {"coding": [{"code": "RepeatMedsHeader"}]},
         "text": {"status": "generated", "div": _table(
             "This table includes information about this patient's current repeat medications.",
             ["Last Issued", "Medication Item", "Dosage Instructions", "Quantity"],
             [[f"{updated - timedelta(days=14):%d-%b-%Y}", name, dose, "56 tablet"] for _c, name, dose in meds])}},
    ]
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{BASE}/Composition/{scr_id}", "resource": {
            "resourceType": "Composition", "id": scr_id, "meta": {"lastUpdated": stamp},
            "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": scr_id}, "status": "final",
            "type": {"coding": [dict(GP_SUMMARY)]},
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "163171000000105",
                                      "display": "Care Professional Documentation"}]}],
            "subject": {"reference": f"Patient/{patient_id}"}, "date": stamp, "title": "General Practice Summary",
            "author": [{"reference": f"PractitionerRole/{role_id}", "display": "Dr Anita Patel"}],
            "section": sections}},
        {"fullUrl": f"{BASE}/Patient/{patient_id}", "resource": {
            "resourceType": "Patient", "id": patient_id,
            "identifier": [{"extension": [{"url": "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-NHSNumberVerificationStatus-1",
                                           "valueCodeableConcept": {"coding": [{
                                               "system": "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1",
                                               "code": "01", "display": "Number present and verified"}]}}],
                            "system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
            "name": [{"family": r.choice(p.last_names), "given": [r.choice(p.first_names)]}]}},
        {"fullUrl": f"{BASE}/PractitionerRole/{role_id}", "resource": {
            "resourceType": "PractitionerRole", "id": role_id,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/sds-role-profile-id", "value": "200000000001"}],
            "practitioner": {"reference": f"Practitioner/{prac_id}"},
            "organization": {"reference": f"Organization/{org_id}"},
            "code": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/HL7v3-SDSJobRoleName", "code": "R0260",
                                  "display": "General Medical Practitioner"}]}]}},
        {"fullUrl": f"{BASE}/Practitioner/{prac_id}", "resource": {
            "resourceType": "Practitioner", "id": prac_id,
            "identifier": [{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "G13579135"}],
            "name": [{"text": "Dr Anita Patel"}]}},
        {"fullUrl": f"{BASE}/Organization/{org_id}", "resource": {
            "resourceType": "Organization", "id": org_id,
            "identifier": [{"use": "official", "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                            "value": "B82617"}], "name": "Headingley Medical Practice"}},
    ]
    for k, (code, display) in enumerate(r.sample(CONDITIONS, r.randrange(1, 4))):
        cid = _uuid(nhs, "condition", version, k)
        entries.append({"fullUrl": f"{BASE}/Condition/{cid}", "resource": {
            "resourceType": "Condition", "id": cid, "identifier": [{"value": cid}],
            "clinicalStatus": {"coding": [{"system": "http://hl7.org/fhir/ValueSet/condition-clinical",
                                           "code": "active"}]},
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "163001000000103",
                                      "display": "Diagnoses"}]}],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "onsetDateTime": (updated - timedelta(days=200 * (k + 1))).strftime("%Y-%m-%dT%H:%M:%S+00:00")}})
    if r.random() < 0.5:
        oid = _uuid(nhs, "observation", version)
        start = updated - timedelta(days=90)
        entries.append({"fullUrl": f"{BASE}/Observation/{oid}", "resource": {
            "resourceType": "Observation", "id": oid,
            "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"]},
            "identifier": [{"value": oid}], "status": "final",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "163141000000104",
                                      "display": "Investigation Results"}]}],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": COVID_POSITIVE[0],
                                 "display": COVID_POSITIVE[1]}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectivePeriod": {"start": start.strftime("%Y-%m-%dT%H:%M:%S+00:00")}}})
    return {"resourceType": "Bundle", "id": _uuid(scr_id, "bundle"),
            "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": _uuid(scr_id, "bundle-id")},
            "type": "searchset", "timestamp": stamp, "total": len(entries), "entry": entries}


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The SCR sandbox; ``config.records`` is the number of residents with records."""
    cfg = config or SandboxConfig(records=20)
    state = new_state(cfg, "NHS Summary Care Record")
    n = min(cfg.count("patients", 20), 500)
    residents = [nhs_number(rng_for(cfg.seed, "residents", i)) for i in range(n)]
    index_of = {nhs: i for i, nhs in enumerate(residents)}
    versions: dict[str, int] = {}
    consent: dict[str, str] = {nhs: "Ask" for nhs in residents}
    if n > 3:
        consent[residents[3]] = "No"  # this resident has opted out of SCR
    used_jti: dict[str, float] = {}
    seen: list[dict[str, Any]] = []
    state.extra.update(patients=residents, versions=versions, consent=consent, requests=seen, public_key=None,
                       api_key="carehub-scr-api-key")
    app = FastAPI(title="NHS Summary Care Record sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth2/",))
    add_control_routes(app, state)

    def echo(request: Request) -> dict[str, str]:
        out = {}
        for name in ("X-Request-ID", "X-Correlation-ID"):
            if request.headers.get(name):
                out[name] = request.headers[name]
        return out

    def issue(form: Any, header: dict[str, Any], claims: dict[str, Any]) -> Response:
        access = secrets.token_urlsafe(24)
        state.access_tokens[access] = time.time() + 599
        return JSONResponse({"access_token": access, "expires_in": "599", "token_type": "Bearer",
                             "issued_at": str(int(time.time() * 1000))})

    # until the application registers its public key, signatures are not checked (the claims still are)
    add_signed_jwt_token_route(app, state, "/oauth2/token", AssertionPolicy(
        client_id=lambda: str(state.extra["api_key"]),
        key_for=lambda kid: state.extra.get("public_key") or UNCHECKED), used_jti, issue)

    @app.post("/_sandbox/scr/register-key")
    async def register_key(request: Request) -> dict[str, str]:
        """Register the application's public key (the JWKS step of NHS onboarding)."""
        state.extra["public_key"] = (await request.json())["public_key_pem"]
        return {"api_key": str(state.extra["api_key"])}

    @app.post("/_sandbox/scr/update/{nhs}")
    async def gp_updates_scr(nhs: str) -> dict[str, Any]:
        """The GP system uploads a new SCR for this patient (a new SCR id)."""
        versions[nhs] = versions.get(nhs, 0) + 1
        return {"nhs_number": nhs, "version": versions[nhs], "scr_id": scr_id_of(nhs)}

    def scr_id_of(nhs: str) -> str:
        if nhs == "9000000009":
            return "FA60BE64-1F34-11EB-A2A8-000C29A364EB"
        return _uuid(nhs, "scr", versions.get(nhs, 0))

    def authorised(request: Request) -> Response | None:
        seen.append({"path": request.url.path, "query": str(request.url.query),
                     "headers": {k.lower(): v for k, v in request.headers.items()}})
        if not state.token_valid(bearer(request)):
            return outcome(401, "forbidden", "Invalid access token", echo(request))
        return None

    def nhs_from(value: str) -> str | None:
        system, sep, nhs = value.partition("|")
        if not sep or system != "https://fhir.nhs.uk/Id/nhs-number" or not _valid_nhs(nhs):
            return None
        return nhs

    @app.get("/DocumentReference")
    async def document_reference(request: Request) -> Response:
        denied = authorised(request)
        if denied:
            return denied
        q = request.query_params
        nhs = nhs_from(q.get("patient", ""))
        if nhs is None:
            return outcome(400, "invalid", "Invalid value - patient must be https://fhir.nhs.uk/Id/nhs-number|"
                           "<valid NHS number>", echo(request))
        if q.get("type") and q["type"] != "http://snomed.info/sct|196981000000101":
            return outcome(400, "invalid", "Invalid value - type must be http://snomed.info/sct|196981000000101",
                           echo(request))
        if q.get("_sort") and q["_sort"] != "date":
            return outcome(400, "invalid", "Invalid value - _sort must be date", echo(request))
        if q.get("_count") and q["_count"] != "1":
            return outcome(400, "invalid", "Invalid value - _count must be 1", echo(request))
        bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset",
                                  "total": 0, "entry": []}
        if nhs != NO_SCR and (nhs in index_of or nhs == "9000000009"):
            sid = scr_id_of(nhs)
            doc_id = _uuid(sid, "docref").lower()
            patient_id = _uuid(nhs, "patient").lower()
            bundle["entry"] = [
                {"fullUrl": f"{BASE}/DocumentReference/{doc_id}", "resource": {
                    "resourceType": "DocumentReference", "id": doc_id,
                    "masterIdentifier": {"system": "https://fhir.nhs.uk/Id/nhsSCRUUID", "value": sid},
                    "status": "current", "type": {"coding": [dict(GP_SUMMARY)]},
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "securityLabel": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/SCR-ACSPermission",
                                                   "code": consent.get(nhs, "Ask")}]}],
                    "content": [{"attachment": {"url": f"{BASE}/Bundle?composition.identifier={sid}&composition."
                                                       f"subject:Patient.identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"}}],
                    "context": {"event": [{"coding": [dict(GP_SUMMARY)]}]}},
                 "search": {"mode": "match"}},
                {"fullUrl": patient_id, "resource": {"resourceType": "Patient", "id": patient_id, "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}]}}]
            bundle["total"] = 1
        return JSONResponse(bundle, media_type=FHIR_JSON, headers=echo(request))

    @app.get("/Bundle")
    async def get_scr(request: Request) -> Response:
        denied = authorised(request)
        if denied:
            return denied
        q = request.query_params
        sid = q.get("composition.identifier", "")
        nhs = nhs_from(q.get("composition.subject:Patient.identifier", ""))
        if not sid or nhs is None:
            return outcome(400, "invalid", "Invalid request - composition.identifier and composition.subject:"
                           "Patient.identifier (https://fhir.nhs.uk/Id/nhs-number|<NHS number>) are required",
                           echo(request))
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        empty = {"resourceType": "Bundle", "id": str(uuid.uuid4()),
                 "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": str(uuid.uuid4()).upper()},
                 "type": "searchset", "timestamp": now, "total": 0, "entry": []}
        if nhs not in index_of or sid != scr_id_of(nhs):
            return JSONResponse(empty, media_type=FHIR_JSON, headers=echo(request))
        return JSONResponse(scr_bundle(cfg.seed, index_of[nhs], nhs, sid, versions.get(nhs, 0)),
                            media_type=FHIR_JSON, headers=echo(request))

    @app.post("/Bundle")
    async def upload_scr(request: Request) -> Response:
        denied = authorised(request)
        if denied:
            return denied
        if not request.headers.get("content-type", "").startswith(FHIR_JSON):
            return outcome(415, "not-supported", f"Content type '{request.headers.get('content-type')}' not "
                           "supported", echo(request))
        body = await request.json()
        patients = [e.get("resource") or {} for e in body.get("entry") or []
                    if (e.get("resource") or {}).get("resourceType") == "Patient"]
        values = [i.get("value") for p in patients for i in p.get("identifier") or []]
        if NO_CONSENT_UPLOAD in values:
            return outcome(403, "forbidden", "There's no patient's consent to store SCR", echo(request))
        if not values:
            return outcome(400, "invalid", "Patient NHS number missing", echo(request))
        return Response(status_code=201, headers=echo(request))

    @app.post("/$setPermission")
    async def set_permission(request: Request) -> Response:
        denied = authorised(request)
        if denied:
            return denied
        body = await request.json()
        parts = {p.get("name"): p for p in (body.get("parameter") or [{}])[0].get("part") or []}
        nhs = str((parts.get("nhsNumber") or {}).get("valueString", ""))
        code = (((parts.get("permissionCode") or {}).get("valueCoding") or {}).get("code"))
        if nhs not in index_of and nhs != "9000000009":
            return outcome(400, "invalid", "Patient not found", echo(request))
        consent[nhs] = str(code or "Ask")
        return Response(status_code=201, headers=echo(request))

    return app
