"""Slack sandbox: Web API methods under ``/api/{method}``, OAuth v2 with token rotation, Events API deliveries.

Shaped by ``slackapi/slack-api-specs`` (``slack_web_openapi_v2_without_examples.json`` and
``slack_events_api_async_v1.json``) and Slack's docs where the spec is older than the API:

* every reply is HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": "<code>"}``, except
  throttling: HTTP 429, ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``;
* tokens come as ``Authorization: Bearer`` (or a ``token`` argument); an expired rotating token answers
  ``token_expired``, an unknown one ``invalid_auth``, none ``not_authed``;
* ``conversations.list`` and ``conversations.history`` page with ``cursor``/``limit`` and
  ``response_metadata.next_cursor`` (empty at the end); history is newest first and honours ``oldest``,
  ``latest`` and ``inclusive``;
* ``chat.postMessage`` takes JSON or form arguments; a repeated ``client_msg_id`` in the same channel
  returns the message already posted;
* per-method tier limits (off until ``POST /_sandbox/slack/tiers``), Events API deliveries signed
  ``v0=hex(HMAC-SHA256(signing secret, "v0:{timestamp}:{body}"))`` including the ``url_verification``
  handshake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    pools,
    rng_for,
    send_webhook,
)

TEAM_ID = "T0WILLOWCT1"
TEAM_NAME = "Willow Court Care Group"
APP_ID = "A0CAREHUB01"
BOT_USER = "U0CAREHUBBT"
BOT_ID = "B0CAREHUB01"
CHANNEL_NAMES = ("handover", "nurses-station", "activities", "kitchen", "maintenance", "rota-swaps", "management",
                 "infection-control", "family-liaison", "training", "general", "random")
FIRST_TS = 1_767_225_600  # 2026-01-01T00:00:00Z
STEP_SECONDS = 420
TIERS = {"conversations.list": 20, "conversations.history": 50, "chat.postMessage": 60, "auth.test": 100}
EVENTS = ("{name} in room {room} had a settled night and ate a good breakfast.",
          "Reminder: {name} (room {room}) has a GP visit at 2pm today.",
          "{name} in room {room} declined lunch; fluids encouraged and charted.",
          "Family of {name} (room {room}) called, will visit on Sunday.",
          "Handover: {name} in room {room} needs a repositioning check every two hours.",
          "Pharmacy delivery for {name} (room {room}) has arrived and been checked in.")


def channel_id(i: int) -> str:
    """Channel ids match the spec's ``^[CGD][A-Z0-9]{8,}$``."""
    return f"C0WC{i:07d}"


def user_id(i: int) -> str:
    """User ids match ``^[UW][A-Z0-9]{2,}$``."""
    return f"U0WC{i:05d}"


def ts_at(seconds: float) -> str:
    """A message ``ts``: ten digits, a dot, six digits."""
    return f"{seconds:.6f}"


CHANNEL_ID = channel_id(0)


def _channel(i: int) -> dict[str, Any]:
    name = CHANNEL_NAMES[i % len(CHANNEL_NAMES)] + ("" if i < len(CHANNEL_NAMES) else f"-{i}")
    private = name in ("management", "nurses-station")
    return {"id": channel_id(i), "name": name, "is_channel": True, "is_group": False, "is_im": False,
            "is_mpim": False, "created": FIRST_TS - 86400 * (400 - i), "creator": user_id(1),
            "is_archived": False, "is_general": name == "general", "unlinked": 0, "name_normalized": name,
            "is_shared": False, "is_org_shared": False, "is_pending_ext_shared": False,
            "pending_shared": [], "parent_conversation": None, "is_ext_shared": False,
            "shared_team_ids": [TEAM_ID], "is_member": not private or name == "nurses-station",
            "is_private": private, "num_members": 12 + i,
            "topic": {"value": f"{CARE_HOMES[i % len(CARE_HOMES)]} {name.replace('-', ' ')}", "creator": user_id(1),
                      "last_set": FIRST_TS},
            "purpose": {"value": f"Team channel for {name.replace('-', ' ')}", "creator": user_id(1),
                        "last_set": FIRST_TS},
            "previous_names": []}


def _message(seed: int, channel: str, i: int) -> dict[str, Any]:
    r = rng_for(seed, f"slack.{channel}", i)
    p = pools(seed)
    text = r.choice(EVENTS).format(name=f"{r.choice(p.first_names)} {r.choice(p.last_names)[0]}.",
                                   room=r.randrange(1, 60))
    msg: dict[str, Any] = {"type": "message", "user": user_id(r.randrange(2, 40)), "text": text,
                           "ts": ts_at(FIRST_TS + i * STEP_SECONDS + (i % 997) / 1_000_000), "team": TEAM_ID,
                           "client_msg_id": str(uuid.UUID(int=r.getrandbits(128)))}
    if i % 17 == 5:
        msg["reply_count"] = 2
        msg["thread_ts"] = msg["ts"]
        msg["reply_users"] = [user_id(3), user_id(4)]
        msg["reply_users_count"] = 2
        msg["latest_reply"] = ts_at(FIRST_TS + i * STEP_SECONDS + 60)
    if i % 11 == 3:
        msg["reactions"] = [{"name": "white_check_mark", "users": [user_id(2)], "count": 1}]
    if i % 29 == 0:
        msg.pop("client_msg_id")
        msg.update(subtype="channel_join", text=f"<@{msg['user']}> has joined the channel")
    return msg


def _cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _uncursor(cursor: str, kind: str) -> str | None:
    try:
        k, _, v = base64.b64decode(cursor.encode(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return v if k == kind else None


def _fail(error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error, **extra})


def _throttle(state: SandboxState) -> Response:
    headers = {}
    if state.faults.retry_after is not None:
        headers["Retry-After"] = state.faults.retry_after
    return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429, headers=headers)


def sign_event(secret: str, body: bytes, timestamp: str) -> str:
    """``X-Slack-Signature`` of a delivery."""
    return "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Slack sandbox app."""
    cfg = config or SandboxConfig(token_ttl_seconds=43200)
    state = new_state(cfg, "Slack")
    seed = cfg.seed
    channels = [_channel(i) for i in range(cfg.count("conversations", len(CHANNEL_NAMES)))]
    by_id = {c["id"]: c for c in channels}
    history: dict[str, list[dict[str, Any]]] = {
        c["id"]: [_message(seed, c["id"], i) for i in range(cfg.count("messages") if c["id"] == CHANNEL_ID else 3)]
        for c in channels}
    posted: dict[tuple[str, str], dict[str, Any]] = {}
    tier_calls: dict[str, tuple[int, int]] = {}
    state.extra.update(history=history, posted=posted, tiers_enabled=False, tier_limits=dict(TIERS),
                       lose_replies=0)
    app = FastAPI(title="Slack sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/api/oauth.", "/oauth/"))
    add_control_routes(app, state)

    async def args(request: Request) -> dict[str, Any]:
        out: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            ctype = request.headers.get("content-type", "")
            if ctype.startswith("application/json"):
                try:
                    body = await request.json()
                except ValueError:
                    return {"__error__": "invalid_json"}
                if not isinstance(body, dict):
                    return {"__error__": "json_not_object"}
                out.update(body)
            elif ctype.startswith("application/x-www-form-urlencoded") or ctype.startswith("multipart/"):
                out.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
        return out

    def auth_error(request: Request, a: dict[str, Any]) -> str | None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else str(a.get("token") or "")
        if not token:
            return "not_authed"
        if state.faults.revoke_tokens:
            return "token_revoked"
        exp = state.access_tokens.get(token)
        if exp is None:
            return "invalid_auth"
        return "token_expired" if exp <= time.time() else None

    def tier_limited(method: str) -> Response | None:
        if not state.extra["tiers_enabled"]:
            return None
        limit = int(state.extra["tier_limits"].get(method, 100))
        window = float(state.extra.get("tier_window_seconds", 60))
        slot = int(time.time() // window)
        m, n = tier_calls.get(method, (slot, 0))
        n = n + 1 if m == slot else 1
        tier_calls[method] = (slot, n)
        if n > limit:
            state.throttled += 1
            wait = max(1, int(window - time.time() % window + 0.999))
            return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429,
                                headers={"Retry-After": str(wait)})
        return None

    async def begin(request: Request, method: str) -> tuple[dict[str, Any], Response | None]:
        a = await args(request)
        if "__error__" in a:
            return a, _fail(str(a["__error__"]))
        problem = auth_error(request, a)
        if problem:
            return a, _fail(problem)
        return a, tier_limited(method)

    def int_arg(a: dict[str, Any], name: str, default: int, maximum: int) -> int | None:
        raw = a.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(str(raw))
        except ValueError:
            return None
        return max(1, min(maximum, value))

    @app.api_route("/api/auth.test", methods=["GET", "POST"])
    async def auth_test(request: Request) -> Response:
        _, stop = await begin(request, "auth.test")
        if stop:
            return stop
        return JSONResponse({"ok": True, "url": "https://willowcourt.slack.com/", "team": TEAM_NAME,
                             "user": "carehub", "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID,
                             "is_enterprise_install": False})

    @app.api_route("/api/conversations.list", methods=["GET", "POST"])
    async def conversations_list(request: Request) -> Response:
        a, stop = await begin(request, "conversations.list")
        if stop:
            return stop
        limit = int_arg(a, "limit", 100, 1000)
        if limit is None:
            return _fail("invalid_arg_name")
        types = set(str(a.get("types") or "public_channel").split(","))
        rows = [c for c in channels
                if ("private_channel" in types and c["is_private"]) or ("public_channel" in types and not c["is_private"])]
        if str(a.get("exclude_archived", "false")).lower() in ("true", "1"):
            rows = [c for c in rows if not c["is_archived"]]
        offset = 0
        if a.get("cursor"):
            raw = _uncursor(str(a["cursor"]), "offset")
            if raw is None or not raw.isdigit():
                return _fail("invalid_cursor")
            offset = int(raw)
        page = rows[offset:offset + limit]
        nxt = _cursor("offset", str(offset + limit)) if offset + limit < len(rows) else ""
        return JSONResponse({"ok": True, "channels": page, "response_metadata": {"next_cursor": nxt}})

    def number(value: Any) -> float | None:
        if value in (None, ""):
            return None
        try:
            return float(str(value))
        except ValueError:
            return None

    @app.api_route("/api/conversations.history", methods=["GET", "POST"])
    async def conversations_history(request: Request) -> Response:
        a, stop = await begin(request, "conversations.history")
        if stop:
            return stop
        channel = str(a.get("channel") or "")
        if channel not in history:
            return _fail("channel_not_found")
        if not by_id[channel]["is_member"] and by_id[channel]["is_private"]:
            return _fail("channel_not_found")
        limit = int_arg(a, "limit", 100, 999)
        if limit is None:
            return _fail("invalid_arg_name")
        oldest, latest = number(a.get("oldest")), number(a.get("latest"))
        if a.get("oldest") not in (None, "") and oldest is None:
            return _fail("invalid_ts_oldest")
        if a.get("latest") not in (None, "") and latest is None:
            return _fail("invalid_ts_latest")
        inclusive = str(a.get("inclusive", "false")).lower() in ("true", "1")
        before = latest
        if a.get("cursor"):
            raw = _uncursor(str(a["cursor"]), "next_ts")
            if raw is None or number(raw) is None:
                return _fail("invalid_cursor")
            before, inclusive_before = number(raw), False
        else:
            inclusive_before = inclusive
        rows = []
        for msg in reversed(history[channel]):  # newest first
            t = float(msg["ts"])
            if before is not None and (t > before or (t == before and not inclusive_before)):
                continue
            if oldest is not None and (t < oldest or (t == oldest and not inclusive)):
                break
            rows.append(msg)
            if len(rows) > limit:
                break
        has_more = len(rows) > limit
        page = rows[:limit]
        body: dict[str, Any] = {"ok": True, "messages": page, "has_more": has_more, "pin_count": 0,
                                "channel_actions_ts": None, "channel_actions_count": 0}
        body["response_metadata"] = {"next_cursor": _cursor("next_ts", page[-1]["ts"]) if has_more else ""}
        return JSONResponse(body)

    @app.api_route("/api/chat.postMessage", methods=["POST"])
    async def post_message(request: Request) -> Response:
        a, stop = await begin(request, "chat.postMessage")
        if stop:
            return stop
        channel = str(a.get("channel") or "")
        if channel not in history:
            return _fail("channel_not_found")
        if by_id[channel]["is_archived"]:
            return _fail("is_archived")
        if not by_id[channel]["is_member"]:
            return _fail("not_in_channel")
        text = a.get("text")
        if not text and not a.get("blocks") and not a.get("attachments"):
            return _fail("no_text")
        if text is not None and len(str(text)) > 40_000:
            return _fail("msg_too_long")
        client_msg_id = str(a.get("client_msg_id") or "")
        if client_msg_id and (channel, client_msg_id) in posted:
            return JSONResponse({"ok": True, "channel": channel, **posted[(channel, client_msg_id)]})
        last = float(history[channel][-1]["ts"]) if history[channel] else 0.0
        ts = ts_at(max(time.time(), last + 0.000001))
        msg: dict[str, Any] = {"type": "message", "text": str(text or ""), "ts": ts, "user": BOT_USER,
                               "bot_id": BOT_ID, "team": TEAM_ID}
        if client_msg_id:
            msg["client_msg_id"] = client_msg_id
        if a.get("thread_ts"):
            msg["thread_ts"] = str(a["thread_ts"])
        history[channel].append(msg)
        if client_msg_id:
            posted[(channel, client_msg_id)] = {"ts": ts, "message": msg}
        if state.extra["lose_replies"] > 0:  # posted, but the caller never hears back
            state.extra["lose_replies"] -= 1
            return JSONResponse({"ok": False, "error": "internal_error"}, status_code=500)
        return JSONResponse({"ok": True, "channel": channel, "ts": ts, "message": msg})

    # ------------------------------------------------------------------ OAuth v2 (with token rotation)

    @app.get("/oauth/v2/authorize", response_model=None)
    async def authorize(request: Request) -> Response:
        q = request.query_params
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri or not q.get("client_id"):
            return HTMLResponse("<h1>Invalid request</h1><p>client_id and redirect_uri are required.</p>", 400)
        code = secrets.token_urlsafe(16)
        state.codes[code] = (redirect_uri, time.time() + 600)
        sep = "&" if "?" in redirect_uri else "?"
        target = f"{redirect_uri}{sep}code={code}" + (f"&state={q['state']}" if q.get("state") else "")
        if q.get("prompt") == "consent":
            return HTMLResponse(f"<html><body><h1>Slack sandbox</h1><p>CareHub asks to join {TEAM_NAME}: "
                                f"{q.get('scope', '')}</p><a id=\"allow\" href=\"{target}\">Allow</a></body></html>")
        return RedirectResponse(target, status_code=302)

    def token_reply(issued: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "app_id": APP_ID, "authed_user": {"id": user_id(1)},
                "scope": "channels:read,channels:history,groups:read,groups:history,chat:write",
                "token_type": "bot", "access_token": "xoxe.xoxb-1-" + issued["access_token"],
                "bot_user_id": BOT_USER, "team": {"id": TEAM_ID, "name": TEAM_NAME}, "enterprise": None,
                "is_enterprise_install": False, "expires_in": issued["expires_in"],
                "refresh_token": "xoxe-1-" + issued["refresh_token"]}

    def issue() -> dict[str, Any]:
        issued = state.issue_tokens()
        reply = token_reply(issued)
        # the stored tokens are the prefixed ones the client sees
        state.access_tokens[reply["access_token"]] = state.access_tokens.pop(issued["access_token"])
        state.refresh_tokens[reply["refresh_token"]] = state.refresh_tokens.pop(issued["refresh_token"])
        return reply

    @app.api_route("/api/oauth.v2.access", methods=["GET", "POST"])
    async def oauth_access(request: Request) -> Response:
        a = await args(request)
        grant = str(a.get("grant_type") or ("authorization_code" if a.get("code") else ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if not a.get("client_id") or not a.get("client_secret"):
            return _fail("invalid_client_id")
        if grant == "authorization_code":
            entry = state.codes.pop(str(a.get("code", "")), None)
            if entry is None or entry[1] < time.time():
                return _fail("invalid_code")
            return JSONResponse(issue())
        if grant == "refresh_token":
            exp = state.refresh_tokens.pop(str(a.get("refresh_token", "")), None)
            if exp is None or exp < time.time() or state.faults.revoke_tokens:
                return _fail("invalid_refresh_token")
            return JSONResponse(issue())
        return _fail("invalid_grant_type")

    @app.post("/_sandbox/slack/tokens")
    async def mint() -> dict[str, Any]:
        """A bot token pair without the browser step (tests, demo mode)."""
        return issue()

    @app.post("/_sandbox/slack/tiers")
    async def tiers(request: Request) -> dict[str, Any]:
        """Turn per-method tier limits on or off; optionally override limits per method."""
        body = await request.json()
        state.extra["tiers_enabled"] = bool(body.get("enabled", True))
        state.extra["tier_limits"].update({k: int(v) for k, v in (body.get("limits") or {}).items()})
        state.extra["tier_window_seconds"] = float(body.get("window_seconds", 60))  # shorter windows for tests
        tier_calls.clear()
        return {"enabled": state.extra["tiers_enabled"], "limits": state.extra["tier_limits"]}

    @app.post("/_sandbox/slack/lose-replies")
    async def lose_replies(request: Request) -> dict[str, int]:
        """The next N posts are made but answered with HTTP 500, as if the reply were lost."""
        state.extra["lose_replies"] = int((await request.json()).get("count", 1))
        return {"lose_replies": state.extra["lose_replies"]}

    # ------------------------------------------------------------------ Events API

    async def deliver(payload: dict[str, Any], *, timestamp: str | None = None, secret: str | None = None) -> int:
        ts = timestamp or str(int(time.time()))

        def headers(raw: bytes) -> dict[str, str]:
            return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign_event(secret or cfg.webhook_key, raw, ts)}

        return await send_webhook(state, payload, headers, transport=getattr(app.state, "webhook_transport", None))

    def event_envelope(event: dict[str, Any]) -> dict[str, Any]:
        return {"token": "sandbox-verification-token", "team_id": TEAM_ID, "api_app_id": APP_ID, "event": event,
                "type": "event_callback", "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
                "event_time": int(float(event["event_ts"])), "authed_users": [BOT_USER],
                "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER, "is_bot": True,
                                    "is_enterprise_install": False}],
                "is_ext_shared_channel": False, "event_context": "4-" + uuid.uuid4().hex}

    @app.post("/_sandbox/slack/events/send")
    async def send_event(request: Request) -> dict[str, Any]:
        """Send a signed Events API delivery: ``{"type": "url_verification"}`` or a message event.

        ``age_seconds`` back-dates the timestamp (replay tests); ``secret`` signs with another secret.
        """
        body = await request.json() if await request.body() else {}
        ts = str(int(time.time()) - int(body.get("age_seconds", 0)))
        if body.get("type") == "url_verification":
            payload = {"token": "sandbox-verification-token", "challenge": secrets.token_urlsafe(24),
                       "type": "url_verification"}
        else:
            now = ts_at(time.time())
            payload = event_envelope({"type": "message", "channel": body.get("channel", CHANNEL_ID),
                                      "user": user_id(3), "text": body.get("text", "Fire drill at 3pm today."),
                                      "ts": now, "event_ts": now, "channel_type": "channel"})
        status = await deliver(payload, timestamp=ts, secret=body.get("secret"))
        return {"status": status, "payload": payload}

    app.state.deliver = deliver
    app.state.config = {"channel_id": CHANNEL_ID}
    app.state.started = datetime.now(UTC).isoformat()
    return app
