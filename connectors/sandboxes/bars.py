"""NHS Booking and Referral Standard (BaRS) proxy sandbox with three community-pharmacy receivers.

Faithful to ``NHSDigital/booking-and-referral-fhir-api`` (``specification/booking-and-referral.yaml`` 1.0.0, its
examples and the proxy's target checks):

* ``POST /oauth2/token``: the NHS API platform's signed-JWT client assertion (RS512, ``kid``; ``iss`` = ``sub``
  = API key, ``aud`` = the token URL, ``exp`` at most 5 minutes ahead, ``jti`` never reused);
* every API call needs a bearer token, ``X-Request-Id`` and ``X-Correlation-Id`` (UUIDs, mirrored on the
  reply) and ``NHSD-Target-Identifier``: base64 JSON with ``system`` and ``value`` (otherwise 400
  ``PROXY_BAD_REQUEST`` "Invalid schema for NHSD-Target-Identifier header"); the proxy accepts DoS service ids
  starting ``2000`` and routes to the receiver registered under that id (otherwise 404);
  ``NHSD-End-User-Organisation`` and ``NHSD-Requesting-Software`` must be base64 JSON ``Organization`` /
  ``Device`` resources;
* ``POST /booking-and-referral/FHIR/R4/$process-message``: a ``Bundle`` of type ``message`` whose first entry is
  a ``MessageHeader`` (event ``servicerequest-request``, destination naming the target service, focus on a
  ``ServiceRequest`` in the bundle); the ServiceRequest's subject must be a ``Patient`` in the bundle with a
  valid NHS number. Errors are OperationOutcomes with ``REC_BAD_REQUEST`` codes; a Bundle id already processed
  gives 409 ``REC_CONFLICT`` (issue ``duplicate``: "the message has been identified as having already been
  processed."). Success is 200 with a ``servicerequest-response`` message whose MessageHeader.response names the
  request (FHIR messaging acknowledgement);
* ``GET /booking-and-referral/FHIR/R4/ServiceRequest?patient:identifier=`` returns the receiver's referrals for a
  patient (with their Patient and MedicationStatements included), seeded and received ones;
* 429 is an OperationOutcome ``SEND_TOO_MANY_REQUESTS`` (``throttled``) with ``Retry-After``.

Receivers (DoS ids are sandbox values): PharmOutcomes (Pinnacle), SonarHealth (Sonar Informatics) and Cegedim
Pharmacy Manager. Residents carry NHS numbers from the 999 test range with valid check digits.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.fhir.bars import DOS, EVENTS, NHS_NUMBER, SNOMED, message_ids, referral_message
from connectors.sandboxes.common import (
    BASE_TIME,
    CARE_HOMES,
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
from connectors.sandboxes.nhs_auth import (
    NHS_REFUSALS,
    AssertionPolicy,
    add_signed_jwt_token_route,
    rsa_key_pair,
)

BASE = "/booking-and-referral/FHIR/R4"
API_KEY = "carehub-sandbox-bars-api-key-51c0d9"
KID = "carehub-bars-1"
FHIR_JSON = "application/fhir+json"
HTTP_CODES = "https://fhir.nhs.uk/Codesystem/http-error-codes"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RECEIVERS = {  # DoS service id -> receiver system
    "2000072489": "PharmOutcomes (Pinnacle)",
    "2000114563": "SonarHealth - BaRS (Sonar Informatics)",
    "2000093318": "Cegedim Pharmacy Manager",
}
# the BaRS proxy answers 401 (not 400) to a missing kid and to iss differing from sub
BARS_REFUSALS = {**NHS_REFUSALS, "missing_kid": NHS_REFUSALS["unknown_kid"], "iss_sub": NHS_REFUSALS["client"]}
SEED_MEDICINES = (("322236009", "Paracetamol 500mg tablets", "Two tablets up to four times a day"),
                  ("319283006", "Amlodipine 5mg tablets", "One tablet once a day"),
                  ("317896006", "Donepezil 10mg tablets", "One tablet at night"))


@lru_cache(maxsize=1)
def sandbox_key() -> tuple[str, str]:
    """The sandbox app's RSA key pair (private PEM, public PEM); made once per process."""
    return rsa_key_pair()


def outcome(status: int, code: str, issue: str, diagnostics: str, headers: dict[str, str] | None = None,
            system: str = HTTP_CODES) -> JSONResponse:
    """A BaRS ``OperationOutcome``."""
    body = {"resourceType": "OperationOutcome", "id": str(uuid.uuid4()),
            "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome"]},
            "issue": [{"severity": "error", "code": issue, "details": {"coding": [{"system": system, "code": code}]},
                       "diagnostics": diagnostics}]}
    return JSONResponse(body, status_code=status, headers=headers or {}, media_type=FHIR_JSON)


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return outcome(429, "SEND_TOO_MANY_REQUESTS", "throttled", "when rate limiting is applied.", headers)


def _b64(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        decoded = json.loads(base64.b64decode(value, validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


def valid_nhs_number(value: str) -> bool:
    """Ten digits with a valid modulus-11 check digit."""
    return bool(re.fullmatch(r"\d{10}", value)) and nhs_check_digit(value[:9]) == int(value[9])


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The BaRS proxy sandbox app."""
    cfg = config or SandboxConfig(token_ttl_seconds=599)
    state = new_state(cfg, "NHS BaRS")
    seed = cfg.seed
    n = cfg.records if isinstance(cfg.records, int) else cfg.count("residents", 12)
    residents = []
    for i in range(n):
        r = rng_for(seed, "bars.residents", i)
        p = pools(seed)
        residents.append({"nhsNumber": nhs_number(rng_for(seed, "bars.nhs", i)), "givenName": r.choice(p.first_names),
                          "familyName": r.choice(p.last_names), "gender": r.choice(("female", "male")),
                          "birthDate": (datetime(1930, 1, 1) + timedelta(days=r.randrange(0, 11000))).date().isoformat(),
                          "postcode": r.choice(p.postcodes)})
    # receiver -> processed message bundles (seeded: one earlier referral for every other resident)
    received: dict[str, list[dict[str, Any]]] = {dos: [] for dos in RECEIVERS}
    processed: dict[str, str] = {}  # Bundle.id -> receiver
    for i, res in enumerate(residents):
        if i % 2:
            continue
        med = SEED_MEDICINES[i % len(SEED_MEDICINES)]
        referral = {**res, "reason": "New medicine started in hospital: please review with the care home",
                    "serviceName": "Discharge Medicines Service", "medicines": [
                        {"dmdCode": med[0], "name": med[1], "dose": med[2], "status": "active"}]}
        dos = list(RECEIVERS)[i % len(RECEIVERS)]
        bundle = referral_message(referral, key=f"seed-{seed}-{i}", sender_ods="VM4X2",
                                  sender_name=CARE_HOMES[i % len(CARE_HOMES)], target_service_id=dos,
                                  receiver_name=RECEIVERS[dos], now=BASE_TIME + timedelta(days=i))
        received[dos].append(bundle)
        processed[bundle["id"]] = dos
    used_jti: dict[str, float] = {}
    state.extra.update(received=received, used_jti=used_jti, residents=residents, processed=processed)
    app = FastAPI(title="NHS BaRS proxy sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth2/",))
    add_control_routes(app, state)

    # ------------------------------------------------------------------ token endpoint (NHS API platform)

    def issue(form: Any, header: dict[str, Any], claims: dict[str, Any]) -> Response:
        issued = state.issue_tokens()
        return JSONResponse({"access_token": issued["access_token"], "expires_in": str(cfg.token_ttl_seconds),
                             "token_type": "Bearer", "issued_at": str(int(time.time() * 1000))})

    add_signed_jwt_token_route(app, state, "/oauth2/token", AssertionPolicy(
        client_id=lambda: API_KEY, key_for={KID: sandbox_key()[1]}.get, refusals=BARS_REFUSALS), used_jti, issue)

    # ------------------------------------------------------------------ proxy checks

    def checks(request: Request) -> tuple[dict[str, str], str | None, Response | None]:
        echo = {k: request.headers[k] for k in ("x-request-id", "x-correlation-id") if k in request.headers}
        auth = request.headers.get("authorization", "")
        if not state.token_valid(auth[7:].strip() if auth.lower().startswith("bearer ") else None):
            return echo, None, outcome(401, "SEND_UNAUTHORIZED", "login", "Invalid or missing access token",
                                       echo)
        for name in ("X-Request-Id", "X-Correlation-Id"):
            value = request.headers.get(name)
            if not value:
                return echo, None, outcome(400, "SEND_BAD_REQUEST", "required", f"{name} header is missing", echo)
            if not UUID_RE.match(value):
                return echo, None, outcome(400, "SEND_BAD_REQUEST", "value", f"{name} must be a UUID", echo)
        target = _b64(request.headers.get("nhsd-target-identifier"))
        if target is None or not target.get("system") or not target.get("value"):
            return echo, None, outcome(400, "PROXY_BAD_REQUEST", "structure",
                                       "Invalid schema for NHSD-Target-Identifier header", echo,
                                       "http://hl7.org/fhir/ValueSet/operation-outcome")
        dos = str(target["value"])
        if str(target["system"]).lower() != DOS.lower() or not dos.startswith("2000") or dos not in RECEIVERS:
            return echo, None, outcome(404, "PROXY_NOT_FOUND", "not-found",
                                       "No service is registered for the NHSD-Target-Identifier", echo)
        org = _b64(request.headers.get("nhsd-end-user-organisation"))
        device = _b64(request.headers.get("nhsd-requesting-software"))
        if not org or org.get("resourceType") != "Organization" or not device or \
                device.get("resourceType") != "Device":
            return echo, None, outcome(400, "SEND_BAD_REQUEST", "required",
                                       "NHSD-End-User-Organisation and NHSD-Requesting-Software must be base64 "
                                       "JSON Organization and Device resources", echo)
        return echo, dos, None

    def validate(bundle: Any, dos: str) -> str | None:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "message":
            return "the body must be a Bundle of type message"
        if not UUID_RE.match(str(bundle.get("id", ""))):
            return "Bundle.id must be a UUID"
        entries = bundle.get("entry") or []
        index = {str(e.get("fullUrl")): e.get("resource") or {} for e in entries}
        header = (entries[0].get("resource") if entries else None) or {}
        if header.get("resourceType") != "MessageHeader":
            return "the first entry of a message Bundle must be a MessageHeader"
        event = header.get("eventCoding") or {}
        if event.get("system") != EVENTS or event.get("code") != "servicerequest-request":
            return "MessageHeader.eventCoding must be servicerequest-request (message-events-bars)"
        dest = [d.get("endpoint") for d in header.get("destination") or []]
        if f"{DOS}|{dos}" not in dest:
            return "MessageHeader.destination does not name the target service"
        focus = [index.get(str(f.get("reference"))) for f in header.get("focus") or []]
        sr = next((f for f in focus if f and f.get("resourceType") == "ServiceRequest"), None)
        if sr is None:
            return "MessageHeader.focus must reference a ServiceRequest in the Bundle"
        if sr.get("status") not in ("draft", "active", "on-hold", "revoked", "completed"):
            return "ServiceRequest.status is missing or not allowed"
        if sr.get("intent") not in ("proposal", "plan", "order"):
            return "ServiceRequest.intent is missing or not allowed"
        patient = index.get(str((sr.get("subject") or {}).get("reference")))
        if not patient or patient.get("resourceType") != "Patient":
            return "ServiceRequest.subject must reference a Patient in the Bundle"
        nhs = next((i.get("value") for i in patient.get("identifier") or [] if i.get("system") == NHS_NUMBER), "")
        if not valid_nhs_number(str(nhs)):
            return "Patient.identifier must carry a valid NHS number"
        for ref in sr.get("supportingInfo") or []:
            ms = index.get(str(ref.get("reference")))
            if ms is None:
                return f"ServiceRequest.supportingInfo {ref.get('reference')} is not in the Bundle"
            if ms.get("resourceType") == "MedicationStatement":
                codes = [c for c in (ms.get("medicationCodeableConcept") or {}).get("coding") or []
                         if c.get("system") == SNOMED]
                if not codes and not (ms.get("medicationCodeableConcept") or {}).get("text"):
                    return "MedicationStatement.medicationCodeableConcept needs a dm+d code or text"
        return None

    @app.post(BASE + "/$process-message")
    async def process_message(request: Request) -> Response:
        echo, dos, denied = checks(request)
        if denied:
            return denied
        assert dos is not None
        try:
            bundle = await request.json()
        except ValueError:
            return outcome(400, "REC_BAD_REQUEST", "invalid", "the body is not valid JSON", echo)
        problem = validate(bundle, dos)
        if problem:
            return outcome(400, "REC_BAD_REQUEST", "invalid", problem, echo)
        if bundle["id"] in processed:
            return outcome(409, "REC_CONFLICT", "duplicate",
                           "the message has been identified as having already been processed.", echo)
        processed[bundle["id"]] = dos
        received[dos].append(bundle)
        header = bundle["entry"][0]["resource"]
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        ack_id = str(uuid.uuid4())
        reply = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "message", "timestamp": now,
                 "entry": [{"fullUrl": f"urn:uuid:{ack_id}", "resource": {
                     "resourceType": "MessageHeader", "id": ack_id,
                     "eventCoding": {"system": EVENTS, "code": "servicerequest-response"},
                     "destination": [{"endpoint": header.get("source", {}).get("endpoint", "")}],
                     "source": {"name": RECEIVERS[dos], "endpoint": f"{DOS}|{dos}"},
                     "response": {"identifier": header.get("id"), "code": "ok"},
                     "focus": header.get("focus", [])}}]}
        return JSONResponse(reply, headers=echo, media_type=FHIR_JSON)

    @app.get(BASE + "/ServiceRequest")
    async def service_requests(request: Request) -> Response:
        echo, dos, denied = checks(request)
        if denied:
            return denied
        assert dos is not None
        wanted = request.query_params.get("patient:identifier", "")
        nhs = wanted.rpartition("|")[2]
        if not nhs:
            return outcome(400, "REC_BAD_REQUEST", "required", "patient:identifier is required", echo)
        entries: list[dict[str, Any]] = []
        for bundle in received[dos]:
            index = {str(e.get("fullUrl")): e.get("resource") or {} for e in bundle["entry"]}
            header = bundle["entry"][0]["resource"]
            sr = index[str(header["focus"][0]["reference"])]
            patient = index[str(sr["subject"]["reference"])]
            if not any(i.get("value") == nhs for i in patient.get("identifier", [])):
                continue
            entries.append({"fullUrl": f"ServiceRequest/{sr['id']}",
                            "resource": {**sr, "subject": {"reference": f"Patient/{patient['id']}"},
                                         "supportingInfo": [{"reference": "MedicationStatement/" +
                                                             index[str(s['reference'])]['id']}
                                                            for s in sr.get("supportingInfo", [])]},
                            "search": {"mode": "match"}})
            entries.append({"fullUrl": f"Patient/{patient['id']}", "resource": patient, "search": {"mode": "include"}})
            for s in sr.get("supportingInfo", []):
                ms = index[str(s["reference"])]
                entries.append({"fullUrl": f"MedicationStatement/{ms['id']}",
                                "resource": {**ms, "subject": {"reference": f"Patient/{patient['id']}"}},
                                "search": {"mode": "include"}})
        body = {"resourceType": "Bundle", "type": "searchset",
                "total": sum(1 for e in entries if e["search"]["mode"] == "match"), "entry": entries}
        return JSONResponse(body, headers=echo, media_type=FHIR_JSON)

    app.state.credentials = {"api_key": API_KEY, "kid": KID, "private_key": sandbox_key()[0]}
    app.state.config = {"ods_code": "VM4X2", "organisation_name": CARE_HOMES[0],
                        "target_service_id": "2000072489", "receiver_name": RECEIVERS["2000072489"],
                        "nhs_numbers": ",".join(r["nhsNumber"] for r in residents)}
    app.state.residents = residents
    app.state.message_ids = message_ids
    return app
