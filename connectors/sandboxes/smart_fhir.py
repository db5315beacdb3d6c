"""SMART on FHIR R4 sandbox with two vendor profiles: Cerner (Oracle Health Millennium) and Epic.

Built from the vendors' captured CapabilityStatements (``api-evangelist/cerner``
``conformance/cerner-capability-statement-r4-secure.json``, ``api-evangelist/epic-systems``
``fhir/epic-fhir-r4-capabilitystatement.json``) and their SMART backend-services documentation:

* ``GET {fhir base}/.well-known/smart-configuration`` names the token endpoint (Cerner's sits under
  ``/tenants/{tenant}/hosts/fhir-ehr-code.cerner.com/protocols/oauth2/profiles/smart-v1/token``, Epic's is
  ``/oauth2/token``); ``GET {fhir base}/metadata`` is a CapabilityStatement with the ``oauth-uris`` extension;
* ``POST <token endpoint>``: ``client_credentials`` with a ``private_key_jwt`` assertion, checked as the vendors
  describe: RS384 (or ES384) signature against the app's registered JWKS by ``kid`` (a ``jku`` header must be
  the registered JWKS URL; Epic requires one, as it does of backend apps created from February 2026),
  ``iss`` = ``sub`` = client id, ``aud`` = the token endpoint, ``exp`` at most five
  minutes ahead, ``jti`` never reused. Cerner wants SMART ``system/<Type>.read`` scopes and enforces them per
  resource; Epic grants what was registered for the app;
* searches only with the parameters each vendor's CapabilityStatement lists (anything else is a 400
  OperationOutcome, as with ``Prefer: handling=strict``): Cerner filters ``_lastUpdated`` on Observation,
  MedicationRequest and AllergyIntolerance; Epic has no ``_lastUpdated`` at all, its lab results are filtered by
  ``issued``; clinical searches need ``patient``; Epic's Observation search needs ``category`` (or ``code``)
  and its Appointment search ``service-category``; Cerner's Appointment search needs ``date``;
* searchset Bundles with ``_count`` paging and ``link[relation=next]`` (the next link's exact shape is the
  vendors' own and unconfirmed here: an opaque page token on the original query);
* errors are ``OperationOutcome`` (401 with ``WWW-Authenticate``, 403 for a missing scope, 429 ``throttled``
  with ``Retry-After``).

Data: residents of UK care homes as patients of a hospital trust's EPR, with NHS numbers from the 999 test
range (valid modulus-11 check digits) beside the trust's MRN; lab results coded in LOINC with UCUM units;
medicines coded in dm+d (SNOMED CT) and RxNorm; allergies in SNOMED CT.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    BASE_TIME,
    CARE_HOMES,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    nhs_number,
    pools,
    rng_for,
)
from connectors.sandboxes.nhs_auth import SMART_REFUSALS, AssertionPolicy, add_signed_jwt_token_route

FHIR_JSON = "application/fhir+json"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLIENT_ID = "carehub-sandbox-smart-client"
KID = "carehub-smart-1"
JWKS_URL = "https://carehub.example/.well-known/jwks.json"
CERNER_TENANT = "ec2458f2-1e24-41c8-b71b-0e701af7583d"
RESOURCES = ("Patient", "Observation", "MedicationRequest", "AllergyIntolerance", "Appointment")


@dataclass(frozen=True)
class Profile:
    """What differs between the vendors."""

    id: str
    vendor: str
    fhir_base: str
    token_path: str
    token_ttl: int
    page_param: str
    default_count: int
    max_count: int
    scopes_required: bool
    search_params: dict[str, frozenset[str]]
    required: dict[str, tuple[frozenset[str], ...]] = field(default_factory=dict)
    patient_id: str = "numeric"
    jku_required: bool = False  # Epic: new backend apps (from February 2026) must name their JWKS URL


_COMMON = frozenset({"_count", "_id"})
CERNER = Profile(
    id="cerner", vendor="Cerner (Oracle Health Millennium)", fhir_base=f"/r4/{CERNER_TENANT}",
    token_path=f"/tenants/{CERNER_TENANT}/hosts/fhir-ehr-code.cerner.com/protocols/oauth2/profiles/smart-v1/token",
    token_ttl=570, page_param="-pageContext", default_count=50, max_count=100, scopes_required=True,
    search_params={
        "Patient": _COMMON | {"identifier", "name", "given", "family", "address-postalcode", "birthdate", "phone",
                              "email", "gender"},
        "Observation": _COMMON | {"patient", "subject", "category", "code", "date", "_lastUpdated"},
        "MedicationRequest": _COMMON | {"patient", "intent", "status", "_lastUpdated", "-timing-boundsPeriod"},
        "AllergyIntolerance": _COMMON | {"patient", "clinical-status", "_lastUpdated"},
        "Appointment": _COMMON | {"date", "-date-or-req-period", "patient", "practitioner", "location", "status"},
    },
    required={"Patient": (frozenset({"_id", "identifier", "name", "given", "family", "address-postalcode",
                                     "birthdate", "phone", "email"}),),
              "Observation": (frozenset({"patient", "subject", "_id"}),),
              "MedicationRequest": (frozenset({"patient", "_id"}),),
              "AllergyIntolerance": (frozenset({"patient", "_id"}),),
              "Appointment": (frozenset({"patient", "practitioner", "location", "_id"}),
                              frozenset({"date", "-date-or-req-period", "_id"}))},
)
EPIC = Profile(
    id="epic", vendor="Epic", fhir_base="/api/FHIR/R4", token_path="/oauth2/token", token_ttl=3600,
    page_param="sessionID", default_count=50, max_count=100, scopes_required=False, patient_id="epic",
    jku_required=True,
    search_params={
        "Patient": _COMMON | {"identifier", "family", "given", "name", "birthdate", "gender", "address-postalcode",
                              "telecom", "email", "phone", "active"},
        "Observation": _COMMON | {"patient", "subject", "category", "code", "date", "issued", "status",
                                  "identifier"},
        "MedicationRequest": _COMMON | {"patient", "subject", "category", "date", "intent", "status", "authoredon",
                                        "identifier"},
        "AllergyIntolerance": _COMMON | {"patient", "clinical-status", "category", "criticality", "date",
                                         "identifier", "verification-status"},
        "Appointment": _COMMON | {"patient", "date", "service-category", "status", "identifier", "actor"},
    },
    required={"Patient": (frozenset({"_id", "identifier", "family", "given", "name", "birthdate", "telecom",
                                     "email", "phone", "address-postalcode"}),),
              "Observation": (frozenset({"patient", "subject", "_id"}), frozenset({"category", "code", "_id"})),
              "MedicationRequest": (frozenset({"patient", "subject", "_id"}),),
              "AllergyIntolerance": (frozenset({"patient", "_id"}),),
              "Appointment": (frozenset({"patient", "_id"}), frozenset({"service-category", "_id"}))},
)
PROFILES = {"cerner": CERNER, "epic": EPIC}

LABS = (  # LOINC code, display, UCUM unit, low, high, typical value, spread
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/L", 115.0, 165.0, 128.0, 18.0),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 133.0, 146.0, 139.0, 4.0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.3, 4.3, 0.6),
    ("2160-0", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", 45.0, 90.0, 78.0, 25.0),
    ("33914-3", "Glomerular filtration rate/1.73 sq M.predicted (MDRD)", "mL/min/{1.73_m2}", 60.0, 120.0, 62.0, 15.0),
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0.0, 5.0, 4.0, 6.0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "mmol/mol", 20.0, 41.0, 44.0, 8.0),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*9/L", 4.0, 11.0, 7.2, 2.0),
)
VITALS = (("8867-4", "Heart rate", "/min", 78.0, 10.0), ("8310-5", "Body temperature", "Cel", 36.8, 0.4))
MEDICINES = (  # dm+d (SNOMED CT) code, name, RxNorm code, dosage
    ("322236009", "Paracetamol 500mg tablets", "313782", "Two tablets up to four times a day when required"),
    ("319283006", "Amlodipine 5mg tablets", "197361", "One tablet once a day"),
    ("319740004", "Atorvastatin 20mg tablets", "617310", "One tablet at night"),
    ("321196004", "Donepezil 5mg tablets", "997223", "One tablet at night"),
    ("317972000", "Bisoprolol 2.5mg tablets", "854905", "One tablet in the morning"),
    ("39732311000001104", "Lansoprazole 15mg orodispersible tablets", "351261", "One tablet in the morning"),
)
ALLERGENS = (  # SNOMED CT substance, display, reaction SNOMED, reaction display, category
    ("764146007", "Penicillin", "271807003", "Skin rash", "medication"),
    ("387458008", "Aspirin", "267036007", "Shortness of breath", "medication"),
    ("256349002", "Peanut", "39579001", "Anaphylaxis", "food"),
    ("111088007", "Latex", "247472004", "Hives", "environment"),
)
CLINICS = ("Memory Clinic", "Diabetes Outpatients", "Falls Clinic", "Cardiology Outpatients", "Phlebotomy")


@lru_cache(maxsize=1)
def sandbox_key() -> tuple[str, dict[str, Any]]:
    """The sandbox client's RSA key: (private PEM, public JWK with ``kid``); made once per process."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KID, use="sig", alg="RS384")
    return private, jwk


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if len(text) == 10:
        text += "T00:00:00+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _epic_id(seed: int, kind: str, i: int) -> str:
    raw = rng_for(seed, f"epic.{kind}", i).randbytes(15)
    return "e" + base64.b64encode(raw).decode().replace("+", "A").replace("/", "B") + "3"


class Store:
    """Deterministic records of every resource type, per patient, plus records added at run time."""

    def __init__(self, profile: Profile, seed: int, patients: int, per_patient: int) -> None:
        self.profile = profile
        self.seed = seed
        self.per = per_patient
        self.patients = [self._patient(i) for i in range(patients)]
        self.by_id = {p["id"]: i for i, p in enumerate(self.patients)}
        self.added: dict[str, list[dict[str, Any]]] = {t: [] for t in RESOURCES}
        self._cache: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._last = datetime.now(UTC)

    def rid(self, kind: str, i: int) -> str:
        """A vendor-shaped logical id."""
        if self.profile.patient_id == "epic":
            return _epic_id(self.seed, kind, i)
        base = {"Patient": 12724000, "Observation": 197000000, "MedicationRequest": 313000000,
                "AllergyIntolerance": 14000000, "Appointment": 4800000}[kind]
        return str(base + i * 7 + 3)

    def stamp(self, i: int, k: int) -> datetime:
        return BASE_TIME + timedelta(hours=6 * (i * self.per + k))

    def now(self) -> datetime:
        """A strictly increasing 'now' for records added at run time."""
        self._last = max(datetime.now(UTC), self._last + timedelta(milliseconds=5))
        return self._last

    def _patient(self, i: int) -> dict[str, Any]:
        r = rng_for(self.seed, f"{self.profile.id}.patient", i)
        p = pools(self.seed)
        gender = r.choice(("female", "female", "male"))
        born = datetime(1928, 1, 1) + timedelta(days=r.randrange(0, 30 * 365))
        home = CARE_HOMES[i % len(CARE_HOMES)]
        nhs = nhs_number(rng_for(self.seed, "smart.nhs", i))
        return {
            "resourceType": "Patient", "id": self.rid("Patient", i),
            "meta": {"versionId": "1", "lastUpdated": _iso(BASE_TIME - timedelta(days=30 - i % 30))},
            "identifier": [
                {"use": "official", "system": NHS_NUMBER, "value": nhs},
                {"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                       "code": "MR", "display": "Medical record number"}]},
                 "system": f"urn:oid:2.16.840.1.113883.3.{13 if self.profile.id == 'cerner' else 3}.6",
                 "value": f"RXH{100000 + i}"}],
            "active": True,
            "name": [{"use": "official", "family": r.choice(p.last_names), "given": [r.choice(p.first_names)],
                      "prefix": [{"female": "Mrs", "male": "Mr"}[gender]]}],
            "gender": gender, "birthDate": born.date().isoformat(),
            "address": [{"use": "home", "line": [home, r.choice(p.streets)], "city": r.choice(p.towns),
                         "postalCode": r.choice(p.postcodes), "country": "GB"}],
            "telecom": [{"system": "phone", "value": f"0113 496 {r.randrange(0, 10000):04d}", "use": "home"}],
        }

    def nhs(self, i: int) -> str:
        return str(self.patients[i]["identifier"][0]["value"])

    def subject(self, i: int) -> dict[str, Any]:
        pat = self.patients[i]
        name = pat["name"][0]
        return {"reference": f"Patient/{pat['id']}", "display": f"{name['given'][0]} {name['family']}",
                "identifier": {"system": NHS_NUMBER, "value": self.nhs(i)}}

    def observation(self, i: int, k: int, at: datetime, lab: int | None = None, value: float | None = None
                    ) -> dict[str, Any]:
        r = rng_for(self.seed, f"{self.profile.id}.obs.{i}", k)
        n = i * self.per + k
        if lab is None and k % 4 == 3:
            code, display, unit, typical, spread = VITALS[k % 2]
            category, val = "vital-signs", round(typical + r.uniform(-spread, spread), 1)
            ranges: list[dict[str, Any]] = []
            interp = None
        else:
            code, display, unit, low, high, typical, spread = LABS[lab if lab is not None else n % len(LABS)]
            category = "laboratory"
            val = value if value is not None else round(max(0.1, typical + r.uniform(-spread, spread)), 1)
            ranges = [{"low": {"value": low, "unit": unit, "system": UCUM, "code": unit},
                       "high": {"value": high, "unit": unit, "system": UCUM, "code": unit},
                       "text": f"{low:g}-{high:g} {unit}"}]
            flag = "H" if val > high else "L" if val < low else "N"
            interp = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                   "code": flag}]}]
        effective = at - timedelta(hours=4)
        obs: dict[str, Any] = {
            "resourceType": "Observation", "id": self.rid("Observation", n if lab is None else 10_000_000 + k),
            "meta": {"versionId": "1", "lastUpdated": _iso(at)}, "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": category,
                                      "display": category.replace("-", " ").title()}],
                          "text": category.replace("-", " ").title()}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
            "subject": self.subject(i), "effectiveDateTime": _iso(effective), "issued": _iso(at),
            "valueQuantity": {"value": val, "unit": unit, "system": UCUM, "code": unit},
        }
        if ranges:
            obs["referenceRange"] = ranges
        if interp:
            obs["interpretation"] = interp
        if category == "laboratory":
            obs["basedOn"] = [{"reference": f"ServiceRequest/{400000 + n}"}]
        return obs

    def medication(self, i: int, k: int) -> dict[str, Any]:
        r = rng_for(self.seed, f"{self.profile.id}.med.{i}", k)
        dmd, name, rxnorm, dosage = MEDICINES[(i + k) % len(MEDICINES)]
        at = self.stamp(i, k) + timedelta(minutes=17)
        stopped = r.random() < 0.15
        return {
            "resourceType": "MedicationRequest", "id": self.rid("MedicationRequest", i * 10 + k),
            "meta": {"versionId": "1", "lastUpdated": _iso(at)},
            "status": "stopped" if stopped else "active", "intent": "order",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                                      "code": "discharge", "display": "Discharge"}]}],
            "medicationCodeableConcept": {"coding": [{"system": SNOMED, "code": dmd, "display": name},
                                                     {"system": RXNORM, "code": rxnorm, "display": name}],
                                          "text": name},
            "subject": self.subject(i), "authoredOn": _iso(at - timedelta(days=2)),
            "requester": {"display": r.choice(("Dr Sarah Okafor", "Dr James Whitfield", "Dr Priya Nair"))},
            "dosageInstruction": [{"text": dosage, "route": {"coding": [{"system": SNOMED, "code": "26643006",
                                                                         "display": "Oral"}], "text": "Oral"}}],
            "dispenseRequest": {"quantity": {"value": 28, "unit": "tablet"},
                                "expectedSupplyDuration": {"value": 28, "unit": "days",
                                                           "system": UCUM, "code": "d"}},
        }

    def allergy(self, i: int, k: int) -> dict[str, Any]:
        code, display, rcode, rdisplay, category = ALLERGENS[(i + k) % len(ALLERGENS)]
        at = self.stamp(i, k) + timedelta(minutes=29)
        return {
            "resourceType": "AllergyIntolerance", "id": self.rid("AllergyIntolerance", i * 10 + k),
            "meta": {"versionId": "1", "lastUpdated": _iso(at)},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                           "allergyintolerance-clinical", "code": "active", "display": "Active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                               "allergyintolerance-verification", "code": "confirmed"}]},
            "type": "allergy", "category": [category], "criticality": "high" if k == 0 else "low",
            "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
            "patient": self.subject(i), "recordedDate": _iso(at - timedelta(days=40)),
            "reaction": [{"manifestation": [{"coding": [{"system": SNOMED, "code": rcode, "display": rdisplay}],
                                             "text": rdisplay}],
                          "severity": "severe" if rcode == "39579001" else "moderate"}],
        }

    def appointment(self, i: int, k: int) -> dict[str, Any]:
        r = rng_for(self.seed, f"{self.profile.id}.appt.{i}", k)
        at = self.stamp(i, k) + timedelta(minutes=41)
        start = datetime(2026, 10, 1, 9, tzinfo=UTC) + timedelta(days=i * 3 + k * 11, minutes=30 * r.randrange(0, 14))
        clinic = CLINICS[(i + k) % len(CLINICS)]
        return {
            "resourceType": "Appointment", "id": self.rid("Appointment", i * 10 + k),
            "meta": {"versionId": "1", "lastUpdated": _iso(at)},
            "status": "fulfilled" if start < datetime(2026, 11, 1, tzinfo=UTC) else "booked",
            "serviceCategory": [{"coding": [{"system": "http://open.epic.com/FHIR/StructureDefinition/"
                                             "service-category", "code": "appointment"}]}],
            "serviceType": [{"text": clinic}], "description": f"{clinic} follow-up",
            "start": _iso(start), "end": _iso(start + timedelta(minutes=30)), "minutesDuration": 30,
            "participant": [{"actor": self.subject(i), "status": "accepted"},
                            {"actor": {"reference": f"Location/{900 + (i + k) % len(CLINICS)}",
                                       "display": f"St James's University Hospital, {clinic}"},
                             "status": "accepted"}],
        }

    def for_patient(self, kind: str, i: int) -> list[dict[str, Any]]:
        """Every record of ``kind`` for patient ``i`` (generated once, then cached)."""
        key = (kind, i)
        if key not in self._cache:
            if kind == "Observation":
                out = [self.observation(i, k, self.stamp(i, k)) for k in range(self.per)]
            elif kind == "MedicationRequest":
                out = [self.medication(i, k) for k in range(1 + i % 3)]
            elif kind == "AllergyIntolerance":
                out = [self.allergy(i, k) for k in range(i % 3)]
            elif kind == "Appointment":
                out = [self.appointment(i, k) for k in range(1 + i % 2)]
            else:
                out = [self.patients[i]]
            self._cache[key] = out
        return self._cache[key] + [r for r in self.added[kind] if self._owner(r) == i]

    def _owner(self, res: dict[str, Any]) -> int | None:
        ref = (res.get("subject") or res.get("patient") or {}).get("reference", "")
        return self.by_id.get(str(ref).removeprefix("Patient/"))


def outcome(status: int, code: str, diagnostics: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An ``OperationOutcome`` error."""
    return JSONResponse({"resourceType": "OperationOutcome",
                         "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]},
                        status_code=status, headers=headers or {}, media_type=FHIR_JSON)


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return outcome(429, "throttled", "Too many requests: the request rate limit for this client was exceeded",
                   headers)


def _date_ok(value: str, spec: str) -> bool:
    ops = ("ge", "gt", "le", "lt", "eq")
    op = spec[:2] if spec[:2] in ops else "eq"
    bound = _parse(spec[2:] if spec[:2] in ops else spec)
    v = _parse(value)
    return {"ge": v >= bound, "gt": v > bound, "le": v <= bound, "lt": v < bound, "eq": v == bound}[op]


def create_app(config: SandboxConfig | None = None, *, profile: str = "cerner",
               jwks: dict[str, Any] | None = None) -> FastAPI:
    """The sandbox app of one vendor profile (``cerner`` or ``epic``); ``jwks`` is the client's registered
    key set (the sandbox client's key by default)."""
    prof = PROFILES[profile]
    cfg = config or SandboxConfig()
    cfg = cfg if cfg.token_ttl_seconds != SandboxConfig().token_ttl_seconds else \
        cfg.model_copy(update={"token_ttl_seconds": prof.token_ttl})
    state = new_state(cfg, prof.vendor)
    if isinstance(cfg.records, int):  # one number sizes the patient list; six results each
        store = Store(prof, cfg.seed, cfg.records, 6)
    else:
        store = Store(prof, cfg.seed, cfg.count("patients", 12), cfg.count("observations_per_patient", 6))
    keys = {k["kid"]: k for k in (jwks or {"keys": [sandbox_key()[1]]})["keys"]}
    used_jti: dict[str, float] = {}
    token_scopes: dict[str, set[str]] = {}
    state.extra.update(used_jti=used_jti, store=store, assertions=[])
    app = FastAPI(title=f"{prof.vendor} FHIR R4 sandbox (CareHub)")
    app.state.sandbox = state
    base = prof.fhir_base
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle,
                       exempt=(prof.token_path, f"{base}/.well-known/", f"{base}/metadata"))
    add_control_routes(app, state)

    def root(request: Request) -> str:
        """Scheme, host and mount path (absolute links must work when mounted under /sandbox/<id>)."""
        return str(request.url.replace(path=str(request.scope.get("root_path", "")), query="")).rstrip("/")

    # ------------------------------------------------------------------ discovery and token

    @app.get(base + "/.well-known/smart-configuration")
    async def smart_configuration(request: Request) -> dict[str, Any]:
        methods = ["private_key_jwt"] + (["client_secret_basic"] if prof.id == "cerner" else [])
        return {"issuer": root(request) + base, "token_endpoint": root(request) + prof.token_path,
                "token_endpoint_auth_methods_supported": methods,
                "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                "grant_types_supported": ["authorization_code", "client_credentials"],
                "scopes_supported": [f"system/{t}.read" for t in RESOURCES],
                "capabilities": ["client-confidential-asymmetric", "permission-v1"]}

    @app.get(base + "/metadata")
    async def metadata(request: Request) -> Response:
        oauth = {"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                 "extension": [{"url": "token", "valueUri": root(request) + prof.token_path}]}
        body = {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                "fhirVersion": "4.0.1", "format": ["json"], "software": {"name": prof.vendor},
                "rest": [{"mode": "server", "security": {"extension": [oauth], "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR"}]}]},
                    "resource": [{"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}],
                                  "searchParam": [{"name": n} for n in sorted(prof.search_params[t])]}
                                 for t in RESOURCES]}]}
        return JSONResponse(body, media_type=FHIR_JSON)

    def token_error(error: str, description: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": description}, status_code=status)

    def issue(form: Any, header: dict[str, Any], claims: dict[str, Any]) -> Response:
        state.extra["assertions"].append({"header": header, "claims": claims})
        requested = set(str(form.get("scope", "")).split())
        if prof.scopes_required:
            known = {f"system/{t}.read" for t in RESOURCES}
            if not requested:
                return token_error("invalid_scope", "scope is required")
            if not requested <= known:
                return token_error("invalid_scope", f"unknown scopes: {' '.join(sorted(requested - known))}")
            granted = requested
        else:
            granted = {f"system/{t}.read" for t in RESOURCES}
        issued = state.issue_tokens()
        token_scopes[issued["access_token"]] = granted
        return JSONResponse({"access_token": issued["access_token"], "token_type": "Bearer",
                             "expires_in": cfg.token_ttl_seconds, "scope": " ".join(sorted(granted))},
                            headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    add_signed_jwt_token_route(app, state, prof.token_path, AssertionPolicy(
        client_id=lambda: CLIENT_ID, key_for=keys.get, algorithms=("RS384", "ES384"), refusals=SMART_REFUSALS,
        jwks_url=JWKS_URL, jku_required=prof.jku_required), used_jti, issue)

    # ------------------------------------------------------------------ FHIR API

    def authorise(request: Request, kind: str) -> Response | None:
        auth = request.headers.get("authorization", "")
        tok = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if not state.token_valid(tok):
            return outcome(401, "login", "The access token is missing, invalid or expired",
                           {"WWW-Authenticate": 'Bearer realm="fhir", error="invalid_token"'})
        assert tok is not None
        if f"system/{kind}.read" not in token_scopes.get(tok, set()):
            return outcome(403, "forbidden", f"The access token does not grant system/{kind}.read")
        return None

    def patient_index(value: str) -> int | None:
        return store.by_id.get(value.removeprefix("Patient/"))

    def matches(kind: str, res: dict[str, Any], name: str, value: str) -> bool:
        if name in ("_count", "patient", "subject", "_id"):
            return True
        if name == "_lastUpdated":
            return _date_ok(res["meta"]["lastUpdated"], value)
        if name == "issued":
            return _date_ok(res.get("issued", ""), value)
        if name == "category" and kind == "Observation":
            codes = {c.get("code") for cat in res.get("category", []) for c in cat.get("coding", [])}
            return bool(codes & set(value.split(",")))
        if name == "code":
            codes = {c.get("code") for c in res.get("code", {}).get("coding", [])}
            return bool(codes & {v.rsplit("|", 1)[-1] for v in value.split(",")})
        if name == "date" and kind == "Appointment":
            return _date_ok(res["start"], value)
        if name == "date" and kind == "Observation":
            return _date_ok(res["effectiveDateTime"], value)
        if name == "status":
            return res.get("status") in value.split(",")
        if name == "clinical-status":
            return res["clinicalStatus"]["coding"][0]["code"] in value.split(",")
        if name == "intent":
            return res.get("intent") in value.split(",")
        if name == "service-category":
            return value == "appointment"
        if name == "identifier":
            system, _, ident = value.rpartition("|")
            return any(i.get("value") == ident and (not system or i.get("system") == system)
                       for i in res.get("identifier", []))
        return True

    def search(kind: str, request: Request) -> Response:
        denied = authorise(request, kind)
        if denied:
            return denied
        q = request.query_params
        allowed = prof.search_params[kind] | {prof.page_param}
        unknown = sorted(set(q.keys()) - allowed)
        if unknown:
            return outcome(400, "not-supported", f"{kind} search does not support the parameter(s) "
                                                 f"{', '.join(unknown)}")
        for group in prof.required.get(kind, ()):
            if not group & set(q.keys()):
                return outcome(400, "required", f"{kind} search requires one of: {', '.join(sorted(group))}")
        raw_count = q.get("_count", str(prof.default_count))
        if not raw_count.isdigit() or int(raw_count) < 1:
            return outcome(400, "invalid", f"_count must be a positive integer, got {raw_count}")
        count = min(int(raw_count), prof.max_count)
        if kind == "Patient":
            if q.get("_id"):
                idx = [patient_index(v) for v in q["_id"].split(",")]
                pool = [store.patients[i] for i in idx if i is not None]
            else:
                pool = list(store.patients)
        else:
            ref = q.get("patient") or q.get("subject")
            if ref:
                i = patient_index(ref)
                pool = store.for_patient(kind, i) if i is not None else []
            else:
                wanted = set(q.get("_id", "").split(","))
                pool = [r for i in range(len(store.patients)) for r in store.for_patient(kind, i)
                        if r["id"] in wanted]
        for name, value in q.multi_items():
            if name != prof.page_param:
                pool = [r for r in pool if matches(kind, r, name, value)]
        pool.sort(key=lambda r: (r["meta"]["lastUpdated"], r["id"]))
        offset = 0
        token_ = q.get(prof.page_param)
        if token_:
            try:
                offset = int(json.loads(base64.urlsafe_b64decode(token_ + "==").decode())["o"])
            except (ValueError, KeyError, TypeError):
                return outcome(400, "invalid", f"{prof.page_param} is not a valid page token")
        page = pool[offset:offset + count]
        here = root(request) + base
        query = [(k, v) for k, v in q.multi_items() if k != prof.page_param]
        links = [{"relation": "self", "url": f"{here}/{kind}?{urlencode(q.multi_items())}"}]
        if offset + count < len(pool):
            tok = base64.urlsafe_b64encode(json.dumps({"o": offset + count}).encode()).decode().rstrip("=")
            links.append({"relation": "next", "url": f"{here}/{kind}?{urlencode([*query, (prof.page_param, tok)])}"})
        bundle = {"resourceType": "Bundle", "id": f"{prof.id}-{offset}-{len(pool)}", "type": "searchset",
                  "total": len(pool), "link": links,
                  "entry": [{"fullUrl": f"{here}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                            for r in page]}
        return JSONResponse(bundle, media_type=FHIR_JSON)

    def read(kind: str, rid: str, request: Request) -> Response:
        denied = authorise(request, kind)
        if denied:
            return denied
        for i in range(len(store.patients)):
            for r in store.for_patient(kind, i):
                if r["id"] == rid:
                    return JSONResponse(r, media_type=FHIR_JSON)
        return outcome(404, "not-found", f"{kind}/{rid} is not known")

    def routes(kind: str) -> None:
        async def search_kind(request: Request) -> Response:
            return search(kind, request)

        async def read_kind(rid: str, request: Request) -> Response:
            return read(kind, rid, request)

        app.add_api_route(f"{base}/{kind}", search_kind, methods=["GET"], response_model=None,
                          name=f"search_{kind}")
        app.add_api_route(f"{base}/{kind}/{{rid}}", read_kind, methods=["GET"], response_model=None,
                          name=f"read_{kind}")

    for kind in RESOURCES:
        routes(kind)

    @app.post("/_sandbox/fhir/lab-result")
    async def add_lab_result(request: Request) -> dict[str, Any]:
        """A new lab result for a patient (the lab has reported), stamped now."""
        body = await request.json()
        i = int(body.get("patient_index", 0))
        k = len(store.added["Observation"])
        obs = store.observation(i, k, store.now(), lab=int(body.get("lab", 0)), value=body.get("value"))
        store.added["Observation"].append(obs)
        return obs

    app.state.credentials = {"client_id": CLIENT_ID, "kid": KID, "private_key": sandbox_key()[0],
                             **({"jku": JWKS_URL} if prof.jku_required else {})}
    app.state.config = {"tenant_id": CERNER_TENANT, "patient_ids": ",".join(p["id"] for p in store.patients),
                        "appointments_from": "2026-01-01"}
    app.state.store = store
    return app


def create_cerner_app(config: SandboxConfig | None = None) -> FastAPI:
    """Cerner (Oracle Health Millennium) profile."""
    return create_app(config, profile="cerner")


def create_epic_app(config: SandboxConfig | None = None) -> FastAPI:
    """Epic profile."""
    return create_app(config, profile="epic")
