"""A minimal field-copy mapper used until (or where) the mapping compiler is not available.

It understands a design's ``mappings`` list (``sourceField``/``source_field`` -> ``targetField``/
``target_field``, dotted paths, ``required``, ``defaultValue``) and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _get(data: Any, path: str) -> Any:
    cur = data
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    cur = data
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value


@dataclass
class Mapped:
    """Result of :meth:`FieldCopyMapper.apply` (same attributes as the compiler's MappedRecord)."""

    values: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    skipped_reason: str | None = None


class FieldCopyMapper:
    """Copies source paths to target paths; ``reverse`` copies them back."""

    def __init__(self, design: Mapping[str, Any]) -> None:
        self.pairs: list[tuple[str, str, bool, Any]] = []
        for m in design.get("mappings", []):
            src = m.get("sourceField") or m.get("source_field")
            dst = m.get("targetField") or m.get("target_field")
            if src and dst:
                self.pairs.append((str(src), str(dst), bool(m.get("required")),
                                   m.get("defaultValue", m.get("default_value"))))

    def apply(self, record: dict[str, Any]) -> Mapped:
        """Map one source record."""
        out: dict[str, Any] = {}
        errors: list[str] = []
        for src, dst, required, default in self.pairs:
            value = _get(record, src)
            if value is None:
                value = default
            if value is None:
                if required:
                    errors.append(f"{dst}: required but {src} is empty")
                continue
            _set(out, dst, value)
        return Mapped(out, errors)

    def reverse(self, values: dict[str, Any]) -> dict[str, Any]:
        """Map care values back to a vendor payload."""
        out: dict[str, Any] = {}
        for src, dst, _required, _default in self.pairs:
            value = _get(values, dst)
            if value is not None:
                _set(out, src, value)
        return out
