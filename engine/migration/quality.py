"""The dry-run validation report: counts, duplicates, invalid fields, accuracy and match bands."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.migration.legacy import Template
from engine.migration.matching import Candidate, find_duplicates, match_all, person_from

PERSON_TYPES = frozenset({"Resident", "Employee"})


@dataclass
class TypeReport:
    """The dry-run findings for one care type."""

    care_type: str
    total: int = 0
    valid: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)  # {"id", "field", "problem", "value"}
    duplicates: list[list[str]] = field(default_factory=list)
    matched: list[dict[str, Any]] = field(default_factory=list)  # {"id", "record_id", "score", "reasons"}
    possible: list[dict[str, Any]] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    fields_checked: int = 0
    fields_invalid: int = 0

    @property
    def accuracy_pct(self) -> float:
        """Share of field values that passed validation, in percent."""
        if not self.fields_checked:
            return 100.0
        return round(100.0 * (self.fields_checked - self.fields_invalid) / self.fields_checked, 2)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (kept in the plan's wizard state)."""
        return {"care_type": self.care_type, "total": self.total, "valid": self.valid, "invalid": self.invalid,
                "duplicates": self.duplicates, "matched": self.matched, "possible": self.possible,
                "new": self.new, "fields_checked": self.fields_checked, "fields_invalid": self.fields_invalid,
                "accuracy_pct": self.accuracy_pct}


def _candidate_row(candidate: Candidate) -> dict[str, Any]:
    return {"id": candidate.incoming, "record_id": candidate.existing, "score": candidate.score.score,
            "reasons": list(candidate.score.reasons)}


def assess(template: Template, rows: Sequence[Mapping[str, Any]],
           existing: Mapping[str, Mapping[str, Any]]) -> TypeReport:
    """Validate, de-duplicate and match one export against the existing care records of its type.

    ``existing`` maps care-record id to its data. People (residents, staff) are fuzzy matched on name,
    date of birth and NHS/NI number; other types are always new.
    """
    report = TypeReport(care_type=template.care_type, total=len(rows))
    mapped: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = str(row.get(template.id_column, ""))
        record, problems = template.map(row)
        mapped[key] = record
        report.fields_checked += template.field_count
        report.fields_invalid += len(problems)
        if problems:
            for name, problem in sorted(problems.items()):
                report.invalid.append({"id": key, "field": name, "problem": problem, "value": record.get(name)})
        else:
            report.valid += 1
    if template.care_type not in PERSON_TYPES:
        report.new = sorted(mapped)
        return report
    people = [person_from(key, record) for key, record in mapped.items()]
    report.duplicates = find_duplicates(people)
    for candidate in match_all(people, [person_from(k, v) for k, v in existing.items()]):
        band = candidate.band
        if band == "match":
            report.matched.append(_candidate_row(candidate))
        elif band == "possible":
            report.possible.append(_candidate_row(candidate))
        else:
            report.new.append(candidate.incoming)
    return report


def summary(reports: Sequence[TypeReport]) -> dict[str, Any]:
    """Totals across care types for the report's headline."""
    checked = sum(r.fields_checked for r in reports)
    invalid = sum(r.fields_invalid for r in reports)
    problems = Counter(i["field"] for r in reports for i in r.invalid)
    return {"total": sum(r.total for r in reports), "valid": sum(r.valid for r in reports),
            "invalid_records": sum(r.total - r.valid for r in reports),
            "duplicates": sum(len(r.duplicates) for r in reports),
            "matched": sum(len(r.matched) for r in reports), "possible": sum(len(r.possible) for r in reports),
            "new": sum(len(r.new) for r in reports),
            "accuracy_pct": round(100.0 * (checked - invalid) / checked, 2) if checked else 100.0,
            "problem_fields": dict(problems.most_common())}
