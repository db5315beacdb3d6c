"""Deterministic hashes and keys: record content hashes and outbound idempotency keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def canonical_json(values: Mapping[str, Any]) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), default=_default, ensure_ascii=False)


def content_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a record's values (hex, 64 chars)."""
    return hashlib.sha256(canonical_json(values).encode()).hexdigest()


def idempotency_key(integration_id: str, record_id: str, version: int) -> str:
    """The key of one outbound write: the same record version always gets the same key (40 hex chars: fits QuickBooks' 50-char requestid)."""
    return hashlib.sha256(f"{integration_id}:{record_id}:{version}".encode()).hexdigest()[:40]
