"""The designer's unsaved mapping: a plain object the board edits and tests drive directly.

Per browser tab, never module-global: two managers mapping at once must not share a half-made design.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.caretypes import CareField, CareType, FieldType
from engine.mapping.models import (
    DataFilter,
    FieldMapping,
    FilterOperator,
    MappingDesign,
    TransformationRule,
    TransformStep,
)


@dataclass(frozen=True, slots=True)
class SourceField:
    """A field of the connector's stream as the designer shows it."""

    name: str
    type: str
    description: str
    sensitivity: str = "none"


@dataclass(frozen=True, slots=True)
class TargetField:
    """A WriteCareNotes field a source field can be dropped on."""

    path: str
    label: str
    type: str
    description: str
    sensitivity: str
    required: bool
    allowed_values: tuple[str, ...] | None = None


def target_fields(care_type: CareType) -> list[TargetField]:
    """Every mappable field of a care type: scalars, and the scalar parts of nested objects."""
    out: list[TargetField] = []

    def walk(prefix: str, label_prefix: str, fields: Iterable[CareField]) -> None:
        for f in fields:
            path = f"{prefix}{f.name}"
            label = f"{label_prefix}{humanise(f.name)}"
            if f.item_fields and f.type is FieldType.OBJECT:
                walk(path + ".", label + ": ", f.item_fields)
                continue
            description = f.description
            if f.type is FieldType.LIST and f.item_fields:
                # A list of records (invoice lines): drop the source list here, then "map every item".
                label += " (a list)"
                description += " Each item has: " + ", ".join(humanise(i.name).lower() for i in f.item_fields) + "."
            out.append(TargetField(path=path, label=label, type=f.type.value, description=description,
                                   sensitivity=f.sensitivity.value, required=f.required,
                                   allowed_values=f.allowed_values))

    walk("", "", care_type.fields)
    return out


def humanise(name: str) -> str:
    """``dateOfBirth`` -> ``Date of birth``; ``nhs_number`` -> ``Nhs number`` (labels, not identifiers)."""
    words: list[str] = []
    current = ""
    for ch in name.replace("_", " ").replace("-", " "):
        if ch == " ":
            if current:
                words.append(current)
            current = ""
        elif ch.isupper() and current and not current[-1].isupper():
            words.append(current)
            current = ch
        else:
            current += ch
    if current:
        words.append(current)
    text = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    return text[:1].upper() + text[1:]


@dataclass
class MappingDraft:
    """Which source field (and transformation) fills each target field, plus the half-done click-to-map."""

    connector: str
    stream: str
    care_type: CareType
    sources: list[SourceField]
    key_field: str | None = None
    mappings: dict[str, FieldMapping] = field(default_factory=dict)
    filters: list[DataFilter] = field(default_factory=list)
    rules: list[TransformationRule] = field(default_factory=list)  # kept from templates; edited via the API
    selected_source: str | None = None
    base_version: int = 0
    dirty: bool = False

    # -------------------------------------------------------------- queries

    @property
    def targets(self) -> list[TargetField]:
        """The care type's mappable fields."""
        return target_fields(self.care_type)

    def target(self, path: str) -> TargetField | None:
        """The target field at ``path``."""
        return next((t for t in self.targets if t.path == path), None)

    def source(self, name: str) -> SourceField | None:
        """The source field called ``name``."""
        return next((s for s in self.sources if s.name == name), None)

    def missing_required(self) -> list[TargetField]:
        """Required target fields that nothing fills yet (flagged until mapped)."""
        return [t for t in self.targets if t.required and t.path not in self.mappings]

    def targets_of(self, source: str) -> list[str]:
        """Target paths a source field currently fills."""
        return [t for t, m in self.mappings.items() if m.source_field == source]

    # -------------------------------------------------------------- edits

    def select_source(self, name: str | None) -> None:
        """First half of click-to-map (clicking the same field again cancels)."""
        if name is not None and self.source(name) is None:
            raise KeyError(f"no source field {name!r}")
        self.selected_source = None if name == self.selected_source else name

    def click_target(self, path: str) -> FieldMapping | None:
        """Second half of click-to-map: map the selected source onto ``path`` (None when nothing selected)."""
        if self.selected_source is None:
            return None
        mapping = self.map(self.selected_source, path)
        self.selected_source = None
        return mapping

    def map(self, source: str, target: str) -> FieldMapping:
        """Fill ``target`` from ``source``, keeping the target's transformation if it had one."""
        src = self.source(source)
        tgt = self.target(target)
        if src is None:
            raise KeyError(f"no source field {source!r}")
        if tgt is None:
            raise KeyError(f"no target field {target!r}")
        old = self.mappings.get(target)
        mapping = FieldMapping(source_field=src.name, target_field=tgt.path, required=tgt.required,
                               transformation=list(old.transformation) if old else [])
        self.mappings[target] = mapping
        self.dirty = True
        return mapping

    def unmap(self, target: str) -> None:
        """Empty a target field."""
        if self.mappings.pop(target, None) is not None:
            self.dirty = True

    def set_transform(self, target: str, function: str | None, args: Mapping[str, Any] | None = None) -> None:
        """Set the first step of the target's transformation (later steps stay); None removes every step."""
        old = self.mappings.get(target)
        if old is None:
            raise KeyError(f"{target!r} is not mapped yet")
        steps = [TransformStep(function=function, args=dict(args or {})), *old.steps()[1:]] if function else []
        self.mappings[target] = old.model_copy(update={"transformation": steps, "transformation_function": None})
        self.dirty = True

    def drop_extra_steps(self, target: str) -> None:
        """Keep only the first transformation step."""
        old = self.mappings.get(target)
        if old is None:
            raise KeyError(f"{target!r} is not mapped yet")
        self.mappings[target] = old.model_copy(update={"transformation": old.steps()[:1],
                                                       "transformation_function": None})
        self.dirty = True

    def set_expression(self, target: str, expression: str | None) -> None:
        """Advanced mode: fill ``target`` from an expression over the whole source record."""
        expression = (expression or "").strip() or None
        old = self.mappings.get(target)
        tgt = self.target(target)
        if tgt is None:
            raise KeyError(f"no target field {target!r}")
        if old is None:
            if expression is None:
                return
            old = FieldMapping(target_field=target, required=tgt.required)
        self.mappings[target] = old.model_copy(update={"expression": expression})
        self.dirty = True

    def set_default(self, target: str, value: Any) -> None:
        """The value used when the source is empty (alone: the target always gets this value)."""
        tgt = self.target(target)
        if tgt is None:
            raise KeyError(f"no target field {target!r}")
        value = None if value == "" else value
        old = self.mappings.get(target)
        if old is None:
            if value is None:
                return
            old = FieldMapping(target_field=target, required=tgt.required)
        updated = old.model_copy(update={"default_value": value})
        if value is None and not updated.source_field and not updated.expression:
            self.mappings.pop(target, None)
        else:
            self.mappings[target] = updated
        self.dirty = True

    def set_bidirectional(self, target: str, on: bool) -> None:
        """Also write changes of this field back to the other system (needs a reversible transformation)."""
        old = self.mappings.get(target)
        if old is None:
            raise KeyError(f"{target!r} is not mapped yet")
        self.mappings[target] = old.model_copy(update={"bidirectional": bool(on)})
        self.dirty = True

    def add_filter(self, source: str, operator: FilterOperator, value: Any = None, description: str | None = None) -> None:
        """Only sync records whose ``source`` field passes this test; the others are skipped with a reason."""
        if self.source(source) is None:
            raise KeyError(f"no source field {source!r}")
        self.filters.append(DataFilter(field=source, operator=operator, value=value, description=description))
        self.dirty = True

    def remove_filter(self, index: int) -> None:
        """Drop one record filter."""
        del self.filters[index]
        self.dirty = True

    def accept(self, suggestion: FieldMapping) -> None:
        """Accept one suggested mapping."""
        self.mappings[suggestion.target_field] = suggestion
        self.dirty = True

    # -------------------------------------------------------------- conversion

    def to_design(self) -> MappingDesign:
        """The engine's design, ready to compile, preview or save."""
        ordered = [self.mappings[t.path] for t in self.targets if t.path in self.mappings]
        ordered += [m for p, m in self.mappings.items() if self.target(p) is None]
        return MappingDesign(connector=self.connector, stream=self.stream, care_type=self.care_type.name,
                             mappings=ordered, filters=list(self.filters), transformation_rules=list(self.rules),
                             key_field=self.key_field,
                             version=self.base_version or 1)

    def load(self, design: MappingDesign | Mapping[str, Any], version: int = 0) -> None:
        """Replace the draft's mappings with a saved design."""
        d = design if isinstance(design, MappingDesign) else MappingDesign.model_validate(dict(design))
        self.mappings = {m.target_field: m for m in d.mappings}
        self.filters = list(d.filters)
        self.rules = list(d.transformation_rules)
        self.key_field = d.key_field or self.key_field
        self.base_version = version or d.version
        self.selected_source = None
        self.dirty = False
