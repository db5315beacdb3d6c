"""WhatsApp Business Cloud API sandbox (Meta Graph API shape).

``GET /{waba-id}/message_templates`` (``data`` with ``paging.cursors`` and ``paging.next``),
``POST /{phone-number-id}/messages`` (``{"messaging_product": "whatsapp", "to", "type": "text"|"template"}``
answered by ``{"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid..."}]}``);
free text only inside the 24-hour window after the person's last message (error 131047), templates must be
approved (132001); Graph error envelopes ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}``. Webhooks: the ``hub.challenge`` GET on subscription, then POSTs signed
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`` for incoming messages and receipts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
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
    send_webhook,
)

ACCESS_TOKEN = "EAAGsandboxSystemUserToken0123456789"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "441134960000"
WABA_ID = "102290129340398"
APP_SECRET = "whatsapp-sandbox-app-secret-7c6b5a"
VERIFY_TOKEN = "carehub-verify-token-42"
TEMPLATE_BASE = 1_204_000_000_000_001
WINDOW = timedelta(hours=24)
TEMPLATES = (
    ("visit_confirmation", "UTILITY", "Hello {{1}}, your visit to {{2}} on {{3}} is confirmed. Please sign in at reception."),
    ("appointment_reminder", "UTILITY", "Reminder: {{1}} has an appointment with {{2}} on {{3}}."),
    ("care_update", "UTILITY", "Hello {{1}}, there is an update about {{2}}. Please call {{3}} when convenient."),
    ("fire_drill_notice", "UTILITY", "{{1}} will hold a fire drill on {{2}}. Visitors will be asked to wait outside."),
    ("hello_world", "UTILITY", "Welcome and congratulations!! This message demonstrates your ability to send a "
                               "WhatsApp message notification from the Cloud API."),
    ("family_newsletter", "MARKETING", "The {{1}} newsletter for {{2}} is ready: activities, menus and news."),
)


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """The ``X-Hub-Signature-256`` value Meta puts on a delivery."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def graph_error(status: int, code: int, message: str, *, subcode: int | None = None, details: str | None = None,
                headers: dict[str, str] | None = None, kind: str = "OAuthException") -> JSONResponse:
    """Meta Graph's error envelope."""
    err: dict[str, Any] = {"message": message, "type": kind, "code": code,
                           "fbtrace_id": base64.b64encode(secrets.token_bytes(9)).decode()}
    if subcode is not None:
        err["error_subcode"] = subcode
    if details:
        err["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return JSONResponse({"error": err}, status_code=status, headers=headers or {})


def _throttle(state: SandboxState) -> Response:
    headers = {"Retry-After": state.faults.retry_after} if state.faults.retry_after is not None else {}
    return graph_error(429, 130429, "(#130429) Rate limit hit", details="Cloud API message throughput has been "
                                                                      "reached.", headers=headers)


def _wamid() -> str:
    return "wamid." + base64.b64encode(b"\x15\x02" + secrets.token_bytes(22)).decode().rstrip("=")


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The WhatsApp Cloud API sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "WhatsApp Cloud API")

    def template(i: int, at: datetime) -> dict[str, Any]:
        name, category, text = TEMPLATES[i % len(TEMPLATES)]
        suffix = "" if i < len(TEMPLATES) else f"_v{i // len(TEMPLATES) + 1}"
        return {"id": str(TEMPLATE_BASE + i), "name": name + suffix, "language": "en_GB" if name != "hello_world"
                else "en_US", "status": "APPROVED" if i % 7 != 6 else "PENDING", "category": category,
                "components": [{"type": "BODY", "text": text},
                               {"type": "FOOTER", "text": CARE_HOMES[i % len(CARE_HOMES)]}]}

    templates = Dataset(cfg.count("message_templates", len(TEMPLATES)), template, lambda i: str(TEMPLATE_BASE + i),
                        lambda v: int(v) - TEMPLATE_BASE if v.isdigit() else None)
    sent = Dataset(0, lambda i, at: {}, lambda i: "", lambda v: None)
    state.datasets = {"message_templates": templates, "messages": sent}
    last_inbound: dict[str, datetime] = {}
    app = FastAPI(title="WhatsApp Cloud API sandbox (CareHub)")
    app.state.sandbox = state
    app.state.last_inbound = last_inbound
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def denied(request: Request) -> Response | None:
        if not request.headers.get("authorization"):
            return graph_error(401, 190, "An access token is required to request this resource.")
        if bearer(request) != ACCESS_TOKEN or state.faults.revoke_tokens:
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token", subcode=463)
        return None

    @app.get("/{waba_id}/message_templates")
    async def list_templates(waba_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        if waba_id != WABA_ID:
            return graph_error(400, 100, f"Unsupported get request. Object with ID '{waba_id}' does not exist, cannot "
                                         "be loaded due to missing permissions, or does not support this operation",
                               kind="GraphMethodException", subcode=33)
        q = request.query_params
        limit = max(1, min(100, int(q.get("limit") or 25)))
        offset = int(base64.b64decode(q["after"]).decode()) if q.get("after") else 0
        items, total = templates.page(None, offset, limit)
        paging: dict[str, Any] = {"cursors": {"before": base64.b64encode(str(offset).encode()).decode(),
                                              "after": base64.b64encode(str(offset + len(items)).encode()).decode()}}
        if offset + len(items) < total:
            paging["next"] = str(request.url.include_query_params(after=paging["cursors"]["after"]))
        return JSONResponse({"data": items, "paging": paging})

    @app.post("/{phone_number_id}/messages")
    async def send(phone_number_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        if phone_number_id != PHONE_NUMBER_ID:
            return graph_error(400, 100, f"Unsupported post request. Object with ID '{phone_number_id}' does not "
                                         "exist", kind="GraphMethodException", subcode=33)
        try:
            el = await request.json()
        except ValueError:
            return graph_error(400, 100, "(#100) The parameter messaging_product is required.")
        if not isinstance(el, dict) or el.get("messaging_product") != "whatsapp":
            return graph_error(400, 100, "(#100) The parameter messaging_product is required.")
        to = str(el.get("to") or "").lstrip("+")
        if not to.isdigit() or len(to) < 10:
            return graph_error(400, 131009, "(#131009) Parameter value is not valid",
                               details="Recipient phone number is not a valid WhatsApp number.")
        kind = el.get("type", "text")
        if kind == "text":
            text = str((el.get("text") or {}).get("body") or "")
            if not text.strip():
                return graph_error(400, 100, "(#100) The parameter text['body'] is required.")
            opened = last_inbound.get(to)
            if opened is None or datetime.now(UTC) - opened > WINDOW:
                return graph_error(400, 131047, "Re-engagement message", details="Message failed to send because "
                                   "more than 24 hours have passed since the customer last replied to this number.")
        elif kind == "template":
            tpl = el.get("template") or {}
            lang = str((tpl.get("language") or {}).get("code") or "")
            match = next((t for t in templates.iter() if t["name"] == tpl.get("name") and t["language"] == lang), None)
            if match is None or match["status"] != "APPROVED":
                return graph_error(404, 132001, "(#132001) Template name does not exist in the translation",
                                   details=f"template name ({tpl.get('name')}) does not exist in {lang}")
        else:
            return graph_error(400, 131051, "(#131051) Unsupported message type")
        mid = _wamid()
        record = {"id": mid, "to": to, "type": kind, "timestamp": str(int(time.time())),
                  **{k: el[k] for k in ("text", "template") if k in el}}
        sent.put(mid, record)
        if cfg.webhook_url:
            await emit({"statuses": [{"id": mid, "status": "sent", "timestamp": record["timestamp"],
                                      "recipient_id": to}]})
        return JSONResponse({"messaging_product": "whatsapp", "contacts": [{"input": el["to"], "wa_id": to}],
                             "messages": [{"id": mid, "message_status": "accepted"}]})

    async def emit(value: dict[str, Any]) -> int:
        body = {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{"field": "messages",
                "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": DISPLAY_NUMBER,
                                                                          "phone_number_id": PHONE_NUMBER_ID},
                          **value}}]}]}
        return await send_webhook(state, body, lambda raw: {"X-Hub-Signature-256": sign(raw)},
                                  transport=getattr(app.state, "webhook_transport", None))

    @app.post("/_sandbox/inbound")
    async def inbound(request: Request) -> dict[str, Any]:
        """A family member writes in: opens the 24-hour window and delivers a signed webhook."""
        body = await request.json()
        frm = str(body.get("from", "447700900123"))
        last_inbound[frm] = datetime.now(UTC) - timedelta(seconds=float(body.get("seconds_ago", 0)))
        message = {"from": frm, "id": _wamid(), "timestamp": str(int(last_inbound[frm].timestamp())), "type": "text",
                   "text": {"body": str(body.get("text", "Hello, how is Mum today?"))}}
        status = await emit({"contacts": [{"profile": {"name": str(body.get("name", "Family member"))},
                                           "wa_id": frm}], "messages": [message]})
        return {"status": status, "message": message}

    @app.post("/_sandbox/webhooks/subscribe")
    async def subscribe(request: Request) -> dict[str, Any]:
        """Meta's subscription check: a GET with hub.mode, hub.verify_token and hub.challenge."""
        body = await request.json() if await request.body() else {}
        challenge = str(secrets.randbelow(10**9))
        params = {"hub.mode": "subscribe", "hub.verify_token": str(body.get("verify_token", VERIFY_TOKEN)),
                  "hub.challenge": challenge}
        async with httpx.AsyncClient(transport=getattr(app.state, "webhook_transport", None), timeout=5) as c:
            resp = await c.get(str(cfg.webhook_url), params=params)
        return {"status": resp.status_code, "verified": resp.status_code == 200 and resp.text == challenge}

    app.state.emit = emit
    app.state.credentials = {"system_user_token": ACCESS_TOKEN, "app_secret": APP_SECRET}
    app.state.config = {"phone_number_id": PHONE_NUMBER_ID, "waba_id": WABA_ID}
    app.state.started = time.time()
    return app
