"""Plain-English explanations of mappings and designs, for managers who do not read YAML."""

from __future__ import annotations

import re

from engine.caretypes import CareType, get_care_type
from engine.mapping.functions import get_function
from engine.mapping.functions.registry import resolve_args
from engine.mapping.models import FieldMapping, MappingDesign

_SPECIAL_WORDS = {"nhs": "NHS", "ni": "National Insurance", "dbs": "DBS", "vat": "VAT", "gp": "GP", "ods": "ODS",
                  "dmd": "dm+d", "snomed": "SNOMED", "sku": "SKU", "mot": "MOT", "url": "web address"}


def humanise(name: str) -> str:
    """``'startDate'`` -> ``'start date'``; ``'nhsNumber'`` -> ``'NHS number'``; ``'address.postcode'`` -> ``'address postcode'``."""
    words: list[str] = []
    for part in name.split("."):
        for w in re.findall(r"[A-Z]+(?=[A-Z][a-z]|\b|\d)|[A-Z]?[a-z]+|\d+", part):
            low = w.lower()
            words.append(_SPECIAL_WORDS.get(low, low))
    text = " ".join(words)
    return text.replace(" pence", " (in pence)")


def _possessive(care_type: CareType) -> str:
    return f"the {humanise(care_type.name)}'s"


def _step_phrases(m: FieldMapping) -> list[str]:
    phrases = []
    for step in m.steps():
        try:
            spec = get_function(step.function)
            phrases.append(spec.phrase(resolve_args(spec, step.args)))
        except ValueError:
            phrases.append(f"passed through {step.function}")
    return phrases


def explain_mapping(m: FieldMapping, connector_label: str, care_type: str | CareType) -> str:
    """One sentence, e.g. "BambooHR's hireDate becomes the employee's start date, read as a US-style date"."""
    ct = get_care_type(care_type) if isinstance(care_type, str) else care_type
    target = f"{_possessive(ct)} {humanise(m.target_field)}"
    if m.expression:
        subject = f"A value worked out from {connector_label}'s record (advanced expression)"
    elif m.source_field:
        subject = f"{connector_label}'s {m.source_field}"
    elif m.default_value is not None:
        return f"{target[0].upper()}{target[1:]} is always set to {m.default_value!r}."
    else:
        subject = f"A value built by {connector_label}'s mapping"
    sentence = f"{subject} becomes {target}"
    phrases = _step_phrases(m)
    if phrases:
        sentence += ", " + _join_words(phrases)
    extras = []
    if m.default_value is not None:
        extras.append(f"{m.default_value!r} when it is empty")
    if m.required:
        extras.append("a record without it is reported as an error")
    if m.bidirectional:
        extras.append("changes in WriteCareNotes are written back")
    if extras:
        sentence += "; " + "; ".join(extras)
    return sentence + "."


def _join_words(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and then " + items[-1]


def explain_design(design: MappingDesign, ownership_summary: str | None = None, schedule_summary: str | None = None,
                   connector_label: str | None = None) -> str:
    """A short paragraph describing what the design does, for the review step of the designer."""
    ct = get_care_type(design.care_type)
    label = connector_label or design.connector.replace("_", " ").title()
    n = len(design.mappings)
    two_way = sum(1 for m in design.mappings if m.bidirectional)
    parts = [f"This integration copies {label} {design.stream.replace('_', ' ')} into WriteCareNotes as "
             f"{humanise(ct.name)} records, filling {n} field{'s' if n != 1 else ''}"
             + (f" ({two_way} of them kept in step both ways)." if two_way else ".")]
    required = [humanise(m.target_field) for m in design.mappings if m.required]
    if required:
        parts.append(f"A record must have {_join_and(required)}, or it goes to the error list instead.")
    for f in design.filters:
        parts.append((f.description and f"Only records where {f.description} are included.")
                     or f"Only records whose {f.field} {f.operator.value.replace('_', ' ')} {f.value!r} are included.")
    if design.transformation_rules:
        parts.append(f"{len(design.transformation_rules)} extra rule(s) adjust or skip records: "
                     + "; ".join(r.description or r.name for r in design.transformation_rules) + ".")
    if ownership_summary:
        parts.append(ownership_summary.rstrip(".") + ".")
    if schedule_summary:
        parts.append(schedule_summary.rstrip(".") + ".")
    return " ".join(parts)


def _join_and(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
