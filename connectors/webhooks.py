"""Verify inbound webhooks as the manifest describes: header, algorithm, what is signed, replay window.

Signatures are computed over the raw request bytes and compared in constant time. Handshakes (Xero's
"intent to receive", Slack's URL verification) are answered by :func:`handle_delivery`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.manifest import WebhookSpec


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lower = name.lower()
    for k, v in headers.items():
        if k.lower() == lower:
            return v
    return None


def _digest(spec: WebhookSpec, secret: bytes, message: bytes) -> bytes:
    algo = hashlib.sha256 if spec.algorithm == "hmac_sha256" else hashlib.sha1
    return hmac.new(secret, message, algo).digest()


def _encode(spec: WebhookSpec, digest: bytes) -> str:
    return base64.b64encode(digest).decode() if spec.encoding == "base64" else digest.hex()


def signed_message(spec: WebhookSpec, headers: Mapping[str, str], body: bytes) -> bytes | None:
    """The exact bytes the sender signs, or None when a required header is missing."""
    if spec.signed == "body":
        return body
    ts = _header(headers, spec.timestamp_header or "") if spec.timestamp_header else None
    if ts is None:
        return None
    if spec.signed in ("slack_v0", "version_timestamp_body"):
        version = "v0" if spec.signed == "slack_v0" else spec.version
        return version.encode() + b":" + ts.encode() + b":" + body
    if spec.signed == "timestamp_body":
        return ts.encode() + b"." + body
    if spec.signed == "body_timestamp":
        return body + ts.encode()
    msg_id = _header(headers, "webhook-id") or ""
    return msg_id.encode() + b"." + ts.encode() + b"." + body


def sign(spec: WebhookSpec, secret: str | bytes, body: bytes, headers: Mapping[str, str] | None = None) -> str:
    """The signature header value a sender would put on ``body`` (used by sandboxes and tests)."""
    key = secret.encode() if isinstance(secret, str) else secret
    if spec.signed == "standard_webhooks" and isinstance(secret, str) and secret.startswith("whsec_"):
        key = base64.b64decode(secret.removeprefix("whsec_"))
    elif spec.secret_encoding == "base64":
        key = base64.b64decode(key, validate=True)  # binascii.Error (a ValueError) when it is not base64
    message = signed_message(spec, headers or {}, body)
    if message is None:
        raise ValueError("timestamp header missing")
    return spec.prefix + _encode(spec, _digest(spec, key, message))


def verify(spec: WebhookSpec, secret: str | bytes, headers: Mapping[str, str], body: bytes,
           *, now: float | None = None) -> bool:
    """True when the signature over the raw ``body`` is valid (constant time) and inside the replay window."""
    given = _header(headers, spec.header)
    if not given:
        return False
    if spec.replay_window_seconds is not None and spec.timestamp_header:
        ts = _header(headers, spec.timestamp_header)
        try:
            sent = float(ts or "")
        except ValueError:
            return False
        if sent > 1e12:  # milliseconds
            sent /= 1000
        if abs((now if now is not None else time.time()) - sent) > spec.replay_window_seconds:
            return False
    try:
        expected = sign(spec, secret, body, headers)
    except ValueError:
        return False
    # Standard Webhooks may carry several space-separated signatures (key rotation).
    candidates = given.split(" ") if spec.signed == "standard_webhooks" else [given]
    ok = False
    for cand in candidates:
        ok |= hmac.compare_digest(cand.strip().encode(), expected.encode())
    return ok


@dataclass
class WebhookResult:
    """What to answer the sender, and the verified payload (None when rejected)."""

    status: int
    body: bytes = b""
    verified: bool = False
    payload: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)


def handle_delivery(spec: WebhookSpec, secret: str | bytes, headers: Mapping[str, str], body: bytes,
                    *, now: float | None = None) -> WebhookResult:
    """Verify a delivery and answer handshakes.

    * Xero (``xero_intent_to_receive``): 200 with an empty body for a valid signature, 401 otherwise;
      the intent-to-receive probe is just a delivery with no events, so the same rule answers it.
    * Slack (``slack_url_verification``): a signed ``{"type": "url_verification"}`` is answered with
      its ``challenge``.
    """
    if not verify(spec, secret, headers, body, now=now):
        return WebhookResult(401)
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        return WebhookResult(400, b"body is not JSON", verified=True)
    handshake = spec.handshake.type if spec.handshake else None
    if handshake == "slack_url_verification" and isinstance(payload, dict) and payload.get("type") == "url_verification":
        return WebhookResult(200, json.dumps({"challenge": payload.get("challenge")}).encode(), True, payload)
    events = payload.get("events", []) if isinstance(payload, dict) else []
    return WebhookResult(200, b"", True, payload, [e for e in events if isinstance(e, dict)])
