"""Preview a compiled design on sample records: before, after, errors and the diff against current values."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.mapping.compiler import CompiledDesign, FieldError
from engine.mapping.paths import make_getter
from engine.mapping.validation import MASKED, mask


@dataclass(slots=True)
class FieldChange:
    """One target field whose value would change."""

    field: str
    current: Any
    new: Any


@dataclass(slots=True)
class PreviewRow:
    """One sample record through the design."""

    key: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    errors: list[FieldError]
    skipped_reason: str | None
    diff: list[FieldChange] = field(default_factory=list)
    is_new: bool = False


@dataclass(slots=True)
class PreviewResult:
    """Rows plus totals and the time the mapping took (milliseconds)."""

    rows: list[PreviewRow]
    mapped: int
    with_errors: int
    skipped: int
    elapsed_ms: float


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        path = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, path + "."))
        else:
            out[path] = v
    return out


def _mask_values(compiled: CompiledDesign, values: dict[str, Any]) -> dict[str, Any]:
    flat = _flatten(values)
    masked = {}
    for path, v in flat.items():
        sens = compiled.sensitivity_of(path)
        if sens not in MASKED:
            top_field = compiled.care_type.field(path.split(".")[0])
            sens = top_field.sensitivity if top_field is not None else sens
        masked[path] = mask(v) if (sens in MASKED and v is not None) else v
    return masked


def preview(compiled: CompiledDesign, samples: list[dict[str, Any]], current: dict[str, dict[str, Any]] | None = None,
            key_field: str | None = None, *, mask_sensitive: bool = True) -> PreviewResult:
    """Run ``samples`` through ``compiled``; compare with ``current`` care values keyed by the source key."""
    key_path = key_field or compiled.design.key_field
    get_key = make_getter(key_path) if key_path else None
    sensitive_sources = set()
    if mask_sensitive:
        for m in compiled.design.mappings:
            if m.source_field and compiled.sensitivity_of(m.target_field) in MASKED:
                sensitive_sources.add(m.source_field)
    started = time.perf_counter()
    results = [compiled.apply(s) for s in samples]
    elapsed = (time.perf_counter() - started) * 1000
    rows: list[PreviewRow] = []
    for sample, res in zip(samples, results, strict=True):
        key = get_key(sample) if get_key else None
        key_s = None if key is None else str(key)
        after_flat = _flatten(res.values)
        diff: list[FieldChange] = []
        is_new = False
        if current is not None and res.skipped_reason is None:
            existing = current.get(key_s) if key_s is not None else None
            if existing is None:
                is_new = True
            else:
                cur_flat = _flatten(existing)
                for path, v in after_flat.items():
                    if cur_flat.get(path) != v:
                        diff.append(FieldChange(path, cur_flat.get(path), v))
        before = dict(sample)
        after: dict[str, Any] = after_flat
        if mask_sensitive:
            before = {k: (mask(v) if k in sensitive_sources and v is not None else v) for k, v in sample.items()}
            after = _mask_values(compiled, res.values)
            for ch in diff:
                if compiled.sensitivity_of(ch.field) in MASKED:
                    ch.current = None if ch.current is None else mask(ch.current)
                    ch.new = None if ch.new is None else mask(ch.new)
        rows.append(PreviewRow(key_s, before, after, res.errors, res.skipped_reason, diff, is_new))
    return PreviewResult(
        rows=rows,
        mapped=sum(1 for r in results if r.ok),
        with_errors=sum(1 for r in results if r.errors),
        skipped=sum(1 for r in results if r.skipped_reason),
        elapsed_ms=elapsed,
    )
