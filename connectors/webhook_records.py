"""Records of webhook-fed streams (``source: webhook``) out of one verified delivery body.

The stream's ``records`` JMESPath selects the records in the body (a delivery it selects nothing from belongs
to another stream); ``primary_key`` and ``updated_at`` apply to each record as for a polled stream. Used by the
sync reader (``app.webhook_streams``) and the designer's samples.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jmespath

from connectors.manifest import ConnectorManifest, StreamSpec
from connectors.runtime import parse_timestamp
from engine.ports import SourceRecord


def pushed_streams(manifest: ConnectorManifest) -> dict[str, StreamSpec]:
    """The manifest's streams whose records arrive by webhook."""
    return {name: spec for name, spec in manifest.streams.items() if spec.source == "webhook"}


def _timestamp(value: Any, fmt: str) -> datetime | None:
    # Webhook bodies often carry epoch milliseconds (LinkedIn appliedAt): no date in seconds is that large.
    if fmt == "epoch" and isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > 1e11:
        value = value / 1000
    return parse_timestamp(value, fmt)


def records_in(spec: StreamSpec, payload: Any) -> list[SourceRecord]:
    """The stream's records in one delivery body; records without a primary key value are left out."""
    found = jmespath.search(spec.records, payload)
    if isinstance(found, dict):
        found = [found]
    out: list[SourceRecord] = []
    for raw in found or []:
        if not isinstance(raw, dict):
            continue
        key = jmespath.search(spec.primary_key, raw)
        if key in (None, ""):
            continue
        updated = _timestamp(jmespath.search(spec.updated_at, raw), spec.date_format) if spec.updated_at else None
        out.append(SourceRecord(external_id=str(key), data=raw, updated_at=updated))
    return out
