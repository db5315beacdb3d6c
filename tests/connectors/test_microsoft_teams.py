"""Microsoft Teams (Graph) connector against its sandbox over real HTTP: client-credentials token, delta
reads across @odata.nextLink pages, lastModifiedDateTime incremental, posting into a channel, 429/5xx
storms, outgoing-webhook HMAC, and the Message mapping."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from connectors.auth import OutgoingRequest
from connectors.custom.graph_notifications import accepted_notifications, validation_reply
from connectors.errors import VendorError
from connectors.sandboxes import microsoft_teams as teams
from connectors.webhooks import verify
from engine.ports import OutboundRecord

from .ops_helpers import (
    check_registered,
    control,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

CONFIG = {"tenant_id": teams.TENANT_ID, "team_id": teams.TEAM_ID, "channel_id": teams.CHANNEL_ID}
SECRETS = {"client_id": teams.CLIENT_ID, "client_secret": teams.CLIENT_SECRET}


def s(app: Any, **kw: Any) -> Any:
    return session("microsoft_teams", app, kw.pop("config", CONFIG), kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("microsoft_teams")
    assert m.auth.type == "oauth2_client_credentials" and m.auth.scopes == ["https://graph.microsoft.com/.default"]
    assert m.streams["channel_messages"].write is not None
    assert m.webhooks is not None and m.webhooks.prefix == "HMAC "


async def test_full_read_across_next_links_with_one_token() -> None:
    app = sandbox("microsoft_teams", records={"channel_messages": 230, "teams": 130})
    async with s(app) as sess:
        msgs, pages = await read_all(sess, "channel_messages")
        team_list, team_pages = await read_all(sess, "teams")
        channels, _ = await read_all(sess, "channels")
    ids = [r.external_id for r in msgs]
    assert len(ids) == len(set(ids)) == 230 and len(pages) == 5  # $top=50
    assert len({r.external_id for r in team_list}) == 130 and len(team_pages) == 2
    assert teams.CHANNEL_ID in {c.external_id for c in channels}
    assert pages[-1].checkpoint["since"].startswith("2024-01-02T02:43:00")  # newest of the seed (229 x 7 min)
    assert app.state.sandbox.token_grants == {"client_credentials": 1}
    assert msgs[0].data["channelIdentity"] == {"teamId": teams.TEAM_ID, "channelId": teams.CHANNEL_ID}
    assert sess.stats.failed_calls == 0


async def test_incremental_delta_returns_only_new_posts() -> None:
    app = sandbox("microsoft_teams", records={"channel_messages": 120})
    async with s(app) as sess:
        _, pages = await read_all(sess, "channel_messages")
        cp = pages[-1].checkpoint
        outcomes = await sess.write("channel_messages", [
            OutboundRecord("k1", {"body": {"contentType": "text", "content": "Fire door on floor 2 repaired."}}),
            OutboundRecord("k2", {"body": {"contentType": "html", "content": "<p>Lift inspection at 14:00</p>"},
                                  "importance": "high"}),
        ])
        assert all(o.ok and o.external_id for o in outcomes)
        new, _ = await read_all(sess, "channel_messages", cp)
        assert sorted(r.external_id for r in new) == sorted(str(o.external_id) for o in outcomes)
        assert new[0].data["from"]["application"]["displayName"] == "CareHub"
        again, _ = await read_all(sess, "channel_messages", {"since": new[-1].updated_at.isoformat()
                                                              if new[-1].updated_at else None})
        # the cursor is sent at one-second resolution: only posts of that last second can come again
        assert {r.external_id for r in again} <= {r.external_id for r in new}


async def test_post_survives_storms_once_and_errors_carry_graph_messages() -> None:
    app = sandbox("microsoft_teams", records={"channel_messages": 10})
    state = app.state.sandbox
    async with s(app) as sess:
        await control(app, "/_sandbox/faults", {"storm_429": 2, "storm_5xx": 2, "retry_after": "0"})
        out = await sess.write("channel_messages", [OutboundRecord("once", {"body": {"content": "Hello"}})])
        assert out[0].ok and state.throttled == 2 and state.failed == 2
        assert len(state.datasets["channel_messages"].overlay) == 1
        bad = await sess.write("channel_messages", [OutboundRecord("empty", {"body": {"content": " "}})])
        assert not bad[0].ok and bad[0].error_message == "Missing body content"
    other = dict(CONFIG, team_id=teams.stable_uuid(42, "teams", 1))
    async with s(app, config=other) as sess:
        denied = await sess.write("channel_messages", [OutboundRecord("x", {"body": {"content": "Hi"}})])
    assert not denied[0].ok and "ChannelMessage.Send.Group" in str(denied[0].error_message)


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("microsoft_teams", records={"channel_messages": 260})
    async with s(app) as sess:
        msgs, _ = await read_all(sess, "channel_messages", between=storm_starter(app, storm))
    assert len({r.external_id for r in msgs}) == 260
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_expired_token_is_renewed_once_and_bad_secret_is_explained() -> None:
    app = sandbox("microsoft_teams", records={"channel_messages": 120})

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-tokens")

    async with s(app) as sess:
        msgs, _ = await read_all(sess, "channel_messages", between=expire)
    assert len(msgs) == 120 and sess.stats.refreshes == 1
    assert app.state.sandbox.token_grants["client_credentials"] == 2
    async with s(app, secrets={"client_id": "practice", "client_secret": "mode"}) as sess:
        assert (await sess.test_connection()).ok  # practice mode: any client, like the shared OAuth sandbox
    strict = sandbox("microsoft_teams", records={"channel_messages": 5}, require_valid_client=True)
    async with s(strict, secrets={**SECRETS, "client_secret": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "AADSTS7000215" in result.reason


def test_outgoing_webhook_hmac_known_answer_and_mutations() -> None:
    spec = check_registered("microsoft_teams").webhooks
    assert spec is not None
    token_b64 = base64.b64encode(b"carehub-teams-outgoing-webhook-key").decode()
    key = base64.b64decode(token_b64)
    body = json.dumps({"type": "message", "text": "<at>CareHub</at> boiler fault in Willow Court"}).encode()
    expected = teams.outgoing_webhook_signature(token_b64, body)  # checked with openssl dgst -hmac
    assert expected == "HMAC 3Ne299bKWRaZbdJ7uTfGi2X/z7zkTSVLVQxDMKySdBo="
    assert verify(spec, key, {"Authorization": expected}, body)
    assert not verify(spec, key, {"Authorization": expected}, body.replace(b"boiler", b"Boiler"))
    assert not verify(spec, b"another-key", {"Authorization": expected}, body)
    assert not verify(spec, key, {"Authorization": expected.removeprefix("HMAC ")}, body)
    assert not verify(spec, key, {}, body)


async def test_message_mapping_compiles_and_maps_sandbox_records() -> None:
    app = sandbox("microsoft_teams", records={"channel_messages": 25})
    async with s(app) as sess:
        records = await sess.sample("channel_messages", 25)
    mapped = map_records("microsoft_teams", "Message", records, stream="channel_messages")
    assert len(mapped) == 25
    first = mapped[0]
    assert first["channel"] == "Teams" and first["to"] == teams.CHANNEL_ID and first["status"] == "delivered"
    assert first["sentAt"].startswith("2024-01-01T00:00:00") and first["body"]


async def test_change_notifications_validate_the_url_and_carry_our_client_state() -> None:
    client_state = "carehub-secret-client-state-8f2e"
    seen: list[list[dict[str, Any]]] = []
    receiver = FastAPI()

    @receiver.post("/hooks/graph")
    async def hook(request: Request) -> Response:
        token = validation_reply(dict(request.query_params))
        if token is not None:
            return PlainTextResponse(token)
        seen.append(accepted_notifications(await request.body(), client_state))
        return Response(status_code=202)

    @receiver.post("/hooks/lazy")
    async def lazy(request: Request) -> Response:  # answers 200 without echoing the token
        return Response(status_code=200)

    app = sandbox("microsoft_teams", records={"channel_messages": 5})
    app.state.webhook_transport = httpx.ASGITransport(app=receiver)
    resource = f"/teams/{teams.TEAM_ID}/channels/{teams.CHANNEL_ID}/messages"
    sub = {"changeType": "created,updated", "resource": resource, "clientState": client_state,
           "expirationDateTime": "2026-12-01T00:00:00Z"}
    async with s(app) as sess:
        def post(url: str) -> OutgoingRequest:
            return OutgoingRequest("POST", f"{sess.base_url}/v1.0/subscriptions",
                                   json_body={**sub, "notificationUrl": url})

        created = (await sess.request(lambda: post("http://receiver/hooks/graph"))).json()
        with pytest.raises(VendorError, match="Subscription validation request failed"):
            await sess.request(lambda: post("http://receiver/hooks/lazy"))
        out = await sess.write("channel_messages", [OutboundRecord("n1", {"body": {"content": "Lift out of order"}})])
    assert created["clientState"] == client_state and len(app.state.subscriptions) == 1
    assert len(seen) == 1 and seen[0][0]["resourceData"]["id"] == out[0].external_id
    forged = json.dumps({"value": [{**seen[0][0], "clientState": "guess"}]}).encode()
    assert accepted_notifications(forged, client_state) == []
    assert accepted_notifications(b"not json", client_state) == []
    assert accepted_notifications(json.dumps({"value": [seen[0][0]]}).encode(), "") == []
