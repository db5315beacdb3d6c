"""Stable content hash of mapped values, used by the sync engine to skip unchanged records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(values: Any) -> str:
    """JSON with sorted keys and no spaces; non-JSON values (dates, decimals) written with ``str``."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(values: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``values`` (key order does not matter)."""
    return hashlib.sha256(canonical_json(values).encode("utf-8")).hexdigest()
