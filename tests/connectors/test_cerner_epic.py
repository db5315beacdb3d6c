"""Cerner (Oracle Health Millennium) and Epic: one SMART on FHIR R4 connector family, two vendor profiles, against
the parameterised sandbox over real HTTP (httpx.ASGITransport): SMART discovery and the private_key_jwt client
assertion (checked by the sandbox), per-resident searches across Bundle next links, incremental reads
(Cerner ``_lastUpdated``, Epic ``issued``), OperationOutcome errors, 429/5xx storms, and the mapping templates."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from connectors.errors import ConnectorError, VendorError
from connectors.sandboxes import smart_fhir
from connectors.sandboxes.common import nhs_check_digit
from engine.ports import OutboundRecord

from .ops_helpers import check_registered, control, map_records, read_all, sandbox, session, storm_starter

VENDORS = ["cerner", "epic"]


def config(app: FastAPI) -> dict[str, Any]:
    return dict(app.state.config)


def s(vendor: str, app: FastAPI, **kw: Any) -> Any:
    creds = {**app.state.credentials, **kw.pop("secrets", {})}
    transport = kw.pop("transport", None) or httpx.ASGITransport(app=app)
    return session(vendor, app, kw.pop("config", None) or config(app), creds, transport=transport, **kw)


class Recorder(httpx.AsyncBaseTransport):
    """ASGI transport that keeps every request (to look at what the connector sent)."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.log: list[tuple[httpx.Request, bytes, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        resp = await self.inner.handle_async_request(request)
        self.log.append((request, body, resp.status_code))
        return resp


@pytest.mark.parametrize("vendor", VENDORS)
def test_manifest_validates_and_is_registered(vendor: str) -> None:
    m = check_registered(vendor)
    assert m.auth.type == "custom" and m.auth.name == "smart_backend" and m.auth.options["algorithm"] == "RS384"
    assert set(m.streams) == {"patients", "lab_results", "medication_requests", "allergies", "appointments"}
    assert {st.care_type for st in m.streams.values()} == {"Resident", "Observation", "Medication", "Allergy",
                                                           "Appointment"}
    assert all(st.write is None for st in m.streams.values())  # read-only from a hospital EPR
    assert m.streams["lab_results"].params["category"] == "laboratory"
    inc = {name: st.incremental.type if st.incremental else None for name, st in m.streams.items()}
    if vendor == "cerner":
        assert inc == {"patients": None, "lab_results": "fhir_last_updated", "medication_requests":
                       "fhir_last_updated", "allergies": "fhir_last_updated", "appointments": None}
        assert "system/Observation.read" in m.auth.options["scopes"]
    else:  # Epic's CapabilityStatement has no _lastUpdated: lab results by issued, the rest full reads
        assert inc == {"patients": None, "lab_results": "query_param", "medication_requests": None,
                       "allergies": None, "appointments": None}
        assert m.auth.options["scopes"] == []


@pytest.mark.parametrize("vendor", VENDORS)
def test_sandbox_patients_carry_valid_test_nhs_numbers(vendor: str) -> None:
    app = sandbox(vendor, records={"patients": 60})
    numbers = [p["identifier"][0]["value"] for p in app.state.store.patients]
    assert len(set(numbers)) == 60
    assert all(n.startswith("999") and nhs_check_digit(n[:9]) == int(n[9]) for n in numbers)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_full_read_across_pages_and_residents(vendor: str) -> None:
    app = sandbox(vendor, records={"patients": 110, "observations_per_patient": 80})
    cfg = config(app)
    few = ",".join(cfg["patient_ids"].split(",")[:4])
    rec = Recorder(app)
    async with s(vendor, app, transport=rec) as sess:
        patients, ppages = await read_all(sess, "patients")
    async with s(vendor, app, config={**cfg, "patient_ids": few}, transport=rec) as sess:
        labs, lpages = await read_all(sess, "lab_results")
        meds, _ = await read_all(sess, "medication_requests")
        allergies, _ = await read_all(sess, "allergies")
        appts, _ = await read_all(sess, "appointments")
    store = app.state.store
    assert len({r.external_id for r in patients}) == 110 and len(ppages) == 3
    expected = [o for i in range(4) for o in store.for_patient("Observation", i)
                if o["category"][0]["coding"][0]["code"] == "laboratory"]
    assert len(expected) == 240 and sorted(r.external_id for r in labs) == sorted(o["id"] for o in expected)
    assert len(lpages) == 8  # 60 lab results per resident: two pages each
    assert all(r.data["code"]["coding"][0]["system"] == "http://loinc.org" for r in labs)
    assert len(meds) == sum(1 + i % 3 for i in range(4)) and len(allergies) == sum(i % 3 for i in range(4))
    assert {c["system"] for r in meds for c in r.data["medicationCodeableConcept"]["coding"]} == {
        "http://snomed.info/sct", "http://www.nlm.nih.gov/research/umls/rxnorm"}
    assert len(appts) == sum(1 + i % 2 for i in range(4))
    assert sess.stats.failed_calls == 0 and app.state.sandbox.token_grants == {"client_credentials": 2}
    discovery = [r for r, _, _ in rec.log if r.url.path.endswith("/.well-known/smart-configuration")]
    assert len(discovery) == 2  # once per session, before the first token
    sent = [r.url.params for r, _, _ in rec.log if r.url.path.endswith("/Observation")]
    assert all("patient_ids" not in p and (p.get("patient") or p.get(smart_fhir.PROFILES[vendor].page_param))
               for p in sent)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_incremental_lab_results_return_only_new_results(vendor: str) -> None:
    app = sandbox(vendor, records={"patients": 3, "observations_per_patient": 12})
    rec = Recorder(app)
    async with s(vendor, app, transport=rec) as sess:
        first, pages = await read_all(sess, "lab_results")
        new = [await control(app, "/_sandbox/fhir/lab-result", {"patient_index": i, "lab": 0, "value": 98.0})
               for i in (0, 2)]
        again, _ = await read_all(sess, "lab_results", pages[-1].checkpoint)
    assert len(first) == 27 and [r.external_id for r in again] == [o["id"] for o in new]
    assert again[0].data["valueQuantity"]["value"] == 98.0
    last = [r.url.params for r, _, _ in rec.log if r.url.path.endswith("/Observation")][-1]
    if vendor == "cerner":
        assert last["_lastUpdated"].startswith("gt") and "issued" not in last
    else:
        assert last["issued"].startswith("gt") and "_lastUpdated" not in last


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_end_with_every_record(vendor: str, storm: str) -> None:
    app = sandbox(vendor, records={"patients": 5, "observations_per_patient": 70})
    async with s(vendor, app) as sess:
        labs, _ = await read_all(sess, "lab_results", between=storm_starter(app, storm))
    expected = {o["id"] for i in range(5) for o in app.state.store.for_patient("Observation", i)
                if o["category"][0]["coding"][0]["code"] == "laboratory"}
    assert {r.external_id for r in labs} == expected and len(labs) == len(expected)
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


@pytest.mark.parametrize("vendor", VENDORS)
async def test_client_assertion_as_the_vendor_checks_it(vendor: str) -> None:
    app = sandbox(vendor, records={"patients": 4})

    async def expire(n: int) -> None:
        if n == 2:
            await control(app, "/_sandbox/expire-tokens")

    async with s(vendor, app) as sess:
        labs, _ = await read_all(sess, "lab_results", between=expire)
    assert labs and sess.stats.refreshes == 1
    seen = app.state.sandbox.extra["assertions"]
    assert len(seen) == 2 and seen[0]["claims"]["jti"] != seen[1]["claims"]["jti"]
    prof = smart_fhir.PROFILES[vendor]
    for a in seen:
        h, c = a["header"], a["claims"]
        assert h["alg"] == "RS384" and h["kid"] == smart_fhir.KID and h["typ"] == "JWT"
        assert h.get("jku") == (smart_fhir.JWKS_URL if vendor == "epic" else None)
        assert c["iss"] == c["sub"] == smart_fhir.CLIENT_ID
        assert c["aud"] == f"http://{vendor}.sandbox{prof.token_path}"
        assert uuid.UUID(c["jti"]) and 0 < c["exp"] - time.time() <= 300


@pytest.mark.parametrize("vendor", VENDORS)
async def test_token_endpoint_refuses_bad_assertions(vendor: str) -> None:
    app = sandbox(vendor, records=2)
    prof = smart_fhir.PROFILES[vendor]
    token_url = f"http://{vendor}.sandbox{prof.token_path}"
    private = smart_fhir.sandbox_key()[0]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()

    def assertion(key: str = private, alg: str = "RS384", kid: str = smart_fhir.KID, jku: str | None = None,
                  **claims: Any) -> str:
        body = {"iss": smart_fhir.CLIENT_ID, "sub": smart_fhir.CLIENT_ID, "aud": token_url,
                "jti": str(uuid.uuid4()), "exp": int(time.time()) + 240, **claims}
        headers = {"kid": kid, **({"jku": jku or smart_fhir.JWKS_URL} if prof.jku_required or jku else {})}
        return jwt.encode(body, key, algorithm=alg, headers=headers)

    scope = "system/Observation.read"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{vendor}.sandbox") as c:
        async def post(token: str, **extra: str) -> httpx.Response:
            return await c.post(prof.token_path, data={
                "grant_type": "client_credentials", "client_assertion": token, "scope": scope,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", **extra})

        good = assertion(jti="fixed-jti")
        ok = await post(good)
        assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer"
        refusals = {
            "replay": await post(good),
            "kid": await post(assertion(kid="someone-else")),
            "signature": await post(assertion(key=other)),
            "aud": await post(assertion(aud="https://elsewhere.example/token")),
            "exp": await post(assertion(exp=int(time.time()) + 900)),
            "expired": await post(assertion(exp=int(time.time()) - 10)),
            "iss": await post(assertion(iss="other-app")),
            "alg": await post(assertion(alg="RS256")),
            "jku": await post(assertion(jku="https://attacker.example/jwks.json")),
        }
        for what, resp in refusals.items():
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_client", what
        assert "jti" in refusals["replay"].json()["error_description"]
        assert "5 minutes" in refusals["exp"].json()["error_description"]
        if prof.jku_required:  # Epic: backend apps created from February 2026 must send their JWKS URL
            no_jku = jwt.encode({"iss": smart_fhir.CLIENT_ID, "sub": smart_fhir.CLIENT_ID, "aud": token_url,
                                 "jti": str(uuid.uuid4()), "exp": int(time.time()) + 240}, private,
                                algorithm="RS384", headers={"kid": smart_fhir.KID})
            assert "jku" in (await post(no_jku)).json()["error_description"]
        limited = await post(assertion(), scope="system/Patient.read")
        obs = await c.get(f"{prof.fhir_base}/Observation", params={"patient": app.state.store.patients[0]["id"],
                                                                   "category": "laboratory"},
                          headers={"Authorization": f"Bearer {limited.json()['access_token']}"})
        if vendor == "cerner":  # Cerner grants and enforces the scopes asked for
            assert (await post(assertion(), scope="")).json()["error"] == "invalid_scope"
            assert obs.status_code == 403 and obs.json()["resourceType"] == "OperationOutcome"
        else:  # Epic grants the scopes registered with the app
            assert obs.status_code == 200


@pytest.mark.parametrize("vendor", VENDORS)
async def test_operation_outcomes_are_explained(vendor: str) -> None:
    app = sandbox(vendor, records={"patients": 2})
    async with s(vendor, app, config={**config(app), "patient_ids": ""}) as sess:
        result = await sess.test_connection()  # a Patient search with no criteria is refused by both vendors
        with pytest.raises(ConnectorError, match="patient_ids"):
            await read_all(sess, "lab_results")
    assert not result.ok and "Patient search requires one of" in result.reason
    async with s(vendor, app, secrets={"kid": "unknown"}) as sess:
        refused = await sess.test_connection()
    assert not refused.ok and "kid" in refused.reason
    async with s(vendor, app) as sess:
        wrong = "_lastUpdated" if vendor == "epic" else "issued"  # the other vendor's incremental filter
        url = sess.base_url + smart_fhir.PROFILES[vendor].fhir_base + "/Observation"
        from connectors.auth import OutgoingRequest

        with pytest.raises(VendorError) as err:
            await sess.request(lambda: OutgoingRequest("GET", url, {
                "patient": app.state.store.patients[0]["id"], "category": "laboratory", wrong: "gt2024-01-01"}))
        assert err.value.status == 400 and wrong in err.value.vendor_message
        with pytest.raises(ConnectorError, match="read-only"):
            await sess.write("lab_results", [OutboundRecord("k", {"status": "final"}, None)])


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(("stream", "care_type"), [("patients", "Resident"), ("lab_results", "Observation"),
                                                     ("medication_requests", "Medication"),
                                                     ("allergies", "Allergy"), ("appointments", "Appointment")])
async def test_mapping_templates_map_sandbox_records(vendor: str, stream: str, care_type: str) -> None:
    app = sandbox(vendor, records={"patients": 6})
    async with s(vendor, app) as sess:
        records, _ = await read_all(sess, stream)
    values = map_records(vendor, care_type, records, stream=stream)
    numbers = {p["identifier"][0]["value"] for p in app.state.store.patients}
    assert values
    if care_type == "Resident":
        assert {v["nhsNumber"] for v in values} == numbers
    else:
        assert {v["residentRef"] for v in values} <= numbers
    if care_type == "Observation":
        assert all(v["code"] in {lab[0] for lab in smart_fhir.LABS} and v["source"] == "lab" for v in values)
    if care_type == "Medication":
        assert {v["dmdCode"] for v in values} <= {m[0] for m in smart_fhir.MEDICINES}
    if care_type == "Allergy":
        assert all(v["snomedCode"] and v["severity"] in ("moderate", "severe") for v in values)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_reads_through_the_sandbox_mounted_like_the_web_app(vendor: str) -> None:
    from connectors.runtime import ConnectorSession
    from connectors.sandboxes import SandboxConfig, mount_sandboxes

    from .ops_helpers import manifest

    host = FastAPI()
    app = mount_sandboxes(host, config=SandboxConfig(records=5), only=[vendor])[vendor]
    async with ConnectorSession(manifest(vendor), app.state.config, app.state.credentials,
                                base_url=f"http://carehub.local/sandbox/{vendor}",
                                transport=httpx.ASGITransport(app=host), connection_id=f"{vendor}-mounted") as sess:
        labs, _ = await read_all(sess, "lab_results")  # discovery and the assertion's aud use the mounted URLs
    assert len(labs) == 5 * 5 and sess.auth.ctx.token_url == (  # six results each, one of them a vital sign
        f"http://carehub.local/sandbox/{vendor}{smart_fhir.PROFILES[vendor].token_path}")
