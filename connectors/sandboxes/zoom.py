"""Zoom sandbox: Server-to-Server OAuth, users and meetings (API v2), signed webhooks with URL validation.

``POST /oauth/token?grant_type=account_credentials&account_id=…`` with basic client credentials answers an
hour-long bearer token; lists answer ``{page_size, total_records, next_page_token, <items>}`` with
``page_size`` at most 300 (``next_page_token`` is empty on the last page); errors ``{"code", "message"}``;
429 with ``X-RateLimit-Category``/``X-RateLimit-Type``. Webhooks are signed ``x-zm-signature:
v0=<hex HMAC-SHA256(secret token, "v0:{ts}:{body}")>`` with ``x-zm-request-timestamp``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    Dataset,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    bearer,
    new_state,
    pools,
    rng_for,
    send_webhook,
)

ACCOUNT_ID = "Zx9kQ2rLTbW4sandbox"
CLIENT_ID = "zoomClientSandbox01"
CLIENT_SECRET = "zoom-sandbox-client-secret-5f6e7d8c"
USER_EMAIL = "reception@willowcourt.example.org"
USER_ID = "KDcuGIm1QgePTO8WbOqwIQ"
WEBHOOK_SECRET_TOKEN = "zoom-sandbox-webhook-secret-token"
MEETING_BASE = 85_000_000_001
MAX_PAGE = 300
TOPICS = ("GP video review", "Family video call", "Care review with social worker", "Dietitian consultation",
          "Physiotherapy review", "Multi-disciplinary team meeting", "Pharmacist medication review")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zoom_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Zoom's error body."""
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers or {})


def sign_delivery(body: bytes, timestamp: str, secret: str = WEBHOOK_SECRET_TOKEN) -> str:
    """The ``x-zm-signature`` Zoom puts on a delivery (the sender side, for tests)."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _throttle(state: SandboxState) -> Response:
    headers = {"X-RateLimit-Category": "Medium", "X-RateLimit-Type": "QPS"}
    if state.faults.retry_after is not None:
        headers["Retry-After"] = state.faults.retry_after
    return zoom_error(429, 429, "You have reached the maximum per-second rate limit for this API. Try again later.",
                      headers)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=") if offset else ""


def _offset(value: str) -> int | None:
    try:
        return int(json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))["o"])
    except (ValueError, KeyError, TypeError):
        return None


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Zoom sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Zoom")
    seed = cfg.seed

    def user(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "users", i)
        p = pools(seed)
        first, last = r.choice(p.first_names), r.choice(p.last_names)
        return {"id": USER_ID if i == 0 else f"u{i:021d}", "first_name": "Reception" if i == 0 else first,
                "last_name": CARE_HOMES[0] if i == 0 else last,
                "email": USER_EMAIL if i == 0 else f"{first}.{last}{i}@willowcourt.example.org".lower(),
                "type": 2, "pmi": 3_000_000_000 + i, "timezone": "Europe/London", "verified": 1,
                "dept": CARE_HOMES[i % len(CARE_HOMES)], "created_at": _iso(at), "status": "active",
                "role_id": "2", "user_created_at": _iso(at)}

    def meeting(i: int, at: datetime) -> dict[str, Any]:
        r = rng_for(seed, "meetings", i)
        topic = r.choice(TOPICS)
        start = (at + timedelta(days=r.randrange(1, 30))).replace(minute=r.choice((0, 15, 30, 45)), second=0)
        mid = MEETING_BASE + i
        return {"uuid": base64.b64encode(hashlib.md5(f"{seed}{i}".encode()).digest()).decode(),  # noqa: S324
                "id": mid, "host_id": USER_ID, "topic": f"{topic} - {CARE_HOMES[i % len(CARE_HOMES)]}",
                "agenda": f"RES{r.randrange(1, 400):05d} | {topic}", "type": 2, "start_time": _iso(start),
                "duration": r.choice((15, 20, 30, 45, 60)), "timezone": "Europe/London", "created_at": _iso(at),
                "join_url": f"https://us02web.zoom.us/j/{mid}?pwd={secrets.token_urlsafe(12)}",
                "pmi": None}

    state.datasets = {
        "users": Dataset(cfg.count("users", 12), user, lambda i: USER_ID if i == 0 else f"u{i:021d}",
                         lambda v: 0 if v == USER_ID else (int(v[1:]) if v[1:].isdigit() else None)),
        "meetings": Dataset(cfg.count("meetings"), meeting, lambda i: str(MEETING_BASE + i),
                            lambda v: int(v) - MEETING_BASE if v.isdigit() else None),
    }
    app = FastAPI(title="Zoom sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth/",))
    add_control_routes(app, state)

    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        q = request.query_params
        grant = q.get("grant_type", "")
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if cfg.require_valid_client and request.headers.get("authorization") != expected:
            return JSONResponse({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}, 401)
        if grant != "account_credentials":
            return JSONResponse({"reason": "Unsupported grant type", "error": "unsupported_grant_type"}, 400)
        if (cfg.require_valid_client and q.get("account_id") != ACCOUNT_ID) or state.faults.revoke_tokens:
            return JSONResponse({"reason": "Invalid account_id", "error": "invalid_request"}, 400)
        issued = state.issue_tokens()
        return JSONResponse({"access_token": issued["access_token"], "token_type": "bearer",
                             "expires_in": issued["expires_in"], "scope": "meeting:read:admin meeting:write:admin "
                                                                          "user:read:admin",
                             "api_url": "https://api.zoom.us"})

    def denied(request: Request) -> Response | None:
        if not state.token_valid(bearer(request)):
            return zoom_error(401, 124, "Invalid access token.")
        return None

    def user_or_404(user_id: str) -> Response | None:
        if user_id not in ("me", USER_ID, USER_EMAIL):
            return zoom_error(404, 1001, f"User does not exist: {user_id}.")
        return None

    def paged(name: str, key: str, request: Request) -> Response:
        q = request.query_params
        try:
            size = int(q.get("page_size") or 30)
        except ValueError:
            return zoom_error(400, 300, "Invalid page_size")
        if not 1 <= size <= MAX_PAGE:
            return zoom_error(400, 300, f"page_size must be between 1 and {MAX_PAGE}")
        offset = 0
        if q.get("next_page_token"):
            found = _offset(q["next_page_token"])
            if found is None:
                return zoom_error(400, 300, "Invalid next_page_token, or it has expired.")
            offset = found
        items, total = state.datasets[name].page(None, offset, size)
        nxt = offset + len(items)
        return JSONResponse({"page_size": size, "total_records": total,
                             "next_page_token": _token(nxt) if nxt < total else "", key: items})

    @app.get("/users")
    async def users(request: Request) -> Response:
        return denied(request) or paged("users", "users", request)

    @app.get("/users/{user_id}/meetings")
    async def meetings(user_id: str, request: Request) -> Response:
        if (d := denied(request) or user_or_404(user_id)) is not None:
            return d
        if request.query_params.get("type", "scheduled") not in ("scheduled", "live", "upcoming", "upcoming_meetings",
                                                                  "previous_meetings"):
            return zoom_error(400, 300, "Invalid meeting type")
        return paged("meetings", "meetings", request)

    @app.get("/meetings/{meeting_id}")
    async def get_meeting(meeting_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        rec = state.datasets["meetings"].get(meeting_id)
        if rec is None:
            return zoom_error(404, 3001, f"Meeting {meeting_id} is not found or has expired.")
        return JSONResponse(rec)

    @app.post("/users/{user_id}/meetings")
    async def create_meeting(user_id: str, request: Request) -> Response:
        if (d := denied(request) or user_or_404(user_id)) is not None:
            return d
        try:
            el = await request.json()
        except ValueError:
            return zoom_error(400, 300, "Request Body should be a valid JSON object.")
        if not isinstance(el, dict) or not str(el.get("topic") or "").strip():
            return zoom_error(400, 300, "Validation Failed. topic: must not be blank.")
        if len(str(el["topic"])) > 200:
            return zoom_error(400, 300, "Validation Failed. topic: size must be at most 200 characters.")
        data = state.datasets["meetings"]
        mid = MEETING_BASE + data.n + len(data.overlay) + 1000
        now = datetime.now(UTC)
        rec = {"uuid": base64.b64encode(uuid.uuid4().bytes).decode(), "id": mid, "host_id": USER_ID,
               "host_email": USER_EMAIL, "topic": el["topic"], "agenda": el.get("agenda", ""),
               "type": int(el.get("type", 2)), "status": "waiting", "start_time": el.get("start_time") or _iso(now),
               "duration": int(el.get("duration", 30)), "timezone": el.get("timezone", "Europe/London"),
               "created_at": _iso(now), "join_url": f"https://us02web.zoom.us/j/{mid}?pwd={secrets.token_urlsafe(12)}",
               "start_url": f"https://us02web.zoom.us/s/{mid}?zak={secrets.token_urlsafe(24)}",
               "password": secrets.token_hex(3), "settings": {"waiting_room": True, "join_before_host": False,
                                                             **(el.get("settings") or {})}}
        data.put(str(mid), rec)
        if cfg.webhook_url:
            await emit("meeting.created", {"account_id": ACCOUNT_ID, "operator": USER_EMAIL,
                                           "object": {k: rec[k] for k in ("uuid", "id", "host_id", "topic", "type",
                                                                          "start_time", "duration", "timezone")}})
        return JSONResponse(rec, status_code=201)

    async def emit(event: str, payload: dict[str, Any]) -> int:
        body = {"event": event, "event_ts": int(time.time() * 1000), "payload": payload}
        ts = str(int(time.time()))
        return await send_webhook(state, body, lambda raw: {"x-zm-signature": sign_delivery(raw, ts),
                                                            "x-zm-request-timestamp": ts},
                                  transport=getattr(app.state, "webhook_transport", None))

    @app.post("/_sandbox/webhooks/url-validation")
    async def url_validation() -> dict[str, Any]:
        """Zoom's endpoint check: a signed ``endpoint.url_validation``; the reply must carry the HMAC."""
        plain = secrets.token_urlsafe(16)
        body = {"payload": {"plainToken": plain}, "event_ts": int(time.time() * 1000),
                "event": "endpoint.url_validation"}
        raw = json.dumps(body, separators=(",", ":")).encode()
        ts = str(int(time.time()))
        async with httpx.AsyncClient(transport=getattr(app.state, "webhook_transport", None), timeout=3) as c:
            resp = await c.post(str(cfg.webhook_url), content=raw, headers={
                "Content-Type": "application/json", "x-zm-signature": sign_delivery(raw, ts),
                "x-zm-request-timestamp": ts})
        expected = hmac.new(WEBHOOK_SECRET_TOKEN.encode(), plain.encode(), hashlib.sha256).hexdigest()
        reply = resp.json() if resp.status_code == 200 else {}
        return {"status": resp.status_code, "validated": reply == {"plainToken": plain, "encryptedToken": expected}}

    app.state.emit = emit
    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    app.state.config = {"account_id": ACCOUNT_ID, "user_id": USER_EMAIL}
    app.state.started = time.time()
    return app
