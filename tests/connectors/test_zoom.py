"""Zoom connector against its sandbox over real HTTP: Server-to-Server OAuth (account_credentials in the
query, basic client credentials, one new token after a 401), next_page_token paging, creating meetings
through throttles, signed webhooks (known answer, mutations, replay window) and the URL validation
challenge, 429/5xx storms, and the Appointment mapping."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.custom.zoom import url_validation_reply
from connectors.sandboxes import zoom
from connectors.webhooks import handle_delivery, verify
from engine.ports import OutboundRecord

from .ops_helpers import check_registered, control, map_records, read_all, sandbox, session, storm_starter

CONFIG = {"account_id": zoom.ACCOUNT_ID, "user_id": zoom.USER_EMAIL}
SECRETS = {"client_id": zoom.CLIENT_ID, "client_secret": zoom.CLIENT_SECRET}


def s(app: Any, **kw: Any) -> Any:
    return session("zoom", app, kw.pop("config", CONFIG), kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("zoom")
    assert m.auth.type == "custom" and m.auth.name == "zoom_account_credentials"
    assert m.webhooks is not None and m.webhooks.handshake is not None


async def test_full_read_across_next_page_tokens_with_one_token() -> None:
    app = sandbox("zoom", records={"meetings": 650, "users": 12})
    async with s(app) as sess:
        meetings, pages = await read_all(sess, "meetings")
        users, _ = await read_all(sess, "users")
    assert len({r.external_id for r in meetings}) == 650 and len(pages) == 3  # 300 + 300 + 50
    assert len(users) == 12 and users[0].data["email"] == zoom.USER_EMAIL
    assert app.state.sandbox.token_grants == {"account_credentials": 1}
    assert sess.stats.failed_calls == 0


async def test_token_renewed_once_after_expiry_and_bad_secret_explained() -> None:
    app = sandbox("zoom", records={"meetings": 620})

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-tokens")

    async with s(app) as sess:
        meetings, _ = await read_all(sess, "meetings", between=expire)
    assert len(meetings) == 620 and sess.stats.refreshes == 1
    assert app.state.sandbox.token_grants == {"account_credentials": 2}
    async with s(app, secrets={"client_id": "practice", "client_secret": "mode"}) as sess:
        assert (await sess.test_connection()).ok  # practice mode: any client, like the shared OAuth sandbox
    strict = sandbox("zoom", records={"meetings": 5}, require_valid_client=True)
    async with s(strict, secrets={**SECRETS, "client_secret": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "Invalid client_id or client_secret" in result.reason


async def test_create_meeting_through_throttles_once_with_signed_webhook() -> None:
    received: list[tuple[int, Any]] = []
    receiver = FastAPI()

    @receiver.post("/hooks/zoom")
    async def hook(request: Request) -> Response:
        raw = await request.body()
        spec = check_registered("zoom").webhooks
        assert spec is not None
        result = handle_delivery(spec, zoom.WEBHOOK_SECRET_TOKEN, dict(request.headers), raw)
        received.append((result.status, result.payload))
        if result.status != 200:
            return Response(status_code=result.status)
        reply = url_validation_reply(zoom.WEBHOOK_SECRET_TOKEN, result.payload)
        return JSONResponse(reply) if reply else Response(status_code=200)

    app = sandbox("zoom", records={"meetings": 5}, webhook_url="http://receiver/hooks/zoom")
    app.state.webhook_transport = httpx.ASGITransport(app=receiver)
    meeting = {"topic": "GP video review - Willow Court", "agenda": "RES00042 | GP video review",
               "type": 2, "start_time": "2026-12-01T10:30:00Z", "duration": 20}
    async with s(app) as sess:
        await control(app, "/_sandbox/faults", {"storm_429": 2, "retry_after": "0"})
        out = await sess.write("meetings", [OutboundRecord("m1", meeting)])
        bad = await sess.write("meetings", [OutboundRecord("m2", {"agenda": "no topic"})])
    assert out[0].ok and out[0].external_id and len(app.state.sandbox.datasets["meetings"].overlay) == 1
    assert not bad[0].ok and "topic: must not be blank" in str(bad[0].error_message)
    assert received[0][0] == 200 and received[0][1]["event"] == "meeting.created"
    check = await control(app, "/_sandbox/webhooks/url-validation")
    assert check == {"status": 200, "validated": True}


def test_webhook_known_answer_mutations_and_replay_window() -> None:
    spec = check_registered("zoom").webhooks
    assert spec is not None
    body = json.dumps({"event": "meeting.started", "payload": {"object": {"id": 85000000001}}}).encode()
    ts = "1700000000"
    # printf 'v0:1700000000:%s' "$body" | openssl dgst -sha256 -hmac zoom-sandbox-webhook-secret-token
    assert zoom.sign_delivery(body, ts) == "v0=a3be783ddca90061cd94239dd1cfd6267f66b287903f0a288037e0d200457988"
    headers = {"x-zm-signature": zoom.sign_delivery(body, ts), "x-zm-request-timestamp": ts}
    assert verify(spec, zoom.WEBHOOK_SECRET_TOKEN, headers, body, now=1700000060)
    assert not verify(spec, zoom.WEBHOOK_SECRET_TOKEN, headers, body.replace(b"started", b"ended"), now=1700000060)
    assert not verify(spec, "other-secret", headers, body, now=1700000060)
    assert not verify(spec, zoom.WEBHOOK_SECRET_TOKEN, {**headers, "x-zm-request-timestamp": "1700000001"}, body,
                      now=1700000060)
    assert not verify(spec, zoom.WEBHOOK_SECRET_TOKEN, headers, body, now=time.time())  # replayed days later
    # the URL validation answer (Zoom's documented formula)
    reply = url_validation_reply("secret", {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}})
    assert reply == {"plainToken": "abc", "encryptedToken": "9946dad4e00e913fc8be8e5d3f7e110a4a9e832f83fb09c345285d78638d8a0e"}
    assert url_validation_reply("secret", {"event": "meeting.started"}) is None


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("zoom", records={"meetings": 950})
    async with s(app) as sess:
        meetings, _ = await read_all(sess, "meetings", between=storm_starter(app, storm))
    assert len({r.external_id for r in meetings}) == 950
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_appointment_mapping_compiles_and_maps_sandbox_records() -> None:
    app = sandbox("zoom", records={"meetings": 30})
    async with s(app) as sess:
        meetings = await sess.sample("meetings", 30)
    visits = map_records("zoom", "Appointment", meetings, stream="meetings")
    assert visits[0]["residentRef"].startswith("RES") and visits[0]["service"] == "telemedicine"
    assert visits[0]["link"].startswith("https://") and visits[0]["status"] == "booked"
