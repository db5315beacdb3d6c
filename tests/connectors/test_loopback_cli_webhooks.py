"""Real uvicorn loopback server, the CLI read of 10,000 invoices, webhooks, SSRF guard, shared rate limits."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from connectors.cli import build_sandbox_server_app, print_records
from connectors.errors import OutboundBlocked
from connectors.manifest import RateLimits, WebhookSpec
from connectors.ratelimit import RateLimiter
from connectors.sandboxes import SandboxConfig, mount_sandboxes, xero
from connectors.ssrf import check_outbound_url
from connectors.webhooks import handle_delivery, sign, verify

from .conftest import CONFIGS, TEMPLATES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[str, FastAPI]]:
    app = FastAPI()
    mounted = mount_sandboxes(app, "/sandbox", SandboxConfig(records={"invoices": 600, "contacts": 50}))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", mounted["xero"]
    server.should_exit = True
    thread.join(5)


async def test_xero_over_real_loopback_with_refresh_and_storm(loopback: tuple[str, FastAPI]) -> None:
    base, xero_app = loopback
    url = f"{base}/sandbox/xero"
    async with httpx.AsyncClient() as c:
        await c.post(url + "/_sandbox/faults", json={"storm_429": 3, "retry_after": "0"})
    out = io.StringIO()
    n = await print_records(out, "xero", "invoices", base_url=url, config=CONFIGS["xero"], secrets={},
                            directory=TEMPLATES, ignore_rate_limits=True)
    ids = [json.loads(line)["external_id"] for line in out.getvalue().splitlines()]
    assert n == 600 and len(set(ids)) == 600
    assert xero_app.state.sandbox.throttled == 3


def test_ssrf_guard_refuses_loopback_without_allow(loopback: tuple[str, FastAPI]) -> None:
    base, _ = loopback
    with pytest.raises(OutboundBlocked):
        check_outbound_url(base)
    assert check_outbound_url(base, allow_private=True).addresses == ("127.0.0.1",)


async def test_cli_read_xero_invoices_10000_once_each() -> None:
    app = build_sandbox_server_app(records=10_000)
    out = io.StringIO()
    n = await print_records(out, "xero", "invoices", base_url="http://sb/sandbox/xero", config=CONFIGS["xero"],
                            secrets={}, directory=TEMPLATES, transport=httpx.ASGITransport(app=app),
                            ignore_rate_limits=True)
    ids = [json.loads(line)["external_id"] for line in out.getvalue().splitlines()]
    assert n == 10_000 == len(set(ids))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",
    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/", "http://192.168.1.1/", "http://[fd00:ec2::254]/", "http://0.0.0.0/",
    "http://100.64.0.1/", "http://metadata.google.internal/", "file:///etc/passwd", "http://localhost:8080/",
    "http://[::ffff:a9fe:a9fe]/",
])
def test_ssrf_guard_blocks(url: str) -> None:
    with pytest.raises(OutboundBlocked):
        check_outbound_url(url)


def test_ssrf_guard_allows_public_literal() -> None:
    assert check_outbound_url("https://8.8.8.8/x").addresses == ("8.8.8.8",)


XERO_HOOK = WebhookSpec(header="x-xero-signature", handshake={"type": "xero_intent_to_receive"})  # type: ignore[arg-type]


def test_xero_webhook_verification_and_intent_to_receive() -> None:
    key = "sandbox-webhook-key-0123456789"
    body = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"ABC"}'
    good = {"x-xero-signature": sign(XERO_HOOK, key, body)}
    assert handle_delivery(XERO_HOOK, key, good, body).status == 200
    assert handle_delivery(XERO_HOOK, key, {"x-xero-signature": sign(XERO_HOOK, "other", body)}, body).status == 401
    assert handle_delivery(XERO_HOOK, key, good, body + b" ").status == 401  # raw bytes, not re-serialised JSON
    assert handle_delivery(XERO_HOOK, key, {}, body).status == 401


def test_slack_signature_replay_window_and_url_verification() -> None:
    spec = WebhookSpec(header="X-Slack-Signature", encoding="hex", signed="slack_v0", prefix="v0=",
                       timestamp_header="X-Slack-Request-Timestamp", replay_window_seconds=300,
                       handshake={"type": "slack_url_verification"})  # type: ignore[arg-type]
    body = b'{"type":"url_verification","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}'
    now = time.time()
    headers = {"X-Slack-Request-Timestamp": str(int(now))}
    headers["X-Slack-Signature"] = sign(spec, "8f742231b10e8888abcd99yyyzzz85a5", body, headers)
    res = handle_delivery(spec, "8f742231b10e8888abcd99yyyzzz85a5", headers, body, now=now)
    assert res.status == 200 and json.loads(res.body)["challenge"].startswith("3eZb")
    assert not verify(spec, "8f742231b10e8888abcd99yyyzzz85a5", headers, body, now=now + 301)


async def test_sandbox_sends_signed_xero_webhooks_to_a_receiver() -> None:
    received: list[int] = []
    receiver = FastAPI()

    @receiver.post("/hooks/xero")
    async def hook(request: __import__("fastapi").Request) -> __import__("fastapi").Response:
        res = handle_delivery(XERO_HOOK, "k3y", dict(request.headers), await request.body())
        received.append(res.status)
        return __import__("fastapi").Response(status_code=res.status)

    app = xero.create_app(SandboxConfig(records=5, webhook_key="k3y", webhook_url="http://rx/hooks/xero"))
    from connectors.sandboxes import common
    original = common.send_webhook

    async def via_asgi(state, body, headers_for, *, url=None, transport=None):  # type: ignore[no-untyped-def]
        return await original(state, body, headers_for, url=url, transport=httpx.ASGITransport(app=receiver))

    common.send_webhook = via_asgi  # route the sandbox's outbound POST into the in-process receiver
    xero.send_webhook = via_asgi
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sb") as c:
            check = (await c.post("/_sandbox/webhooks/intent-to-receive")).json()
    finally:
        common.send_webhook = original
        xero.send_webhook = original
    assert check["passed"] and received == [200, 401]




async def test_redis_bucket_paces_and_enforces_day_budget() -> None:
    import redis.asyncio as aioredis

    from connectors.errors import RateLimited
    r = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test:rl:{time.time_ns()}"
    limits = RateLimits(per_second=20, per_day=30, concurrent=2)
    a = RateLimiter("xero", "t1", limits, redis=r, prefix=prefix)
    b = RateLimiter("xero", "t1", limits, redis=r, prefix=prefix)
    start = time.monotonic()
    for i in range(30):
        async with (a if i % 2 else b).slot():
            pass
    elapsed = time.monotonic() - start
    assert elapsed >= (30 - 20) / 20 * 0.8  # burst of 20, then 20/s shared by both limiters
    with pytest.raises(RateLimited) as err:
        await a.take()
    assert err.value.problem == "day"
    held = 0

    async def worker() -> None:
        nonlocal held
        c = RateLimiter("xero", "t2", RateLimits(concurrent=2), redis=r, prefix=prefix)
        async with c.slot():
            held += 1
            assert held <= 2
            await asyncio.sleep(0.05)
            held -= 1

    await asyncio.gather(*(worker() for _ in range(6)))
    await r.aclose()
