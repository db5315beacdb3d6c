"""NHS BaRS pharmacy referrals against the BaRS proxy sandbox over real HTTP (httpx.ASGITransport): NHS signed-JWT
token exchange, the BaRS headers, an outbound referral built from Resident and Medication care records through
the two-way mapping templates, acknowledged with a response message and never duplicated on retry (lost reply,
5xx, 429), referral status read back per resident, storms, and the catalog route of the pharmacy systems."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from connectors.catalog import load_catalog
from connectors.fhir import bars as fb
from connectors.manifest import RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes import bars
from connectors.sandboxes.common import nhs_check_digit
from connectors.sessions import open_session
from engine.mapping import compile_design, load_mapping_template_file
from engine.ports import OutboundRecord

from .ops_helpers import (
    CONNECTORS,
    MAPPINGS,
    LoseReplies,
    check_registered,
    control,
    fast_rules,
    manifest,
    map_records,
    read_all,
    sandbox,
    storm_starter,
)

PROCESS = "/booking-and-referral/FHIR/R4/$process-message"


def s(app: FastAPI, asgi: Any = None, **kw: Any) -> ConnectorSession:
    m = manifest("nhs_bars")
    return open_session(m, kw.pop("config", None) or dict(app.state.config), dict(app.state.credentials),
                        base_url="http://bars.sandbox",
                        transport=kw.pop("transport", None) or httpx.ASGITransport(app=asgi or app),
                        connection_id=f"bars-{id(app)}", error_rules=fast_rules(m), rate_limits=RateLimits(), **kw)


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.log: list[tuple[httpx.Request, bytes, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        resp = await self.inner.handle_async_request(request)
        self.log.append((request, body, resp.status_code))
        return resp


def referral_from_care_records(app: FastAPI, index: int = 1) -> dict[str, Any]:
    """A Resident and two Medication care records, reversed through the templates into the referral shape."""
    res = app.state.residents[index]
    resident = {"nhsNumber": res["nhsNumber"], "givenName": res["givenName"], "familyName": res["familyName"],
                "dateOfBirth": res["birthDate"], "gender": res["gender"], "address": {"postcode": res["postcode"]}}
    meds = [{"residentRef": res["nhsNumber"], "dmdCode": "322236009", "name": "Paracetamol 500mg tablets",
             "dose": "Two tablets up to four times a day", "status": "active"},
            {"residentRef": res["nhsNumber"], "dmdCode": "319283006", "name": "Amlodipine 5mg tablets",
             "dose": "One tablet once a day", "status": "active"}]
    rdesign = compile_design(load_mapping_template_file(MAPPINGS / "nhs_bars" / "Resident.yaml"))
    mdesign = compile_design(load_mapping_template_file(MAPPINGS / "nhs_bars" / "Medication.yaml"))
    payload = rdesign.reverse(resident)
    payload["medicines"] = [mdesign.reverse(m) for m in meds]
    payload["reason"] = "Discharged from hospital with a new medicine: please review (Discharge Medicines Service)"
    return payload


def received(app: FastAPI) -> list[dict[str, Any]]:
    return app.state.sandbox.extra["received"][app.state.config["target_service_id"]]


def test_manifest_validates_and_pharmacy_systems_route_through_bars() -> None:
    m = check_registered("nhs_bars")
    assert m.auth.type == "nhs_signed_jwt" and m.auth.algorithm == "RS512"
    write = m.streams["referrals"].write
    assert write is not None and write.create is not None and write.create.path.endswith("/$process-message")
    by_id = {e.id: e for e in load_catalog(CONNECTORS).entries}
    for system in ("pharmoutcomes", "sonar_informatics", "cegedim_pharmacy"):
        entry = by_id[system]
        assert (entry.connector, entry.integration_method, entry.availability) == ("nhs_bars", "FHIR", "available")
        assert "no public api" in entry.note.lower() and "bars" in entry.note.lower()
    assert by_id["emis_health"].availability == "partner-only"  # not a BaRS route in the notes


def test_sandbox_residents_carry_valid_test_nhs_numbers() -> None:
    app = sandbox("nhs_bars", records=40)
    numbers = [r["nhsNumber"] for r in app.state.residents]
    assert len(set(numbers)) == 40 and all(n.startswith("999") and nhs_check_digit(n[:9]) == int(n[9])
                                           for n in numbers)


async def test_referral_is_sent_with_bars_headers_and_acknowledged() -> None:
    app = sandbox("nhs_bars", records=6)
    rec = Recorder(app)
    payload = referral_from_care_records(app)
    before = len(received(app))
    async with s(app, transport=rec) as sess:
        [outcome] = await sess.write("referrals", [OutboundRecord("ref-0001", payload)])
    assert outcome.ok and outcome.external_id == fb.message_ids("ref-0001")["service_request"]
    ack = outcome.data["entry"][0]["resource"]
    assert ack["eventCoding"]["code"] == "servicerequest-response" and ack["response"]["code"] == "ok"
    assert ack["response"]["identifier"] == fb.message_ids("ref-0001")["header"]
    assert len(received(app)) == before + 1
    [(_, token_body, _), (req, body, status)] = rec.log
    form = dict(httpx.QueryParams(token_body.decode()))
    header = jwt.get_unverified_header(form["client_assertion"])
    claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert header["alg"] == "RS512" and header["kid"] == bars.KID
    assert claims["iss"] == claims["sub"] == bars.API_KEY and claims["aud"] == "http://bars.sandbox/oauth2/token"
    assert 0 < claims["exp"] - time.time() <= 300 and uuid.UUID(claims["jti"])
    assert status == 200 and req.url.path == PROCESS
    assert json.loads(base64.b64decode(req.headers["nhsd-target-identifier"])) == {
        "value": "2000072489", "system": "https://fhir.nhs.uk/Id/dos-service-id"}
    assert json.loads(base64.b64decode(req.headers["nhsd-end-user-organisation"]))["identifier"][0]["value"] == "VM4X2"
    assert uuid.UUID(req.headers["x-request-id"]) and uuid.UUID(req.headers["x-correlation-id"])
    assert req.headers["accept"].startswith("application/fhir+json; version=")
    sent = json.loads(body)
    kinds = [e["resource"]["resourceType"] for e in sent["entry"]]
    assert kinds[0] == "MessageHeader" and {"ServiceRequest", "Patient", "MedicationStatement"} <= set(kinds)
    meds = [e["resource"] for e in sent["entry"] if e["resource"]["resourceType"] == "MedicationStatement"]
    assert [m["medicationCodeableConcept"]["coding"][0]["code"] for m in meds] == ["322236009", "319283006"]


async def test_retries_never_duplicate_a_referral() -> None:
    app = sandbox("nhs_bars", records=6)
    payload = referral_from_care_records(app, 3)
    before = len(received(app))
    lossy = LoseReplies(app, "POST", PROCESS, times=1)  # the pharmacy got it, the reply was lost
    async with s(app, asgi=lossy) as sess:
        [first] = await sess.write("referrals", [OutboundRecord("ref-lost", payload)])
    assert first.ok and first.data == {"duplicate": True} and len(received(app)) == before + 1
    async with s(app) as sess:  # the whole write re-run (at-least-once delivery): same message, no new referral
        [again] = await sess.write("referrals", [OutboundRecord("ref-lost", payload)])
        await control(app, "/_sandbox/faults", {"storm_5xx": 3, "error_status": 503, "retry_after": "0"})
        [stormy] = await sess.write("referrals", [OutboundRecord("ref-storm", payload)])
        await control(app, "/_sandbox/faults", {"storm_429": 3, "retry_after": "0"})
        [throttled] = await sess.write("referrals", [OutboundRecord("ref-429", payload)])
    assert again.ok and again.external_id == first.external_id
    assert stormy.ok and throttled.ok and len(received(app)) == before + 3
    assert sess.stats.server_errors == 3 and sess.stats.throttled == 3
    assert sess.stats.failed_calls == 1  # the 409 'already processed' answer to the re-run, counted as delivered


async def test_bad_target_and_bad_message_are_explained() -> None:
    app = sandbox("nhs_bars", records=4)
    payload = referral_from_care_records(app, 0)
    async with s(app, config={**app.state.config, "target_service_id": "9999"}) as sess:
        [unknown] = await sess.write("referrals", [OutboundRecord("k1", payload)])
    assert not unknown.ok and unknown.error_code == "PROXY_NOT_FOUND"
    async with s(app) as sess:
        [invalid] = await sess.write("referrals", [OutboundRecord("k2", {**payload, "nhsNumber": "9990000001"})])
        url = sess.base_url + PROCESS
        from connectors.auth import OutgoingRequest
        from connectors.errors import VendorError

        with pytest.raises(VendorError) as err:
            await sess.request(lambda: OutgoingRequest("POST", url, {}, sess._bars_headers(),  # type: ignore[attr-defined]
                                                       {"resourceType": "Bundle", "type": "collection"}))
    assert not invalid.ok and invalid.error_code == "REC_BAD_REQUEST" and "NHS number" in (invalid.error_message or "")
    assert err.value.status == 400 and "message" in err.value.vendor_message
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bars.sandbox") as c:
        tok = app.state.sandbox.issue_tokens()["access_token"]
        resp = await c.post(PROCESS, json={}, headers={
            "Authorization": f"Bearer {tok}", "X-Request-Id": str(uuid.uuid4()), "X-Correlation-Id": str(uuid.uuid4()),
            "NHSD-Target-Identifier": "this-is-not-base-64"})
    assert resp.status_code == 400 and resp.json()["issue"][0]["diagnostics"] == \
        "Invalid schema for NHSD-Target-Identifier header"


async def test_referral_status_read_back_per_resident_and_resumed() -> None:
    app = sandbox("nhs_bars", records=12)
    payload = referral_from_care_records(app, 1)
    async with s(app) as sess:
        await sess.write("referrals", [OutboundRecord("ref-new", payload)])
        records, pages = await read_all(sess, "referrals")
        resumed, _ = await read_all(sess, "referrals", pages[5].checkpoint)
        medicines, _ = await read_all(sess, "referral_medicines")
    mine = [b for b in received(app)]
    assert len(pages) == 12 and len(records) == len(mine) and len(records) == 3
    new = next(r for r in records if r.external_id == fb.message_ids("ref-new")["service_request"])
    assert new.data["status"] == "active" and new.data["nhsNumber"] == app.state.residents[1]["nhsNumber"]
    assert [m["dmdCode"] for m in new.data["medicines"]] == ["322236009", "319283006"]
    assert {r.external_id for r in resumed} <= {r.external_id for r in records}
    assert len(medicines) == sum(len(r.data["medicines"]) for r in records)


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_while_reading_end_with_every_referral(storm: str) -> None:
    app = sandbox("nhs_bars", records=18)
    async with s(app) as sess:
        records, _ = await read_all(sess, "referrals", between=storm_starter(app, storm))
    expected = sum(1 for b in received(app))
    assert len({r.external_id for r in records}) == len(records) == expected and expected == 3
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_token_endpoint_checks_the_assertion() -> None:
    app = sandbox("nhs_bars", records=2)
    token_url = "http://bars.sandbox/oauth2/token"

    def assertion(**claims: Any) -> str:
        body = {"iss": bars.API_KEY, "sub": bars.API_KEY, "aud": token_url, "jti": str(uuid.uuid4()),
                "exp": int(time.time()) + 300, **claims}
        return jwt.encode(body, bars.sandbox_key()[0], algorithm="RS512", headers={"kid": bars.KID})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bars.sandbox") as c:
        async def post(tok: str) -> httpx.Response:
            return await c.post("/oauth2/token", data={
                "grant_type": "client_credentials", "client_assertion": tok,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})

        good = assertion(jti="once")
        assert (await post(good)).status_code == 200
        assert "jti" in (await post(good)).json()["error_description"]
        assert (await post(assertion(aud="https://api.service.nhs.uk/oauth2/token"))).status_code == 401
        assert "5 minutes" in (await post(assertion(exp=int(time.time()) + 900))).json()["error_description"]
        assert (await post(assertion(sub="other"))).status_code == 401


async def test_mapping_templates_map_sandbox_referrals() -> None:
    app = sandbox("nhs_bars", records=8)
    async with s(app) as sess:
        referrals, _ = await read_all(sess, "referrals")
        medicines, _ = await read_all(sess, "referral_medicines")
    residents = map_records("nhs_bars", "Resident", referrals, stream="referrals")
    meds = map_records("nhs_bars", "Medication", medicines, stream="referral_medicines")
    numbers = {r["nhsNumber"] for r in app.state.residents}
    assert residents and {r["nhsNumber"] for r in residents} <= numbers
    assert meds and all(m["residentRef"] in numbers and m["dmdCode"] for m in meds)


async def test_referral_through_the_sandbox_mounted_like_the_web_app() -> None:
    from connectors.sandboxes import SandboxConfig, mount_sandboxes

    host = FastAPI()
    app = mount_sandboxes(host, config=SandboxConfig(records=4), only=["nhs_bars"])["nhs_bars"]
    before = len(received(app))
    async with open_session(manifest("nhs_bars"), app.state.config, app.state.credentials,
                            base_url="http://carehub.local/sandbox/nhs_bars", transport=httpx.ASGITransport(app=host),
                            connection_id="bars-mounted") as sess:
        [sent] = await sess.write("referrals", [OutboundRecord("ref-mounted", referral_from_care_records(app, 2))])
        back, _ = await read_all(sess, "referrals")  # the assertion's aud is the mounted token URL
    assert sent.ok and len(received(app)) == before + 1 and sent.external_id in {r.external_id for r in back}
