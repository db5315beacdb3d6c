"""Summary Care Record consumer: each resident's latest SCR, read only when it has changed.

Per resident (``config.nhs_numbers``): ``GET /DocumentReference`` gives the id of the latest SCR and the
patient's consent label; when the id equals the one in the checkpoint the SCR has not changed and the
Bundle is not fetched again (the SCR API has no ``_lastUpdated`` search; a new upload is a new id). A
patient who opted out (label ``No``) is skipped. ``GET /Bundle`` returns the SCR: coded Conditions and
Observations become records of their streams; the Composition's sections (allergies, medications, as the
GP summarised them in XHTML) become one ``summaries`` record per resident for staff to read.

``X-Request-ID`` stays the same across retries of one call, as the API asks, so a retried request is
recognised as a repeat.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.auth import OutgoingRequest
from connectors.fhir import clinical
from connectors.fhir.gp_connect import nhs_numbers
from connectors.runtime import ConnectorSession
from engine.ports import ReadPage, SourceRecord

GP_SUMMARY_TYPE = "http://snomed.info/sct|196981000000101"


@dataclass
class SkippedResident:
    """A resident whose SCR was not read, and why."""

    nhs_number: str
    reason: str


class ScrSession(ConnectorSession):
    """:class:`ConnectorSession` for the ``nhs_scr`` manifest."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: list[SkippedResident] = []
        self.bundles_fetched = 0

    def _headers(self) -> dict[str, str]:
        headers = {"X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": str(uuid.uuid4())}
        if self.config.get("role_id"):
            headers["NHSD-Session-URID"] = str(self.config["role_id"])
        return headers

    async def latest(self, nhs: str) -> tuple[str, str] | None:
        """``(SCR id, consent label)`` of a patient's latest SCR, or None when there is none."""
        url = f"{self.base_url}/DocumentReference"
        params = {"patient": f"{clinical.NHS_NUMBER}|{nhs}", "type": GP_SUMMARY_TYPE, "_sort": "date", "_count": "1"}
        headers = self._headers()
        resp = await self.request(lambda: OutgoingRequest("GET", url, dict(params), dict(headers)))
        for doc in clinical.resources(resp.json(), "DocumentReference"):
            sid = (doc.get("masterIdentifier") or {}).get("value")
            label = ((doc.get("securityLabel") or [{}])[0].get("coding") or [{}])
            code = label[0].get("code", "Ask") if isinstance(label, list) else label.get("code", "Ask")
            if sid:
                return str(sid), str(code)
        return None

    async def summary_care_record(self, nhs: str, scr_id: str) -> dict[str, Any]:
        """The SCR Bundle."""
        url = f"{self.base_url}/Bundle"
        params = {"composition.identifier": scr_id,
                  "composition.subject:Patient.identifier": f"{clinical.NHS_NUMBER}|{nhs}"}
        headers = self._headers()
        resp = await self.request(lambda: OutgoingRequest("GET", url, dict(params), dict(headers)))
        self.bundles_fetched += 1
        bundle: dict[str, Any] = resp.json()
        return bundle

    def _records(self, stream: str, nhs: str, scr_id: str, consent: str, bundle: dict[str, Any]) -> list[SourceRecord]:
        kind = self.stream(stream).params.get("resource", "Condition")
        compositions = clinical.resources(bundle, "Composition")
        updated = _instant(((compositions[0].get("meta") or {}).get("lastUpdated")) if compositions else None)
        if kind == "Composition":
            if not compositions:
                return []
            comp = compositions[0]
            data = {"id": scr_id, "subject": clinical.subject(nhs), "consent": consent,
                    "lastUpdated": (comp.get("meta") or {}).get("lastUpdated"), "title": comp.get("title"),
                    "author": [a.get("display") for a in comp.get("author") or [] if a.get("display")],
                    "sections": [{"title": s.get("title"), "code": ((s.get("code") or {}).get("coding") or [{}])[0]
                                  .get("code"), "html": (s.get("text") or {}).get("div", "")}
                                 for s in comp.get("section") or []]}
            return [SourceRecord(external_id=f"{nhs}/scr", data=data, updated_at=updated)]
        items = clinical.with_subject(clinical.resources(bundle, kind), nhs)
        return [SourceRecord(external_id=f"{nhs}/{item.get('id')}", data={**item, "scrId": scr_id},
                             updated_at=updated) for item in items]

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """One page per resident; unchanged SCRs (same id as last time) are not fetched again."""
        self.stream(stream)
        cp = dict(checkpoint or {})
        known: dict[str, str] = dict(cp.get("scr_ids") or {})
        residents = nhs_numbers(self.config)
        start = int(cp.get("next_patient") or 0)
        start = 0 if start >= len(residents) else start
        self.skipped = []
        if not residents:
            yield ReadPage([], {"scr_ids": known})
            return
        for i in range(start, len(residents)):
            nhs = residents[i]
            records: list[SourceRecord] = []
            latest = await self.latest(nhs)
            if latest is None:
                self.skipped.append(SkippedResident(nhs, "no Summary Care Record"))
            elif latest[1] == "No":
                self.skipped.append(SkippedResident(nhs, "the patient has opted out of sharing their SCR"))
            elif known.get(nhs) == latest[0]:
                pass  # unchanged since the last run
            else:
                bundle = await self.summary_care_record(nhs, latest[0])
                records = self._records(stream, nhs, latest[0], latest[1], bundle)
                known[nhs] = latest[0]
            last = i == len(residents) - 1
            yield ReadPage(records, {"scr_ids": dict(known)} if last else
                           {"scr_ids": dict(known), "next_patient": i + 1})


def _instant(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
