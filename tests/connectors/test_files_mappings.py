"""Mapping templates of the file-exchange connectors map their sample files without errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.files.codec import parse_file
from connectors.files.layout import load_layout
from engine.mapping import compile_design, load_mapping_template_file

from .conftest import TEMPLATES

SAMPLES = Path(__file__).parent / "samples"
MAPPINGS = TEMPLATES.parent / "mappings"


def _map(connector: str, care_type: str, rows: list[dict[str, Any]]) -> list[Any]:
    compiled = compile_design(load_mapping_template_file(MAPPINGS / connector / f"{care_type}.yaml"))
    return [compiled.apply(r) for r in rows]


@pytest.mark.parametrize(("connector", "care_type", "layout", "sample", "mapped"), [
    ("sage50_files", "Contact", "sage50_customers", "sage50_customers.csv", 4),
    ("sage50_files", "Invoice", "sage50_audit_trail", "sage50_audit_trail.csv", 3),
    ("legacy_care_files", "Resident", "legacy_care_residents", "legacy_care_residents.csv", 3),
    ("legacy_care_files", "Medication", "legacy_care_medications", "legacy_care_medications.xlsx", 3),
])
def test_sample_files_map_without_errors(connector: str, care_type: str, layout: str, sample: str, mapped: int) -> None:
    rows = parse_file(load_layout(layout), (SAMPLES / sample).read_bytes())
    results = _map(connector, care_type, rows)
    assert not [r.errors for r in results if r.errors]
    assert sum(1 for r in results if r.ok) == mapped  # the rest are filtered (e.g. receipts in the audit trail)


def test_values_survive_the_mapping() -> None:
    rows = parse_file(load_layout("sage50_audit_trail"), (SAMPLES / "sage50_audit_trail.csv").read_bytes())
    inv = {r.values["number"]: dict(r.values) for r in _map("sage50_files", "Invoice", rows) if r.ok}
    assert inv["BF-889231"]["kind"] == "purchase" and inv["BF-889231"]["totalPence"] == 101052
    assert inv["INV-25032"]["contactRef"] == "LEEDSCC" and inv["INV-25032"]["issueDate"] == "2025-03-03"
    res = [dict(r.values) for r in _map("legacy_care_files", "Resident",
                                        parse_file(load_layout("legacy_care_residents"),
                                                   (SAMPLES / "legacy_care_residents.csv").read_bytes()))]
    assert {r["status"] for r in res} == {"active", "discharged"}
    assert res[0]["nhsNumber"] == "9990001103" and res[0]["fundingSource"] == "self"
    contacts = [dict(r.values) for r in _map("sage50_files", "Contact", parse_file(
        load_layout("sage50_customers"), (SAMPLES / "sage50_customers.csv").read_bytes()))]
    assert contacts[0]["address"]["postcode"] == "LS6 2AB" and contacts[0]["phone"].startswith("+44")


def test_every_file_connector_template_compiles() -> None:
    for connector in ("sage50_files", "legacy_care_files", "recruitment_files", "taxcalc_files"):
        for path in sorted((MAPPINGS / connector).glob("*.yaml")):
            design = load_mapping_template_file(path)
            assert design.connector == connector
            compile_design(design)
