"""Samsara webhook signatures, which the manifest's webhook vocabulary cannot express yet.

Samsara signs ``"v1:" + X-Samsara-Timestamp + ":" + raw body`` with HMAC-SHA256 keyed by the
*base64-decoded* webhook secret and sends ``X-Samsara-Signature: v1=<lowercase hex>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lower = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lower), None)


def samsara_signature(secret_b64: str, timestamp: str, body: bytes) -> str:
    """The ``X-Samsara-Signature`` value Samsara would send for ``body`` at ``timestamp``."""
    key = base64.b64decode(secret_b64)
    digest = hmac.new(key, b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return "v1=" + digest


def verify_samsara(secret_b64: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
                   replay_window_seconds: int = 300) -> bool:
    """True when the signature over the raw ``body`` is valid (constant time) and the timestamp is recent."""
    given = _header(headers, "X-Samsara-Signature")
    ts = _header(headers, "X-Samsara-Timestamp")
    if not given or not ts:
        return False
    try:
        sent = float(ts)
        expected = samsara_signature(secret_b64, ts, body)
    except (ValueError, binascii.Error):
        return False
    if abs((now if now is not None else time.time()) - sent) > replay_window_seconds:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
