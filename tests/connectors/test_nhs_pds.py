"""NHS PDS connector against its sandbox over real HTTP (httpx.ASGITransport): signed-JWT token exchange,
residents read by NHS number, single-match trace, OperationOutcome errors, token expiry mid-read, 429/5xx
storms. Every request the connector sends and every sandbox reply is checked against the PDS OpenAPI
specification (NHSDigital/personal-demographics-service-api, multi-file YAML resolved with ``referencing``)."""

from __future__ import annotations

import re
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from fastapi import FastAPI
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from shared_docs import VENDOR_SPECS

from connectors.errors import ConnectorError, VendorError
from connectors.manifest import Backoff, ConnectorManifest, RateLimits, load_manifest
from connectors.runtime import ConnectorSession
from connectors.sandboxes import nhs_pds
from connectors.sandboxes.common import SandboxConfig, nhs_check_digit
from engine.ports import OutboundRecord

MANIFEST = Path(__file__).resolve().parents[2] / "templates" / "connectors" / "nhs_pds.yaml"
SPEC_DIR = VENDOR_SPECS / "nhs-pds/specification"
SECRETS = {"api_key": nhs_pds.API_KEY, "kid": nhs_pds.KID}
BASE_URL = "http://pds.sandbox/personal-demographics/FHIR/R4"
TOKEN_URL = "http://pds.sandbox/oauth2/token"


@pytest.fixture(scope="module")
def manifest() -> ConnectorManifest:
    return load_manifest(MANIFEST)


def secrets() -> dict[str, Any]:
    return {**SECRETS, "private_key": nhs_pds.sandbox_key()[0]}


def session(manifest: ConnectorManifest, app: FastAPI, transport: httpx.AsyncBaseTransport | None = None,
            config: dict[str, Any] | None = None, **kw: Any) -> ConnectorSession:
    rules = manifest.errors.model_copy(update={"backoff": Backoff(base_seconds=0.01, cap_seconds=0.05),
                                               "default_retry_after_seconds": 0.01, "deadline_seconds": 60})
    cfg = config or {"ods_code": "VM4X2", "nhs_numbers": app.state.config["nhs_numbers"]}
    return ConnectorSession(manifest, cfg, kw.pop("secrets", None) or secrets(), base_url="http://pds.sandbox",
                            transport=transport or httpx.ASGITransport(app=app), connection_id=f"pds-{id(app)}",
                            error_rules=rules, rate_limits=RateLimits(), **kw)


async def control(app: FastAPI, path: str, body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sb") as c:
        r = await c.post(path, json=body or {})
        r.raise_for_status()
        return r.json()


async def read_all(s: ConnectorSession, stream: str, between: Any = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pages = 0
    async for page in s.read(stream):
        pages += 1
        out += [dict(r.data) for r in page.records]
        if between is not None:
            await between(pages)
    return out


class Recorder(httpx.AsyncBaseTransport):
    """ASGI transport that keeps every request and reply (for the spec checks)."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.log: list[tuple[httpx.Request, bytes, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        resp = await self.inner.handle_async_request(request)
        content = await resp.aread()
        out = httpx.Response(resp.status_code, headers=resp.headers, content=content, request=request)
        self.log.append((request, body, out))
        return out


# ---------------------------------------------------------------------------------------------- the spec


@cache
def _retrieve(uri: str) -> Resource[Any]:
    path = Path(uri.removeprefix("file://"))
    return Resource.from_contents(yaml.safe_load(path.read_text()), default_specification=DRAFT4)


REGISTRY: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]


def schema_validator(name: str) -> Any:
    """An OpenAPI 3.0 schema validator for ``components/schemas/<name>``, following relative $refs."""
    uri = (SPEC_DIR / "components" / "schemas" / name).as_uri()
    return OAS30Validator({"$ref": uri}, registry=REGISTRY, format_checker=OAS30Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    main = yaml.safe_load((SPEC_DIR / "personal-demographics.yaml").read_text())
    search_op = yaml.safe_load((SPEC_DIR / "components" / "paths" / "patient-search.yaml").read_text())
    related_op = yaml.safe_load((SPEC_DIR / "components" / "paths" / "relatedpersons-get.yaml").read_text())
    params = main["components"]["parameters"]

    def resolve(refs: list[dict[str, str]]) -> list[dict[str, Any]]:
        return [params[r["$ref"].rsplit("/", 1)[-1]] for r in refs]

    return {
        "/Patient": {"path": resolve(main["paths"]["/Patient"]["parameters"]),
                     "query": resolve(search_op["parameters"])},
        "/Patient/{id}": {"path": resolve(main["paths"]["/Patient/{id}"]["parameters"]), "query": []},
        "/Patient/{id}/RelatedPerson": {"path": resolve(related_op["parameters"]), "query": []},
        "validators": {n: schema_validator(n) for n in ("Patient.yaml", "PatientSearch.yaml",
                                                         "RelatedPersonBundle.yaml", "OperationOutcome.yaml")},
        "id_param": params["Id"],
    }


def _errors(validator: Any, instance: Any) -> list[str]:
    return [f"{e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(instance)]


def _param_ok(param: dict[str, Any], value: str) -> list[str]:
    schema = param["schema"]
    if schema.get("type") == "array":
        schema = schema["items"]
    if schema.get("type") == "integer":
        if not re.fullmatch(r"-?\d+", value):
            return [f"{param['name']}={value!r} is not an integer"]
        return []
    if schema.get("type") == "boolean":
        return [] if value in ("true", "false") else [f"{param['name']}={value!r} is not a boolean"]
    return _errors(OAS30Validator(schema), value)


def check_request(spec: dict[str, Any], request: httpx.Request) -> None:
    """Headers and query arguments as the spec declares them: required ones present, every value valid,
    nothing undeclared; GET only (application-restricted access reads)."""
    path = request.url.path.removeprefix("/personal-demographics/FHIR/R4")
    assert request.method == "GET", f"{request.method} {path}: read-only access mode"
    related = path.endswith("/RelatedPerson")
    key = "/Patient" if path == "/Patient" else "/Patient/{id}/RelatedPerson" if related else "/Patient/{id}"
    if key != "/Patient":
        nhs = path.removesuffix("/RelatedPerson").rsplit("/", 1)[-1]
        assert path in (f"/Patient/{nhs}", f"/Patient/{nhs}/RelatedPerson")
        assert not _errors(OAS30Validator(spec["id_param"]["schema"]), nhs)
        assert nhs_pds.valid_nhs_number(nhs), f"{nhs} is not a valid NHS number"
    ops = spec[key]
    for param in ops["path"]:
        if param["in"] != "header":
            continue
        value = request.headers.get(param["name"])
        if param.get("required"):
            assert value, f"{path}: required header {param['name']} missing"
        if value is not None and param["name"] != "Authorization":
            assert not _param_ok(param, value), (param["name"], _param_ok(param, value))
    assert request.headers["authorization"].startswith("Bearer ")
    declared = {p["name"]: p for p in ops["query"]}
    for name, value in request.url.params.multi_items():
        assert name in declared, f"{path}: undeclared query parameter {name}"
        assert not _param_ok(declared[name], value), _param_ok(declared[name], value)


def check_response(spec: dict[str, Any], request: httpx.Request, resp: httpx.Response) -> None:
    """Replies as the spec declares them: Patient / searchset Bundle on 200, OperationOutcome on 4XX (and on a
    200 TOO_MANY_MATCHES), mirrored X-Request-ID and X-Correlation-ID, ETag = meta.versionId on a retrieval."""
    if resp.status_code >= 500:
        return  # the spec describes 200 and 4XX only; 5xx come from the injected faults
    path = request.url.path.removeprefix("/personal-demographics/FHIR/R4")
    assert resp.headers["content-type"].startswith("application/fhir+json")
    assert resp.headers.get("x-request-id") == request.headers["x-request-id"]
    assert resp.headers.get("x-correlation-id") == request.headers.get("x-correlation-id")
    body = resp.json()
    v = spec["validators"]
    if resp.status_code >= 400 or body.get("resourceType") == "OperationOutcome":
        assert resp.status_code in range(400, 500) or body["issue"][0]["details"]["coding"][0]["code"] == \
            "TOO_MANY_MATCHES"
        assert body["resourceType"] == "OperationOutcome" and not _errors(v["OperationOutcome.yaml"], body)
        return
    if path == "/Patient":
        assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
        assert not _errors(v["PatientSearch.yaml"], body), _errors(v["PatientSearch.yaml"], body)
        return
    if path.endswith("/RelatedPerson"):
        assert body["resourceType"] == "Bundle" and re.fullmatch(r'W/"[0-9]+"', resp.headers["etag"])
        assert not _errors(v["RelatedPersonBundle.yaml"], body), _errors(v["RelatedPersonBundle.yaml"], body)
        return
    assert not _errors(v["Patient.yaml"], body), _errors(v["Patient.yaml"], body)
    assert re.fullmatch(r'W/"[0-9]+"', resp.headers["etag"]) and resp.headers["etag"] == \
        f'W/"{body["meta"]["versionId"]}"'


def check_token_request(body: bytes) -> None:
    """The NHS signed-JWT client assertion (not part of the PDS spec: the platform's auth pattern)."""
    form = dict(httpx.QueryParams(body.decode()))
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header = jwt.get_unverified_header(form["client_assertion"])
    claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert header["alg"] == "RS512" and header["kid"] == nhs_pds.KID and header["typ"] == "JWT"
    assert claims["iss"] == claims["sub"] == nhs_pds.API_KEY and claims["aud"] == TOKEN_URL
    assert uuid.UUID(claims["jti"]) and 0 < claims["exp"] - time.time() <= 300


def check_all(spec: dict[str, Any], rec: Recorder) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request, body, resp in rec.log:
        kind = "token" if request.url.path == "/oauth2/token" else f"{request.method} {resp.status_code}"
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "token":
            check_token_request(body)
            assert resp.status_code == 200 and resp.json()["token_type"] == "Bearer"
            continue
        check_request(spec, request)
        check_response(spec, request, resp)
    return counts


# ---------------------------------------------------------------------------------------------- tests


def test_manifest_validates_and_is_honest_about_reads(manifest: ConnectorManifest) -> None:
    assert manifest.auth.type == "nhs_signed_jwt" and manifest.auth.algorithm == "RS512"
    assert set(manifest.streams) == {"patients", "patient_search", "related_people"}
    for name, stream in manifest.streams.items():
        assert stream.incremental is None and stream.write is None, name  # full reads, read-only mode
        assert all(len(f.description) > 5 for f in stream.fields), name
    assert manifest.environments["production"].token_url == "https://api.service.nhs.uk/oauth2/token"


def test_sandbox_nhs_numbers_are_valid_test_numbers() -> None:
    app = nhs_pds.create_app(SandboxConfig(records={"patients": 400}))
    numbers = app.state.numbers
    assert len(numbers) == len(set(numbers)) == 400
    for n in numbers:
        assert n.startswith("999") and nhs_check_digit(n[:9]) == int(n[9]), n


async def test_every_request_and_reply_conforms_to_the_pds_spec(manifest: ConnectorManifest,
                                                                spec: dict[str, Any]) -> None:
    app = nhs_pds.create_app(SandboxConfig(records={"patients": 60}))
    rec = Recorder(app)
    first = app.state.sandbox.extra["numbers"][0]
    target = nhs_pds._patient(42, 0, first)

    async def trouble(n: int) -> None:
        if n == 10:
            await control(app, "/_sandbox/expire-tokens")
        if n == 20:
            await control(app, "/_sandbox/faults", {"storm_429": 2, "retry_after": "0"})

    async with session(manifest, app, transport=rec) as s:
        residents = await read_all(s, "patients", between=trouble)
        related = await read_all(s, "related_people")
    trace_cfg = {"ods_code": "VM4X2", "search_family": target["name"][0]["family"][:3] + "*",
                 "search_given": target["name"][0]["given"][0], "search_birthdate": "eq" + target["birthDate"],
                 "search_postcode": "LS*"}
    async with session(manifest, app, transport=rec, config=trace_cfg) as s:
        traced = await read_all(s, "patient_search")
    async with session(manifest, app, transport=rec, config={**trace_cfg, "search_given": "",
                                                              "search_birthdate": "ge1900-01-01",
                                                              "search_family": "*", "search_postcode": ""}) as s:
        with pytest.raises(VendorError, match="TOO_MANY_MATCHES"):
            await read_all(s, "patient_search")
    async with session(manifest, app, transport=rec, config={"ods_code": "VM4X2", "nhs_numbers": "9990000026"}) as s:
        with pytest.raises(VendorError, match="Resource not found"):
            await read_all(s, "patients")
    assert len(residents) == 60 and traced and traced[0]["id"] == first
    assert related and {r["patient"]["identifier"]["value"] for r in related} <= set(app.state.numbers)
    counts = check_all(spec, rec)
    assert counts["token"] == 5  # four sessions, plus one refresh after the expiry
    assert counts["GET 200"] == 122 and counts["GET 401"] == 1 and counts["GET 429"] == 2 and counts["GET 404"] == 1


def test_spec_checks_reject_non_conforming_traffic(spec: dict[str, Any]) -> None:
    """The checks can fail: a missing X-Request-ID, an undeclared parameter, a malformed Patient."""
    url = BASE_URL + "/Patient/9000000009"
    with pytest.raises(AssertionError, match="X-Request-ID"):
        check_request(spec, httpx.Request("GET", url, headers={"Authorization": "Bearer t"}))
    rid = str(uuid.uuid4())
    with pytest.raises(AssertionError, match="_lastUpdated"):
        check_request(spec, httpx.Request("GET", BASE_URL + "/Patient", params={"_lastUpdated": "gt2024"},
                                          headers={"Authorization": "Bearer t", "X-Request-ID": rid}))
    request = httpx.Request("GET", url, headers={"Authorization": "Bearer t", "X-Request-ID": rid})
    bad = httpx.Response(200, json={"resourceType": "Patient", "id": "123", "gender": "F"},
                         headers={"content-type": "application/fhir+json", "x-request-id": rid, "etag": 'W/"1"'})
    with pytest.raises(AssertionError):
        check_response(spec, request, bad)


async def test_full_read_of_every_resident(manifest: ConnectorManifest) -> None:
    app = nhs_pds.create_app(SandboxConfig(records={"patients": 150}))
    async with session(manifest, app) as s:
        residents = await read_all(s, "patients")
        again = await read_all(s, "patients")  # no incremental in this access mode: an honest full read
        test = await s.test_connection()
    assert [r["id"] for r in residents] == app.state.numbers == [r["id"] for r in again]
    restricted = [r for r in residents if r["meta"]["security"][0]["code"] == "R"]
    assert restricted and all("address" not in r and "generalPractitioner" not in r for r in restricted)
    assert test.ok and s.stats.failed_calls == 0
    assert app.state.sandbox.token_grants == {"client_credentials": 1}


async def test_checkpoint_resumes_at_the_next_resident(manifest: ConnectorManifest) -> None:
    app = nhs_pds.create_app(SandboxConfig(records={"patients": 20}))
    async with session(manifest, app) as s:
        pages = [p async for p in s.read("patients")]
        resumed = [p async for p in s.read("patients", pages[4].checkpoint)]
    assert [p.records[0].external_id for p in resumed] == app.state.numbers[5:]


async def test_token_expiry_mid_read_signs_a_new_assertion(manifest: ConnectorManifest) -> None:
    app = nhs_pds.create_app(SandboxConfig(records={"patients": 40}))

    async def expire(n: int) -> None:
        if n == 15:
            await control(app, "/_sandbox/expire-tokens")

    async with session(manifest, app) as s:
        residents = await read_all(s, "patients", between=expire)
    assert len(residents) == 40 and s.stats.refreshes == 1 and s.stats.failed_calls == 0
    assert app.state.sandbox.token_grants == {"client_credentials": 2}
    assert len(app.state.sandbox.extra["used_jti"]) == 2


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_end_with_every_resident_and_no_failed_call(manifest: ConnectorManifest, storm: str) -> None:
    app = nhs_pds.create_app(SandboxConfig(records={"patients": 50}))
    await control(app, "/_sandbox/faults", {storm: 8, "retry_after": "0", "error_status": 503})
    async with session(manifest, app) as s:
        residents = await read_all(s, "patients")
    assert len({r["id"] for r in residents}) == 50 and s.stats.failed_calls == 0
    assert s.stats.throttled + s.stats.server_errors == 8


async def test_request_id_is_fresh_per_call_and_kept_on_retries(manifest: ConnectorManifest) -> None:
    app = nhs_pds.create_app(SandboxConfig(records={"patients": 3}))
    rec = Recorder(app)
    await control(app, "/_sandbox/faults", {"storm_5xx": 2, "error_status": 502})
    async with session(manifest, app, transport=rec) as s:
        await read_all(s, "patients")
    calls = [(r.url.path, r.headers["x-request-id"]) for r, _, _ in rec.log if r.url.path != "/oauth2/token"]
    assert len(calls) == 5
    assert calls[0] == calls[1] == calls[2]  # two 502s, then the answer: one logical call, one id
    assert len({rid for _, rid in calls}) == 3


async def test_read_only_and_wrong_key_are_explained(manifest: ConnectorManifest) -> None:
    app = nhs_pds.create_app(SandboxConfig(records={"patients": 3}))
    async with session(manifest, app) as s:
        with pytest.raises(ConnectorError, match="read-only"):
            await s.write("patients", [OutboundRecord("k", {"gender": "female"}, app.state.numbers[0])])
    async with session(manifest, app, secrets={**secrets(), "kid": "unknown-kid"}) as s:
        result = await s.test_connection()
    assert not result.ok and "no matching public key" in result.reason


async def test_token_endpoint_checks_the_assertion_like_the_platform() -> None:
    app = nhs_pds.create_app(SandboxConfig(records=1))
    private = nhs_pds.sandbox_key()[0]

    def assertion(**over: Any) -> str:
        claims = {"iss": nhs_pds.API_KEY, "sub": nhs_pds.API_KEY, "aud": TOKEN_URL, "jti": str(uuid.uuid4()),
                  "exp": int(time.time()) + 300, **over.pop("claims", {})}
        return jwt.encode(claims, private, algorithm=over.pop("alg", "RS512"), headers={"kid": over.pop("kid", nhs_pds.KID)})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pds.sandbox") as c:
        async def post(token: str) -> httpx.Response:
            return await c.post("/oauth2/token", data={
                "grant_type": "client_credentials", "client_assertion": token,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})

        good = assertion(claims={"jti": "fixed-jti-1"})
        assert (await post(good)).status_code == 200
        replay = await post(good)
        assert replay.status_code == 400 and "jti" in replay.json()["error_description"]
        assert "RS512" in (await post(assertion(alg="RS256"))).json()["error_description"]
        assert (await post(assertion(claims={"aud": "https://api.service.nhs.uk/oauth2/token"}))).status_code == 401
        too_long = await post(assertion(claims={"exp": int(time.time()) + 900}))
        assert too_long.status_code == 400 and "5 minutes" in too_long.json()["error_description"]
        assert (await post(assertion(claims={"sub": "someone-else"}))).status_code == 400


async def test_reads_through_the_sandbox_mounted_like_the_web_app(manifest: ConnectorManifest) -> None:
    from connectors.sandboxes import mount_sandboxes

    host = FastAPI()
    app = mount_sandboxes(host, config=SandboxConfig(records=8), only=["nhs_pds"])["nhs_pds"]
    async with ConnectorSession(manifest, app.state.config, app.state.credentials,
                                base_url="http://carehub.local/sandbox/nhs_pds",
                                transport=httpx.ASGITransport(app=host), connection_id="pds-mounted") as s:
        residents = await read_all(s, "patients")  # the assertion's aud is the mounted token URL
    assert len(residents) == 8 and s.token_url == "http://carehub.local/sandbox/nhs_pds/oauth2/token"


async def test_related_people_of_every_resident(manifest: ConnectorManifest) -> None:
    app = nhs_pds.create_app(SandboxConfig(records={"patients": 40}))
    async with session(manifest, app) as s:
        people = await read_all(s, "related_people")
    expected = [rp for i, n in enumerate(app.state.numbers) for rp in nhs_pds._related(42, i, nhs_pds._patient(42, i, n))]
    assert [p["id"] for p in people] == [rp["id"] for rp in expected] and len(people) > 10
    restricted = {n for i, n in enumerate(app.state.numbers) if i % 37 == 11}
    assert restricted and not any(p["patient"]["identifier"]["value"] in restricted for p in people)
    first_ranked = [p for p in people if p["extension"][0]["valuePositiveInt"] == 1]
    assert all(p["relationship"][0]["coding"][0]["code"] == "N" for p in first_ranked)  # next of kin first


async def test_empty_resident_list_is_explained(manifest: ConnectorManifest) -> None:
    app = nhs_pds.create_app(SandboxConfig(records=3))
    async with session(manifest, app, config={"ods_code": "VM4X2", "nhs_numbers": ""}) as s:
        result = await s.test_connection()
    assert not result.ok and "`nhs_numbers` is empty" in result.reason
