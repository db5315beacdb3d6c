"""Clinical FHIR resources into the FHIR R4 shape of CareHub's care types, keeping every code.

GP Connect answers in STU3 (CareConnect profiles); the Summary Care Record and lab results are R4. The
care types (Medication, Allergy, Observation, Appointment) follow R4, so STU3 resources are lifted:
``MedicationStatement`` gets ``medicationCodeableConcept`` from its referenced ``Medication`` (dm+d, i.e.
SNOMED CT, codes kept), ``AllergyIntolerance`` gets coded ``clinicalStatus``/``verificationStatus`` and
``recordedDate``. Every record names its patient by NHS number (``subject.identifier``) so it can be
matched to a resident without the source system's logical ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def resources(bundle: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    """Resources of a Bundle, optionally only one ``resourceType``."""
    out = []
    for entry in bundle.get("entry") or []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict) and (kind is None or res.get("resourceType") == kind):
            out.append(res)
    return out


def by_reference(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Resources keyed by ``Type/id`` (and by fullUrl when present)."""
    index: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry") or []:
        res = entry.get("resource") or {}
        if res.get("id"):
            index[f"{res.get('resourceType')}/{res['id']}"] = res
        if entry.get("fullUrl"):
            index[str(entry["fullUrl"])] = res
    return index


def subject(nhs_number: str, display: str | None = None) -> dict[str, Any]:
    """A reference to a patient by NHS number."""
    ref: dict[str, Any] = {"identifier": {"system": NHS_NUMBER, "value": nhs_number}}
    if display:
        ref["display"] = display
    return ref


def codes(concept: dict[str, Any] | None, system: str = SNOMED) -> list[str]:
    """The codes of a CodeableConcept in one system."""
    return [str(c.get("code")) for c in (concept or {}).get("coding") or [] if c.get("system") == system]


def _person_name(res: dict[str, Any] | None) -> str | None:
    if not res:
        return None
    for name in res.get("name") or []:
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return None


def medication_statements(bundle: dict[str, Any], nhs_number: str) -> list[dict[str, Any]]:
    """GP Connect (STU3) medication statements as R4 ``MedicationStatement`` records with dm+d codes."""
    index = by_reference(bundle)
    out = []
    for ms in resources(bundle, "MedicationStatement"):
        med = index.get(str((ms.get("medicationReference") or {}).get("reference", "")))
        concept = (med or {}).get("code") or ms.get("medicationCodeableConcept") or {}
        request = None
        for based in ms.get("basedOn") or []:
            request = index.get(str(based.get("reference", ""))) or request
        prescriber = None
        if request:
            agent = ((request.get("requester") or {}).get("agent") or {}).get("reference")
            prescriber = _person_name(index.get(str(agent))) if agent else None
        record: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "id": ms.get("id"),
            "identifier": ms.get("identifier", []),
            "status": ms.get("status"),
            "medicationCodeableConcept": concept,
            "subject": subject(nhs_number),
            "effectivePeriod": ms.get("effectivePeriod"),
            "dateAsserted": ms.get("dateAsserted"),
            "dosage": [{k: d[k] for k in ("text", "patientInstruction", "route") if k in d}
                       for d in ms.get("dosage") or []],
            "extension": ms.get("extension", []),
        }
        if prescriber:
            record["informationSource"] = {"display": prescriber}
        if request and request.get("dispenseRequest"):
            record["dispenseRequest"] = request["dispenseRequest"]
        if ms.get("note"):
            record["note"] = ms["note"]
        out.append(record)
    return out


def allergies(bundle: dict[str, Any], nhs_number: str) -> list[dict[str, Any]]:
    """STU3 or R4 ``AllergyIntolerance`` resources as R4 records with SNOMED CT codes."""
    out = []
    for ai in resources(bundle, "AllergyIntolerance"):
        clinical = ai.get("clinicalStatus")
        verification = ai.get("verificationStatus")
        record: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "id": ai.get("id"),
            "identifier": ai.get("identifier", []),
            "clinicalStatus": clinical if isinstance(clinical, dict) else
            {"coding": [{"system": ALLERGY_CLINICAL, "code": clinical or "active"}]},
            "verificationStatus": verification if isinstance(verification, dict) else
            {"coding": [{"system": ALLERGY_VERIFICATION, "code": verification or "unconfirmed"}]},
            "category": ai.get("category", []),
            "criticality": ai.get("criticality"),
            "code": ai.get("code"),
            "patient": subject(nhs_number),
            "onsetDateTime": ai.get("onsetDateTime"),
            "recordedDate": ai.get("recordedDate") or ai.get("assertedDate"),
            "reaction": [{k: r[k] for k in ("manifestation", "severity", "description") if k in r}
                         for r in ai.get("reaction") or []],
        }
        if ai.get("note"):
            record["note"] = ai["note"]
        out.append(record)
    return out


def appointments(bundle: dict[str, Any], nhs_number: str) -> list[dict[str, Any]]:
    """Appointments with the patient named by NHS number and the practitioners and location as text."""
    index = by_reference(bundle)
    out = []
    for appt in resources(bundle, "Appointment"):
        record = {k: v for k, v in appt.items() if k != "contained"}
        record["subject"] = subject(nhs_number)
        names = []
        for p in appt.get("participant") or []:
            ref = str((p.get("actor") or {}).get("reference", ""))
            actor = index.get(ref)
            if ref.startswith("Practitioner/"):
                names.append(_person_name(actor) or ref)
            elif ref.startswith("Location/") and actor:
                record["locationName"] = actor.get("name")
        if names:
            record["practitioners"] = names
        out.append(record)
    return out


def with_subject(items: Iterable[dict[str, Any]], nhs_number: str) -> list[dict[str, Any]]:
    """R4 resources (SCR) with the patient reference replaced by the NHS number."""
    out = []
    for res in items:
        record = dict(res)
        record["subject"] = subject(nhs_number)
        out.append(record)
    return out
