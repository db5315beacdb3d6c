"""GP Connect consumer against the GP Connect provider sandbox; requests checked against the swagger."""

from __future__ import annotations

import base64
import json
import re
from functools import lru_cache
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from shared_docs import VENDOR_SPECS

from connectors.errors import VendorError
from connectors.fhir.gp_connect import GpConnectSession, access_token
from connectors.manifest import RateLimits, load_manifest
from connectors.sandboxes import gp_connect as gpc
from connectors.sandboxes.common import SandboxConfig
from connectors.sessions import open_session

from .conftest import TEMPLATES, fast_rules

SPECS = VENDOR_SPECS / "gp-connect"
MANIFEST = load_manifest(TEMPLATES / "gp_connect.yaml")
SNOMED = "http://snomed.info/sct"
CONFIG = {"consumer_asid": "200000000359", "provider_asid": gpc.PROVIDER_ASID, "ods_code": "VM123",
          "organisation_name": "Willow Court Care Home", "sds_user_id": "111111111111",
          "sds_role_profile_id": "22222222222222", "practitioner_id": "7", "practitioner_family": "Jones",
          "practitioner_given": "Sam", "consumer_system_url": "https://carehub.example"}


def _app(n: int = 10) -> FastAPI:
    app = gpc.create_app(SandboxConfig(records=n))
    return app


def _session(app: FastAPI, residents: list[str]) -> GpConnectSession:
    s = open_session(MANIFEST, {**CONFIG, "nhs_numbers": ", ".join(residents)}, {}, base_url="http://gpc.sandbox",
                     transport=httpx.ASGITransport(app=app), connection_id=f"gpc-{id(app)}",
                     error_rules=fast_rules(MANIFEST), rate_limits=RateLimits())
    assert isinstance(s, GpConnectSession)
    return s


def _residents(app: FastAPI) -> list[str]:
    return list(app.state.sandbox.extra["patients"])


async def test_medications_and_allergies_for_every_resident_keep_dmd_and_snomed_codes() -> None:
    app = _app(10)
    residents = _residents(app)
    stranger = "9990000018"  # valid check digit, not registered at this practice
    async with _session(app, [*residents, stranger]) as s:
        med_pages = [p async for p in s.read("medications")]
        skipped_meds = list(s.skipped)
        allergy_pages = [p async for p in s.read("allergies")]
    assert len(med_pages) == 11  # one page per resident
    meds = [r for p in med_pages for r in p.records]
    assert meds and all(r.data["resourceType"] == "MedicationStatement" for r in meds)
    known = {code for code, _n, _d in gpc.MEDICINES}
    for rec in meds:
        coding = rec.data["medicationCodeableConcept"]["coding"][0]
        assert coding["system"] == SNOMED and coding["code"] in known
        assert rec.data["subject"]["identifier"]["value"] in residents
        assert rec.data["informationSource"]["display"] == "Dr Anita Patel"
        assert rec.external_id.startswith(rec.data["subject"]["identifier"]["value"] + "/")
    assert {(k.nhs_number, k.code) for k in skipped_meds} == {(residents[gpc.NO_CONSENT_INDEX], "NO_PATIENT_CONSENT"),
                                                              (stranger, "PATIENT_NOT_FOUND")}
    allergies = [r.data for p in allergy_pages for r in p.records]
    assert allergies
    for a in allergies:
        assert a["code"]["coding"][0]["system"] == SNOMED
        assert a["clinicalStatus"]["coding"][0]["code"] in ("active", "resolved")
        assert a["reaction"][0]["manifestation"][0]["coding"][0]["system"] == SNOMED
        assert a["recordedDate"] and a["patient"]["identifier"]["value"] in residents
    assert med_pages[-1].checkpoint == {}


async def test_a_stopped_run_resumes_at_the_next_resident() -> None:
    app = _app(6)
    residents = _residents(app)
    async with _session(app, residents) as s:
        reader = s.read("allergies")
        first = [await reader.__anext__() for _ in range(3)]
        await reader.aclose()
        assert first[-1].checkpoint == {"next_patient": 3}
        rest = [p async for p in s.read("allergies", first[-1].checkpoint)]
    assert len(rest) == 3
    asked = [json.loads(base64.urlsafe_b64decode(r["headers"]["authorization"].split(".")[1] + "=="))["iat"]
             for r in app.state.sandbox.extra["requests"]]
    assert len(asked) == 6  # each resident asked exactly once


async def test_appointments_use_patient_search_then_a_date_window() -> None:
    app = _app(5)
    residents = _residents(app)
    async with _session(app, residents[:3]) as s:
        appts = [r.data async for p in s.read("appointments") for r in p.records]
    assert appts and all(a["resourceType"] == "Appointment" for a in appts)
    assert all(a["subject"]["identifier"]["value"] in residents[:3] for a in appts)
    assert all(a["practitioners"] == ["Dr Anita Patel"] and a["locationName"] for a in appts)
    paths = [r["path"] for r in app.state.sandbox.extra["requests"]]
    assert paths.count("/fhir/Patient") == 3


async def test_operation_outcomes_and_throttling() -> None:
    app = _app(3)
    residents = _residents(app)
    async with _session(app, residents) as s:
        with pytest.raises(VendorError) as bad:
            await s._structured("allergies", "9990000019")
        assert bad.value.status == 400 and bad.value.code == "INVALID_NHS_NUMBER"
        assert "not valid" in bad.value.vendor_message
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gpc.sandbox") as c:
            await c.post("/_sandbox/faults", json={"storm_429": 2, "storm_5xx": 1, "retry_after": "0"})
        pages = [p async for p in s.read("allergies")]
        assert len(pages) == 3 and s.stats.throttled == 2 and s.stats.server_errors == 1
        cap = await s.metadata()
    assert cap["resourceType"] == "CapabilityStatement" and cap["fhirVersion"] == "3.0.1"


async def test_the_provider_refuses_a_jwt_for_another_purpose() -> None:
    app = _app(2)
    nhs = _residents(app)[0]
    token = access_token(CONFIG, "http://gpc.sandbox/structured/fhir/Patient/$gpc.getstructuredrecord", "patient/*.read")
    head, claims, _sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(claims + "=="))
    body["reason_for_request"] = "secondaryuses"
    forged = head + "." + base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode() + "."
    headers = {"Ssp-TraceID": "t", "Ssp-From": "200000000359", "Ssp-To": gpc.PROVIDER_ASID,
               "Ssp-InteractionID": gpc.INTERACTIONS["structured"], "Authorization": f"Bearer {forged}"}
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "patientNHSNumber", "valueIdentifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gpc.sandbox") as c:
        resp = await c.post("/structured/fhir/Patient/$gpc.getstructuredrecord", json=params, headers=headers)
    assert resp.status_code == 400
    assert resp.json()["issue"][0]["diagnostics"] == "reason_for_request must be directcare"


# ---------------------------------------------------------------------------------------- conformance


@lru_cache(maxsize=4)
def _swagger(name: str) -> dict[str, Any]:
    path = SPECS / name
    if not path.exists():
        pytest.skip("vendor spec not available")
    return yaml.safe_load(path.read_text())


def _operation(name: str, path: str, method: str) -> dict[str, Any]:
    op: dict[str, Any] = _swagger(name)["paths"][path][method]
    return op


def _example_claims(op: dict[str, Any]) -> dict[str, Any]:
    auth = next(p for p in op["parameters"] if p["name"] == "Authorization")
    text = re.sub(r"<<\w+>>", "0", auth["x-example"])
    claims: dict[str, Any] = json.loads(text)
    return claims


@pytest.mark.parametrize(("spec", "path", "method", "stream"), [
    ("structured-gpconnect-swagger.yaml", "/Patient/$gpc.getstructuredrecord", "post", "allergies"),
    ("structured-gpconnect-swagger.yaml", "/Patient/$gpc.getstructuredrecord", "post", "medications"),
    ("appointments-gpconnect-swagger.yaml", "/Patient/{id}/Appointment", "get", "appointments"),
])
async def test_requests_carry_what_the_swagger_requires(spec: str, path: str, method: str, stream: str) -> None:
    op = _operation(spec, path, method)
    app = _app(2)
    async with _session(app, _residents(app)[:1]) as s:
        [p async for p in s.read(stream)]
    base = "/structured/fhir" if "structured" in spec else "/fhir"
    wanted = base + path.replace("{id}", "1")
    sent = [r for r in app.state.sandbox.extra["requests"] if r["path"] == wanted]
    assert sent, f"no request to {wanted}"
    headers = sent[-1]["headers"]
    for p in op["parameters"]:
        if p["in"] == "header" and p.get("required"):
            assert p["name"].lower() in headers, p["name"]
        if p["in"] == "header" and p["name"] == "Ssp-InteractionID":
            assert headers["ssp-interactionid"] == p["default"]
    claims = json.loads(base64.urlsafe_b64decode(headers["authorization"][7:].split(".")[1] + "=="))
    example = _example_claims(op)
    assert set(example) <= set(claims)
    assert claims["reason_for_request"] == example["reason_for_request"]
    assert claims["requested_scope"] == example["requested_scope"]
    for key in ("requesting_device", "requesting_organization", "requesting_practitioner"):
        assert claims[key]["resourceType"] == example[key]["resourceType"]
        assert {i["system"] for i in claims[key].get("identifier", [])} >= \
            ({i["system"] for i in example[key].get("identifier", [])} - {
                "https://orange.testlab.nhs.uk/gpconnect-demonstrator/Id/local-system-instance-id",
                "https://orange.testlab.nhs.uk/gpconnect-demonstrator/Id/local-user-id"})
    if method == "post":
        s2 = _session(app, [])
        body = s2.structured_parameters(stream, "9690937286")
        ex = next(p for p in op["parameters"] if p["in"] == "body")["schema"]["example"]
        assert body["resourceType"] == ex["resourceType"]
        ex_names = {p["name"] for p in ex["parameter"]}
        assert {p["name"] for p in body["parameter"]} <= ex_names
        ex_nhs = next(p for p in ex["parameter"] if p["name"] == "patientNHSNumber")["valueIdentifier"]
        assert body["parameter"][0]["valueIdentifier"]["system"] == ex_nhs["system"]
        for p in body["parameter"][1:]:
            ex_parts = {q["name"] for q in next(e for e in ex["parameter"] if e["name"] == p["name"]).get("part", [])}
            assert {q["name"] for q in p.get("part", [])} - {"includePrescriptionIssues", "medicationSearchFromDate"} <= ex_parts


async def test_error_statuses_are_ones_the_swagger_documents() -> None:
    documented = set(_operation("structured-gpconnect-swagger.yaml", "/Patient/$gpc.getstructuredrecord", "post")
                     ["responses"])
    app = _app(9)
    residents = _residents(app)
    statuses = set()
    async with _session(app, residents) as s:
        for nhs in ("9990000019", "9990000018", residents[gpc.NO_CONSENT_INDEX]):
            with pytest.raises(VendorError) as exc:
                await s._structured("allergies", nhs)
            statuses.add(str(exc.value.status))
    assert statuses == {"400", "404", "403"} and statuses <= documented


@pytest.mark.parametrize(("stream", "care_type"), [("medications", "Medication"), ("allergies", "Allergy"),
                                                     ("appointments", "Appointment")])
async def test_mapping_templates_map_every_record(stream: str, care_type: str) -> None:
    from engine.mapping import compile_design, load_mapping_template_file

    design = load_mapping_template_file(TEMPLATES.parent / "mappings" / "gp_connect" / f"{care_type}.yaml")
    assert (design.connector, design.stream, design.care_type) == ("gp_connect", stream, care_type)
    compiled = compile_design(design)
    app = _app(6)
    async with _session(app, _residents(app)) as s:
        records = [r async for p in s.read(stream) for r in p.records]
    mapped = [compiled.apply(r.data) for r in records]
    assert records and all(m.ok for m in mapped), [m.errors for m in mapped if not m.ok][:3]
    values = [dict(m.values) for m in mapped]
    assert all(v["residentRef"] in _residents(app) for v in values)
    if care_type == "Medication":
        assert {v["dmdCode"] for v in values} <= {c for c, _n, _d in gpc.MEDICINES}
        assert all(v["prescriber"] == "Dr Anita Patel" and v["status"] in ("active", "completed") for v in values)
    if care_type == "Allergy":
        assert all(v["snomedCode"] and v["severity"] in ("mild", "moderate", "severe") for v in values)


def test_catalog_reads_gp_systems_through_gp_connect() -> None:
    from connectors.catalog import load_catalog
    from connectors.sandboxes import SANDBOXES

    by_id = {e.id: e for e in load_catalog(TEMPLATES).entries}
    for system in ("gp_connect", "systmone", "emis_web", "vision"):
        assert (by_id[system].connector, by_id[system].integration_method) == ("gp_connect", "FHIR"), system
    assert "gp_connect" in SANDBOXES and "nhs_scr" in SANDBOXES
    assert by_id["nhs_scr"].connector == "nhs_scr"
