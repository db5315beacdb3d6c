"""NHS PDS FHIR R4 sandbox (application-restricted access mode) and the NHS API platform token endpoint.

Faithful to ``NHSDigital/personal-demographics-service-api`` ``specification/personal-demographics.yaml``:

* ``GET /personal-demographics/FHIR/R4/Patient/{id}``: a ``Patient`` with ``ETag: W/"<versionId>"``;
  restricted (sensitive) patients come without address, telecom, contact and GP;
* ``GET /personal-demographics/FHIR/R4/Patient/{id}/RelatedPerson``: a ``searchset`` Bundle of related
  people (next of kin first, ranked); empty for restricted patients;
* ``GET /personal-demographics/FHIR/R4/Patient?family&given&gender&birthdate&address-postalcode...``: a
  ``searchset`` Bundle with one scored match; ``_max-results`` above 1 is refused (403) in this mode; several
  matches give HTTP 200 with a ``TOO_MANY_MATCHES`` OperationOutcome;
* ``X-Request-ID`` is mandatory (a UUID) and mirrored with ``X-Correlation-ID``; errors are
  ``OperationOutcome`` with Spine error codes (``INVALID_RESOURCE_ID``, ``RESOURCE_NOT_FOUND``,
  ``MISSING_VALUE``, ``INVALID_VALUE``, ``ADDITIONAL_PROPERTIES``, ``INVALID_SEARCH_DATA``, ``ACCESS_DENIED``,
  ``TOO_MANY_REQUESTS``);
* ``POST /oauth2/token``: ``client_credentials`` with a JWT client assertion, checked like the platform does
  (RS512 signature against the registered key for ``kid``, ``iss`` = ``sub`` = API key, ``aud`` = the token
  URL, ``exp`` at most 5 minutes ahead, ``jti`` never reused); tokens last 599 seconds.

Residents carry NHS numbers from the 999 test range with valid modulus-11 check digits.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.sandboxes.common import (
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
from connectors.sandboxes.nhs_auth import AssertionPolicy, add_signed_jwt_token_route, rsa_key_pair

BASE = "/personal-demographics/FHIR/R4"
API_KEY = "carehub-sandbox-pds-api-key-7f3e2a"
KID = "carehub-sandbox-1"
TOKEN_TTL = 599
FHIR_JSON = "application/fhir+json"
SPINE = "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
RATE_LIMIT_TEXT = ("You have exceeded your application's rate limit. Please see: https://digital.nhs.uk/developer/"
                   "guides-and-documentation/reference-guide#rate-limits for more details.")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SEARCH_PARAMS = frozenset({"_fuzzy-match", "_exact-match", "_history", "_max-results", "family", "given", "gender",
                           "birthdate", "death-date", "address-postalcode", "address-postcode",
                           "general-practitioner", "email", "phone"})
GP_PRACTICES = ("B86041", "B86016", "Y02494", "P84012", "G85013", "H81070")
PHARMACIES = ("FA424", "FCP41", "FX518", "FM003")
HOME_ADDRESSES = {
    "Willow Court Care Home": ("12 Willow Court Lane", "Headingley", "Leeds", "West Yorkshire", "LS6 3BN"),
    "Rosewood Lodge": ("Rosewood Lodge", "4 Park Road", "Didsbury", "Manchester", "M20 6RT"),
    "Meadowbank Nursing Home": ("Meadowbank", "27 Mill Lane", "Tonbridge", "Kent", "TN9 1PX"),
    "Oakfield House": ("Oakfield House", "90 Oakfield Road", "Guildford", "Surrey", "GU1 4LB"),
}


@lru_cache(maxsize=1)
def sandbox_key() -> tuple[str, str]:
    """The sandbox app's RSA key pair (private PEM, public PEM); made once per process."""
    return rsa_key_pair()


def valid_nhs_number(value: str) -> bool:
    """Ten digits with a valid modulus-11 check digit."""
    return bool(re.fullmatch(r"\d{10}", value)) and nhs_check_digit(value[:9]) == int(value[9])


def outcome(status: int, code: str, display: str, diagnostics: str | None = None, *,
            issue_code: str = "value", headers: dict[str, str] | None = None) -> JSONResponse:
    """An ``OperationOutcome`` error with a Spine error code."""
    issue: dict[str, Any] = {"severity": "error", "code": issue_code,
                             "details": {"coding": [{"system": SPINE, "version": "1", "code": code,
                                                     "display": display}]}}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [issue]}, status_code=status,
                        headers=headers or {}, media_type=FHIR_JSON)


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return outcome(429, "TOO_MANY_REQUESTS", "You have exceeded your application's rate limit", RATE_LIMIT_TEXT,
                   issue_code="throttled", headers=headers)


class MirrorRequestIds:
    """The platform mirrors ``X-Request-ID`` and ``X-Correlation-ID`` on every reply, throttles included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = {k.lower(): v for k, v in scope.get("headers", [])
                  if k.lower() in (b"x-request-id", b"x-correlation-id")}

        async def mirrored(message: Message) -> None:
            if message["type"] == "http.response.start" and wanted:
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in wanted.items() if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, mirrored)


def _patient(seed: int, i: int, number: str) -> dict[str, Any]:
    r = rng_for(seed, "pds.patients", i)
    p = pools(seed)
    gender = r.choice(("female", "female", "male", "male", "female", "other"))
    given = [r.choice(p.first_names)] + ([r.choice(p.first_names)] if r.random() < 0.4 else [])
    family = r.choice(p.last_names)
    born = date(1926, 1, 1) + timedelta(days=r.randrange(0, 32 * 365))
    home = CARE_HOMES[i % len(CARE_HOMES)]
    line1, line2, town, county, postcode = HOME_ADDRESSES[home]
    moved_in = date(2019, 1, 1) + timedelta(days=r.randrange(0, 6 * 365))
    version = str(1 + r.randrange(0, 5))
    restricted = i % 37 == 11
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": number,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": number, "extension": [{
            "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
            "valueCodeableConcept": {"coding": [{
                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus",
                "version": "1.0.0", "code": "01", "display": "Number present and verified"}]}}]}],
        "meta": {"versionId": version, "security": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
            "code": "R" if restricted else "U", "display": "restricted" if restricted else "unrestricted"}]},
        "name": [{"id": f"{i:06d}N", "use": "usual", "period": {"start": f"{born}"}, "given": given,
                  "family": family, "prefix": [{"female": "Mrs", "male": "Mr"}.get(gender, "Mx")]}],
        "gender": gender, "birthDate": f"{born}",
        "address": [{"id": f"{i:06d}A", "period": {"start": f"{moved_in}"}, "use": "home",
                     "line": [home, line1, line2, town, county][:5], "postalCode": postcode}],
        "telecom": [{"id": f"{i:06d}T", "period": {"start": f"{moved_in}"}, "system": "phone",
                     "value": f"0113 496 {r.randrange(0, 10000):04d}", "use": "home"}],
        "generalPractitioner": [{"id": f"{i:06d}G", "type": "Organization", "identifier": {
            "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": r.choice(GP_PRACTICES),
            "period": {"start": f"{moved_in}"}}}],
        "extension": [{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NominatedPharmacy",
                       "valueReference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                                         "value": r.choice(PHARMACIES)}}}],
    }
    if r.random() < 0.3:
        patient["contact"] = [{"id": f"{i:06d}C", "period": {"start": f"{moved_in}"},
                               "relationship": [{"coding": [{
                                   "system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C",
                                   "display": "Emergency Contact"}]}],
                               "telecom": [{"system": "phone", "value": r.choice(p.phones)}]}]
    if i % 53 == 7:
        patient["deceasedDateTime"] = f"{date(2026, 9, 1) + timedelta(days=i % 60)}T03:20:00+00:00"
    if restricted:
        for key in ("address", "telecom", "contact", "generalPractitioner"):
            patient.pop(key, None)
        patient["extension"] = []
    return patient


RELATIONS = (("N", "Next-of-Kin"), ("U", "Unknown"), ("C", "Emergency Contact"))
PERSONAL = (("DAU", "natural daughter"), ("SON", "natural son"), ("SPS", "spouse"), ("NIECE", "niece"),
            ("FRND", "unrelated friend"))


def _related(seed: int, i: int, patient: dict[str, Any]) -> list[dict[str, Any]]:
    """0-2 related people (next of kin first); none for restricted patients, as PDS does."""
    if patient["meta"]["security"][0]["code"] == "R":
        return []
    r = rng_for(seed, "pds.related", i)
    p = pools(seed)
    out = []
    for k in range(r.choice((0, 1, 1, 2))):
        code, display = RELATIONS[0] if k == 0 else r.choice(RELATIONS[1:])
        personal = r.choice(PERSONAL)
        out.append({
            "id": f"{i:05d}{k:02d}RP", "resourceType": "RelatedPerson",
            "patient": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": patient["id"]}},
            "active": True, "period": {"start": f"{date(2019, 1, 1) + timedelta(days=r.randrange(0, 2000))}"},
            "name": [{"use": "usual", "given": [r.choice(p.first_names)], "family": r.choice(p.last_names)}],
            "telecom": [{"system": "phone", "value": f"07700 9{r.randrange(0, 100000):05d}", "use": "mobile"}],
            "relationship": [{"coding": [
                {"system": "http://hl7.org/fhir/ValueSet/relatedperson-relationshiptype", "code": code,
                 "display": display},
                {"system": "http://hl7.org/fhir/ValueSet/relatedperson-relationshiptype", "code": personal[0],
                 "display": personal[1]}]}],
            "extension": [{"url": "https://fhir.nhs.uk/R4/StructureDefinition/Extension-UKCore-ContactRank",
                           "valuePositiveInt": k + 1}],
        })
    return out


def _search_view(patient: dict[str, Any]) -> dict[str, Any]:
    """Search results carry less than a retrieval: no pharmacies, only the home address and usual names."""
    allowed = ("resourceType", "id", "identifier", "meta", "name", "gender", "birthDate", "multipleBirthInteger",
               "deceasedDateTime", "address", "telecom", "contact", "generalPractitioner")
    view = {k: v for k, v in patient.items() if k in allowed}
    if "address" in view:
        view["address"] = [a for a in view["address"] if a.get("use") == "home"]
    return view


def _like(value: str, pattern: str) -> bool:
    """PDS wildcard matching: ``*`` anywhere but the first two characters, case-insensitive."""
    rx = "^" + ".*".join(re.escape(part) for part in pattern.lower().split("*")) + "$"
    return re.match(rx, value.lower()) is not None


_DATE_PARAM = re.compile(r"^(eq|ge|le|gt|lt)?(\d{4}-\d{2}-\d{2})$")


def create_app(config: SandboxConfig | None = None, *, public_keys: dict[str, str] | None = None) -> FastAPI:
    """The PDS sandbox app; ``public_keys`` maps a ``kid`` to the PEM public key registered for the API key."""
    cfg = config or SandboxConfig(token_ttl_seconds=TOKEN_TTL)
    state = new_state(cfg, "NHS PDS")
    seed = cfg.seed
    n = cfg.count("patients")
    numbers: list[str] = []
    seen: set[str] = set()
    k = 0
    while len(numbers) < n:
        number = nhs_number(rng_for(seed, "pds.nhs_numbers", k))
        k += 1
        if number not in seen:
            seen.add(number)
            numbers.append(number)
    index = {num: i for i, num in enumerate(numbers)}
    overrides: dict[str, dict[str, Any]] = {}
    keys = dict(public_keys or {KID: sandbox_key()[1]})
    used_jti: dict[str, float] = {}
    state.extra.update(numbers=numbers, used_jti=used_jti)
    app = FastAPI(title="NHS PDS FHIR sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth2/",))
    app.add_middleware(MirrorRequestIds)
    add_control_routes(app, state)

    def patient(number: str) -> dict[str, Any] | None:
        if number in overrides:
            return overrides[number]
        i = index.get(number)
        return None if i is None else _patient(seed, i, number)

    # ------------------------------------------------------------------ token endpoint

    def issue(form: Any, header: dict[str, Any], claims: dict[str, Any]) -> Response:
        issued = state.issue_tokens()
        return JSONResponse({"access_token": issued["access_token"], "expires_in": str(cfg.token_ttl_seconds),
                             "token_type": "Bearer", "issued_at": str(int(time.time() * 1000))})

    add_signed_jwt_token_route(app, state, "/oauth2/token", AssertionPolicy(client_id=lambda: API_KEY,
                                                                            key_for=keys.get), used_jti, issue)

    # ------------------------------------------------------------------ FHIR API

    def common_checks(request: Request) -> tuple[dict[str, str], Response | None]:
        rid = request.headers.get("x-request-id")
        echo = {"X-Request-ID": rid} if rid else {}
        if request.headers.get("x-correlation-id"):
            echo["X-Correlation-ID"] = request.headers["x-correlation-id"]
        if not rid:
            return echo, outcome(400, "MISSING_VALUE", "Required value is missing",
                                 "Invalid request with error - X-Request-ID header must be supplied to access this "
                                 "resource", issue_code="required", headers=echo)
        if not UUID_RE.match(rid):
            return echo, outcome(400, "INVALID_VALUE", "Provided value is invalid",
                                 "Invalid value - '" + rid + "' in header 'X-Request-ID'", headers=echo)
        auth = request.headers.get("authorization", "")
        token_ = auth[7:] if auth.lower().startswith("bearer ") else None
        if not state.token_valid(token_):
            return echo, outcome(401, "ACCESS_DENIED", "Access Denied - Unauthorised",
                                 "Invalid access token", issue_code="forbidden", headers=echo)
        return echo, None

    @app.get(BASE + "/Patient/{nhs}")
    async def get_patient(nhs: str, request: Request) -> Response:
        echo, denied = common_checks(request)
        if denied:
            return denied
        if not valid_nhs_number(nhs):
            return outcome(400, "INVALID_RESOURCE_ID", "Resource Id is invalid", headers=echo)
        found = patient(nhs)
        if found is None:
            return outcome(404, "RESOURCE_NOT_FOUND", "Resource not found", issue_code="not-found", headers=echo)
        return JSONResponse(found, headers={**echo, "ETag": f'W/"{found["meta"]["versionId"]}"'},
                            media_type=FHIR_JSON)

    @app.get(BASE + "/Patient/{nhs}/RelatedPerson")
    async def related_people(nhs: str, request: Request) -> Response:
        echo, denied = common_checks(request)
        if denied:
            return denied
        if not valid_nhs_number(nhs):
            return outcome(400, "INVALID_RESOURCE_ID", "Resource Id is invalid", headers=echo)
        found = patient(nhs)
        if found is None:
            return outcome(404, "RESOURCE_NOT_FOUND", "Resource not found", issue_code="not-found", headers=echo)
        people = _related(seed, index[nhs], found)
        bundle = {"resourceType": "Bundle", "type": "searchset",
                  "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat(), "total": len(people),
                  "entry": [{"fullUrl": f"https://api.service.nhs.uk{BASE}/Patient/{nhs}/RelatedPerson/{rp['id']}",
                             "resource": rp} for rp in people]}
        return JSONResponse(bundle, headers={**echo, "ETag": f'W/"{found["meta"]["versionId"]}"'},
                            media_type=FHIR_JSON)

    @app.get(BASE + "/Patient")
    async def search(request: Request) -> Response:
        echo, denied = common_checks(request)
        if denied:
            return denied
        q = request.query_params
        unknown = sorted(set(q.keys()) - SEARCH_PARAMS)
        if unknown:
            return outcome(400, "ADDITIONAL_PROPERTIES", "Additional properties are not allowed",
                           f"Invalid request with error - additional properties not allowed: {', '.join(unknown)}",
                           headers=echo)
        if not q:
            return outcome(400, "UNSUPPORTED_SERVICE", "Unsupported Service", issue_code="not-supported",
                           headers=echo)
        max_results = q.get("_max-results", "1")
        if not max_results.isdigit() or not 1 <= int(max_results) <= 50:
            return outcome(400, "INVALID_VALUE", "Provided value is invalid",
                           f"Invalid value - '{max_results}' in field '_max-results'", headers=echo)
        if int(max_results) > 1:
            return outcome(403, "INVALID_VALUE", "Provided value is invalid",
                           "Multiple results requested in application-restricted access mode", headers=echo)
        births = q.getlist("birthdate")
        parsed = [_DATE_PARAM.match(b) for b in births]
        if any(m is None for m in parsed):
            return outcome(400, "INVALID_VALUE", "Provided value is invalid",
                           "Invalid value - birthdate must be <eq|ge|le>yyyy-mm-dd", headers=echo)
        if not q.get("family") or not births:
            return outcome(400, "INVALID_SEARCH_DATA", "Search data is invalid",
                           "Not enough search parameters were provided to be able to make a search", headers=echo)
        gender = q.get("gender")
        if gender and gender not in ("male", "female", "other", "unknown"):
            return outcome(400, "INVALID_VALUE", "Provided value is invalid",
                           f"Invalid value - '{gender}' in field 'gender'", headers=echo)
        givens = q.getlist("given")
        postcode = (q.get("address-postalcode") or q.get("address-postcode") or "").replace(" ", "")
        matches = []
        for num in numbers:
            pat = patient(num)
            if pat is None:
                continue
            name = pat["name"][0]
            if not _like(name["family"], q["family"]):
                continue
            if givens and not all(j < len(name["given"]) and _like(name["given"][j], g) for j, g in enumerate(givens)):
                continue
            if gender and pat["gender"] != gender:
                continue
            ok = True
            for m in parsed:
                assert m is not None
                op, day = m.group(1) or "eq", m.group(2)
                b = pat["birthDate"]
                ok &= {"eq": b == day, "ge": b >= day, "le": b <= day, "gt": b > day, "lt": b < day}[op]
            if not ok:
                continue
            if postcode:
                restricted = pat["meta"]["security"][0]["code"] == "R"
                codes = [a.get("postalCode", "").replace(" ", "") for a in pat.get("address", [])]
                if restricted or not any(_like(c, postcode) for c in codes):
                    continue
            matches.append(pat)
        if len(matches) > 1:
            return outcome(200, "TOO_MANY_MATCHES", "Too Many Matches", issue_code="multiple-matches", headers=echo)
        entry = [{"fullUrl": f"https://api.service.nhs.uk{BASE}/Patient/{m['id']}", "search": {"score": 1},
                  "resource": _search_view(m)} for m in matches]
        bundle = {"resourceType": "Bundle", "type": "searchset",
                  "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat(), "total": len(entry),
                  "entry": entry}
        return JSONResponse(bundle, headers=echo, media_type=FHIR_JSON)

    @app.post("/_sandbox/pds/patients/{nhs}")
    async def replace_patient(nhs: str, request: Request) -> dict[str, Any]:
        """Change a patient (a new version), as another organisation would through PDS."""
        current = patient(nhs) or {"resourceType": "Patient", "id": nhs, "meta": {"versionId": "0"}}
        new = {**current, **(await request.json())}
        new["meta"] = {**current.get("meta", {}), "versionId": str(int(current["meta"]["versionId"]) + 1)}
        overrides[nhs] = new
        if nhs not in index:
            index[nhs] = len(numbers)
            numbers.append(nhs)
        return new

    app.state.credentials = {"api_key": API_KEY, "kid": KID, "private_key": sandbox_key()[0]}
    app.state.config = {"ods_code": "VM4X2", "nhs_numbers": ",".join(numbers)}
    app.state.numbers = numbers
    return app
