"""Legacy care systems CareHub migrates homes off, their export layouts and mapping templates.

A template maps an export column to a care-type field, optionally through a named conversion. The
sample exports are deterministic (seeded), so a dry run, a phase run and a reconciliation all read
the same data; they stand in for a real export until the file-exchange connectors land.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from engine.migration.matching import normalise_nhs, normalise_ni, parse_date


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """One export column to one care-type field."""

    column: str
    field: str
    convert: str = "text"  # text, uk_date, nhs_number, ni_number, lower, pence


@dataclass(frozen=True, slots=True)
class LegacyTemplate:
    """How one legacy export of one data type maps onto a care type."""

    care_type: str
    export_name: str
    id_column: str
    columns: tuple[ColumnMap, ...]
    required: tuple[str, ...] = ()


    @property
    def field_count(self) -> int:
        """How many fields each record is checked on."""
        return len(self.columns)

    def map(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The mapped record and its problems by field."""
        record = apply_template(self, row)
        return record, field_problems(self, record)

    def describe(self) -> list[dict[str, str]]:
        """The mapping as rows: export column, care field, conversion."""
        return [{"column": c.column, "field": c.field, "convert": c.convert} for c in self.columns]


class DesignTemplate:
    """A legacy export mapped by a saved mapping design (``templates/mappings/<connector>/<CareType>.yaml``),
    compiled by :mod:`engine.mapping`: the same transforms and checks as a live integration."""

    def __init__(self, path: Path) -> None:
        from engine.mapping.compiler import compile_design
        from engine.mapping.loader import load_mapping_template_file

        self.path = path
        self.compiled = compile_design(load_mapping_template_file(path))
        self.care_type = self.compiled.design.care_type
        self.id_column = self.compiled.design.key_field or "id"

    @property
    def field_count(self) -> int:
        """How many fields each record is checked on."""
        return len(self.compiled.design.mappings)

    def map(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The mapped record and its problems by field, in the mapping engine's plain English."""
        result = self.compiled.apply(row)
        problems = {e.field: e.message.split(": ", 1)[-1] for e in result.errors}
        if result.skipped_reason:
            problems["(record)"] = result.skipped_reason
        return dict(result.values), problems

    def describe(self) -> list[dict[str, str]]:
        """The mapping as rows: source field, care field, transforms."""
        return [{"column": m.source_field or (m.expression or "") or "(default)", "field": m.target_field,
                 "convert": ", ".join(t.function for t in m.transformation) or "as is"}
                for m in self.compiled.design.mappings]


Template = LegacyTemplate | DesignTemplate


@dataclass(frozen=True, slots=True)
class LegacySystem:
    """A legacy system and the templates for its exports, one per care type."""

    id: str
    name: str
    description: str
    templates: tuple[Template, ...]

    def template(self, care_type: str) -> Template:
        """The template for ``care_type``; raises KeyError when the system has none."""
        for template in self.templates:
            if template.care_type == care_type:
                return template
        raise KeyError(care_type)

    @property
    def care_types(self) -> tuple[str, ...]:
        """The care types this system can export."""
        return tuple(t.care_type for t in self.templates)


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _uk_date(value: Any) -> Any:
    parsed = parse_date(value)
    return parsed.isoformat() if parsed else (value if value not in ("", None) else None)


def _nhs(value: Any) -> Any:
    return normalise_nhs(value) or (_text(value) or None)


def _ni(value: Any) -> Any:
    return normalise_ni(value) or (_text(value) or None)


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _pence(value: Any) -> Any:
    try:
        return round(float(str(value).replace("£", "").replace(",", "")) * 100)
    except ValueError:
        return value


CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "text": _text, "uk_date": _uk_date, "nhs_number": _nhs, "ni_number": _ni, "lower": _lower, "pence": _pence,
}

_RESIDENT_CC = LegacyTemplate("Resident", "Residents.csv", "ResidentID", (
    ColumnMap("Forename", "givenName"), ColumnMap("Surname", "familyName"),
    ColumnMap("DOB", "dateOfBirth", "uk_date"), ColumnMap("NHSNo", "nhsNumber", "nhs_number"),
    ColumnMap("Room", "room"), ColumnMap("Admitted", "admissionDate", "uk_date"),
    ColumnMap("CareType", "careLevel", "lower"), ColumnMap("Gender", "gender", "lower"),
), required=("givenName", "familyName", "dateOfBirth"))
_EMPLOYEE_CC = LegacyTemplate("Employee", "Staff.csv", "StaffNo", (
    ColumnMap("StaffNo", "employeeNumber"), ColumnMap("FirstName", "givenName"), ColumnMap("LastName", "familyName"),
    ColumnMap("DateOfBirth", "dateOfBirth", "uk_date"), ColumnMap("NINumber", "niNumber", "ni_number"),
    ColumnMap("Role", "jobTitle"), ColumnMap("Started", "startDate", "uk_date"),
    ColumnMap("HourlyRate", "payRatePence", "pence"),
), required=("employeeNumber", "givenName", "familyName"))
_ALLERGY_CC = LegacyTemplate("Allergy", "Allergies.csv", "AllergyID", (
    ColumnMap("ResidentID", "residentRef"), ColumnMap("Allergen", "substance"), ColumnMap("Reaction", "reaction"),
    ColumnMap("Severity", "severity", "lower"), ColumnMap("Recorded", "recordedDate", "uk_date"),
), required=("residentRef", "substance"))

MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "templates" / "mappings"


def _file_system() -> tuple[LegacySystem, ...]:
    """The file-exchange legacy system, mapped by its saved templates (absent when they are)."""
    folder = MAPPINGS_DIR / "legacy_care_files"
    templates: tuple[Template, ...] = tuple(DesignTemplate(folder / f"{name}.yaml") for name in ("Resident", "Allergy")
                                            if (folder / f"{name}.yaml").exists())
    if not templates:
        return ()
    return (LegacySystem("legacy_care_files", "Legacy care system files (resident register, allergies)",
                         "Exports read by the legacy care files connector, mapped by its saved mapping templates "
                         "(the same engine as live integrations).", templates),)


LEGACY_SYSTEMS: dict[str, LegacySystem] = {
    system.id: system for system in (
        LegacySystem("carecontrol", "Care Control (CSV export)",
                     "Residents, staff and allergies exported as CSV files from Care Control.",
                     (_RESIDENT_CC, _EMPLOYEE_CC, _ALLERGY_CC)),
        LegacySystem("paper-spreadsheets", "Spreadsheets kept by the home",
                     "Resident and staff lists typed into spreadsheets, with UK dates.",
                     (_RESIDENT_CC, _EMPLOYEE_CC)),
        *_file_system(),
    )
}

CHECKS: dict[str, Callable[[Any], bool]] = {
    "dateOfBirth": lambda v: parse_date(v) is not None and parse_date(v) < date.today(),  # type: ignore[operator]
    "admissionDate": lambda v: parse_date(v) is not None,
    "startDate": lambda v: parse_date(v) is not None,
    "recordedDate": lambda v: parse_date(v) is not None,
    "nhsNumber": lambda v: normalise_nhs(v) is not None,
    "niNumber": lambda v: normalise_ni(v) is not None,
    "careLevel": lambda v: v in {"residential", "nursing", "dementia", "respite"},
    "gender": lambda v: v in {"male", "female", "other", "unknown"},
    "severity": lambda v: v in {"mild", "moderate", "severe"},
    "payRatePence": lambda v: isinstance(v, int) and v > 0,
}
PLAIN_FIELD_PROBLEMS: dict[str, str] = {
    "dateOfBirth": "is not a real date of birth (use DD/MM/YYYY)",
    "nhsNumber": "is not a valid NHS number (10 digits with a correct check digit)",
    "niNumber": "is not a valid National Insurance number (like QQ123456C)",
}


def apply_template(template: LegacyTemplate, row: Mapping[str, Any]) -> dict[str, Any]:
    """Map one export row to a care-type record (empty values are left out)."""
    record: dict[str, Any] = {}
    for column in template.columns:
        raw = row.get(column.column)
        if raw in (None, ""):
            continue
        value = CONVERSIONS[column.convert](raw)
        if value not in (None, ""):
            record[column.field] = value
    return record


def field_problems(template: LegacyTemplate, record: Mapping[str, Any]) -> dict[str, str]:
    """Plain-English problems with a mapped record, by field (empty: the record is valid)."""
    problems: dict[str, str] = {}
    for name in template.required:
        if record.get(name) in (None, ""):
            problems[name] = "is missing but required"
    for name, value in record.items():
        check = CHECKS.get(name)
        if check is not None and not check(value):
            problems[name] = PLAIN_FIELD_PROBLEMS.get(name, "has a value that is not allowed")
    return problems


_GIVEN = ["Margaret", "Dorothy", "Joan", "Betty", "Doris", "Irene", "Eileen", "Edna", "Arthur", "Albert",
          "Harold", "Ernest", "Frank", "George", "Walter", "Stanley", "Violet", "Ivy", "Elsie", "Kathleen"]
_FAMILY = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
           "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke",
           "Patel", "Hughes", "Edwards", "Turner", "Hill", "Moore", "Cooper", "Ward", "Morris", "Lewis"]
_STAFF_GIVEN = ["Aisha", "Ben", "Chloe", "Daniel", "Emma", "Femi", "Grace", "Hassan", "Isla", "Jake",
                "Kerry", "Liam", "Megan", "Nadia", "Owen", "Priya", "Ruth", "Sean", "Tara", "Yusuf"]
_ROLES = ["Care Assistant", "Senior Carer", "Nurse", "Cook", "Housekeeper", "Activities Coordinator"]
_ALLERGENS = [("Penicillin", "Rash"), ("Peanuts", "Swelling"), ("Latex", "Itching"), ("Shellfish", "Vomiting"),
              ("Aspirin", "Wheeze"), ("Codeine", "Nausea")]


def sample_nhs_number(rng: random.Random) -> str:
    """A random NHS number from the 999 test range with a valid check digit."""
    while True:
        first = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        total = sum(int(d) * w for d, w in zip(first, (10, 9, 8, 7, 6, 5, 4, 3, 2), strict=True))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10:
            return first + str(check)


def _uk(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def sample_export(system_id: str, care_type: str, size: int = 40) -> list[dict[str, Any]]:
    """The legacy system's export rows for ``care_type`` (deterministic for a system and type).

    The data carries the faults real exports have: a duplicated resident typed twice, an NHS number
    with a wrong check digit, an impossible date, and a missing surname.
    """
    if system_id == "legacy_care_files":
        return [_as_file_row(care_type, row) for row in sample_export("carecontrol", care_type, size)]
    rng = random.Random(f"{system_id}:{care_type}")
    if care_type == "Resident":
        rows = []
        for i in range(size):
            born = date(1925, 1, 1) + timedelta(days=rng.randrange(365 * 30))
            rows.append({
                "ResidentID": f"R{1000 + i}", "Forename": _GIVEN[i % len(_GIVEN)],
                "Surname": _FAMILY[(i * 7) % len(_FAMILY)], "DOB": _uk(born), "NHSNo": sample_nhs_number(rng),
                "Room": str(1 + i), "Admitted": _uk(date(2019, 1, 1) + timedelta(days=rng.randrange(2000))),
                "CareType": rng.choice(["Residential", "Nursing", "Dementia"]),
                "Gender": "Female" if _GIVEN[i % len(_GIVEN)] in _GIVEN[:8] + _GIVEN[16:] else "Male"})
        if size >= 10:
            twin = dict(rows[3])
            twin.update(ResidentID=f"R{1000 + size}", Forename=twin["Forename"].upper() + " ", NHSNo="")
            rows.append(twin)
            rows[5]["NHSNo"] = rows[5]["NHSNo"][:9] + str((int(rows[5]["NHSNo"][9]) + 1) % 10)
            rows[7]["DOB"] = "31/02/1941"
            rows[9]["Surname"] = ""
        return rows
    if care_type == "Employee":
        rows = []
        for i in range(size):
            born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 40))
            letters = "ABCEHJKLMNPRSTWXYZ"
            ni = f"{rng.choice(letters)}{rng.choice(letters)}{rng.randrange(10**6):06d}{rng.choice('ABCD')}"
            rows.append({
                "StaffNo": f"S{200 + i}", "FirstName": _STAFF_GIVEN[i % len(_STAFF_GIVEN)],
                "LastName": _FAMILY[(i * 11 + 3) % len(_FAMILY)], "DateOfBirth": _uk(born), "NINumber": ni,
                "Role": rng.choice(_ROLES), "Started": _uk(date(2015, 1, 1) + timedelta(days=rng.randrange(3000))),
                "HourlyRate": f"{rng.randrange(1150, 2400) / 100:.2f}"})
        if size >= 10:
            rows[4]["NINumber"] = "XX12345"
        return rows
    if care_type == "Allergy":
        rows = []
        for i in range(max(1, size // 2)):
            allergen, reaction = _ALLERGENS[i % len(_ALLERGENS)]
            rows.append({"AllergyID": f"A{500 + i}", "ResidentID": f"R{1000 + (i * 3) % max(size, 1)}",
                         "Allergen": allergen, "Reaction": reaction,
                         "Severity": rng.choice(["Mild", "Moderate", "Severe"]),
                         "Recorded": _uk(date(2020, 1, 1) + timedelta(days=rng.randrange(1500)))})
        return rows
    return []


_FILE_COLUMNS = {
    "Resident": {"ResidentID": "resident_id", "Forename": "forename", "Surname": "surname", "DOB": "date_of_birth",
                 "NHSNo": "nhs_number", "Room": "room", "Admitted": "admission_date", "Gender": "gender"},
    "Allergy": {"AllergyID": "allergy_id", "ResidentID": "resident_id", "Allergen": "substance",
                "Reaction": "reaction", "Severity": "severity", "Recorded": "recorded"},
}


def _as_file_row(care_type: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A Care Control row in the legacy care files layout, as its reader hands it over (ISO dates)."""
    out: dict[str, Any] = {}
    for column, name in _FILE_COLUMNS.get(care_type, {}).items():
        value = row.get(column)
        if name in ("date_of_birth", "admission_date", "recorded") and isinstance(value, str):
            day, month, year = [*value.split("/"), "", "", ""][:3]
            value = f"{year}-{month}-{day}" if year else value
        if value not in (None, ""):
            out[name] = value.strip() if isinstance(value, str) else value
    return out
