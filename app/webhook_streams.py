"""Webhook-fed streams (``source: webhook`` in a connector manifest): records the vendor only pushes.

A verified delivery is stored once in the webhook inbox (``inbound_events``, de-duplicated by delivery id) by
``app.webhooks_in``; its job queues a webhook-triggered run of the streams the delivery carries records for
(:func:`changed_streams`). The run's reader (:class:`WebhookStreamReader`, put in front of the connector's own
reader by :func:`with_webhook_streams`) reads the stored deliveries of the integration that the stream has not
consumed yet, oldest first, and hands their records to the sync engine like any page of a polled stream, so
they go through the same mapping, validation, ownership and care-store path.

Exactly once: the stream's checkpoint (committed in the same transaction as the records of its page) holds the
newest delivery time consumed and the delivery ids of the last :data:`OVERLAP` before it. The next read starts
:data:`OVERLAP` earlier and skips those ids, so a delivery committed a little after a newer one was read is not
skipped, and none is read twice. A delivery re-sent by the vendor has the same delivery id and is stored once;
the same record in two deliveries is one care record (its external id), updated only when it changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from app.context import AppContext
from app.manifests import connector_manifest
from connectors.errors import ManifestError
from connectors.manifest import ConnectorManifest, StreamSpec
from connectors.runtime import parse_timestamp
from connectors.webhook_records import pushed_streams, records_in
from engine.ports import ReadPage, StreamReader
from storage.db import Database
from storage.models import InboundEvent

OVERLAP = timedelta(minutes=5)  # far longer than a delivery takes from being stamped to being committed
PAGE_EVENTS = 100


def _manifest(connector_id: str) -> ConnectorManifest | None:
    try:
        return connector_manifest(connector_id)
    except ManifestError:
        return None


def webhook_streams(connector_id: str) -> dict[str, StreamSpec]:
    """The connector's streams whose records arrive by webhook."""
    manifest = _manifest(connector_id)
    if manifest is None:
        return {}
    return pushed_streams(manifest)


def changed_streams(connector_id: str, payload: Mapping[str, Any]) -> dict[str, dict[str, datetime | None]]:
    """``{stream: {record id: record time}}`` for the webhook-fed streams a delivery carries records for
    (merged into ``app.webhooks_in.changed_records`` to queue the webhook-triggered run)."""
    out: dict[str, dict[str, datetime | None]] = {}
    for name, spec in webhook_streams(connector_id).items():
        records = records_in(spec, payload)
        if records:
            out[name] = {r.external_id: r.updated_at for r in records}
    return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _pending(db: Database, integration_id: str, since: datetime | None) -> list[tuple[str, datetime]]:
    with db.session() as s:
        query = select(InboundEvent.delivery_id, InboundEvent.received_at).where(
            col(InboundEvent.integration_id) == integration_id)
        if since is not None:
            query = query.where(col(InboundEvent.received_at) >= since)
        rows = s.exec(query.order_by(col(InboundEvent.received_at), col(InboundEvent.delivery_id))).all()
        return [(str(d), _aware(t)) for d, t in rows]


def _payloads(db: Database, delivery_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    with db.session() as s:
        rows = s.exec(select(InboundEvent.delivery_id, InboundEvent.payload).where(
            col(InboundEvent.delivery_id).in_(list(delivery_ids)))).all()
        return {str(d): dict(p or {}) for d, p in rows}


class WebhookStreamReader:
    """Reads webhook-fed streams from the inbox; every other stream from the connector's own reader."""

    def __init__(self, db: Database, integration_id: str, streams: Mapping[str, StreamSpec],
                 inner: StreamReader | None) -> None:
        self.db = db
        self.integration_id = integration_id
        self.streams = dict(streams)
        self.inner = inner

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """Pages of up to :data:`PAGE_EVENTS` deliveries not yet consumed (see the module docstring)."""
        spec = self.streams.get(stream)
        if spec is None:
            if self.inner is None:
                raise LookupError(f"no reader for stream `{stream}`")
            async for page in self.inner.read(stream, checkpoint):
                yield page
            return
        cp = dict(checkpoint or {})
        after = parse_timestamp(cp.get("after")) if cp.get("after") else None
        recent: dict[str, str] = {str(k): str(v) for k, v in (cp.get("recent") or {}).items()}
        events = await asyncio.to_thread(_pending, self.db, self.integration_id,
                                         after - OVERLAP if after is not None else None)
        todo = [(d, t) for d, t in events if d not in recent]
        if not todo:
            yield ReadPage([], cp or None)
            return
        for start in range(0, len(todo), PAGE_EVENTS):
            chunk = todo[start:start + PAGE_EVENTS]
            bodies = await asyncio.to_thread(_payloads, self.db, [d for d, _ in chunk])
            records = [r for d, _ in chunk for r in records_in(spec, bodies.get(d, {}))]
            for d, t in chunk:
                recent[d] = t.isoformat()
                after = t if after is None or t > after else after
            assert after is not None
            floor = after - OVERLAP
            recent = {d: t for d, t in recent.items() if (parse_timestamp(t) or after) >= floor}
            yield ReadPage(records, {"after": after.isoformat(), "recent": dict(recent)})


def with_webhook_streams(app: AppContext, connector_id: str, integration_id: str,
                         reader: StreamReader | None) -> StreamReader | None:
    """``reader`` behind a :class:`WebhookStreamReader` when the connector has webhook-fed streams."""
    streams = webhook_streams(connector_id)
    if not streams:
        return reader
    return WebhookStreamReader(app.db, integration_id, streams, reader)
