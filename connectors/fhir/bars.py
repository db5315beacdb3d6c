"""NHS Booking and Referral Standard (BaRS): referrals to community pharmacy systems as FHIR R4 messages.

PharmOutcomes, Sonar Informatics and Cegedim Pharmacy Manager have no public API of their own; they are
registered BaRS *receivers*. A referral goes through the NHS BaRS proxy
(``/booking-and-referral/FHIR/R4/$process-message``, spec ``NHSDigital/booking-and-referral-fhir-api``) as a
``Bundle`` of type ``message``: ``MessageHeader`` (event ``servicerequest-request``, destination = the pharmacy
service's DoS id, focus = the ``ServiceRequest``), ``ServiceRequest``, ``Patient`` (NHS number),
``MedicationStatement`` per medicine (dm+d codes), and the sending and receiving ``Organization``. The proxy
routes on ``NHSD-Target-Identifier`` (base64 JSON ``{"value": <DoS id>, "system": ...dos-service-id}``) and
wants ``X-Request-Id``, ``X-Correlation-Id``, ``NHSD-End-User-Organisation`` and ``NHSD-Requesting-Software``.

Idempotency: ``Bundle.id``, ``MessageHeader.id`` and ``ServiceRequest.identifier`` are UUIDs derived from the
write's idempotency key, so a retried referral is the same message; a receiver that has already processed
it answers 409 ``REC_CONFLICT`` with issue code ``duplicate``, which counts as delivered.

Reading back: ``GET /ServiceRequest?patient:identifier=<NHS number>`` per resident gives each referral's
status; records are flattened to the referral shape the mapping templates use (``nhs_bars/Resident.yaml``,
``nhs_bars/Medication.yaml``), and the same shape, reversed from care records, is what :func:`referral_message`
turns into a message.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.auth import OutgoingRequest
from connectors.errors import AuthFailed, ConnectorError, RateLimited, VendorError
from connectors.fhir.gp_connect import nhs_numbers
from connectors.runtime import ConnectorSession
from engine.ports import OutboundRecord, ReadPage, SourceRecord, WriteOutcome

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
DOS = "https://fhir.nhs.uk/Id/dos-service-id"
SNOMED = "http://snomed.info/sct"
EVENTS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
REASONS = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"
BARS_NS = uuid.UUID("6f1b1c3e-5a0e-4c55-9a51-0b6a4b3c2d10")
FHIR_JSON = "application/fhir+json"


def b64json(value: Mapping[str, Any]) -> str:
    """Standard base64 of compact JSON (the BaRS header encoding)."""
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def message_ids(key: str) -> dict[str, str]:
    """Deterministic UUIDs of one referral message (the same on every retry)."""
    return {part: str(uuid.uuid5(BARS_NS, f"{key}:{part}"))
            for part in ("bundle", "header", "service_request", "patient", "sender", "receiver", "correlation")}


def referral_message(referral: Mapping[str, Any], *, key: str, sender_ods: str, sender_name: str,
                     target_service_id: str, receiver_name: str = "", now: datetime | None = None) -> dict[str, Any]:
    """The BaRS ``servicerequest-request`` message Bundle for one referral (flat referral shape in)."""
    ids = message_ids(key)
    stamp = (now or datetime.now(UTC)).replace(microsecond=0).isoformat()
    urn = {k: f"urn:uuid:{v}" for k, v in ids.items()}
    nhs = str(referral.get("nhsNumber", "")).replace(" ", "")
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": ids["patient"],
        "identifier": [{"system": NHS_NUMBER, "value": nhs}],
        "name": [{"use": "official", "family": referral.get("familyName"),
                  "given": [g for g in [referral.get("givenName")] if g]}],
    }
    for src, dst in (("gender", "gender"), ("birthDate", "birthDate")):
        if referral.get(src):
            patient[dst] = referral[src]
    if referral.get("postcode"):
        patient["address"] = [{"use": "home", "postalCode": referral["postcode"]}]
    meds: list[dict[str, Any]] = []
    for n, med in enumerate(referral.get("medicines") or []):
        coding = [{"system": SNOMED, "code": str(med["dmdCode"]), "display": med.get("name")}] \
            if med.get("dmdCode") else []
        ms: dict[str, Any] = {
            "resourceType": "MedicationStatement", "id": str(uuid.uuid5(BARS_NS, f"{key}:med:{n}")),
            "status": med.get("status") or "active",
            "medicationCodeableConcept": {"coding": coding, "text": med.get("name")},
            "subject": {"reference": urn["patient"]},
        }
        if med.get("dose"):
            ms["dosage"] = [{"text": med["dose"]}]
        meds.append(ms)
    service_request: dict[str, Any] = {
        "resourceType": "ServiceRequest", "id": ids["service_request"],
        "identifier": [{"system": "https://carehub.example/Id/referral", "value": ids["service_request"]}],
        "status": "active", "intent": "plan",
        "category": [{"coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}]}],
        "code": {"coding": [{"system": SNOMED, "code": str(referral.get("serviceCode") or "1239981000000109"),
                             "display": str(referral.get("serviceName") or "Referral to community pharmacy")}]},
        "subject": {"reference": urn["patient"]},
        "authoredOn": stamp,
        "requester": {"reference": urn["sender"]},
        "performer": [{"reference": urn["receiver"]}],
        "reasonCode": [{"text": str(referral.get("reason") or "Medicines support for a care home resident")}],
        "supportingInfo": [{"reference": f"urn:uuid:{m['id']}"} for m in meds],
    }
    if referral.get("note"):
        service_request["note"] = [{"text": referral["note"]}]
    header = {
        "resourceType": "MessageHeader", "id": ids["header"],
        "eventCoding": {"system": EVENTS, "code": "servicerequest-request"},
        "destination": [{"endpoint": f"{DOS}|{target_service_id}", "receiver": {"reference": urn["receiver"]}}],
        "sender": {"reference": urn["sender"]},
        "source": {"name": sender_name, "software": "CareHub", "version": "1.0",
                   "endpoint": f"{ODS}|{sender_ods}"},
        "reason": {"coding": [{"system": REASONS, "code": "new"}]},
        "focus": [{"reference": urn["service_request"]}],
    }
    entries = [
        (urn["header"], header), (urn["service_request"], service_request), (urn["patient"], patient),
        *[(f"urn:uuid:{m['id']}", m) for m in meds],
        (urn["sender"], {"resourceType": "Organization", "id": ids["sender"],
                         "identifier": [{"system": ODS, "value": sender_ods}], "name": sender_name}),
        (urn["receiver"], {"resourceType": "Organization", "id": ids["receiver"],
                           "name": receiver_name or "Receiving pharmacy service"}),
    ]
    return {"resourceType": "Bundle", "id": ids["bundle"],
            "meta": {"profile": ["https://fhir.nhs.uk/StructureDefinition/BARSBundleMessage"]},
            "type": "message", "timestamp": stamp,
            "entry": [{"fullUrl": full, "resource": res} for full, res in entries]}


def flatten(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ServiceRequests of a searchset Bundle (with their included Patient and MedicationStatements) in the flat
    referral shape."""
    index: dict[str, dict[str, Any]] = {}
    requests = []
    for entry in bundle.get("entry") or []:
        res = entry.get("resource") or {}
        if entry.get("fullUrl"):
            index[str(entry["fullUrl"])] = res
        if res.get("id"):
            index[f"{res.get('resourceType')}/{res['id']}"] = res
        if res.get("resourceType") == "ServiceRequest":
            requests.append(res)
    out = []
    for sr in requests:
        patient = index.get(str((sr.get("subject") or {}).get("reference", ""))) or {}
        nhs = next((i.get("value") for i in patient.get("identifier") or [] if i.get("system") == NHS_NUMBER), None)
        name = (patient.get("name") or [{}])[0]
        medicines = []
        for ref in sr.get("supportingInfo") or []:
            ms = index.get(str(ref.get("reference", "")))
            if not ms or ms.get("resourceType") != "MedicationStatement":
                continue
            concept = ms.get("medicationCodeableConcept") or {}
            dmd = next((c.get("code") for c in concept.get("coding") or [] if c.get("system") == SNOMED), None)
            medicines.append({"nhsNumber": nhs, "dmdCode": dmd, "name": concept.get("text"),
                              "dose": ((ms.get("dosage") or [{}])[0]).get("text"), "status": ms.get("status")})
        out.append({
            "id": sr.get("id"), "status": sr.get("status"), "authoredOn": sr.get("authoredOn"),
            "reason": ((sr.get("reasonCode") or [{}])[0]).get("text"),
            "serviceCode": ((sr.get("code") or {}).get("coding") or [{}])[0].get("code"),
            "nhsNumber": nhs, "givenName": (name.get("given") or [None])[0], "familyName": name.get("family"),
            "birthDate": patient.get("birthDate"), "gender": patient.get("gender"),
            "postcode": ((patient.get("address") or [{}])[0]).get("postalCode"),
            "medicines": medicines,
        })
    return out


class BarsSession(ConnectorSession):
    """:class:`ConnectorSession` for the ``nhs_bars`` manifest: referrals out, their status back."""

    def _bars_headers(self, correlation: str | None = None) -> dict[str, str]:
        c = self.config
        target = {"value": str(c.get("target_service_id", "")), "system": DOS}
        org = {"resourceType": "Organization", "identifier": [{"system": ODS, "value": str(c.get("ods_code", ""))}],
               "name": str(c.get("organisation_name", ""))}
        device = {"resourceType": "Device", "identifier": [{"system": "https://carehub.example/Id/device-identifier",
                                                             "value": "CAREHUB-1"}],
                  "deviceName": [{"name": "CareHub", "type": "manufacturer-name"}], "version": [{"value": "1.0"}]}
        headers = {"NHSD-Target-Identifier": b64json(target), "NHSD-End-User-Organisation": b64json(org),
                   "NHSD-Requesting-Software": b64json(device)}
        if correlation:
            headers["X-Correlation-Id"] = correlation
        return headers

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """One page per resident (``GET /ServiceRequest?patient:identifier=``), from ``next_patient``."""
        spec = self.stream(stream)
        residents = nhs_numbers(self.config)
        start = int((checkpoint or {}).get("next_patient") or 0)
        start = 0 if start >= len(residents) else start
        url = self._url(spec.path)
        for i in range(start, len(residents)):
            params = {"patient:identifier": f"{NHS_NUMBER}|{residents[i]}"}
            headers = self._bars_headers()
            resp = await self.request(lambda p=params, h=headers: OutgoingRequest("GET", url, dict(p), dict(h)))  # type: ignore[misc]
            referrals = flatten(resp.json())
            if spec.params.get("view") == "medicines":
                records = [SourceRecord(f"{r['id']}/{n}", m, _instant(r.get("authoredOn")))
                           for r in referrals for n, m in enumerate(r["medicines"])]
            else:
                records = [SourceRecord(str(r["id"]), r, _instant(r.get("authoredOn"))) for r in referrals]
            yield ReadPage(records, {} if i == len(residents) - 1 else {"next_patient": i + 1})
        if not residents:
            yield ReadPage([], {})

    async def write(self, stream: str, records: Sequence[OutboundRecord]) -> list[WriteOutcome]:
        """Send each referral as a BaRS message; a duplicate (already processed) counts as delivered."""
        spec = self.stream(stream)
        if spec.write is None or spec.write.create is None:
            raise ConnectorError(f"{self.manifest.id}.{stream} is read-only")
        url = self._url(spec.write.create.path)
        out = []
        for r in records:
            if r.external_id is not None:
                out.append(WriteOutcome(r.idempotency_key, False, r.external_id, "unsupported",
                                        "a sent referral cannot be changed; send a cancellation instead"))
                continue
            bundle = referral_message(r.payload if isinstance(r.payload, dict) else {}, key=r.idempotency_key,
                                      sender_ods=str(self.config.get("ods_code", "")),
                                      sender_name=str(self.config.get("organisation_name", "")),
                                      target_service_id=str(self.config.get("target_service_id", "")),
                                      receiver_name=str(self.config.get("receiver_name", "")))
            ids = message_ids(r.idempotency_key)
            headers = {**self._bars_headers(ids["correlation"]), "Content-Type": FHIR_JSON}
            try:
                resp = await self.request(lambda b=bundle, h=headers: OutgoingRequest("POST", url, {}, dict(h), b))  # type: ignore[misc]
                out.append(WriteOutcome(r.idempotency_key, True, ids["service_request"], data=resp.json()))
            except VendorError as exc:
                if exc.status == 409 and "already been processed" in exc.vendor_message:
                    out.append(WriteOutcome(r.idempotency_key, True, ids["service_request"],
                                            data={"duplicate": True}))
                    continue
                out.append(WriteOutcome(r.idempotency_key, False, None, exc.code, exc.vendor_message,
                                        retryable=exc.retryable))
            except AuthFailed:
                raise
            except (RateLimited, ConnectorError) as exc:
                out.append(WriteOutcome(r.idempotency_key, False, None, type(exc).__name__, str(exc),
                                        retryable=exc.retryable))
        return out


def _instant(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
