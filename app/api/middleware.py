"""ASGI middleware of /api/v1: body size limit, per-token rate limit (Redis), and Idempotency-Key on POST.

Idempotency: the first POST with a key stores (request hash, response) for 24 hours; the same key and the same
request replays the stored response (``Idempotent-Replayed: true``); the same key with a different request is
refused with 422; a key whose first request is still running gets 409. Responses of 5xx, 401 and 429 are not
stored, so the client can retry them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import PROBLEM_JSON, problem_body

log = logging.getLogger("carehub.api")
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary())


def redis_for(url: str) -> aioredis.Redis:
    """A Redis client for ``url`` bound to the running event loop (clients cannot cross loops)."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    client = per_loop.get(url)
    if client is None:
        client = per_loop[url] = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return client


@dataclass
class ApiLimits:
    """Tunable limits of the API (tests lower or raise them)."""

    requests_per_minute: int = field(default_factory=lambda: int(os.environ.get("CAREHUB_API_RATE_LIMIT", "600")))
    max_body_bytes: int = 1024 * 1024
    idempotency_ttl_seconds: int = 24 * 3600
    key_prefix: str = "carehub:api:"


LIMITS = ApiLimits()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _send_problem(send: Send, status: int, detail: str, headers: dict[str, str] | None = None,
                        slug: str | None = None) -> None:
    body = problem_body(status, detail, slug=slug)
    raw = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _caller(scope: Scope) -> str:
    auth = _header(scope, b"authorization")
    if auth:
        return "t:" + hashlib.sha256(auth.encode()).hexdigest()[:32]
    client = scope.get("client") or ("anon", 0)
    return f"ip:{client[0]}"


class ApiGuard:
    """Size limit, rate limit and idempotency in one pure ASGI middleware (no response buffering otherwise)."""

    def __init__(self, app: ASGIApp, redis_url: str | None = None, limits: ApiLimits | None = None) -> None:
        self.app = app
        self.redis_url = redis_url
        self.limits = limits or LIMITS

    def _redis(self) -> aioredis.Redis | None:
        url = self.redis_url
        if url is None:
            from app.context import get_context

            url = get_context().redis_url
        return redis_for(url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > self.limits.max_body_bytes:
            await _send_problem(send, 413, f"The body is larger than {self.limits.max_body_bytes} bytes.")
            return
        path = scope.get("path", "")
        if path.endswith(("/openapi.json", "/docs", "/docs/oauth2-redirect")):
            await self.app(scope, receive, send)
            return
        caller = _caller(scope)
        client = self._redis()
        retry_after = await self._rate_limited(client, caller)
        if retry_after is not None:
            await _send_problem(send, 429, f"Too many requests for this token; retry after {retry_after} seconds.",
                                {"Retry-After": str(retry_after)})
            return
        key = _header(scope, b"idempotency-key")
        if scope.get("method") == "POST" and key is not None and _header(scope, b"authorization"):
            await self._idempotent(scope, receive, send, client, caller, key)
            return
        await self.app(scope, receive, send)

    async def _rate_limited(self, client: aioredis.Redis | None, caller: str) -> int | None:
        if client is None or self.limits.requests_per_minute <= 0:
            return None
        now = time.time()
        window = int(now // 60)
        name = f"{self.limits.key_prefix}rl:{caller}:{window}"
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, 61)
                count, _ = await pipe.execute()
        except Exception as exc:  # Redis down: serve rather than refuse everyone
            log.warning("rate limiter unavailable: %s", type(exc).__name__)
            return None
        if int(count) > self.limits.requests_per_minute:
            return max(1, int((window + 1) * 60 - now + 0.999))
        return None

    async def _idempotent(self, scope: Scope, receive: Receive, send: Send, client: aioredis.Redis | None,
                          caller: str, key: str) -> None:
        if not key or len(key) > 255:
            await _send_problem(send, 400, "Idempotency-Key must be 1 to 255 characters.", slug="bad-request")
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
            if sum(len(c) for c in chunks) > self.limits.max_body_bytes:
                await _send_problem(send, 413, f"The body is larger than {self.limits.max_body_bytes} bytes.")
                return
        body = b"".join(chunks)
        fingerprint = hashlib.sha256(b"\n".join([
            scope.get("method", "").encode(), scope.get("path", "").encode(), scope.get("query_string", b""),
            body])).hexdigest()
        name = f"{self.limits.key_prefix}idem:{caller}:{hashlib.sha256(key.encode()).hexdigest()}"
        replay_receive = _replayer(body)
        if client is None:
            await self.app(scope, replay_receive, send)
            return
        try:
            claimed = await client.set(name, json.dumps({"state": "pending", "hash": fingerprint}), nx=True,
                                       ex=self.limits.idempotency_ttl_seconds)
            stored = None if claimed else await client.get(name)
        except Exception as exc:
            log.warning("idempotency store unavailable: %s", type(exc).__name__)
            await self.app(scope, replay_receive, send)
            return
        if not claimed:
            record: dict[str, Any] = json.loads(stored) if stored else {}
            if record.get("hash") != fingerprint:
                await _send_problem(send, 422, "This Idempotency-Key was already used with a different request; "
                                               "use a new key for a new request.", slug="idempotency-key-reused")
                return
            if record.get("state") != "done":
                await _send_problem(send, 409, "A request with this Idempotency-Key is still being processed; "
                                               "retry shortly.", {"Retry-After": "1"})
                return
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record["headers"]]
            headers.append((b"idempotent-replayed", b"true"))
            await send({"type": "http.response.start", "status": record["status"], "headers": headers})
            await send({"type": "http.response.body", "body": base64.b64decode(record["body"])})
            return
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [(k.decode("latin-1"), v.decode("latin-1"))
                                       for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)
        finally:
            status = int(captured["status"])
            try:
                if status >= 500 or status in (401, 409, 429):
                    await client.delete(name)
                else:
                    await client.set(name, json.dumps({
                        "state": "done", "hash": fingerprint, "status": status, "headers": captured["headers"],
                        "body": base64.b64encode(b"".join(captured["body"])).decode()}),
                        ex=self.limits.idempotency_ttl_seconds)
            except Exception as exc:
                log.warning("idempotency store unavailable: %s", type(exc).__name__)


def _replayer(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive
