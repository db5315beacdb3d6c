"""LinkedIn Job Posting connector against its sandbox, checked against LinkedIn's own OpenAPI
(``vendor-specs/linkedin/job_posting_v2.yaml``): paths, the ``x-restli-method`` header, request elements,
the batch-create reply, the asynchronous task status, error bodies, storms, the JobPosting mapping, and Apply Connect application
deliveries (X-LI-Signature, re-sends) mapped to applicants.

Two places where LinkedIn's spec disagrees with itself are handled openly: its examples (and Rest.li) send
``status`` as a number (``202``, ``422``) while the response schema says string, so the check accepts both;
and ``items.anyOf`` names the promoted and Recruiter System Connect extensions as if one were always used,
while the spec's own basic examples use neither, so elements are checked against the foundation schema plus
whichever extension they actually use.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from functools import lru_cache
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import Response
from jsonschema import Draft7Validator
from shared_docs import VENDOR_SPECS

from connectors.catalog import load_catalog
from connectors.errors import AuthFailed
from connectors.manifest import RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes.linkedin_talent import (
    CLIENT_ID,
    CLIENT_SECRET,
    CONTRACT,
    ORGANIZATION,
    seeded_posting,
    seeded_task_ids,
)
from connectors.webhooks import handle_delivery
from engine.ports import OutboundRecord, SourceRecord

from .workforce_helpers import (
    CONNECTORS,
    control,
    fast_rules,
    manifest,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

SPEC_FILE = VENDOR_SPECS / "linkedin/job_posting_v2.yaml"
RECORDS = {"job_postings": 40, "job_posting_tasks": 55}
SECRETS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text())
    return doc


def schema(name: str) -> dict[str, Any]:
    """A component schema with ``$ref`` resolved and numeric ``status`` allowed (see the module docstring)."""
    doc = spec()

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                ref = str(node["$ref"]).lstrip("#/").split("/")
                target: Any = doc
                for part in ref:
                    target = target[part]
                return fix(target)
            out = {k: fix(v) for k, v in node.items() if k not in ("example", "examples", "externalDocs")}
            if out.get("format") in ("uri", "email"):
                out.pop("format")
            return out
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    fixed: dict[str, Any] = fix(copy.deepcopy(doc["components"]["schemas"][name]))
    for holder in (fixed.get("properties", {}).get("elements", {}).get("items", {}),):
        props = holder.get("properties", {})
        for target in (props.get("status"), props.get("error", {}).get("properties", {}).get("status")):
            if target is not None and target.get("type") == "string":
                target["type"] = ["string", "integer"]
    return fixed


def check(schema_name: str, instance: Any, where: str) -> None:
    errors = sorted(Draft7Validator(schema(schema_name)).iter_errors(instance), key=str)
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"


def check_element(el: dict[str, Any]) -> None:
    check("JobPostingFoundationSchema", el, "request element")
    if "contract" in el or el.get("listingType") == "PREMIUM":
        check("PromotedJobsExtensionSchema", el, "promoted element")
    if "availability" in el:
        check("RecruiterSystemConnectExtensionSchema", el, "RSC element")


def check_exchange(request: httpx.Request, response: httpx.Response) -> None:
    """One request/reply pair against the spec's path, method, parameters and schemas."""
    path = request.url.path
    if path == "/oauth/v2/accessToken":  # tokenUrl of the spec's clientCredentials flow
        form = dict(httpx.QueryParams(request.content.decode()))
        assert form["grant_type"] == "client_credentials" and form["client_id"] and form["client_secret"]
        return
    assert path.startswith("/v2/"), path
    item = spec()["paths"][path[len("/v2"):]]
    op = item[request.method.lower()]
    assert request.headers["authorization"].startswith("Bearer ")
    declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    assert set(request.url.params) <= declared, f"undeclared query parameters {set(request.url.params) - declared}"
    for p in op.get("parameters", []):
        if p.get("required") and p["in"] == "header":
            assert request.headers.get(p["name"]) in p["schema"].get("enum", [request.headers.get(p["name"])])
        if p.get("required") and p["in"] == "query":
            assert p["name"] in request.url.params
    if request.method == "POST":
        body = json.loads(request.content)
        assert set(body) == {"elements"}
        for el in body["elements"]:
            check_element(el)
    assert str(response.status_code) in op["responses"], f"{response.status_code} not declared for {path}"
    if response.status_code == 200:
        name = "SimpleJobPostingResponseSchema" if request.method == "POST" else "SimpleJobPostingAPIResult"
        check(name, response.json(), f"reply to {request.method} {path}")
        if request.method == "GET":
            for result in response.json()["results"].values():
                check("SimpleJobPostingAPIResult", {"elements": [result]}, "task result")
    else:
        body = response.json()
        assert body["status"] == response.status_code and body["message"]


class Recorder(httpx.AsyncBaseTransport):
    """Keeps every exchange for the conformance check."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        body = await resp.aread()
        self.exchanges.append((request, httpx.Response(resp.status_code, headers=resp.headers, content=body)))
        return httpx.Response(resp.status_code, headers=resp.headers, content=body, request=request)


def linkedin(app: Any, task_ids: list[str] | None = None, recorder: Recorder | None = None,
             secrets: dict[str, Any] | None = None) -> Any:
    cfg = {"organization_urn": ORGANIZATION, "task_ids": ",".join(task_ids or [])}
    if recorder is None:
        return session("linkedin_talent", app, cfg, secrets or SECRETS)
    m = manifest("linkedin_talent")
    return ConnectorSession(m, cfg, secrets or SECRETS, base_url="http://linkedin_talent.sandbox", transport=recorder,
                            connection_id=f"spec-{id(app)}", error_rules=fast_rules(m), rate_limits=RateLimits())


def job(n: int, op: str = "CREATE", **extra: Any) -> dict[str, Any]:
    el = seeded_posting(7, n)
    el.update(externalJobPostingId=f"NEW-{n:03d}", companyJobCode=f"NEW-{n:03d}", jobPostingOperationType=op,
              listedAt=1_790_000_000_000, expireAt=1_790_000_000_000 + 30 * 86_400_000, **extra)
    return el


def test_manifest_sandbox_and_catalog_are_honest() -> None:
    m = manifest("linkedin_talent")
    assert m.availability == "partner-only" and "closed to new partners" in m.note
    assert all(f.description for s in m.streams.values() for f in s.fields)
    entry = next(e for e in load_catalog(CONNECTORS).entries if e.id == "linkedin_talent")
    assert entry.connector == "linkedin_talent" and entry.availability == "partner-only"
    # Every path the manifest calls is a path of LinkedIn's spec (under the /v2 server URL); pushed
    # (source: webhook) streams call none.
    assert [n for n, s in m.streams.items() if s.source == "webhook"] == ["applications"]
    paths = {s.path for s in m.streams.values() if s.source == "poll"} | {op.path for s in m.streams.values() if s.write
                                                    for op in (s.write.create, s.write.update) if op}
    assert {p.removeprefix("/v2") for p in paths} <= set(spec()["paths"])


async def test_requests_and_replies_conform_to_linkedin_spec() -> None:
    app = sandbox("linkedin_talent", records=RECORDS)
    recorder = Recorder(httpx.ASGITransport(app=app))
    bad = job(3, title="")
    async with linkedin(app, recorder=recorder) as s:
        written = await s.write("job_postings", [OutboundRecord("k1", job(1)), OutboundRecord("k2", job(2)),
                                                 OutboundRecord("k3", bad)])
    task_ids = [w.external_id for w in written if w.ok and w.external_id]
    async with linkedin(app, task_ids + seeded_task_ids(42, 5), recorder=recorder) as s:
        await read_all(s, "job_posting_tasks")
        await read_all(s, "job_posting_tasks")
    async with linkedin(app, recorder=recorder, secrets={**SECRETS}) as s:
        await s.test_connection()
    assert [w.ok for w in written] == [True, True, False]
    assert "/title :: field is required" in (written[2].error_message or "")
    methods = {(r.method, r.url.path) for r, _ in recorder.exchanges}
    assert methods == {("POST", "/oauth/v2/accessToken"), ("POST", "/v2/simpleJobPostings"),
                       ("GET", "/v2/simpleJobPostingTasks")}
    for request, response in recorder.exchanges:
        check_exchange(request, response)


async def test_spec_examples_are_accepted_by_the_sandbox() -> None:
    app = sandbox("linkedin_talent", records=RECORDS)
    token = app.state.sandbox.issue_tokens()["access_token"]
    examples = spec()["components"]["examples"]
    names = [ref["$ref"].rsplit("/", 1)[1]
             for ref in spec()["paths"]["/simpleJobPostings"]["post"]["requestBody"]["content"]
             ["application/json"]["examples"].values()]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://li") as c:
        for name in names:
            body = copy.deepcopy(examples[name]["value"])
            for el in body["elements"]:
                if "contract" in el:
                    el["contract"] = CONTRACT  # the sandbox's own Recruiter contract
            r = await c.post("/v2/simpleJobPostings", json=body, headers={
                "Authorization": f"Bearer {token}", "x-restli-method": "batch_create"})
            assert r.status_code == 200, (name, r.text)
            check("SimpleJobPostingResponseSchema", r.json(), name)
            assert all("id" in el and el["status"] == 202 for el in r.json()["elements"]), (name, r.json())
        missing = await c.post("/v2/simpleJobPostings", json={"elements": [job(1)]},
                               headers={"Authorization": f"Bearer {token}"})
        other = await c.post("/v2/simpleJobPostings", json={"elements": [job(1, contract="urn:li:contract:1")]},
                             headers={"Authorization": f"Bearer {token}", "x-restli-method": "batch_create"})
        bad_ids = await c.get("/v2/simpleJobPostingTasks", params={"ids": "123"},
                              headers={"Authorization": f"Bearer {token}"})
        anonymous = await c.get("/v2/simpleJobPostingTasks", params={"ids": seeded_task_ids(42, 1)[0]})
    assert missing.status_code == 400
    assert other.status_code == 403 and "not authorized" in other.json()["message"]
    assert bad_ids.json() == {"message": "Batch key parameter value is invalid", "status": 400}
    assert anonymous.status_code == 401 and anonymous.json() == {"serviceErrorCode": 65600,
                                                                 "message": "Invalid access token", "status": 401}


async def test_full_read_of_tasks_across_pages() -> None:
    app = sandbox("linkedin_talent", records=RECORDS)
    ids = seeded_task_ids(42, RECORDS["job_posting_tasks"])
    async with linkedin(app, ids) as s:
        records, pages = await read_all(s, "job_posting_tasks")
    assert len(pages) == 3  # 20 ids a request
    assert [r.external_id for r in records] == ids
    statuses = {r.data["status"] for r in records}
    assert statuses == {"SUCCEEDED", "FAILED"}
    assert all(r.data["jobPosting"].startswith("urn:li:jobPosting:") for r in records if r.data["status"] == "SUCCEEDED")
    assert all("dropped" in r.data["errorMessage"] for r in records if r.data["status"] == "FAILED")
    assert s.stats.failed_calls == 0 and pages[-1].checkpoint == {}


async def test_connection_check_without_tasks_and_bad_client() -> None:
    app = sandbox("linkedin_talent", records=RECORDS)
    async with linkedin(app) as s:
        ok = await s.test_connection()
    async with linkedin(app, secrets={"client_id": CLIENT_ID, "client_secret": "wrong"}) as s:
        with pytest.raises(AuthFailed, match="Client authentication failed"):
            await read_all(s, "job_posting_tasks")
    assert ok.ok and "read 0" in ok.reason


async def test_posting_lifecycle_async_tasks_and_retries_never_duplicate() -> None:
    app = sandbox("linkedin_talent", records=RECORDS)
    postings = app.state.sandbox.extra["postings"]
    before = len(postings)
    new = [OutboundRecord(f"key-{n}", job(n)) for n in range(4)]
    async with linkedin(app) as s:
        first = await s.write("job_postings", new)
        again = await s.write("job_postings", new)  # the same batch retried after a lost reply
    assert all(o.ok for o in first + again) and len(postings) == before + 4
    tasks = [o.external_id or "" for o in first + again]
    async with linkedin(app, tasks) as s:
        polled, _ = await read_all(s, "job_posting_tasks")
        final, _ = await read_all(s, "job_posting_tasks")
    assert {r.data["status"] for r in polled} == {"IN_PROGRESS"}
    assert {r.data["status"] for r in final} == {"SUCCEEDED"}
    urns = [r.data["jobPosting"] for r in final]
    assert urns[:4] == urns[4:] and len(set(urns)) == 4  # the retry found the same four jobs
    close = OutboundRecord("close-1", job(1, "CLOSE"), external_id=urns[1])
    renew_unknown = OutboundRecord("renew-x", job(99, "RENEW"), external_id="urn:li:jobPosting:1")
    async with linkedin(app) as s:
        closed = await s.write("job_postings", [close, renew_unknown])
    async with linkedin(app, [o.external_id or "" for o in closed]) as s:
        await read_all(s, "job_posting_tasks")
        outcome, _ = await read_all(s, "job_posting_tasks")
    assert postings[(ORGANIZATION, "NEW-001")]["state"] == "CLOSED"
    assert [r.data["status"] for r in outcome] == ["SUCCEEDED", "FAILED"]
    assert "send CREATE first" in outcome[1].data["errorMessage"]


async def test_expired_token_is_renewed_once() -> None:
    app = sandbox("linkedin_talent", records=RECORDS)
    ids = seeded_task_ids(42, RECORDS["job_posting_tasks"])

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-tokens")

    async with linkedin(app, ids) as s:
        records, _ = await read_all(s, "job_posting_tasks", between=expire)
    assert len(records) == len(ids) and s.stats.refreshes == 1
    assert app.state.sandbox.token_grants == {"client_credentials": 2}


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("linkedin_talent", records=RECORDS)
    ids = seeded_task_ids(42, RECORDS["job_posting_tasks"])
    async with linkedin(app, ids) as s:
        records, _ = await read_all(s, "job_posting_tasks", between=storm_starter(app, storm))
    assert [r.external_id for r in records] == ids
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


def test_mapping_template_maps_sandbox_postings() -> None:
    app = sandbox("linkedin_talent", records=RECORDS)
    stored = list(app.state.sandbox.extra["postings"].values())[:25]
    records = [SourceRecord(external_id=p["externalJobPostingId"], data=p) for p in stored]
    mapped = map_records("linkedin_talent", "JobPosting", records)
    assert all(m["externalRefs"]["linkedin_talent"].startswith("urn:li:jobPosting:") for m in mapped)
    assert all(m["status"] == "open" and m["title"] and m["site"] and m["closingDate"] for m in mapped)
    assert {m["hours"] for m in mapped} <= {"Full time", "Part time", "Temporary"}


async def test_apply_connect_deliveries_are_signed_retried_and_map_to_applicants() -> None:
    spec = manifest("linkedin_talent").webhooks
    assert spec is not None
    received: list[Any] = []
    replies = [500, 503]  # the receiver is down for the first two deliveries

    receiver = FastAPI()

    @receiver.post("/hooks/linkedin")
    async def hook(request: Request) -> Response:
        raw = await request.body()
        result = handle_delivery(spec, CLIENT_SECRET, dict(request.headers), raw)
        if result.verified:
            received.append(result.payload)
        return Response(status_code=replies.pop(0) if replies else result.status)

    app = sandbox("linkedin_talent", records=RECORDS, webhook_url="http://receiver/hooks/linkedin")
    app.state.webhook_transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://li") as c:
        first = (await c.post("/_sandbox/apply", json={"externalJobPostingId": "WCN-JOB-00002"})).json()
        second = (await c.post("/_sandbox/apply", json={"externalJobPostingId": "WCN-JOB-00003"})).json()
    assert first["delivered"], first
    assert first["attempts"] == 3 and first["statuses"] == [500, 503, 200]
    assert second["attempts"] == 1
    postings = app.state.sandbox.extra["postings"]
    assert postings[(ORGANIZATION, "WCN-JOB-00002")]["applyMode"] == "OFFSITE"  # first delivery failed
    assert "applyMode" not in postings[(ORGANIZATION, "WCN-JOB-00003")]
    # The signature is hex HMAC-SHA256 of the raw body with the client secret, behind "hmacsha256=".
    raw = json.dumps(received[0], separators=(",", ":")).encode()
    expected = "hmacsha256=" + hmac.new(CLIENT_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert handle_delivery(spec, CLIENT_SECRET, {"X-LI-Signature": expected}, raw).status == 200
    assert handle_delivery(spec, CLIENT_SECRET, {"X-LI-Signature": expected}, raw.replace(b"WCN", b"XCN")).status == 401
    records = [SourceRecord(external_id=p["jobApplicationId"], data=p) for p in received]
    applicants = map_records("linkedin_talent", "Applicant", records)
    assert [a["jobPostingRef"] for a in applicants][-2:] == ["WCN-JOB-00002", "WCN-JOB-00003"]
    assert all(a["source"] == "LinkedIn" and a["phone"].startswith("+447") and "@" in a["email"] for a in applicants)
