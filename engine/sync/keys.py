"""Deterministic hashes and keys: record content hashes and outbound idempotency keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

try:
    import orjson as _orjson

    _OPTS = _orjson.OPT_SORT_KEYS | _orjson.OPT_NON_STR_KEYS | _orjson.OPT_PASSTHROUGH_DATETIME
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson = None  # type: ignore[assignment]
    _OPTS = 0


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def canonical_json(values: Mapping[str, Any]) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), default=_default, ensure_ascii=False)


def canonical_bytes(values: Mapping[str, Any]) -> bytes:
    """The canonical JSON of ``values`` as UTF-8 bytes.

    orjson when it can encode the values (several times faster on the hot path), else the standard library;
    both give sorted keys and no whitespace, so equal values give equal bytes either way.
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(values, option=_OPTS, default=_default)
        except TypeError:
            pass
    return canonical_json(values).encode()


def hash_bytes(encoded: bytes) -> str:
    """The content hash of values already encoded by :func:`canonical_bytes`."""
    return hashlib.sha256(encoded).hexdigest()


def content_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a record's values (hex, 64 chars)."""
    return hash_bytes(canonical_bytes(values))


def idempotency_key(integration_id: str, record_id: str, version: int) -> str:
    """The key of one outbound write: the same record version always gets the same key (40 hex chars: fits QuickBooks' 50-char requestid)."""
    return hashlib.sha256(f"{integration_id}:{record_id}:{version}".encode()).hexdigest()[:40]
