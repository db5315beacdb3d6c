"""Microsoft Teams sandbox: the Entra ID token endpoint and the Microsoft Graph v1.0 Teams resources.

Shaped by ``microsoftgraph/msgraph-metadata`` and the Graph docs: ``POST /{tenant}/oauth2/v2.0/token``
(client credentials, scope ``https://graph.microsoft.com/.default``, AADSTS error bodies),
``GET /v1.0/teams``, ``GET /v1.0/teams/{id}/channels``, ``GET .../channels/{id}/messages`` and
``.../messages/delta`` (``$top`` at most 50, ``$filter=lastModifiedDateTime gt ...`` on delta, absolute
``@odata.nextLink`` with ``$skiptoken``, a final ``@odata.deltaLink``), ``POST .../messages`` (201, only in
the team where the app is installed with resource-specific consent), Graph error envelopes
``{"error": {"code", "message", "innerError"}}`` and ``429`` with ``Retry-After``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    BASE_TIME,
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
    stable_uuid,
    uuid_index,
)

TENANT_ID = "5f2b8c3e-1a7d-4e6b-9c0f-3d4e5a6b7c8d"
TEAM_ID = "a1c9e3f0-6b2d-4c8e-8f1a-2b3c4d5e6f70"
CHANNEL_ID = "19:3b5d9e7f1a2c4e6b8d0f1a3c5e7b9d2f@thread.tacv2"
CLIENT_ID = "0c8b2f1e-7d3a-4b9c-a1e5-6f7d8c9b0a12"
CLIENT_SECRET = "Xq8~sandbox.client-secret_0123456789"
APP_NAME = "CareHub"
GRAPH = "/v1.0"
STEP = timedelta(minutes=7)
BASE_MS = int(BASE_TIME.timestamp() * 1000)
MAX_TOP = 50

CHANNELS = (
    ("General", "Announcements for the whole team"),
    ("Handover", "Shift handover notes between day and night staff"),
    ("Maintenance", "Repairs, safety checks and contractor visits"),
    ("Kitchen", "Menus, deliveries and allergen updates"),
    ("Activities", "Outings, entertainers and activity plans"),
)
MESSAGES = (
    "Handover: {home}, all residents settled overnight, two falls sensors checked.",
    "Reminder: fire alarm test on Thursday at 10:00 in {home}.",
    "The passenger lift at {home} is back in service after the engineer's visit.",
    "Bidfood delivery arrives tomorrow between 07:00 and 09:00, please check cold chain.",
    "Activities: garden party on Saturday afternoon, families welcome.",
    "Please complete the infection control e-learning before the end of the month.",
    "Minibus booked for the seaside outing on Friday, driver {name}.",
    "Medication audit at {home} moved to Wednesday morning.",
    "Boiler service booked for Monday, hot water off 09:00 to 11:00.",
    "New starter {name} joins the night team this week, please make them welcome.",
)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _team(seed: int, i: int, at: datetime) -> dict[str, Any]:
    name = CARE_HOMES[i % len(CARE_HOMES)] + ("" if i < len(CARE_HOMES) else f" {i // len(CARE_HOMES) + 1}")
    return {"id": TEAM_ID if i == 0 else stable_uuid(seed, "teams", i), "createdDateTime": _iso(at),
            "displayName": f"{name} staff", "description": f"Care and support staff at {name}",
            "internalId": f"19:{hashlib.md5(f'{seed}{i}'.encode()).hexdigest()}@thread.tacv2",  # noqa: S324
            "classification": None, "specialization": "none", "visibility": "private",
            "webUrl": f"https://teams.microsoft.com/l/team/{i}", "isArchived": False, "tenantId": TENANT_ID}


def _channel(i: int) -> dict[str, Any]:
    name, description = CHANNELS[i]
    cid = CHANNEL_ID if name == "Handover" else f"19:{hashlib.md5(name.encode()).hexdigest()}@thread.tacv2"  # noqa: S324
    if name == "General":
        cid = "19:general0f1e2d3c4b5a69788796a5b4c3d2e1f0@thread.tacv2"
    return {"id": cid, "createdDateTime": "2023-09-01T08:00:00Z", "displayName": name, "description": description,
            "isFavoriteByDefault": name == "Handover", "email": f"{name.lower()}.willowcourt@uk.teams.ms",
            "tenantId": TENANT_ID, "webUrl": f"https://teams.microsoft.com/l/channel/{cid}/{name}",
            "membershipType": "standard"}


def message_id(i: int) -> str:
    """Graph id of seeded message ``i`` (its creation time in epoch milliseconds)."""
    return str(BASE_MS + i * int(STEP.total_seconds() * 1000))


def _message_index(value: str) -> int | None:
    try:
        delta = int(value) - BASE_MS
    except ValueError:
        return None
    step = int(STEP.total_seconds() * 1000)
    return delta // step if delta >= 0 and delta % step == 0 else None


def _user(seed: int, r: Any) -> dict[str, Any]:
    p = pools(seed)
    name = f"{r.choice(p.first_names)} {r.choice(p.last_names)}"
    return {"application": None, "device": None,
            "user": {"@odata.type": "#microsoft.graph.teamworkUserIdentity", "id": str(uuid.UUID(int=r.getrandbits(128))),
                     "displayName": name, "userIdentityType": "aadUser", "tenantId": TENANT_ID}}


def _message(seed: int, i: int, at: datetime) -> dict[str, Any]:
    r = rng_for(seed, "channel_messages", i)
    p = pools(seed)
    text = r.choice(MESSAGES).format(home=r.choice(CARE_HOMES), name=r.choice(p.first_names))
    mid = message_id(i)
    return {
        "id": mid, "replyToId": None, "etag": mid, "messageType": "message", "createdDateTime": _iso(at),
        "lastModifiedDateTime": _iso(at), "lastEditedDateTime": None, "deletedDateTime": None,
        "subject": "Handover" if text.startswith("Handover") else None, "summary": None, "chatId": None,
        "importance": "high" if "fire" in text.lower() else "normal", "locale": "en-us",
        "webUrl": f"https://teams.microsoft.com/l/message/{CHANNEL_ID}/{mid}", "policyViolation": None,
        "eventDetail": None, "from": _user(seed, r), "body": {"contentType": "text", "content": text},
        "channelIdentity": {"teamId": TEAM_ID, "channelId": CHANNEL_ID}, "attachments": [], "mentions": [],
        "reactions": [],
    }


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Graph's error envelope."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return JSONResponse({"error": {"code": code, "message": message,
                                   "innerError": {"date": now, "request-id": str(uuid.uuid4()),
                                                  "client-request-id": str(uuid.uuid4())}}},
                        status_code=status, headers=headers or {})


def _aad_error(status: int, error: str, code: int, text: str) -> JSONResponse:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return JSONResponse({"error": error, "error_description": f"AADSTS{code}: {text}", "error_codes": [code],
                         "timestamp": now, "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())},
                        status_code=status)


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return graph_error(429, "TooManyRequests", "Too many requests. Please retry after the time in Retry-After.",
                       headers)


def outgoing_webhook_signature(security_token_b64: str, body: bytes) -> str:
    """What Teams puts in ``Authorization`` for an outgoing-webhook delivery (the sender side, for tests)."""
    key = base64.b64decode(security_token_b64)
    return "HMAC " + base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def _token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _untoken(value: str) -> dict[str, Any] | None:
    try:
        out = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, TypeError):
        return None
    return out if isinstance(out, dict) else None


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Microsoft Teams (Graph) sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Microsoft Graph")
    seed = cfg.seed
    state.datasets = {
        "teams": Dataset(cfg.count("teams", 6), lambda i, at: _team(seed, i, at),
                         lambda i: TEAM_ID if i == 0 else stable_uuid(seed, "teams", i),
                         lambda v: 0 if v == TEAM_ID else uuid_index(v)),
        "channel_messages": Dataset(cfg.count("channel_messages"), lambda i, at: _message(seed, i, at),
                                    message_id, _message_index, step=STEP),
    }
    channels = [_channel(i) for i in range(len(CHANNELS))]
    app = FastAPI(title="Microsoft Graph sandbox (CareHub)")
    app.state.sandbox = state
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=(f"/{TENANT_ID}/",))
    add_control_routes(app, state)

    @app.post("/{tenant}/oauth2/v2.0/token", response_model=None)
    async def token(tenant: str, request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if tenant != TENANT_ID:
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure you "
                                                             "have the correct tenant ID and are signing into the "
                                                             "correct cloud.")
        if grant != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if cfg.require_valid_client and (form.get("client_id") != CLIENT_ID
                                         or form.get("client_secret") != CLIENT_SECRET):
            return _aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret "
                                                              "being sent in the request is the client secret value, "
                                                              "not the client secret ID.")
        if str(form.get("scope", "")) != "https://graph.microsoft.com/.default":
            return _aad_error(400, "invalid_scope", 1002012, "The provided value for scope is not valid. Client "
                                                              "credential flows must have a scope value with /.default.")
        if state.faults.revoke_tokens:
            return _aad_error(401, "invalid_client", 7000222, "The provided client secret keys are expired.")
        issued = state.issue_tokens()
        return JSONResponse({"token_type": "Bearer", "expires_in": issued["expires_in"],
                             "ext_expires_in": issued["expires_in"], "access_token": issued["access_token"]})

    def denied(request: Request) -> Response | None:
        auth = request.headers.get("authorization")
        if not auth:
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if not state.token_valid(bearer(request)):
            return graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.",
                               {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})
        return None

    def top_of(request: Request, default: int) -> int | Response:
        raw = request.query_params.get("$top")
        if raw is None:
            return default
        try:
            top = int(raw)
        except ValueError:
            return graph_error(400, "BadRequest", f"Invalid value '{raw}' for query option $top.")
        if not 1 <= top <= MAX_TOP:
            return graph_error(400, "BadRequest", f"Invalid page size requested. Page size must be between 1 and "
                                                  f"{MAX_TOP}.")
        return top

    def link(request: Request, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return str(request.url.replace(query=query))

    @app.get(GRAPH + "/teams")
    async def list_teams(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        top = max(1, min(999, int(q.get("$top") or 100)))
        offset = int((_untoken(q.get("$skiptoken", "")) or {}).get("o", 0))
        items, total = state.datasets["teams"].page(None, offset, top)
        body: dict[str, Any] = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#teams", "value": items}
        if offset + len(items) < total:
            body["@odata.nextLink"] = link(request, **{"$top": str(top), "$skiptoken": _token({"o": offset + top})})
        return JSONResponse(body)

    def team_or_404(team_id: str) -> Response | None:
        if state.datasets["teams"].get(team_id) is None:
            return graph_error(404, "NotFound", f"No team found with Group Id {team_id}")
        return None

    @app.get(GRAPH + "/teams/{team_id}/channels")
    async def list_channels(team_id: str, request: Request) -> Response:
        if (d := denied(request) or team_or_404(team_id)) is not None:
            return d
        return JSONResponse({"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#teams('{team_id}')/"
                                               "channels", "@odata.count": len(channels), "value": channels})

    def channel_or_404(team_id: str, channel_id: str) -> Response | None:
        if (d := team_or_404(team_id)) is not None:
            return d
        if team_id != TEAM_ID or channel_id not in {c["id"] for c in channels}:
            return graph_error(404, "NotFound", "Channel not found or you do not have access to it.")
        return None

    def context(team_id: str, channel_id: str) -> str:
        return (f"https://graph.microsoft.com/v1.0/$metadata#teams('{team_id}')/channels('{channel_id}')/"
                "messages")

    @app.get(GRAPH + "/teams/{team_id}/channels/{channel_id}/messages")
    async def list_messages(team_id: str, channel_id: str, request: Request) -> Response:
        if (d := denied(request) or channel_or_404(team_id, channel_id)) is not None:
            return d
        top = top_of(request, 20)
        if isinstance(top, Response):
            return top
        messages = state.datasets["channel_messages"] if channel_id == CHANNEL_ID else None
        offset = int((_untoken(request.query_params.get("$skiptoken", "")) or {}).get("o", 0))
        items, total = messages.page(None, offset, top) if messages else ([], 0)
        body: dict[str, Any] = {"@odata.context": context(team_id, channel_id), "@odata.count": len(items),
                                "value": items}
        if offset + len(items) < total:
            body["@odata.nextLink"] = link(request, **{"$top": str(top), "$skiptoken": _token({"o": offset + top})})
        return JSONResponse(body)

    @app.get(GRAPH + "/teams/{team_id}/channels/{channel_id}/messages/delta")
    async def delta(team_id: str, channel_id: str, request: Request) -> Response:
        if (d := denied(request) or channel_or_404(team_id, channel_id)) is not None:
            return d
        q = request.query_params
        top = top_of(request, MAX_TOP)
        if isinstance(top, Response):
            return top
        since: datetime | None = None
        offset = 0
        if q.get("$skiptoken"):
            tok = _untoken(q["$skiptoken"])
            if tok is None:
                return graph_error(400, "BadRequest", "The skip token is not valid.")
            offset, since = int(tok.get("o", 0)), _parse(tok["s"]) if tok.get("s") else None
        elif q.get("$deltatoken"):
            tok = _untoken(q["$deltatoken"])
            if tok is None:
                return graph_error(410, "SyncStateNotFound", "The sync state generation is not found.")
            since = _parse(str(tok.get("s")))
        elif q.get("$filter"):
            expr = q["$filter"].strip()
            prefix = "lastModifiedDateTime gt "
            since = _parse(expr[len(prefix):]) if expr.startswith(prefix) else None
            if since is None:
                return graph_error(400, "BadRequest", "Only '$filter=lastModifiedDateTime gt {DateTime}' is "
                                                      "supported on delta.")
        # ``gt`` is strict; the data set filters "at or after"
        after = since + timedelta(microseconds=1) if since else None
        messages = state.datasets["channel_messages"]
        items, total = messages.page(after, offset, top) if channel_id == CHANNEL_ID else ([], 0)
        body: dict[str, Any] = {"@odata.context": context(team_id, channel_id) + "/delta", "value": items}
        s_text = _iso(since) if since else None
        if offset + len(items) < total:
            body["@odata.nextLink"] = link(request, **{"$top": str(top),
                                                       "$skiptoken": _token({"o": offset + top, "s": s_text})})
        else:
            newest = max([_parse(str(m["lastModifiedDateTime"])) or BASE_TIME for m in items] + ([since] if since
                                                                                                  else []),
                         default=BASE_TIME)
            body["@odata.deltaLink"] = link(request, **{"$deltatoken": _token({"s": _iso(newest)})})
        return JSONResponse(body)

    @app.get(GRAPH + "/teams/{team_id}/channels/{channel_id}/messages/{message_id}")
    async def get_message(team_id: str, channel_id: str, message_id: str, request: Request) -> Response:
        if (d := denied(request) or channel_or_404(team_id, channel_id)) is not None:
            return d
        rec = state.datasets["channel_messages"].get(message_id) if channel_id == CHANNEL_ID else None
        if rec is None:
            return graph_error(404, "NotFound", "Message not found.")
        return JSONResponse({"@odata.context": context(team_id, channel_id) + "/$entity", **rec})

    @app.post(GRAPH + "/teams/{team_id}/channels/{channel_id}/messages")
    async def post_message(team_id: str, channel_id: str, request: Request) -> Response:
        if (d := denied(request) or team_or_404(team_id)) is not None:
            return d
        if team_id != TEAM_ID:  # resource-specific consent: only where the app is installed
            return graph_error(403, "Forbidden", "Missing role permissions on the request. API requires one of "
                                                 "'ChannelMessage.Send.Group, Teamwork.Migrate.All'.")
        if (d := channel_or_404(team_id, channel_id)) is not None:
            return d
        try:
            el = await request.json()
        except ValueError:
            return graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        content = (el.get("body") or {}).get("content") if isinstance(el, dict) else None
        if not isinstance(content, str) or not content.strip():
            return graph_error(400, "BadRequest", "Missing body content")
        if len(content.encode()) > 28_000:
            return graph_error(413, "RequestEntityTooLarge", "Message exceeds the 28 KB size limit.")
        unknown = sorted(set(el) - {"body", "subject", "importance", "attachments", "mentions", "replyToId",
                                    "messageType", "summary"})
        if unknown:
            return graph_error(400, "BadRequest", f"Invalid request: unknown properties {', '.join(unknown)}.")
        data = state.datasets["channel_messages"]
        now = datetime.now(UTC)
        mid = str(max(int(now.timestamp() * 1000), int(data._last_write.timestamp() * 1000) + 1))
        rec = {"id": mid, "replyToId": None, "etag": mid, "messageType": "message", "createdDateTime": _iso(now),
               "lastModifiedDateTime": _iso(now), "lastEditedDateTime": None, "deletedDateTime": None,
               "subject": el.get("subject"), "summary": el.get("summary"), "chatId": None,
               "importance": el.get("importance", "normal"), "locale": "en-us",
               "webUrl": f"https://teams.microsoft.com/l/message/{channel_id}/{mid}", "policyViolation": None,
               "eventDetail": None,
               "from": {"application": {"@odata.type": "#microsoft.graph.teamworkApplicationIdentity",
                                        "id": CLIENT_ID, "displayName": APP_NAME,
                                        "applicationIdentityType": "bot"}, "device": None, "user": None},
               "body": {"contentType": (el.get("body") or {}).get("contentType", "text"), "content": content},
               "channelIdentity": {"teamId": team_id, "channelId": channel_id},
               "attachments": el.get("attachments") or [], "mentions": el.get("mentions") or [], "reactions": []}
        at = data.put(mid, rec)
        rec["lastModifiedDateTime"] = rec["createdDateTime"] = _iso(at)
        await notify("created", team_id, channel_id, mid)
        return JSONResponse({"@odata.context": context(team_id, channel_id) + "/$entity", **rec}, status_code=201)

    subscriptions: dict[str, dict[str, Any]] = {}
    app.state.subscriptions = subscriptions

    def transport() -> httpx.AsyncBaseTransport | None:
        t: httpx.AsyncBaseTransport | None = getattr(app.state, "webhook_transport", None)
        return t

    @app.post(GRAPH + "/subscriptions")
    async def subscribe(request: Request) -> Response:
        """Change notifications: validate the notification URL (validationToken echo), then keep it."""
        if (d := denied(request)) is not None:
            return d
        try:
            el = await request.json()
        except ValueError:
            return graph_error(400, "InvalidRequest", "Unable to read JSON request payload.")
        missing = [k for k in ("changeType", "notificationUrl", "resource", "expirationDateTime")
                   if not isinstance(el, dict) or not el.get(k)]
        if missing:
            return graph_error(400, "InvalidRequest", f"Missing required properties: {', '.join(missing)}.")
        expected = f"/teams/{TEAM_ID}/channels/{CHANNEL_ID}/messages"
        if el["resource"].lstrip("/") not in (expected.lstrip("/"), f"teams('{TEAM_ID}')/channels('{CHANNEL_ID}')"
                                              "/messages"):
            return graph_error(400, "InvalidRequest", f"Resource {el['resource']} is not supported here.")
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        try:
            async with httpx.AsyncClient(transport=transport(), timeout=10) as c:
                reply = await c.post(str(el["notificationUrl"]), params={"validationToken": token},
                                     headers={"Content-Type": "text/plain"})
        except httpx.HTTPError:
            reply = None
        if reply is None or reply.status_code != 200 or reply.text != token:
            return graph_error(400, "InvalidRequest", "Subscription validation request failed. Response must exactly "
                                                      "match validationToken query parameter.")
        sub = {"id": str(uuid.uuid4()), "resource": el["resource"], "applicationId": CLIENT_ID,
               "changeType": el["changeType"], "clientState": el.get("clientState"),
               "notificationUrl": el["notificationUrl"], "expirationDateTime": el["expirationDateTime"],
               "creatorId": CLIENT_ID, "includeResourceData": False, "latestSupportedTlsVersion": "v1_2"}
        subscriptions[sub["id"]] = sub
        return JSONResponse({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
                             **sub}, status_code=201)

    async def notify(change: str, team_id: str, channel_id: str, message_id: str) -> None:
        for sub in list(subscriptions.values()):
            if change not in str(sub["changeType"]).split(","):
                continue
            resource = f"teams('{team_id}')/channels('{channel_id}')/messages('{message_id}')"
            body = {"value": [{"subscriptionId": sub["id"], "subscriptionExpirationDateTime": sub["expirationDateTime"],
                               "changeType": change, "resource": resource, "clientState": sub["clientState"],
                               "tenantId": TENANT_ID, "resourceData": {"id": message_id,
                                                                       "@odata.type": "#Microsoft.Graph.chatMessage",
                                                                       "@odata.id": resource}}]}
            state.webhooks_sent.append(body)
            try:
                async with httpx.AsyncClient(transport=transport(), timeout=5) as c:
                    await c.post(str(sub["notificationUrl"]), json=body)
            except httpx.HTTPError:
                continue

    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    app.state.config = {"tenant_id": TENANT_ID, "team_id": TEAM_ID, "channel_id": CHANNEL_ID}
    app.state.started = time.time()
    return app
