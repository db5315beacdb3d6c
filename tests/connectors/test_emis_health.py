"""EMIS-X Partner API connector against its sandbox over real HTTP: client-credentials tokens with PAPI scopes,
the applicationId header on every call, one GET per resident's EMIS patient number (GetPatientDemographics,
GetCodedRecord, GetMedicalRecord), exact counts, resumable checkpoints, PAPI ErrorResponse bodies turned into
messages, 429/5xx storms, token expiry, SNOMED/Read v2/dm+d codes kept, and a sync through the real worker."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import ArqRedis
from fastapi import FastAPI
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from shared_docs import VENDOR_SPECS
from sqlalchemy import select

from app.sync_jobs import enqueue_run
from connectors.catalog import load_catalog
from connectors.errors import AuthFailed, ConnectorError, VendorError
from connectors.sandboxes import SANDBOXES
from connectors.sandboxes import emis_health as emis
from connectors.sandboxes.common import SandboxConfig
from storage import runs as runrepo
from storage.models import CareRecord, Integration, MappingDesign, SyncConfiguration

from .ops_helpers import (
    CONNECTORS,
    MAPPINGS,
    control,
    manifest,
    map_records,
    read_all,
    session,
    storm_starter,
)
from .test_spec_conformance import Recorder, Spec, _nullable, check_exchange
from .worker_harness import count_care, drain, serve

SECRETS = {"client_id": emis.CLIENT_ID, "client_secret": emis.CLIENT_SECRET}


def sandbox(patients: int) -> FastAPI:
    return SANDBOXES["emis_health"](SandboxConfig(records={"patients": patients}))


def config(app: FastAPI, **over: Any) -> dict[str, Any]:
    numbers = app.state.sandbox.extra["patients"]
    return {"application_id": emis.APPLICATION_ID, "patient_numbers": ", ".join(numbers), **over}


def s(app: FastAPI, **kw: Any) -> Any:
    cfg = kw.pop("config", None) or config(app)
    return session("emis_health", app, cfg, kw.pop("secrets", SECRETS), **kw)


def expected(n: int, part: str) -> int:
    return sum(emis.chart_sizes(i)[part] for i in range(n))


def test_manifest_is_registered_and_the_catalog_is_honest() -> None:
    m = manifest("emis_health")
    assert m.auth.type == "oauth2_client_credentials" and m.auth.scopes == ["papi-subjects.read", "papi-cr.read"]
    assert m.headers["applicationId"] == "{config.application_id}"
    assert m.environments["production"].base_url == "https://api.platform.emis-x.uk/partner"
    assert {st.path for st in m.streams.values()} == {"/api/v1/patient/GetPatientDemographics",
                                                      "/api/v1/medicalRecord/GetCodedRecord",
                                                      "/api/v1/medicalRecord/GetMedicalRecord"}
    assert all(f.description for st in m.streams.values() for f in st.fields)
    assert "emis_health" in SANDBOXES
    practice = sandbox(3)  # practice mode connects with the sandbox's own settings and credentials
    assert practice.state.config == config(practice) and practice.state.credentials == SECRETS
    entry = next(e for e in load_catalog(CONNECTORS).entries if e.id == "emis_health")
    assert entry.availability == "partner-only" and entry.connector == "emis_health"
    assert "unconfirmed" in entry.note and "applicationId" in entry.note
    assert "unconfirmed" in m.note.lower()


async def test_full_read_over_every_resident_with_exact_counts() -> None:
    n = 14
    app = sandbox(n)
    async with s(app) as sess:
        residents, pages = await read_all(sess, "patients")
        allergies, a_pages = await read_all(sess, "allergies")
        events, _ = await read_all(sess, "coded_events")
        meds, _ = await read_all(sess, "medications")
    numbers = app.state.sandbox.extra["patients"]
    assert [r.external_id for r in residents] == numbers and len(pages) == n == len(a_pages)
    assert all(r.data["patientNumber"] == r.external_id and len(r.data["nhsNumber"]) == 10 for r in residents)
    assert len(allergies) == expected(n, "allergies") == 13
    assert len(events) == expected(n, "problems") + expected(n, "values") == 21 + 19
    assert len(meds) == expected(n, "medications") == 33
    assert len({r.external_id for r in allergies + events + meds}) == len(allergies) + len(events) + len(meds)
    assert {r.data["patientNumber"] for r in meds} == set(numbers)
    assert all(r.data["nhsNumber"] for r in meds)  # copied from the full record's registration
    assert pages[0].checkpoint["page"] == {"index": 1} and pages[-1].checkpoint == {}
    assert sess.stats.failed_calls == 0
    calls = app.state.sandbox.extra["calls_by_path"]
    assert calls["/api/v1/medicalRecord/GetCodedRecord"] == 2 * n  # allergies and events: one call each per resident
    assert app.state.sandbox.token_grants == {"client_credentials": 1}


async def test_a_read_resumes_at_the_next_resident_from_its_checkpoint() -> None:
    app = sandbox(9)
    async with s(app) as sess:
        first: list[Any] = []
        async for page in sess.read("medications"):
            first.extend(page.records)
            if page.checkpoint["page"]["index"] == 4:
                checkpoint = page.checkpoint
                break
        rest, pages = await read_all(sess, "medications", checkpoint)
    assert len(pages) == 5
    assert len(first) + len(rest) == expected(9, "medications")
    assert {r.external_id for r in first}.isdisjoint({r.external_id for r in rest})


async def test_missing_or_wrong_application_id_is_a_clear_401() -> None:
    app = sandbox(3)
    async with s(app, config=config(app, application_id="")) as sess:
        with pytest.raises(AuthFailed) as exc:
            await read_all(sess, "patients")
    assert exc.value.status == 401
    assert str(exc.value) == ("EMIS Health (EMIS-X Partner API) rejected the credentials: Authentication token not "
                              "valid: the applicationId header is missing")
    assert sess.stats.refreshes == 1  # one fresh token tried before giving up
    async with s(app, config=config(app, application_id="someone-else")) as sess:
        with pytest.raises(AuthFailed, match="does not match a registered partner application"):
            await read_all(sess, "allergies")


async def test_wrong_client_secret_is_refused_by_the_identity_provider() -> None:
    app = sandbox(2)
    async with s(app, secrets={**SECRETS, "client_secret": "nope"}) as sess:
        with pytest.raises(AuthFailed, match="AADB2C90081"):
            await read_all(sess, "patients")
    assert app.state.sandbox.calls == 0  # no API call without a token


async def test_unknown_or_malformed_patient_numbers() -> None:
    app = sandbox(3)
    numbers = app.state.sandbox.extra["patients"]
    async with s(app, config=config(app, patient_numbers=f"{numbers[0]}, 999999")) as sess:
        with pytest.raises(VendorError) as exc:
            await read_all(sess, "allergies")
    assert exc.value.status == 404 and exc.value.code == "not-found"
    assert "Not found: no patient with patientNumber 999999 at this organisation" in str(exc.value)
    assert "messageId" not in str(exc.value)
    async with s(app, config=config(app, patient_numbers="9434765919X")) as sess:
        with pytest.raises(ConnectorError, match="not an EMIS patient number"):
            await read_all(sess, "patients")
    async with s(app, config=config(app, patient_numbers="")) as sess:
        with pytest.raises(ConnectorError, match="nothing to read"):
            await read_all(sess, "patients")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emis.sandbox") as c:
        tok = (await c.post(emis.TOKEN_PATH, data={"grant_type": "client_credentials", "scope": "papi-cr.read",
                                                   **SECRETS})).json()["access_token"]
        headers = {"Authorization": f"Bearer {tok}", "applicationId": emis.APPLICATION_ID}
        bad = await c.get("/api/v1/medicalRecord/GetCodedRecord", params={"patientNumber": "3000000000"},
                          headers=headers)
        scope = await c.get("/api/v1/patient/GetPatientDemographics", params={"patientNumber": numbers[0]},
                            headers=headers)
    assert bad.status_code == 400 and "32-bit whole number" in bad.json()["issue"]["diagnostics"]
    assert scope.status_code == 401 and "papi-subjects.read" in scope.json()["issue"]["diagnostics"]


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox(12)
    async with s(app) as sess:
        events, _ = await read_all(sess, "coded_events", between=storm_starter(app, storm))
    assert len({r.external_id for r in events}) == expected(12, "problems") + expected(12, "values")
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_throttle_reply_carries_retry_after_in_the_papi_error_envelope() -> None:
    app = sandbox(1)
    await control(app, "/_sandbox/faults", {"storm_429": 1, "retry_after": "7"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emis.sandbox") as c:
        r = await c.get("/api/v1/patient/GetPatientDemographics", params={"patientNumber": "500101"})
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert set(r.json()) == {"messageId", "text", "issue", "legacyOutcome"} and r.json()["issue"]["code"] == "throttled"


async def test_an_expired_token_is_renewed_mid_read() -> None:
    app = sandbox(8)

    async def expire(n: int) -> None:
        if n == 3:
            await control(app, "/_sandbox/expire-tokens")

    async with s(app) as sess:
        meds, _ = await read_all(sess, "medications", between=expire)
    assert len(meds) == expected(8, "medications")
    assert sess.stats.refreshes == 1 and sess.stats.failed_calls == 0
    assert app.state.sandbox.token_grants == {"client_credentials": 2}


async def test_mappings_keep_snomed_read_and_dmd_codes() -> None:
    app = sandbox(6)
    async with s(app) as sess:
        residents, _ = await read_all(sess, "patients")
        allergies, _ = await read_all(sess, "allergies")
        events, _ = await read_all(sess, "coded_events")
        meds, _ = await read_all(sess, "medications")
    people = map_records("emis_health", "Resident", residents, stream="patients")
    assert people[0]["externalRefs"] == {"emis_health": "500101"} and len(people[0]["nhsNumber"]) == 10
    assert people[0]["dateOfBirth"][4] == "-" and people[0]["gpPracticeOdsCode"] == emis.PRACTICE_ODS
    allergy = map_records("emis_health", "Allergy", allergies, stream="allergies")
    assert {a["snomedCode"] for a in allergy} <= {c for c, _t, _r in emis.ALLERGIES}
    assert all(a["residentRef"] in app.state.sandbox.extra["patients"] for a in allergy)
    obs = map_records("emis_health", "Observation", events, stream="coded_events")
    problems = [o for o in obs if o["value"] == "problem"]
    assert {o["code"] for o in problems} <= {c for c, _r, _t in emis.PROBLEMS} and problems
    assert {o["unit"] for o in obs if o["value"] != "problem"} <= {"mmHg", "kg"}
    read2 = {e.data["code"]["mapCode"] for e in events}
    assert read2 <= {r for _c, r, _t in emis.PROBLEMS} | {r for _c, r, *_ in emis.VALUES}  # Read v2 kept at source
    drugs = map_records("emis_health", "Medication", meds, stream="medications")
    assert {d["dmdCode"] for d in drugs} <= {d for _p, d, *_ in emis.MEDICINES}
    assert {d["status"] for d in drugs} == {"active"} and all(d["name"] for d in drugs)


@pytest.fixture
def practice() -> Iterator[tuple[str, FastAPI]]:
    app = sandbox(7)
    with serve(app) as url:
        yield url, app


async def test_residents_allergies_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str,
                                                      practice: tuple[str, FastAPI]) -> None:
    url, app = practice
    design = yaml.safe_load((MAPPINGS / "emis_health" / "Allergy.yaml").read_text())
    details = {"base_url": url, **config(app)}
    with ctx.db.session() as db:
        integ = Integration(name="GP records (EMIS)", connector_id="emis_health", status="active",
                            operation_mode="external_primary", connection_details=details,
                            credentials_encrypted=ctx.box.encrypt(dict(SECRETS)), error_handling={})
        db.add(integ)
        db.flush()
        db.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=50,
                                 retry_policy={"base_seconds": 0.05, "cap_seconds": 0.2, "max_attempts": 3,
                                               "call_deadline_seconds": 10},
                                 error_threshold=1000, max_change_share=1.0, sync_frequency={"kind": "manual"},
                                 streams=[{"stream": "allergies", "care_type": "Allergy"}]))
        db.add(MappingDesign(integration_id=integ.id, stream="allergies", care_type="Allergy", design=design))
        integ_id = str(integ.id)

    run1 = await enqueue_run(ctx.db, arq, integ_id, "manual", requested_by="test")
    await drain(ctx, redis_url, "emis-test-worker")
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == r1.counts["created"] == expected(7, "allergies") == 6
    assert count_care(ctx, "Allergy") == 6
    with ctx.db.session() as db:
        stored = [r.data for r in db.execute(select(CareRecord).where(CareRecord.care_type == "Allergy")).scalars()]
    assert {a["snomedCode"] for a in stored} <= {c for c, _t, _r in emis.ALLERGIES}
    assert {a["residentRef"] for a in stored} <= set(app.state.sandbox.extra["patients"])

    run2 = await enqueue_run(ctx.db, arq, integ_id, "manual")  # no change feed: a full re-read, nothing new
    await drain(ctx, redis_url, "emis-test-worker")
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2.status == "succeeded" and r2.counts["created"] == 0 and r2.counts["updated"] == 0
    assert count_care(ctx, "Allergy") == 6


# ------------------------------------------------------------------ conformance to the mirrored Partner API spec

PAPI_SPEC_CANDIDATES = [
    Path(os.environ["CAREHUB_EMIS_PAPI_SPEC"]) if os.environ.get("CAREHUB_EMIS_PAPI_SPEC") else None,
    VENDOR_SPECS / "emis-health" / "emis-health-partner-api-openapi.json",
]
PAPI_SPEC = next((p for p in PAPI_SPEC_CANDIDATES if p is not None and p.exists()), None)


def papi_spec(path: Path) -> Spec:
    """The Partner API spec (JSON) in the shape the shared conformance checks use."""
    spec = Spec.__new__(Spec)
    spec.doc = _nullable(json.loads(path.read_text(encoding="utf-8")))
    spec.prefix = ""
    spec.registry = Registry().with_resource("urn:spec", Resource.from_contents(spec.doc,
                                                                                default_specification=DRAFT7))
    spec.routes = [(re.compile("^" + re.escape(p) + "$"), p, item) for p, item in spec.doc["paths"].items()]
    return spec


@pytest.mark.skipif(PAPI_SPEC is None, reason="the mirrored EMIS Partner API spec (api-evangelist/emis-health "
                    "openapi/emis-health-partner-api-openapi.json) is not in vendor-specs/emis-health")
async def test_every_request_and_reply_conforms_to_the_partner_api_spec() -> None:
    assert PAPI_SPEC is not None
    spec = papi_spec(PAPI_SPEC)
    app = sandbox(6)
    rec = Recorder(httpx.ASGITransport(app=app))
    async with s(app, transport=rec) as sess:
        for stream in ("patients", "allergies", "coded_events", "medications"):
            await read_all(sess, stream)
    async with s(app, transport=rec, config=config(app, application_id="")) as sess:  # 401 replies
        with pytest.raises(AuthFailed):
            await read_all(sess, "patients")
    async with s(app, transport=rec, config=config(app, patient_numbers="999999")) as sess:  # 404 reply
        with pytest.raises(VendorError):
            await read_all(sess, "medications")
    api = [(q, r) for q, r in rec.exchanges if not q.url.path.startswith("/identity/")]
    assert len(api) == 4 * 6 + 2 + 1
    assert {r.status_code for _q, r in api} == {200, 401, 404}
    error_schema = {"$ref": "#/components/schemas/PartnerApi.Service.Model.ErrorResponse"}
    for q, r in api:
        op, _params = spec.operation(q.url.path, q.method)
        assert op["security"][1]["OAuth2CodeEMIS-X-GP-PAPI"][0] in app.state.sandbox.extra["scopes"][
            q.headers["authorization"].removeprefix("Bearer ")]
        number = q.url.params["patientNumber"]
        assert number.isdigit() and int(number) < 2**31  # int32, as the spec declares it
        if "applicationId" in q.headers:
            check_exchange(spec, q, r)
        else:  # our deliberate mistake: the reply must still be the spec's 401 ErrorResponse
            assert r.status_code == 401 and "401" in op["responses"]
            spec.validate(error_schema, r.json(), "401 without applicationId")
