"""Helpers for the webhook tests: signed deliveries per vendor scheme, receivers in the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

SECRETS = {
    "xero": "xero-webhook-key-0123456789abcdef",
    "quickbooks": "intuit-verifier-token-0123456789",
    "bamboohr": "bamboo-private-key-0123456789abc",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "samsara": "c2Ftc2FyYS1zYW5kYm94LXdlYmhvb2stc2VjcmV0",  # base64("samsara-sandbox-webhook-secret"), as Samsara shows it
    "generic": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
SCHEMES = tuple(SECRETS)


def signed(scheme: str, body: bytes, *, secret: str | None = None, ts: int | None = None,
           msg_id: str | None = None) -> dict[str, str]:
    """Headers a vendor would send for ``body`` (computed here independently of the code under test)."""
    key = secret if secret is not None else SECRETS[scheme]
    ts = int(time.time()) if ts is None else ts
    if scheme == "xero":
        return {"x-xero-signature": base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()}
    if scheme == "quickbooks":
        return {"intuit-signature": base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()}
    if scheme == "bamboohr":
        sig = hmac.new(key.encode(), body + str(ts).encode(), hashlib.sha256).hexdigest()
        return {"X-BambooHR-Signature": sig, "X-BambooHR-Timestamp": str(ts)}
    if scheme == "slack":
        sig = "v0=" + hmac.new(key.encode(), b"v0:" + str(ts).encode() + b":" + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": str(ts)}
    if scheme == "samsara":
        digest = hmac.new(base64.b64decode(key), b"v1:" + str(ts).encode() + b":" + body, hashlib.sha256).hexdigest()
        return {"X-Samsara-Signature": "v1=" + digest, "X-Samsara-Timestamp": str(ts)}
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    raw = base64.b64decode(key.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(raw, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": "v1," + sig}


def sample_body(scheme: str, n: int = 0) -> bytes:
    """A realistic event body for the scheme."""
    payload: dict[str, Any]
    if scheme == "xero":
        payload = {"events": [{"resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/inv-{n}",
                               "resourceId": f"inv-{n}", "eventDateUtc": "2026-11-28T06:00:00.000",
                               "eventType": "UPDATE", "eventCategory": "INVOICE",
                               "tenantId": "t-1", "tenantType": "ORGANISATION"}],
                   "firstEventSequence": n, "lastEventSequence": n, "entropy": f"E{n}"}
    elif scheme == "quickbooks":
        payload = {"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [
            {"name": "Invoice", "id": str(n), "operation": "Update", "lastUpdated": "2026-11-28T06:00:00Z"}]}}]}
    elif scheme == "bamboohr":
        payload = {"employees": [{"id": str(n), "action": "Updated", "timestamp": "2026-11-28T06:00:00Z"}]}
    elif scheme == "slack":
        payload = {"type": "event_callback", "event_id": f"Ev{n:08d}", "event": {"type": "message", "text": "hi"}}
    elif scheme == "samsara":
        payload = {"eventId": f"ev-{n}", "eventTime": "2026-11-28T06:00:00Z", "eventType": "VehicleUpdated",
                   "orgId": 20936, "webhookId": "1411751028848270", "data": {"vehicle": {"id": f"v-{n}", "name": "Minibus"}}}
    else:
        payload = {"type": "resident.updated", "timestamp": "2026-11-28T06:00:00Z",
                   "data": {"stream": "residents", "id": f"res-{n}"}}
    return json.dumps(payload, separators=(",", ":")).encode()


def make_receiver(ctx: Any, scheme: str) -> tuple[str, str]:
    """An integration of the scheme's connector with an inbound webhook; returns (integration id, webhook id)."""
    from storage import integrations as svc

    with ctx.db.session() as s:
        integration = svc.configure_integration(s, box=ctx.box, actor="admin@carehub.test", name=scheme,
                                                connector_id=scheme)
        hook, _ = svc.create_webhook(s, box=ctx.box, actor="admin@carehub.test", integration_id=integration.id,
                                     direction="inbound", secret=SECRETS[scheme])
        return integration.id, hook.id
