"""Source fields with live sample values, shown as short plain text (sensitive values masked)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.manifest import StreamField
from engine.mapping.paths import get_path
from engine.mapping.validation import mask
from ui.components.mapping_state import SourceField

MASKED_SENSITIVITY = {"personal", "health"}
MAX_TEXT = 60


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def source_fields(fields: Sequence[StreamField], samples: Sequence[Mapping[str, Any]]) -> list[SourceField]:
    """The stream's schema fields, plus the scalar parts of object fields seen in the samples (``Contact.Name``)."""
    out: list[SourceField] = []
    for f in fields:
        out.append(SourceField(f.name, f.type, f.description, f.sensitivity))
        if f.type not in ("object", "array"):
            continue
        seen: dict[str, Any] = {}
        for record in samples:
            value = record.get(f.name)
            if f.type == "array":
                value = value[0] if isinstance(value, list) and value else None
            if isinstance(value, Mapping):
                for key, inner in value.items():
                    if isinstance(key, str) and not isinstance(inner, Mapping | list) and key not in seen:
                        seen[key] = inner
        prefix, owner = (f"{f.name}[0]", f"the first of the {f.name.lower()}") if f.type == "array" else \
            (f.name, f"the {f.name.lower()}")
        for key, inner in list(seen.items())[:12]:
            out.append(SourceField(f"{prefix}.{key}", _kind(inner), f"{key} of {owner}", f.sensitivity))
    return out


def sample_values(samples: Sequence[Mapping[str, Any]], path: str, limit: int = 20) -> list[Any]:
    """Values of ``path`` in the sample records (missing ones skipped)."""
    out: list[Any] = []
    for record in samples[:limit]:
        try:
            value = get_path(record, path)
        except ValueError:
            return out
        if value not in (None, ""):
            out.append(value)
    return out


def short(value: Any, *, sensitive: bool = False) -> str:
    """A value as one short line of text for a person to read."""
    if value is None:
        return "(empty)"
    if isinstance(value, Mapping):
        named = next((v for k, v in value.items() if "name" in str(k).lower() and isinstance(v, str)), None)
        text = f"{{{named}…}}" if named else f"{{{len(value)} fields}}"
    elif isinstance(value, list):
        text = f"[{len(value)} item{'s' if len(value) != 1 else ''}]"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    else:
        text = str(value)
    if sensitive and not isinstance(value, Mapping | list):
        text = mask(text) if len(text) <= 8 else f"{text[0]}•••{text[-2:]}"
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def first_sample(samples: Sequence[Mapping[str, Any]], field: SourceField) -> str:
    """The first non-empty sample of a field, ready to show."""
    values = sample_values(samples, field.name)
    if not values:
        return "(no sample value)"
    return short(values[0], sensitive=field.sensitivity in MASKED_SENSITIVITY)
