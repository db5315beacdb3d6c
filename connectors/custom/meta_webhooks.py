"""Meta (WhatsApp Cloud API) webhook subscription handshake, which ``connectors.webhooks`` does not answer.

When a webhook is configured, Meta sends ``GET <callback>?hub.mode=subscribe&hub.verify_token=<ours>&
hub.challenge=<n>``; the receiver answers 200 with the challenge as plain text only when the verify token is
the one we chose (compared in constant time), and 403 otherwise. Deliveries themselves are POSTs signed
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`` (the manifest's ``webhooks`` block).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping


def verify_subscription(params: Mapping[str, str], verify_token: str) -> tuple[int, str]:
    """(status, plain-text body) to answer Meta's ``hub.challenge`` GET."""
    mode = params.get("hub.mode", "")
    given = params.get("hub.verify_token", "")
    challenge = params.get("hub.challenge", "")
    if mode != "subscribe" or not challenge or not verify_token:
        return 400, "not a subscription request"
    if not hmac.compare_digest(given.encode(), verify_token.encode()):
        return 403, "verify token does not match"
    return 200, challenge
