"""Shared sandbox framework: config, fault injection, OAuth2 server, lazy data sets, idempotency, webhooks.

Every vendor sandbox is a FastAPI app built from a :class:`SandboxConfig`. Faults are switched at run time
through ``POST /_sandbox/faults`` (merge), ``GET`` (read) and ``DELETE`` (clear). Data are deterministic
for a seed and generated lazily, so a sandbox with 100,000 records starts instantly.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import hmac
import json
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx
from faker import Faker
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


class Faults(BaseModel):
    """Faults a sandbox injects; every field can be changed at run time via ``POST /_sandbox/faults``."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = 0.0  # share of API calls answered with ``error_status``
    error_status: int = 500
    storm_5xx: int = 0  # the next N API calls fail with ``error_status``
    storm_429: int = 0  # the next N API calls are throttled with vendor headers
    retry_after: str | None = "1"  # Retry-After on throttles: seconds or an HTTP date; None = omit
    rate_limit_problem: str = "minute"  # Xero X-Rate-Limit-Problem value
    latency_ms: int = 0
    hang_rate: float = 0.0  # share of calls that never answer (until ``hang_seconds``)
    hang_seconds: float = 3600.0
    slow_drip_ms: int = 0  # send the body in small chunks this far apart
    partial_batch_failure: float = 0.0  # share of batch elements rejected with a validation error
    revoke_tokens: bool = False  # every token (access and refresh) stops working


class SandboxConfig(BaseModel):
    """How a sandbox behaves: seed, record counts per stream (or one number for all), faults, tokens."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 42
    records: int | dict[str, int] = 250
    faults: Faults = Field(default_factory=Faults)
    token_ttl_seconds: int = 1800
    refresh_token_ttl_seconds: int = 60 * 24 * 3600
    rate_limit_per_minute: int | None = None  # enforce a real per-tenant limit (off by default)
    webhook_url: str | None = None
    webhook_key: str = "sandbox-webhook-key-0123456789"
    require_valid_client: bool = False

    def count(self, stream: str, default: int | None = None) -> int:
        """Number of base records of a stream."""
        if isinstance(self.records, int):
            return self.records
        return self.records.get(stream, default if default is not None else 250)


# --------------------------------------------------------------------------- UK care-home data


def nhs_check_digit(nine: str) -> int | None:
    """Modulus-11 check digit of the first nine digits of an NHS number (None when 10, i.e. invalid)."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(nine))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def nhs_number(rng: random.Random) -> str:
    """A valid NHS number from the 999 test range (never a real patient)."""
    while True:
        nine = "999" + f"{rng.randrange(0, 1_000_000):06d}"
        check = nhs_check_digit(nine)
        if check is not None:
            return nine + str(check)


def ni_number(rng: random.Random) -> str:
    """A National Insurance number with the administrative ``QQ`` prefix (never issued)."""
    return f"QQ{rng.randrange(0, 1_000_000):06d}{rng.choice('ABCD')}"


@dataclass(frozen=True)
class Pools:
    """Realistic en_GB values generated once per seed, then picked per record (fast and deterministic)."""

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    towns: tuple[str, ...]
    postcodes: tuple[str, ...]
    phones: tuple[str, ...]
    companies: tuple[str, ...]


@lru_cache(maxsize=8)
def pools(seed: int) -> Pools:
    """Value pools for a seed (faker en_GB)."""
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    n = 300
    return Pools(
        first_names=tuple(fake.first_name() for _ in range(n)),
        last_names=tuple(fake.last_name() for _ in range(n)),
        streets=tuple(fake.street_address() for _ in range(n)),
        towns=tuple(fake.city() for _ in range(n)),
        postcodes=tuple(fake.postcode() for _ in range(n)),
        phones=tuple(fake.phone_number() for _ in range(n)),
        companies=tuple(fake.company() for _ in range(n)),
    )


CARE_HOMES = ("Willow Court Care Home", "Rosewood Lodge", "Meadowbank Nursing Home", "Oakfield House")
FUNDERS = ("Leeds City Council", "Manchester City Council", "Kent County Council", "NHS West Yorkshire ICB",
           "Birmingham City Council", "NHS Greater Manchester ICB", "Surrey County Council")
SUPPLIERS = ("Bidfood UK", "Boots Pharmacy (Care Services)", "NHS Supply Chain", "Brakes Catering",
             "Swift Care Staffing Agency", "Medequip Assistive Technology", "British Gas Business")
CARE_SERVICES = ("Residential care fees", "Nursing care fees (FNC)", "Dementia care fees",
                 "Respite stay", "Hairdressing", "Chiropody visit", "Day care session")
JOB_TITLES = ("Care Assistant", "Senior Care Assistant", "Registered Nurse", "Activities Coordinator",
              "Deputy Manager", "Chef", "Domestic Assistant", "Night Care Assistant", "Maintenance Officer")


def rng_for(seed: int, stream: str, index: int) -> random.Random:
    """A per-record random generator: the same (seed, stream, index) always gives the same record."""
    digest = hashlib.blake2b(f"{seed}:{stream}:{index}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def stable_uuid(seed: int, stream: str, index: int) -> str:
    """A UUID that encodes the record index in its last 12 hex digits (so look-ups need no table)."""
    prefix = hashlib.blake2b(f"{seed}:{stream}".encode(), digest_size=10).hexdigest()
    return str(uuid.UUID(prefix + f"{index:012x}"))


def uuid_index(value: str) -> int | None:
    """Inverse of :func:`stable_uuid` (the caller checks the prefix by comparing ids)."""
    try:
        return int(uuid.UUID(value).hex[-12:], 16)
    except ValueError:
        return None


# --------------------------------------------------------------------------- lazy data set


class Dataset:
    """A stream's records: ``n`` generated base records (ordered by update time) plus an overlay of writes.

    Base record ``i`` was last updated at ``BASE_TIME + i * step``; writes get the current time, so the
    whole set stays ordered by update time and ``since`` filters are a bisect, not a scan.
    """

    def __init__(self, n: int, make: Callable[[int, datetime], dict[str, Any]],
                 id_of: Callable[[int], str], index_of: Callable[[str], int | None],
                 step: timedelta = timedelta(minutes=7)) -> None:
        self.n = n
        self.make = make
        self.id_of = id_of
        self.index_of = index_of
        self.step = step
        self.overlay: dict[str, tuple[datetime, dict[str, Any]]] = {}
        self._overridden: list[int] = []
        self._last_write = datetime.now(UTC)

    def base_time(self, i: int) -> datetime:
        """Update time of base record ``i``."""
        return BASE_TIME + i * self.step

    def _base(self, i: int) -> dict[str, Any]:
        return self.make(i, self.base_time(i))

    def get(self, record_id: str) -> dict[str, Any] | None:
        """One record by id."""
        if record_id in self.overlay:
            return self.overlay[record_id][1]
        i = self.index_of(record_id)
        if i is None or not 0 <= i < self.n or self.id_of(i) != record_id:
            return None
        return self._base(i)

    def put(self, record_id: str, record: dict[str, Any]) -> datetime:
        """Store a created/updated record; returns its new update time (strictly increasing)."""
        now = max(datetime.now(UTC), self._last_write + timedelta(milliseconds=1))
        self._last_write = now
        self.overlay.pop(record_id, None)
        self.overlay[record_id] = (now, record)
        i = self.index_of(record_id)
        if i is not None and 0 <= i < self.n and self.id_of(i) == record_id:
            pos = bisect.bisect_left(self._overridden, i)
            if pos == len(self._overridden) or self._overridden[pos] != i:
                self._overridden.insert(pos, i)
        return now

    def _first_index(self, since: datetime | None) -> int:
        if since is None or since <= BASE_TIME:
            return 0
        k = (since - BASE_TIME) / self.step
        i = int(k)
        return min(self.n, i if i == k else i + 1)

    def _count_over(self, lo: int, hi: int) -> int:
        return bisect.bisect_right(self._overridden, hi) - bisect.bisect_left(self._overridden, lo)

    def page(self, since: datetime | None, offset: int, limit: int,
             where: Callable[[dict[str, Any]], bool] | None = None) -> tuple[list[dict[str, Any]], int]:
        """Records updated at or after ``since``, in update order: the slice and the total count."""
        if where is not None:
            everything = [r for r in self.iter(since) if where(r)]
            return everything[offset:offset + limit], len(everything)
        lo = self._first_index(since)
        base_count = (self.n - lo) - self._count_over(lo, self.n)
        tail = [rec for ts, rec in self.overlay.values() if since is None or ts >= since]
        total = base_count + len(tail)
        out: list[dict[str, Any]] = []
        if offset < base_count:
            j = lo + offset
            while True:  # find the offset-th base index at or after lo that is not overridden
                nxt = lo + offset + self._count_over(lo, j)
                if nxt == j:
                    break
                j = nxt
            while len(out) < limit and j < self.n:
                pos = bisect.bisect_left(self._overridden, j)
                if pos < len(self._overridden) and self._overridden[pos] == j:
                    j += 1
                    continue
                out.append(self._base(j))
                j += 1
        if len(out) < limit:
            start = max(0, offset - base_count)
            out.extend(tail[start:start + limit - len(out)])
        return out, total

    def iter(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every record updated at or after ``since`` (scan; for filters on small sets)."""
        offset = 0
        while True:
            chunk, total = self.page(since, offset, 1000)
            yield from chunk
            offset += len(chunk)
            if not chunk or offset >= total:
                return


# --------------------------------------------------------------------------- state, tokens, idempotency


@dataclass
class SandboxState:
    """Mutable state of one sandbox app."""

    config: SandboxConfig
    vendor: str
    faults: Faults
    rng: random.Random
    access_tokens: dict[str, float] = field(default_factory=dict)
    refresh_tokens: dict[str, float] = field(default_factory=dict)
    codes: dict[str, tuple[str, float]] = field(default_factory=dict)
    idempotency: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    calls: int = 0
    throttled: int = 0
    failed: int = 0
    minute_window: tuple[int, int] = (0, 0)
    day_count: int = 0
    webhooks_sent: list[dict[str, Any]] = field(default_factory=list)
    token_grants: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def issue_tokens(self) -> dict[str, Any]:
        """A fresh access token and a rotating refresh token."""
        access = secrets.token_urlsafe(24)
        refresh = secrets.token_urlsafe(32)
        now = time.time()
        self.access_tokens[access] = now + self.config.token_ttl_seconds
        self.refresh_tokens[refresh] = now + self.config.refresh_token_ttl_seconds
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": self.config.token_ttl_seconds}

    def token_valid(self, token: str | None) -> bool:
        """Whether a bearer token is known and unexpired (and tokens are not revoked)."""
        if not token or self.faults.revoke_tokens:
            return False
        exp = self.access_tokens.get(token)
        return exp is not None and exp > time.time()

    def count_call(self) -> tuple[int, int]:
        """Count an API call in the minute window; returns (calls this minute, calls today)."""
        minute = int(time.time() // 60)
        m, c = self.minute_window
        self.minute_window = (minute, c + 1 if m == minute else 1)
        self.day_count += 1
        return self.minute_window[1], self.day_count


def bearer(request: Request) -> str | None:
    """The bearer token of a request."""
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def idempotent_replay(state: SandboxState, key: str | None) -> Response | None:
    """The stored reply for an idempotency key seen before, or None."""
    if not key or key not in state.idempotency:
        return None
    status, body, headers = state.idempotency[key]
    return JSONResponse(body, status_code=status, headers=headers)


def remember(state: SandboxState, key: str | None, status: int, body: Any,
             headers: dict[str, str] | None = None) -> JSONResponse:
    """Store a reply under its idempotency key and return it."""
    if key:
        state.idempotency[key] = (status, body, headers or {})
    return JSONResponse(body, status_code=status, headers=headers or {})


# --------------------------------------------------------------------------- fault middleware

ThrottleFactory = Callable[[SandboxState], Response]
CONTROL_PREFIX = "/_sandbox"


class FaultMiddleware:
    """ASGI middleware injecting the configured faults into API calls (not control or OAuth paths)."""

    def __init__(self, app: ASGIApp, state: SandboxState, throttle: ThrottleFactory,
                 exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.state = state
        self.throttle = throttle
        self.exempt = (CONTROL_PREFIX, *exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if path.startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        st = self.state
        f = st.faults
        st.calls += 1
        minute_calls, _ = st.count_call()
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if f.hang_rate and st.rng.random() < f.hang_rate:
            await asyncio.sleep(f.hang_seconds)
        limit = st.config.rate_limit_per_minute
        if f.storm_429 > 0 or (limit is not None and minute_calls > limit):
            if f.storm_429 > 0:
                f.storm_429 -= 1
            st.throttled += 1
            await self.throttle(st)(scope, receive, send)
            return
        if f.storm_5xx > 0 or (f.error_rate and st.rng.random() < f.error_rate):
            if f.storm_5xx > 0:
                f.storm_5xx -= 1
            st.failed += 1
            resp = JSONResponse({"message": "sandbox injected failure"}, status_code=f.error_status)
            await resp(scope, receive, send)
            return
        if f.slow_drip_ms:
            await self.app(scope, receive, self._drip(send, f.slow_drip_ms / 1000))
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _drip(send: Send, delay: float) -> Callable[[Message], Awaitable[None]]:
        async def dripping(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            for i in range(0, len(body), 512):
                await asyncio.sleep(delay)
                await send({"type": "http.response.body", "body": body[i:i + 512], "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": more})

        return dripping


# --------------------------------------------------------------------------- routes shared by vendors


def add_control_routes(app: FastAPI, state: SandboxState) -> None:
    """``/_sandbox/faults`` (GET/POST/DELETE), ``/_sandbox/expire-tokens``, ``/_sandbox/stats``."""

    @app.get(f"{CONTROL_PREFIX}/faults")
    async def get_faults() -> dict[str, Any]:
        return state.faults.model_dump()

    @app.post(f"{CONTROL_PREFIX}/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        patch = await request.json()
        state.faults = Faults.model_validate({**state.faults.model_dump(), **patch})
        return state.faults.model_dump()

    @app.delete(f"{CONTROL_PREFIX}/faults")
    async def clear_faults() -> dict[str, Any]:
        state.faults = Faults()
        return state.faults.model_dump()

    @app.post(f"{CONTROL_PREFIX}/expire-tokens")
    async def expire_tokens() -> dict[str, int]:
        for tok in state.access_tokens:
            state.access_tokens[tok] = 0.0
        return {"expired": len(state.access_tokens)}

    @app.post(f"{CONTROL_PREFIX}/tokens")
    async def mint_tokens() -> dict[str, Any]:
        """Skip the browser consent step: issue a token pair directly (tests, demo mode)."""
        return state.issue_tokens()

    @app.get(f"{CONTROL_PREFIX}/stats")
    async def stats() -> dict[str, Any]:
        return {"calls": state.calls, "throttled": state.throttled, "failed": state.failed,
                "token_grants": state.token_grants, "webhooks_sent": len(state.webhooks_sent),
                "records": {k: d.n + sum(1 for rid in d.overlay if d.get(rid) is not None) - len(d._overridden)
                            for k, d in state.datasets.items()}}


OAuthErrorFactory = Callable[[int, str, str], Response]


def oauth_error(status: int, error: str, description: str) -> Response:
    """RFC 6749 error reply."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def add_oauth_routes(app: FastAPI, state: SandboxState, *, authorize_path: str, token_path: str,
                     error: OAuthErrorFactory = oauth_error) -> None:
    """A sandbox OAuth2 server: authorize (consent page, auto-approve redirect) and token endpoints.

    Access tokens expire after ``token_ttl_seconds``; refresh tokens rotate (a used one is rejected with
    ``invalid_grant``); client credentials are also granted.
    """

    @app.get(authorize_path, response_model=None)
    async def authorize(request: Request) -> Response:
        q = request.query_params
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri or q.get("response_type", "code") != "code":
            return HTMLResponse("<h1>Invalid request</h1><p>redirect_uri and response_type=code are required.</p>",
                                status_code=400)
        code = secrets.token_urlsafe(16)
        state.codes[code] = (redirect_uri, time.time() + 60)
        sep = "&" if "?" in redirect_uri else "?"
        target = f"{redirect_uri}{sep}code={code}" + (f"&state={q['state']}" if q.get("state") else "")
        if q.get("prompt") == "consent":
            scopes = q.get("scope", "")
            return HTMLResponse(
                f"<html><body><h1>{state.vendor} sandbox</h1><p>CareHub asks for access: {scopes}</p>"
                f'<a id="allow" href="{target}">Allow access</a></body></html>')
        return RedirectResponse(target, status_code=302)

    @app.post(token_path, response_model=None)
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if grant == "authorization_code":
            entry = state.codes.pop(str(form.get("code", "")), None)
            if entry is None or entry[1] < time.time():
                return error(400, "invalid_grant", "authorization code is invalid, used or expired")
            return JSONResponse(state.issue_tokens())
        if grant == "refresh_token":
            rt = str(form.get("refresh_token", ""))
            exp = state.refresh_tokens.pop(rt, None)  # rotation: a refresh token works once
            if exp is None or exp < time.time() or state.faults.revoke_tokens:
                return error(400, "invalid_grant", "refresh token is invalid, used or revoked")
            return JSONResponse(state.issue_tokens())
        if grant == "client_credentials":
            issued = state.issue_tokens()
            issued.pop("refresh_token")
            return JSONResponse(issued)
        return error(400, "unsupported_grant_type", f"grant_type `{grant}` is not supported")


# --------------------------------------------------------------------------- webhooks


async def send_webhook(state: SandboxState, body: dict[str, Any], headers_for: Callable[[bytes], dict[str, str]],
                       *, url: str | None = None, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """POST a signed delivery to the configured URL; returns the receiver's status (0 if unreachable)."""
    target = url or state.config.webhook_url
    if not target:
        return 0
    raw = json.dumps(body, separators=(",", ":")).encode()
    state.webhooks_sent.append(body)
    try:
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            resp = await client.post(target, content=raw, headers={"Content-Type": "application/json",
                                                                   **headers_for(raw)})
            return resp.status_code
    except httpx.HTTPError:
        return 0


def hmac_b64(key: str, raw: bytes) -> str:
    """base64(HMAC-SHA256(key, raw)), the scheme of Xero and Intuit."""
    return base64.b64encode(hmac.new(key.encode(), raw, hashlib.sha256).digest()).decode()


def new_state(config: SandboxConfig, vendor: str) -> SandboxState:
    """Fresh state for a vendor sandbox."""
    return SandboxState(config=config, vendor=vendor, faults=config.faults.model_copy(),
                        rng=random.Random(config.seed))


def iso_date(d: date) -> str:
    """``YYYY-MM-DD``."""
    return d.isoformat()
