"""Microsoft Graph change notifications (Teams channel messages), which carry no HMAC.

* Subscribing: Graph POSTs to ``notificationUrl?validationToken=<token>``; the receiver must answer 200 with
  the (URL-decoded) token as ``text/plain`` within ten seconds, or the subscription is refused.
* Deliveries: ``{"value": [{subscriptionId, changeType, resource, resourceData, clientState, tenantId}]}``;
  each notification is genuine only if its ``clientState`` is the secret we chose when subscribing (compared
  in constant time); others are dropped. Graph expects 202 Accepted for the delivery.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any


def validation_reply(params: Mapping[str, str]) -> str | None:
    """The plain-text answer to a subscription validation request, or None when it is a delivery."""
    token = params.get("validationToken")
    return token if token is not None else None


def accepted_notifications(body: bytes, client_state: str) -> list[dict[str, Any]]:
    """The notifications of a delivery whose ``clientState`` matches ours (others are forged or stale)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    items = payload.get("value") if isinstance(payload, dict) else None
    out: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        given = str(item.get("clientState") or "") if isinstance(item, dict) else ""
        if isinstance(item, dict) and client_state and hmac.compare_digest(given.encode(), client_state.encode()):
            out.append(item)
    return out
