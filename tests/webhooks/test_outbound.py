"""Outbound webhooks: Standard Webhooks signatures verified by the standardwebhooks library, retry schedule
with jitter, 410 disables, one sender per delivery, the event relay, and SSRF refusals (0 connections)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from sqlmodel import select
from standardwebhooks.webhooks import Webhook as StandardWebhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from storage import integrations as svc
from storage import webhooks as store
from storage.models import SyncRun, Webhook, WebhookDelivery, utcnow

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    """A loopback subscriber that verifies every delivery with the standardwebhooks library."""

    def __init__(self) -> None:
        self.hits: list[dict[str, Any]] = []
        self.port = 0

        async def record(request: Request, status: int) -> Response:
            body = await request.body()
            try:
                payload = StandardWebhook(SECRET).verify(body, dict(request.headers))
                verified = True
            except Exception:
                payload, verified = None, False
            self.hits.append({"path": request.url.path, "verified": verified, "payload": payload,
                              "headers": dict(request.headers)})
            return Response(status_code=status)

        async def ok(request: Request) -> Response:
            return await record(request, 200)

        async def gone(request: Request) -> Response:
            return await record(request, 410)

        async def fail(request: Request) -> Response:
            return await record(request, 500)

        async def to_metadata(request: Request) -> Response:
            await record(request, 302)
            return RedirectResponse("http://169.254.169.254/latest/meta-data/", status_code=307)

        async def to_ok(request: Request) -> Response:
            await record(request, 307)
            return RedirectResponse("/ok", status_code=307)

        self.app = Starlette(routes=[Route("/ok", ok, methods=["POST"]), Route("/gone", gone, methods=["POST"]),
                                     Route("/fail", fail, methods=["POST"]),
                                     Route("/to-metadata", to_metadata, methods=["POST"]),
                                     Route("/to-ok", to_ok, methods=["POST"])])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rcv = Receiver()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    rcv.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(rcv.app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield rcv
    server.should_exit = True
    await task


@pytest.fixture
def local(ctx: Any) -> Any:
    """The context with private hosts allowed (loopback subscribers, as in local mode)."""
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"allow_private_hosts": True}))


def _subscriber(ctx: Any, url: str, events: tuple[str, ...] = ()) -> tuple[str, str]:
    with ctx.db.session() as s:
        integration = svc.configure_integration(s, box=ctx.box, actor="m@carehub.test", name="X", connector_id="xero")
        hook = Webhook(integration_id=integration.id, direction="outbound", url=url, events=list(events),
                       secret_encrypted=ctx.box.encrypt({"secret": SECRET}))
        s.add(hook)
        s.flush()
        return integration.id, hook.id


async def _emit(ctx: Any, iid: str, kind: str = "run.finished") -> list[str]:
    from app.webhooks_out import emit

    return await emit(ctx, integration_id=iid, event_type=kind, data={"runId": "r1"})


async def test_deliveries_verify_with_standardwebhooks(local: Any, receiver: Receiver) -> None:
    from app.webhooks_out import deliver

    iid, _ = _subscriber(local, receiver.url("/ok"))
    ids = [i for _ in range(20) for i in await _emit(local, iid)]
    rows = [await deliver(local, i) for i in ids]
    assert [r.status for r in rows if r] == ["delivered"] * 20
    assert len(receiver.hits) == 20 and all(h["verified"] for h in receiver.hits)
    assert {h["payload"]["type"] for h in receiver.hits} == {"run.finished"}
    assert len({h["headers"]["webhook-id"] for h in receiver.hits}) == 20


async def test_410_disables_endpoint(local: Any, receiver: Receiver) -> None:
    from app.webhooks_out import deliver

    iid, wid = _subscriber(local, receiver.url("/gone"))
    first, second = await _emit(local, iid), await _emit(local, iid)
    row = await deliver(local, first[0])
    assert row is not None and row.status == "disabled"
    with local.db.session() as s:
        hook = s.get(Webhook, wid)
        assert hook is not None and not hook.active and "410" in hook.disabled_reason
        assert s.get(WebhookDelivery, second[0]).status == "cancelled"  # type: ignore[union-attr]
    assert await deliver(local, second[0]) is None and len(receiver.hits) == 1


async def test_retry_schedule_with_jitter(local: Any, receiver: Receiver) -> None:
    from app.webhooks_out import RETRY_SCHEDULE, deliver, retry_delay

    iid, _ = _subscriber(local, receiver.url("/fail"))
    [delivery_id] = await _emit(local, iid)
    for attempt in (1, 2, 3):
        before = utcnow()
        row = await deliver(local, delivery_id)
        assert row is not None and row.status == "retrying" and row.attempts == attempt
        wait = (row.next_attempt_at - before).total_seconds()  # type: ignore[operator]
        assert RETRY_SCHEDULE[attempt] - 1 <= wait <= RETRY_SCHEDULE[attempt] * 1.2 + 1
        with local.db.session() as s:  # time travel: make it due now
            s.get(WebhookDelivery, delivery_id).next_attempt_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    delays = [retry_delay(n) for n in range(len(RETRY_SCHEDULE) + 1)]
    assert delays[-1] is None and all(d is not None and s <= d <= s * 1.2 for d, s in zip(delays, RETRY_SCHEDULE,
                                                                                          strict=False))
    assert sum(RETRY_SCHEDULE) / 3600 > 72  # about three days, like Standard Webhooks


async def test_one_sender_per_delivery(local: Any, receiver: Receiver) -> None:
    from app.webhooks_out import deliver

    iid, _ = _subscriber(local, receiver.url("/ok"))
    [delivery_id] = await _emit(local, iid)
    rows = await asyncio.gather(*[deliver(local, delivery_id) for _ in range(10)])
    assert sum(1 for r in rows if r is not None) == 1 and len(receiver.hits) == 1


async def test_send_test_event_and_redirects(local: Any, receiver: Receiver) -> None:
    from app.webhooks_out import send_test_event

    _, wid = _subscriber(local, receiver.url("/to-ok"))
    row = await send_test_event(wid, app=local)
    assert row.status == "delivered" and [h["path"] for h in receiver.hits] == ["/to-ok", "/ok"]
    assert receiver.hits[-1]["verified"] and receiver.hits[-1]["payload"]["type"] == "webhook.test"
    with local.db.session() as s:
        hook = s.get(Webhook, wid)
        assert hook is not None
        hook.url = receiver.url("/to-metadata")
    row = await send_test_event(wid, app=local)
    assert row.status == "blocked" and "169.254.169.254" in row.response_excerpt


async def test_event_relay_emits_each_event_once(local: Any, receiver: Receiver) -> None:
    from app.webhooks_out import collect_events

    iid, _ = _subscriber(local, receiver.url("/ok"), events=("run.failed",))
    with local.db.session() as s:
        s.add(SyncRun(integration_id=iid, status="succeeded", finished_at=utcnow()))
        s.add(SyncRun(integration_id=iid, status="failed", error="vendor down", finished_at=utcnow()))
    assert collect_events(local, since=utcnow() - timedelta(minutes=5)) == 1  # subscribed to run.failed only
    assert collect_events(local, since=utcnow() - timedelta(minutes=5)) == 0
    with local.db.session() as s:
        [row] = s.exec(select(WebhookDelivery)).all()
        assert row.event_type == "run.failed" and row.payload["data"]["error"] == "vendor down"


SSRF_HOSTS = ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "169.254.169.254", "10.0.0.1", "192.168.1.1",
              "172.16.0.1", "100.64.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]",
              "[::ffff:7f00:1]", "[fc00::1]", "[fe80::1]", "metadata.google.internal", "198.18.0.1", "0"]


async def test_ssrf_targets_refused(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.webhooks_out import deliver

    connections = 0

    async def count(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        w.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    real = socket.getaddrinfo

    def fake_dns(host: Any, *args: Any, **kwargs: Any) -> Any:  # a public-looking name that points inside
        return real("127.0.0.1", *args, **kwargs) if host == "hooks.attacker.example" else real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    urls = [f"http://{h}:{port}/hook" for h in SSRF_HOSTS] + [
        f"http://hooks.attacker.example:{port}/hook", "file:///etc/passwd", f"gopher://127.0.0.1:{port}/"]
    statuses = []
    for url in urls:
        iid, _ = _subscriber(ctx, url)
        [delivery_id] = await _emit(ctx, iid)
        row = await deliver(ctx, delivery_id)
        statuses.append((url, row.status if row else None))
    server.close()
    assert all(status == "blocked" for _, status in statuses), statuses
    assert connections == 0


async def test_api_refuses_internal_webhook_targets(ctx: Any, redis_url: str) -> None:
    from app.api import create_api
    from storage.users import create_user, issue_token

    with ctx.db.session() as s:
        user = create_user(s, email="a@carehub.test", password="password-1234", role="admin")
        token = issue_token(s, user)
        iid = svc.configure_integration(s, box=ctx.box, actor=user.email, name="X", connector_id="xero").id
    h = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api(redis_url)), base_url="http://t") as c:
        codes = []
        for host in SSRF_HOSTS:
            r = await c.post(f"/integrations/{iid}/webhooks", headers=h,
                             json={"url": f"http://{host}/hook", "events": ["run.finished"]})
            codes.append((host, r.status_code))
        ok = await c.post(f"/integrations/{iid}/webhooks", headers=h,
                          json={"url": "https://hooks.example.org/carehub", "events": ["run.finished"]})
    assert all(code == 422 for _, code in codes), codes
    assert ok.status_code == 201 and ok.json()["signingSecret"].startswith("whsec_")
    with ctx.db.session() as s:
        assert store.list_deliveries(s, webhook_id=ok.json()["id"]) == []
