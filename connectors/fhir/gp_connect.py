"""GP Connect consumer: Access Record Structured (medications, allergies) and patient appointments.

Reads go resident by resident (``config.nhs_numbers``): ``POST /structured/fhir/Patient/$gpc.getstructuredrecord``
with a ``Parameters`` body asking only for the stream's section, or, for appointments, a patient search by
NHS number then ``GET /fhir/Patient/{id}/Appointment?start=ge..&start=le..``. One page per resident; the
checkpoint holds the next resident so a stopped run resumes there. GP Connect has no change feed or
``_lastUpdated`` search, so each run re-reads every resident and the store's content hash keeps unchanged
records from being rewritten. A resident the practice does not hold (PATIENT_NOT_FOUND) or who has
dissented (NO_PATIENT_CONSENT) is skipped with the reason in :attr:`GpConnectSession.skipped`.

Live access goes through the Spine Secure Proxy with Spine mTLS certificates; requests then go to
``{ssp}/{provider endpoint}`` (``config.provider_endpoint``, found in SDS for the resident's practice).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.auth import AuthContext, Authenticator, OutgoingRequest, register_auth
from connectors.errors import VendorError
from connectors.fhir import clinical
from connectors.manifest import CustomAuth
from connectors.mesh.tls import use_client_certificate
from connectors.runtime import ConnectorSession
from engine.ports import ReadPage, SourceRecord

FHIR_JSON = "application/fhir+json"
SKIP_CODES = {"PATIENT_NOT_FOUND", "NO_PATIENT_CONSENT", "INVALID_NHS_NUMBER"}


def _b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def access_token(config: dict[str, Any] | Any, audience: str, scope: str, now: int | None = None) -> str:
    """The unsigned GP Connect JWT (``alg: none``) describing who asks, from where and why."""
    now = int(now if now is not None else time.time())
    c = config
    claims = {
        "iss": str(c.get("consumer_system_url", "https://carehub.example")),
        "sub": str(c.get("practitioner_id", "1")),
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "reason_for_request": "directcare",
        "requested_scope": scope,
        "requesting_device": {
            "resourceType": "Device",
            "identifier": [{"system": "https://carehub.example/Id/local-system-instance-id",
                            "value": str(c.get("device_id", "carehub-1"))}],
            "model": "CareHub", "version": "1.0"},
        "requesting_organization": {
            "resourceType": "Organization",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                            "value": str(c.get("ods_code", ""))}],
            "name": str(c.get("organisation_name", "Care home"))},
        "requesting_practitioner": {
            "resourceType": "Practitioner", "id": str(c.get("practitioner_id", "1")),
            "identifier": [{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": str(c.get("sds_user_id", ""))},
                           {"system": "https://fhir.nhs.uk/Id/sds-role-profile-id",
                            "value": str(c.get("sds_role_profile_id", ""))},
                           {"system": "https://carehub.example/Id/local-user-id",
                            "value": str(c.get("practitioner_id", "1"))}],
            "name": [{"family": str(c.get("practitioner_family", "")),
                      "given": [str(c.get("practitioner_given", ""))], "prefix": ["Nurse"]}]},
    }
    return f"{_b64url({'alg': 'none', 'typ': 'JWT'})}.{_b64url(claims)}."


class GpConnectAuthenticator(Authenticator):
    """Adds the GP Connect JWT and the Spine Secure Proxy headers (``Ssp-*``) to every call."""

    def __init__(self, spec: CustomAuth, ctx: AuthContext) -> None:
        super().__init__(spec, ctx)

    async def apply(self, request: OutgoingRequest) -> None:
        """``Authorization: Bearer <JWT>``, ``Ssp-TraceID/From/To``; ``Ssp-InteractionID`` comes from the stream."""
        interaction = request.headers.get("Ssp-InteractionID", "")
        scope = "organization/*.read" if interaction.endswith(":read:metadata-1") else "patient/*.read"
        audience = request.url.split("?", 1)[0]
        request.headers["Authorization"] = f"Bearer {access_token(self.ctx.config, audience, scope)}"
        request.headers["Ssp-TraceID"] = str(uuid.uuid4())
        request.headers["Ssp-From"] = str(self.ctx.config.get("consumer_asid", ""))
        request.headers["Ssp-To"] = str(self.ctx.config.get("provider_asid", ""))
        request.headers.setdefault("Accept", FHIR_JSON)


register_auth("gp_connect", lambda spec, ctx: GpConnectAuthenticator(spec, ctx))


@dataclass
class SkippedPatient:
    """A resident whose record was not read, and why (the GP system's own words)."""

    nhs_number: str
    code: str
    reason: str


class _FhirRequest(OutgoingRequest):
    def build(self) -> Any:
        req = super().build()
        if self.json_body is not None:
            req.headers["Content-Type"] = FHIR_JSON
        return req


def nhs_numbers(config: dict[str, Any]) -> list[str]:
    """The residents to read: a list or a comma/space separated string of NHS numbers."""
    raw = config.get("nhs_numbers") or []
    items = raw.replace(",", " ").split() if isinstance(raw, str) else [str(x) for x in raw]
    return [x.replace(" ", "") for x in items if x]


class GpConnectSession(ConnectorSession):
    """:class:`ConnectorSession` for the ``gp_connect`` manifest."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        use_client_certificate(self, self.secrets, float(kwargs.get("timeout", 30.0)), kwargs.get("transport"))
        self.skipped: list[SkippedPatient] = []

    def _endpoint(self, path: str) -> str:
        provider = str(self.config.get("provider_endpoint", "")).strip("/")
        return f"{self.base_url}/{provider}{path}" if provider else f"{self.base_url}{path}"

    def structured_parameters(self, stream: str, nhs: str) -> dict[str, Any]:
        """The ``Parameters`` body asking for one section of one patient's record."""
        spec = self.stream(stream)
        params: list[dict[str, Any]] = [{"name": "patientNHSNumber", "valueIdentifier": {
            "system": clinical.NHS_NUMBER, "value": nhs}}]
        section = spec.params.get("section")
        if section == "allergies":
            params.append({"name": "includeAllergies", "part": [{
                "name": "includeResolvedAllergies",
                "valueBoolean": spec.params.get("include_resolved", "false") == "true"}]})
        elif section == "medication":
            parts: list[dict[str, Any]] = [{"name": "includePrescriptionIssues", "valueBoolean": False}]
            months = int(spec.params.get("medication_months", "0") or 0)
            if months:
                since = (datetime.now(UTC).date() - timedelta(days=months * 30)).isoformat()
                parts.append({"name": "medicationSearchFromDate", "valueDate": since})
            params.append({"name": "includeMedication", "part": parts})
        return {"resourceType": "Parameters", "parameter": params}

    async def _structured(self, stream: str, nhs: str) -> list[dict[str, Any]]:
        spec = self.stream(stream)
        url = self._endpoint(spec.path)
        body = self.structured_parameters(stream, nhs)
        resp = await self.request(lambda: _FhirRequest("POST", url, {}, dict(spec.headers), json_body=body))
        bundle = resp.json()
        if spec.params.get("section") == "allergies":
            return clinical.allergies(bundle, nhs)
        return clinical.medication_statements(bundle, nhs)

    async def _appointments(self, stream: str, nhs: str) -> list[dict[str, Any]]:
        spec = self.stream(stream)
        search_headers = {"Ssp-InteractionID": spec.params["patient_search_interaction"]}
        url = self._endpoint(spec.params["patient_search_path"])
        resp = await self.request(lambda: OutgoingRequest("GET", url, {"identifier": f"{clinical.NHS_NUMBER}|{nhs}"},
                                                          dict(search_headers)))
        patients = clinical.resources(resp.json(), "Patient")
        if not patients:
            self.skipped.append(SkippedPatient(nhs, "PATIENT_NOT_FOUND", "no patient with this NHS number"))
            return []
        pid = patients[0]["id"]
        today = datetime.now(UTC).date()
        lo = today - timedelta(days=int(spec.params.get("days_back", "30")))
        hi = today + timedelta(days=int(spec.params.get("days_ahead", "180")))
        path = spec.path.replace("{patient_id}", str(pid))
        appt_url = f"{self._endpoint(path)}?start=ge{lo.isoformat()}&start=le{hi.isoformat()}"
        resp = await self.request(lambda: OutgoingRequest("GET", appt_url, {}, dict(spec.headers)))
        return clinical.appointments(resp.json(), nhs)

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """One page per resident, from the checkpoint's ``next_patient``."""
        spec = self.stream(stream)
        residents = nhs_numbers(self.config)
        start = int((checkpoint or {}).get("next_patient") or 0)
        if start >= len(residents):
            start = 0
        self.skipped = []
        if not residents:
            yield ReadPage([], {})
            return
        for i in range(start, len(residents)):
            nhs = residents[i]
            try:
                if spec.params.get("section") == "appointments":
                    items = await self._appointments(stream, nhs)
                else:
                    items = await self._structured(stream, nhs)
            except VendorError as exc:
                if exc.code not in SKIP_CODES:
                    raise
                self.skipped.append(SkippedPatient(nhs, str(exc.code), exc.vendor_message))
                items = []
            records = [SourceRecord(external_id=f"{nhs}/{item.get('id')}", data=item,
                                    updated_at=_instant(item.get(spec.updated_at or "") if spec.updated_at else None))
                       for item in items]
            last = i == len(residents) - 1
            yield ReadPage(records, {} if last else {"next_patient": i + 1})

    async def metadata(self) -> dict[str, Any]:
        """The provider's CapabilityStatement."""
        url = self._endpoint(str(self.manifest.streams["medications"].params.get("metadata_path", "")))
        headers = {"Ssp-InteractionID": "urn:nhs:names:services:gpconnect:structured:fhir:rest:read:metadata-1"}
        resp = await self.request(lambda: OutgoingRequest("GET", url, {}, dict(headers)))
        body: dict[str, Any] = resp.json()
        return body


def _instant(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    try:
        parsed = datetime.fromisoformat(text) if "T" in text else datetime.combine(date.fromisoformat(text[:10]),
                                                                                    datetime.min.time())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
