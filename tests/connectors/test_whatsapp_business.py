"""WhatsApp Business Cloud API connector against its sandbox over real HTTP: bearer token, template
listing with Graph cursors, template and text sends (the 24-hour rule, unapproved templates), throttling and
5xx retried, signed webhooks (known answer, mutations) and the hub.challenge handshake, and the Message
mapping."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from connectors.custom.meta_webhooks import verify_subscription
from connectors.sandboxes import whatsapp_business as wa
from connectors.webhooks import handle_delivery, verify
from engine.ports import OutboundRecord, SourceRecord

from .ops_helpers import check_registered, control, map_records, read_all, sandbox, session, storm_starter

CONFIG = {"phone_number_id": wa.PHONE_NUMBER_ID, "waba_id": wa.WABA_ID}
SECRETS = {"system_user_token": wa.ACCESS_TOKEN}


def s(app: Any, **kw: Any) -> Any:
    return session("whatsapp_business", app, CONFIG, kw.pop("secrets", SECRETS), **kw)


def template(name: str = "visit_confirmation", to: str = "447700900123") -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "template",
            "template": {"name": name, "language": {"code": "en_GB"},
                         "components": [{"type": "body", "parameters": [{"type": "text", "text": "Mrs Patel"}]}]}}


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("whatsapp_business")
    assert m.webhooks is not None and m.webhooks.prefix == "sha256=" and m.webhooks.encoding == "hex"
    assert m.streams["messages"].write is not None and m.test_stream == "message_templates"


async def test_templates_read_across_graph_cursors() -> None:
    app = sandbox("whatsapp_business", records={"message_templates": 230})
    async with s(app) as sess:
        templates, pages = await read_all(sess, "message_templates")
    assert len({r.external_id for r in templates}) == 230 and len(pages) == 3
    assert templates[0].data["name"] == "visit_confirmation" and sess.stats.failed_calls == 0
    async with s(app, secrets={"system_user_token": "bad"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "Invalid OAuth access token" in result.reason


async def test_sends_follow_the_24_hour_rule_and_survive_throttling_once() -> None:
    app = sandbox("whatsapp_business")
    sent = app.state.sandbox.datasets["messages"]
    async with s(app) as sess:
        await control(app, "/_sandbox/faults", {"storm_429": 2, "storm_5xx": 1, "retry_after": "0"})
        ok = await sess.write("messages", [OutboundRecord("t1", template())])
        assert ok[0].ok and str(ok[0].external_id).startswith("wamid.") and len(sent.overlay) == 1
        text = {"messaging_product": "whatsapp", "to": "447700900123", "type": "text",
                "text": {"body": "Your mum enjoyed the garden party today."}}
        closed = await sess.write("messages", [OutboundRecord("x1", text)])
        assert not closed[0].ok and closed[0].error_message == "Re-engagement message"
        await control(app, "/_sandbox/inbound", {"from": "447700900123", "text": "How is Mum?"})
        opened = await sess.write("messages", [OutboundRecord("x2", text)])
        assert opened[0].ok
        pending = await sess.write("messages", [OutboundRecord("t2", template("visit_confirmation_v2"))])  # still PENDING
        assert not pending[0].ok and "does not exist in the translation" in str(pending[0].error_message)
    assert len(sent.overlay) == 2


async def test_signed_deliveries_and_subscription_handshake() -> None:
    spec = check_registered("whatsapp_business").webhooks
    assert spec is not None
    received: list[Any] = []
    receiver = FastAPI()

    @receiver.get("/hooks/wa")
    async def subscribe(request: Request) -> Response:
        status, text = verify_subscription(dict(request.query_params), wa.VERIFY_TOKEN)
        return PlainTextResponse(text, status_code=status)

    @receiver.post("/hooks/wa")
    async def deliver(request: Request) -> Response:
        result = handle_delivery(spec, wa.APP_SECRET, dict(request.headers), await request.body())
        received.append(result.payload if result.verified else None)
        return Response(status_code=result.status)

    app = sandbox("whatsapp_business", webhook_url="http://receiver/hooks/wa")
    app.state.webhook_transport = httpx.ASGITransport(app=receiver)
    assert await control(app, "/_sandbox/webhooks/subscribe") == {"status": 200, "verified": True}
    assert await control(app, "/_sandbox/webhooks/subscribe", {"verify_token": "guess"}) == {"status": 403,
                                                                                             "verified": False}
    out = await control(app, "/_sandbox/inbound", {"from": "447700900456", "text": "Can I visit on Sunday?"})
    assert out["status"] == 200
    value = received[0]["entry"][0]["changes"][0]["value"]
    assert value["messages"][0]["text"]["body"] == "Can I visit on Sunday?"
    assert value["metadata"]["phone_number_id"] == wa.PHONE_NUMBER_ID


def test_webhook_signature_known_answer_and_mutations() -> None:
    spec = check_registered("whatsapp_business").webhooks
    assert spec is not None
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": wa.WABA_ID}]}).encode()
    # printf '%s' "$body" | openssl dgst -sha256 -hmac whatsapp-sandbox-app-secret-7c6b5a
    assert wa.sign(body) == "sha256=f908320613dd376c63b78dc0e354e31e563fee6cb9ea9cfa393ea5eb5d11b3f2"
    headers = {"X-Hub-Signature-256": wa.sign(body)}
    assert verify(spec, wa.APP_SECRET, headers, body)
    assert not verify(spec, wa.APP_SECRET, headers, body + b" ")
    assert not verify(spec, "another-secret", headers, body)
    assert not verify(spec, wa.APP_SECRET, {"X-Hub-Signature-256": wa.sign(body).removeprefix("sha256=")}, body)
    assert verify_subscription({"hub.mode": "subscribe", "hub.verify_token": "t", "hub.challenge": "1158201444"},
                               "t") == (200, "1158201444")
    assert verify_subscription({"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"}, "t")[0] == 403


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("whatsapp_business", records={"message_templates": 700})
    async with s(app) as sess:
        templates, _ = await read_all(sess, "message_templates", between=storm_starter(app, storm))
    assert len({r.external_id for r in templates}) == 700
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_message_mapping_compiles_and_maps_sandbox_records() -> None:
    app = sandbox("whatsapp_business")
    async with s(app) as sess:
        await control(app, "/_sandbox/inbound", {"from": "447700900789"})
        for n in range(3):
            out = await sess.write("messages", [OutboundRecord(f"m{n}", {
                "messaging_product": "whatsapp", "to": "447700900789", "type": "text",
                "text": {"body": f"Update {n}: lunch was roast chicken."}})])
            assert out[0].ok
    records = [SourceRecord(external_id=r["id"], data=r) for r in app.state.sandbox.datasets["messages"].iter()]
    mapped = map_records("whatsapp_business", "Message", records, stream="messages")
    assert len(mapped) == 3 and mapped[0]["channel"] == "WhatsApp" and mapped[0]["to"] == "447700900789"
    assert mapped[0]["body"].startswith("Update 0") and mapped[0]["sentAt"][:4] >= "2026"
