"""Slack connector against its sandbox over real HTTP (httpx.ASGITransport): cursor paging, incremental
``oldest``, rotating tokens refreshed on ``token_expired`` (an HTTP 200 ``ok: false``), 429 and 5xx storms,
tier limits, posts that stay single when retried, signed Events API deliveries. Every request the connector
sends and every sandbox reply is checked against Slack's published OpenAPI (slackapi/slack-api-specs)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from jsonschema import Draft4Validator
from shared_docs import VENDOR_SPECS

from connectors.errors import VendorError
from connectors.manifest import Backoff, ConnectorManifest, RateLimits, load_manifest
from connectors.runtime import ConnectorSession
from connectors.sandboxes import slack
from connectors.sandboxes.common import SandboxConfig
from connectors.webhooks import handle_delivery
from engine.ports import OutboundRecord

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "templates" / "connectors" / "slack.yaml"
SPECS = VENDOR_SPECS / "slack"
WEB_SPEC = SPECS / "slack_web_openapi_v2_without_examples.json"
EVENTS_SPEC = SPECS / "slack_events_api_async_v1.json"
CONFIG = {"channel_id": slack.CHANNEL_ID}
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"

# Where the published spec (generated years ago) is older than the API it describes; each entry is a
# documented behaviour of today's API that our connector or sandbox relies on.
ERRATA = {
    "conversations.history.response_metadata": "cursor pagination of history (api.slack.com/methods/"
                                                 "conversations.history: response_metadata.next_cursor)",
    "conversations.history.messages.minItems": "an empty channel, or nothing newer than `oldest`, gives []",
    "errors.token_expired": "token rotation (api.slack.com/authentication/rotation) answers token_expired",
    "errors.invalid_cursor": "documented error of the cursor-paged methods",
    "conversations.list.channels": "the spec lists conversation shapes as a tuple `items`; a channel is the "
                                   "first shape (Conversation object)",
    "chat.postMessage.client_msg_id": "CareHub's idempotency key (undocumented argument, echoed on the message)",
    "oauth.v2.access": "token rotation's refresh grant (grant_type/refresh_token, POST) postdates the spec",
}


@pytest.fixture(scope="module")
def manifest() -> ConnectorManifest:
    return load_manifest(MANIFEST)


@pytest.fixture(scope="module")
def web_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(WEB_SPEC.read_text())
    spec = copy.deepcopy(spec)
    paths = spec["paths"]
    hist = paths["/conversations.history"]["get"]["responses"]
    hist["200"]["schema"]["properties"]["response_metadata"] = {
        "type": "object", "additionalProperties": False, "required": ["next_cursor"],
        "properties": {"next_cursor": {"type": "string"}}}
    hist["200"]["schema"]["properties"]["messages"].pop("minItems")
    for method in ("/conversations.history", "/conversations.list", "/chat.postMessage"):
        for op in paths[method].values():
            enum = op["responses"]["default"]["schema"]["properties"]["error"]["enum"]
            enum += ["token_expired", "invalid_cursor"]
    conv = spec["definitions"]["objs_conversation"]["items"][0]
    paths["/conversations.list"]["get"]["responses"]["200"]["schema"]["properties"]["channels"]["items"] = conv
    return spec


def tokens(app: FastAPI) -> dict[str, Any]:
    state = app.state.sandbox
    issued = state.issue_tokens()
    access, refresh = "xoxe.xoxb-1-" + issued["access_token"], "xoxe-1-" + issued["refresh_token"]
    state.access_tokens[access] = state.access_tokens.pop(issued["access_token"])
    state.refresh_tokens[refresh] = state.refresh_tokens.pop(issued["refresh_token"])
    return {"client_id": "1234.5678", "client_secret": "s3cret", "access_token": access, "refresh_token": refresh,
            "expires_at": time.time() + 43200}


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


def session(manifest: ConnectorManifest, app: FastAPI, transport: httpx.AsyncBaseTransport | None = None,
            **kw: Any) -> ConnectorSession:
    rules = manifest.errors.model_copy(update={"backoff": Backoff(base_seconds=0.01, cap_seconds=0.05),
                                               "default_retry_after_seconds": 0.01, "deadline_seconds": 60})
    return ConnectorSession(manifest, kw.pop("config", CONFIG), kw.pop("secrets", None) or tokens(app),
                            base_url="http://slack.sandbox",
                            transport=transport or httpx.ASGITransport(app=app),
                            connection_id=f"slack-{id(app)}", error_rules=rules, rate_limits=RateLimits(), **kw)


async def control(app: FastAPI, path: str, body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sb") as c:
        r = await c.post(path, json=body or {})
        r.raise_for_status()
        return r.json()


async def read_ids(s: ConnectorSession, stream: str, checkpoint: dict[str, Any] | None = None,
                   between: Any = None) -> tuple[list[str], list[dict[str, Any] | None]]:
    ids: list[str] = []
    cps: list[dict[str, Any] | None] = []
    async for page in s.read(stream, checkpoint):
        ids += [r.external_id for r in page.records]
        cps.append(page.checkpoint)
        if between is not None:
            await between(len(cps))
    return ids, cps


# ---------------------------------------------------------------------------------------------- spec checks


def _typed(kind: str, value: str) -> bool:
    try:
        if kind == "integer":
            int(value)
        elif kind == "number":
            float(value)
        elif kind == "boolean":
            return value in ("true", "false", "1", "0")
    except ValueError:
        return False
    return True


def check_request(spec: dict[str, Any], request: httpx.Request, body: bytes) -> None:
    """A request conforms: known method and verb, declared arguments of the declared types, the required
    ones present, a bearer token (the spec's ``token`` argument / ``slackAuth``)."""
    method = request.url.path.removeprefix("/api")
    assert method in spec["paths"], method
    op = spec["paths"][method].get(request.method.lower())
    assert op is not None, f"{request.method} {method} is not in the spec"
    params = {p["name"]: p for p in op["parameters"]}
    assert request.headers.get("authorization", "").startswith("Bearer xox"), "token missing"
    for name, value in request.url.params.multi_items():
        assert name in params and params[name]["in"] == "query", f"{method}: undeclared query argument {name}"
        assert _typed(params[name]["type"], value), f"{method}: {name}={value!r} is not {params[name]['type']}"
    sent_form: dict[str, Any] = {}
    if request.method == "POST":
        assert request.headers["content-type"].split(";")[0] in op["consumes"]
        sent_form = json.loads(body) if body else {}
        for name, value in sent_form.items():
            if method == "/chat.postMessage" and name == "client_msg_id":
                continue  # ERRATA["chat.postMessage.client_msg_id"]
            assert name in params and params[name]["in"] == "formData", f"{method}: undeclared argument {name}"
            assert isinstance(value, str | int | float | bool), name
    for p in op["parameters"]:
        if p.get("required") and p["name"] != "token":
            present = p["name"] in request.url.params if p["in"] == "query" else p["name"] in sent_form
            assert present, f"{method}: required argument {p['name']} missing"


def check_response(spec: dict[str, Any], request: httpx.Request, resp: httpx.Response) -> None:
    """A reply conforms: HTTP 200 bodies match the method's success or error schema; throttles are 429 with
    ``Retry-After``; server errors are 5xx."""
    method = request.url.path.removeprefix("/api")
    if resp.status_code == 429:
        assert resp.headers.get("retry-after", "").isdigit() and resp.json() == {"ok": False, "error": "ratelimited"}
        return
    if resp.status_code >= 500:
        return
    assert resp.status_code == 200, (method, resp.status_code)
    body = resp.json()
    op = spec["paths"][method][request.method.lower()]
    schema = op["responses"]["200" if body.get("ok") else "default"]["schema"]
    errors = sorted(Draft4Validator({**schema, "definitions": spec["definitions"]}).iter_errors(body), key=str)
    assert not errors, f"{method}: {errors[0].message} at {list(errors[0].absolute_path)}"


def check_all(spec: dict[str, Any], rec: Recorder) -> dict[str, int]:
    seen: dict[str, int] = {}
    for request, body, resp in rec.log:
        method = request.url.path.removeprefix("/api")
        seen[method] = seen.get(method, 0) + 1
        if method == "/oauth.v2.access":  # ERRATA["oauth.v2.access"]: checked against the rotation docs
            form = dict(httpx.QueryParams(body.decode()))
            assert request.method == "POST" and form["grant_type"] == "refresh_token"
            assert {"client_id", "client_secret", "refresh_token"} <= set(form)
            assert resp.json()["ok"] is True and resp.json()["token_type"] == "bot"
            continue
        check_request(spec, request, body)
        check_response(spec, request, resp)
    return seen


# ---------------------------------------------------------------------------------------------- tests


def test_manifest_validates_with_described_fields(manifest: ConnectorManifest) -> None:
    assert set(manifest.streams) == {"conversations", "messages"}
    for name, stream in manifest.streams.items():
        assert all(len(f.description) > 5 for f in stream.fields), name
    assert manifest.errors.body_errors is not None and manifest.errors.body_errors.statuses["token_expired"] == 401
    assert manifest.webhooks is not None and manifest.webhooks.prefix == "v0="
    assert set(ERRATA)  # the deviations from the published spec are named, not silent


async def test_every_request_and_reply_conforms_to_slacks_openapi(manifest: ConnectorManifest,
                                                                   web_spec: dict[str, Any]) -> None:
    app = slack.create_app(SandboxConfig(records={"messages": 450, "conversations": 260}))
    rec = Recorder(app)
    async with session(manifest, app, transport=rec) as s:
        channels, _ = await read_ids(s, "conversations")
        ids, cps = await read_ids(s, "messages")
        await control(app, "/_sandbox/expire-tokens")  # the post meets token_expired, refreshes, re-posts
        posted = await s.write("messages", [OutboundRecord("carehub-msg-1", {"channel": slack.CHANNEL_ID,
                                                                             "text": "Fire drill at 3pm"})])
        await control(app, "/_sandbox/faults", {"storm_429": 2, "retry_after": "0"})
        newer, _ = await read_ids(s, "messages", cps[-1])
        empty, _ = await read_ids(s, "messages", {"since": "2030-01-01T00:00:00+00:00"})
    async with session(manifest, app, transport=rec, config={"channel_id": "C0NOSUCHCH1"}) as missing:
        with pytest.raises(VendorError, match="channel_not_found"):
            await read_ids(missing, "messages")
    assert len(channels) == len(set(channels)) == 260 and len(ids) == 450 and empty == []
    assert posted[0].ok and posted[0].external_id in newer
    seen = check_all(web_spec, rec)
    assert seen["/conversations.list"] == 2 and seen["/conversations.history"] >= 8
    assert seen["/chat.postMessage"] == 2 and seen["/oauth.v2.access"] == 1
    statuses = {resp.status_code for _, _, resp in rec.log}
    assert statuses == {200, 429}


async def test_full_read_pages_with_next_cursor(manifest: ConnectorManifest) -> None:
    app = slack.create_app(SandboxConfig(records={"messages": 650, "conversations": 450}))
    async with session(manifest, app) as s:
        ids, cps = await read_ids(s, "messages")
        assert len(ids) == len(set(ids)) == 650 and len(cps) == 4
        assert cps[0] and cps[0]["page"]["cursor"]
        assert float(ids[0]) > float(ids[-1])  # newest first, as Slack pages history
        channels, ccps = await read_ids(s, "conversations")
        assert len(channels) == len(set(channels)) and len(ccps) == 3
        test = await s.test_connection()
        assert test.ok, test.reason
    assert s.stats.failed_calls == 0


async def test_incremental_read_uses_oldest(manifest: ConnectorManifest) -> None:
    app = slack.create_app(SandboxConfig(records={"messages": 300}))
    async with session(manifest, app) as s:
        ids, cps = await read_ids(s, "messages")
        newest = max(ids, key=float)
        out = await s.write("messages", [OutboundRecord(f"k{i}", {"channel": slack.CHANNEL_ID, "text": f"note {i}"})
                                         for i in range(3)])
        new_ids, cps2 = await read_ids(s, "messages", cps[-1])
        # `oldest` is sent in whole seconds, so the newest message of the last read may come again (an upsert)
        assert {o.external_id for o in out} <= set(new_ids) <= {o.external_id for o in out} | {newest}
        assert cps2[-1] and cps[-1] and cps2[-1]["since"] > cps[-1]["since"]


async def test_token_expired_mid_read_refreshes_rotating_tokens(manifest: ConnectorManifest) -> None:
    app = slack.create_app(SandboxConfig(records={"messages": 900}))

    async def expire(n: int) -> None:
        if n in (1, 3):
            await control(app, "/_sandbox/expire-tokens")

    async with session(manifest, app) as s:
        ids, _ = await read_ids(s, "messages", between=expire)
    assert len(set(ids)) == 900
    assert s.stats.refreshes == 2 and s.stats.failed_calls == 0
    assert app.state.sandbox.token_grants["refresh_token"] == 2


async def test_revoked_token_is_explained(manifest: ConnectorManifest) -> None:
    app = slack.create_app(SandboxConfig(records=5))
    async with session(manifest, app, secrets={"client_id": "x", "client_secret": "y", "access_token": "xoxb-bad",
                                               "refresh_token": "xoxe-bad", "expires_at": time.time() + 3600}) as s:
        result = await s.test_connection()
    assert not result.ok and "did not accept the credentials" in result.reason
    assert "invalid_refresh_token" in result.reason


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_end_with_every_record_and_no_failed_call(manifest: ConnectorManifest, storm: str) -> None:
    app = slack.create_app(SandboxConfig(records={"messages": 700}))
    await control(app, "/_sandbox/faults", {storm: 6, "retry_after": "0", "error_status": 503})
    async with session(manifest, app) as s:
        ids, _ = await read_ids(s, "messages")
    assert len(ids) == len(set(ids)) == 700
    assert s.stats.failed_calls == 0
    assert s.stats.throttled + s.stats.server_errors == 6


async def test_tier_limits_are_honoured_with_retry_after(manifest: ConnectorManifest) -> None:
    app = slack.create_app(SandboxConfig(records={"messages": 800}))
    await control(app, "/_sandbox/slack/tiers", {"enabled": True, "window_seconds": 1,
                                                 "limits": {"conversations.history": 2}})
    async with session(manifest, app) as s:
        ids, _ = await read_ids(s, "messages")
    assert len(set(ids)) == 800 and s.stats.failed_calls == 0
    assert s.stats.throttled >= 1 and app.state.sandbox.throttled == s.stats.throttled


async def test_posts_stay_single_when_the_reply_is_lost_or_the_write_repeated(manifest: ConnectorManifest) -> None:
    app = slack.create_app(SandboxConfig(records={"messages": 20}))
    history = app.state.sandbox.extra["history"][slack.CHANNEL_ID]
    await control(app, "/_sandbox/slack/lose-replies", {"count": 2})
    await control(app, "/_sandbox/faults", {"storm_5xx": 1, "error_status": 502})
    record = OutboundRecord("carehub:alert:fall:room-12", {"channel": slack.CHANNEL_ID,
                                                           "text": "Fall alert: room 12, staff attending"})
    async with session(manifest, app) as s:
        first = await s.write("messages", [record])
        second = await s.write("messages", [record])
    assert first[0].ok and second[0].ok and first[0].external_id == second[0].external_id
    assert sum(1 for m in history if m.get("client_msg_id") == record.idempotency_key) == 1
    assert len(history) == 21 and s.stats.failed_calls == 0


async def test_slack_error_codes_reach_the_outcome(manifest: ConnectorManifest) -> None:
    app = slack.create_app(SandboxConfig(records=5))
    async with session(manifest, app) as s:
        out = await s.write("messages", [OutboundRecord("e1", {"channel": "C0NOSUCHCH1", "text": "hi"}),
                                         OutboundRecord("e2", {"channel": slack.CHANNEL_ID, "text": ""})])
    assert [o.error_message for o in out] == ["channel_not_found", "no_text"]
    assert not any(o.retryable for o in out)


async def test_events_api_signatures_handshake_and_replay_window(manifest: ConnectorManifest) -> None:
    assert manifest.webhooks is not None
    spec = manifest.webhooks
    events_spec = json.loads(EVENTS_SPEC.read_text())
    wrapper = events_spec["topics"]["message.channels"]["subscribe"]["payload"]
    wrapper_schema = {**events_spec["components"]["schemas"]["GenericEventWrapper"]} if "$ref" in wrapper else wrapper
    answers: list[tuple[int, bytes, dict[str, Any]]] = []
    receiver = FastAPI()

    @receiver.post("/hooks/slack")
    async def hook(request: Request) -> Response:
        raw = await request.body()
        result = handle_delivery(spec, SECRET, dict(request.headers), raw)
        answers.append((result.status, result.body, json.loads(raw)))
        return Response(result.body, status_code=result.status, media_type="application/json")

    app = slack.create_app(SandboxConfig(records=5, webhook_url="http://receiver/hooks/slack", webhook_key=SECRET))
    app.state.webhook_transport = httpx.ASGITransport(app=receiver)
    handshake = await control(app, "/_sandbox/slack/events/send", {"type": "url_verification"})
    event = await control(app, "/_sandbox/slack/events/send", {"text": "Visitor at reception"})
    stale = await control(app, "/_sandbox/slack/events/send", {"age_seconds": 301})
    forged = await control(app, "/_sandbox/slack/events/send", {"secret": "not-the-signing-secret"})
    assert [handshake["status"], event["status"], stale["status"], forged["status"]] == [200, 200, 401, 401]
    assert json.loads(answers[0][1]) == {"challenge": handshake["payload"]["challenge"]}
    assert not Draft4Validator(wrapper_schema).is_valid({}) and Draft4Validator(wrapper_schema).is_valid(answers[1][2])
    assert answers[1][2]["event"]["text"] == "Visitor at reception"


def test_spec_checks_reject_non_conforming_traffic(web_spec: dict[str, Any]) -> None:
    """The checks above can fail: an unknown argument, a missing bearer token, an extra reply field."""
    url = "http://slack.sandbox/api/conversations.history"
    bad_arg = httpx.Request("GET", url, params={"channel": slack.CHANNEL_ID, "since": "1"},
                            headers={"Authorization": "Bearer xoxb-1"})
    with pytest.raises(AssertionError, match="undeclared query argument since"):
        check_request(web_spec, bad_arg, b"")
    with pytest.raises(AssertionError, match="token missing"):
        check_request(web_spec, httpx.Request("GET", url, params={"channel": slack.CHANNEL_ID}), b"")
    ok = httpx.Request("GET", url, params={"channel": slack.CHANNEL_ID}, headers={"Authorization": "Bearer xoxb-1"})
    reply = {"ok": True, "messages": [{"type": "message", "text": "hi", "ts": "1767225600.000001", "edited": {}}],
             "has_more": False, "pin_count": 0, "channel_actions_ts": None, "channel_actions_count": 0}
    with pytest.raises(AssertionError, match="edited"):
        check_response(web_spec, ok, httpx.Response(200, json=reply))
    with pytest.raises(AssertionError):
        check_response(web_spec, ok, httpx.Response(200, json={"ok": False, "error": "no_such_error"}))


async def test_reads_through_the_sandbox_mounted_like_the_web_app(manifest: ConnectorManifest) -> None:
    from connectors.sandboxes import mount_sandboxes

    host = FastAPI()
    app = mount_sandboxes(host, config=SandboxConfig(records=30), only=["slack"])["slack"]
    async with ConnectorSession(manifest, CONFIG, {**tokens(app), "expires_at": time.time() - 1},
                                base_url="http://carehub.local/sandbox/slack",
                                transport=httpx.ASGITransport(app=host), connection_id="slack-mounted") as s:
        ids, _ = await read_ids(s, "messages")  # the expired token is refreshed at the mounted token URL
    assert len(ids) == 30 and s.token_url == "http://carehub.local/sandbox/slack/api/oauth.v2.access"
