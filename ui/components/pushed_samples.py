"""Designer samples of webhook-fed streams (``source: webhook``): the newest records the vendor pushed.

Nothing can be requested from the vendor for such a stream, so its samples come from the verified deliveries
kept in the webhook inbox (``inbound_events``) of the integration.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlmodel import col, select

from connectors.webhook_records import records_in
from storage.models import InboundEvent, Integration
from ui.components.connector_access import manifest
from ui.services import services

RECENT_DELIVERIES = 200


def _payloads(integration_id: str) -> list[dict[str, Any]]:
    with services().db.session() as s:
        rows = s.exec(select(InboundEvent.payload).where(col(InboundEvent.integration_id) == integration_id)
                      .order_by(col(InboundEvent.received_at).desc()).limit(RECENT_DELIVERIES)).all()
        return [dict(p or {}) for p in rows]


async def pushed_samples(row: Integration, stream: str, n: int) -> tuple[list[dict[str, Any]], str] | None:
    """Up to ``n`` of the newest pushed records and a problem in plain words; None for a stream that is read."""
    connector = manifest(row.connector_id)
    spec = connector.streams.get(stream) if connector is not None else None
    if spec is None or spec.source != "webhook":
        return None
    samples: list[dict[str, Any]] = []
    for payload in await asyncio.to_thread(_payloads, row.id):
        samples.extend(dict(r.data) for r in records_in(spec, payload))
        if len(samples) >= n:
            break
    if not samples:
        vendor = connector.name if connector is not None else row.connector_id
        return [], (f"{vendor} sends {spec.title.lower()} to CareHub's webhook; none has arrived yet, so there "
                    "are no samples to show.")
    return samples[:n], ""
