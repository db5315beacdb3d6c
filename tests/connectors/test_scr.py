"""Summary Care Record connector against the SCR sandbox: signed-JWT auth, change-only reads, opt-outs,
OperationOutcome errors, and replies/requests checked against the SCR spec's schemas."""

from __future__ import annotations

import itertools
import json
import re
from functools import lru_cache
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from shared_docs import VENDOR_SPECS

from connectors.errors import VendorError
from connectors.fhir.scr import ScrSession
from connectors.manifest import RateLimits, load_manifest
from connectors.sandboxes import scr as scr_sandbox
from connectors.sandboxes.common import SandboxConfig
from connectors.sessions import open_session

from .conftest import TEMPLATES, fast_rules

SPEC = VENDOR_SPECS / "nhs-scr/specification"
MANIFEST = load_manifest(TEMPLATES / "nhs_scr.yaml")
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
PUBLIC = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class Recording(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox and keeps them (to check what went over the wire, retries included)."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)


async def _app(n: int = 8) -> FastAPI:
    app = scr_sandbox.create_app(SandboxConfig(records=n))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scr.sandbox") as c:
        await c.post("/_sandbox/scr/register-key", json={"public_key_pem": PUBLIC})
    return app


def _session(app: FastAPI, residents: list[str], transport: httpx.AsyncBaseTransport | None = None) -> ScrSession:
    s = open_session(MANIFEST, {"nhs_numbers": residents},
                     {"api_key": app.state.sandbox.extra["api_key"], "private_key": PRIVATE, "kid": "carehub-1"},
                     base_url="http://scr.sandbox", transport=transport or httpx.ASGITransport(app=app),
                     connection_id=f"scr-{id(app)}", error_rules=fast_rules(MANIFEST), rate_limits=RateLimits())
    assert isinstance(s, ScrSession)
    return s


async def test_summaries_conditions_and_observations_for_residents_with_an_scr() -> None:
    app = await _app(8)
    residents = app.state.sandbox.extra["patients"]
    async with _session(app, [*residents, scr_sandbox.NO_SCR]) as s:
        pages = [p async for p in s.read("summaries")]
        skipped = {k.nhs_number: k.reason for k in s.skipped}
        conditions = [r.data async for p in s.read("conditions") for r in p.records]
        observations = [r.data async for p in s.read("observations") for r in p.records]
    summaries = [r.data for p in pages for r in p.records]
    assert len(pages) == 9 and len(summaries) == 7
    assert skipped == {residents[3]: "the patient has opted out of sharing their SCR",
                       scr_sandbox.NO_SCR: "no Summary Care Record"}
    titles = {sec["title"] for s_ in summaries for sec in s_["sections"]}
    assert {"Allergies and Adverse Reactions", "Current Repeat Medications"} <= titles
    assert all(s_["consent"] == "Ask" and s_["subject"]["identifier"]["value"] in residents for s_ in summaries)
    assert conditions and all(c["code"]["coding"][0]["system"] == "http://snomed.info/sct" for c in conditions)
    assert all(c["subject"]["identifier"]["system"] == "https://fhir.nhs.uk/Id/nhs-number" for c in conditions)
    assert all(o["code"]["coding"][0]["code"] == scr_sandbox.COVID_POSITIVE[0] for o in observations)
    assert app.state.sandbox.token_grants["client_credentials"] == 1  # one token for the whole session


async def test_only_changed_records_are_fetched_again() -> None:
    app = await _app(6)
    residents = app.state.sandbox.extra["patients"]
    async with _session(app, residents) as s:
        first = [p async for p in s.read("summaries")]
        fetched = s.bundles_fetched
        cp = first[-1].checkpoint
        again = [p async for p in s.read("summaries", cp)]
        assert s.bundles_fetched == fetched and sum(len(p.records) for p in again) == 0
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scr.sandbox") as c:
            await c.post(f"/_sandbox/scr/update/{residents[1]}")
        changed = [r async for p in s.read("summaries", again[-1].checkpoint) for r in p.records]
    assert s.bundles_fetched == fetched + 1
    assert [r.data["subject"]["identifier"]["value"] for r in changed] == [residents[1]]


async def test_tokens_throttling_and_errors() -> None:
    app = await _app(3)
    residents = app.state.sandbox.extra["patients"]
    rec = Recording(app)
    async with _session(app, residents, rec) as s:
        [p async for p in s.read("conditions")]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scr.sandbox") as c:
            await c.post("/_sandbox/expire-tokens")
            await c.post("/_sandbox/faults", json={"storm_429": 1, "storm_5xx": 1, "retry_after": "0"})
        [p async for p in s.read("conditions")]
        assert s.stats.refreshes == 1 and s.stats.throttled == 1 and s.stats.server_errors == 1
        with pytest.raises(VendorError) as bad:
            await s.latest("1234567890")
    assert bad.value.status == 400 and "Invalid value" in bad.value.vendor_message
    api_calls = [r for r in rec.sent if not r.url.path.startswith(("/oauth2", "/_sandbox"))]
    ids = [r.headers["X-Request-ID"] for r in api_calls]
    retried = [a for a, b in itertools.pairwise(ids) if a == b]
    assert len(retried) >= 2  # the same X-Request-ID when a failed call is re-sent (429, then 500)
    assert app.state.sandbox.token_grants["client_credentials"] == 2


# ---------------------------------------------------------------------------------------- conformance


@lru_cache(maxsize=1)
def _registry() -> Registry:
    root = SPEC / "components" / "schemas"
    if not root.exists():
        pytest.skip("vendor spec not available")
    return Registry(retrieve=lambda uri: Resource.from_contents(  # type: ignore[call-arg]
        yaml.safe_load((root / uri.split("/")[-1]).read_text()), default_specification=DRAFT4))


def _errors(instance: Any, schema: str) -> list[str]:
    v = jsonschema.Draft4Validator({"$ref": f"https://scr.spec/{schema}"}, registry=_registry())
    return [f"{list(e.path)}: {e.message[:120]}" for e in v.iter_errors(instance)]


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge(a.get(k), b.get(k)) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        return [_merge(a[0], b[0])] if a and b else a or b
    return b if a is None else a


def _fits(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Every key we send exists in the spec's example with the same JSON shape."""
    problems = []
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [f"{path}: object where the example has {theirs}"]
        for k, v in ours.items():
            if k in theirs:
                problems += _fits(v, theirs[k], f"{path}.{k}")
            elif k not in ("subject", "meta", "display"):
                problems.append(f"{path}.{k}: not in the spec example")
    elif isinstance(ours, list):
        if not isinstance(theirs, list):
            return [f"{path}: array where the example has {theirs}"]
        if ours and theirs:
            problems += _fits(ours[0], theirs[0], path + "[0]")
    elif ours != theirs and not (ours in ("int", "float") and theirs in ("int", "float")):
        problems.append(f"{path}: {ours} where the example has {theirs}")
    return problems


async def test_sandbox_replies_conform_to_the_scr_spec() -> None:
    app = await _app(4)
    nhs = app.state.sandbox.extra["patients"][0]
    async with _session(app, [nhs]) as s:
        latest = await s.latest(nhs)
        assert latest is not None
        bundle = await s.summary_care_record(nhs, latest[0])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scr.sandbox") as c:
            token = (await s.token_store.load(s.connection_id) or {})["access_token"]
            docs = (await c.get("/DocumentReference", params={"patient": f"https://fhir.nhs.uk/Id/nhs-number|{nhs}"},
                                headers={"Authorization": f"Bearer {token}"})).json()
            bad = (await c.get("/DocumentReference", params={"patient": "nope"},
                               headers={"Authorization": f"Bearer {token}"})).json()
    assert _errors(bundle, "GetScrBundle.yaml") == []
    per_type = {"Composition": "CompositionEntryGet.yaml", "Patient": "PatientEntry.yaml",
                "Practitioner": "PractitionerEntry.yaml", "PractitionerRole": "PractitionerRoleEntry.yaml",
                "Organization": "OrganizationEntry.yaml"}
    example = json.loads((SPEC / "components/examples/GetScrBundle.json").read_text())
    example_by_type: dict[str, Any] = {}
    for e in example["entry"]:  # the union of every example resource of a type
        example_by_type[e["resource"]["resourceType"]] = _merge(example_by_type.get(e["resource"]["resourceType"]),
                                                                _shape(e["resource"]))
    for entry in bundle["entry"]:
        kind = entry["resource"]["resourceType"]
        if kind in per_type:
            assert _errors(entry, per_type[kind]) == [], kind
        else:  # the spec's Condition/Observation schemas contradict its own example; match the example's shape
            assert _fits(_shape(entry["resource"]), example_by_type[kind]) == [], kind
    # DocumentReference: the schema types securityLabel.coding as an object, its example (and FHIR) as an array.
    problems = _errors(docs, "DocumentReferenceBundle.yaml")
    assert all("securityLabel" in p or p.startswith("['entry', 0]") for p in problems)
    doc = next(e for e in docs["entry"] if e["resource"]["resourceType"] == "DocumentReference")
    flat = json.loads(json.dumps(doc).replace('"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/SCR-ACSPermission"',
                                              '"coding": {"system": "https://fhir.nhs.uk/CodeSystem/SCR-ACSPermission"'
                                              ).replace('"code": "Ask"}]}]', '"code": "Ask"}}]'))
    assert _errors(flat, "DocumentReference.yaml") == []
    assert _errors(bad, "OperationOutcome.yaml") == []


async def test_requests_use_the_parameters_the_spec_defines() -> None:
    spec = yaml.safe_load((SPEC / "summary-care-record.yaml").read_text())
    app = await _app(2)
    rec = Recording(app)
    async with _session(app, app.state.sandbox.extra["patients"][:1], rec) as s:
        [p async for p in s.read("summaries")]
    request_id = spec["components"]["parameters"]["RequestID"]["schema"]["pattern"]
    for op_path in ("/DocumentReference", "/Bundle"):
        op = spec["paths"][op_path]["get"]
        query = {p["name"]: p for p in op["parameters"] if isinstance(p, dict) and p.get("in") == "query"}
        sent = [r for r in rec.sent if r.url.path == op_path]
        assert sent
        params = dict(sent[0].url.params)
        assert {n for n, p in query.items() if p.get("required")} <= set(params)
        assert set(params) <= set(query)
        assert re.match(request_id, sent[0].headers["X-Request-ID"])
        assert sent[0].headers["Authorization"].startswith("Bearer ")
        if op_path == "/DocumentReference":
            assert params["type"] == query["type"]["example"] and params["_sort"] == "date" and params["_count"] == "1"
            assert params["patient"].startswith("https://fhir.nhs.uk/Id/nhs-number|")


async def test_the_observation_mapping_maps_scr_observations() -> None:
    from engine.mapping import compile_design, load_mapping_template_file

    compiled = compile_design(load_mapping_template_file(TEMPLATES.parent / "mappings" / "nhs_scr" / "Observation.yaml"))
    app = await _app(8)
    async with _session(app, app.state.sandbox.extra["patients"]) as s:
        records = [r async for p in s.read("observations") for r in p.records]
    mapped = [compiled.apply(r.data) for r in records]
    assert records and all(m.ok for m in mapped)
    assert {m.values["code"] for m in mapped} == {scr_sandbox.COVID_POSITIVE[0]}
