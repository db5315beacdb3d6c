"""Every manifest validates; malformed ones fail naming file, field and allowed values; the catalog is complete."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from connectors.catalog import load_catalog
from connectors.cli import list_connectors
from connectors.errors import ManifestError
from connectors.manifest import load_manifest, manifest_json_schema

from .conftest import TEMPLATES

SPEC_SYSTEMS = [
    "QuickBooks", "Sage 50", "Sage Business Cloud", "Xero", "FreeAgent", "KashFlow", "ADP", "Paychex", "BrightPay",
    "Sage Payroll", "IRIS Payroll", "Open Banking", "Barclays", "HSBC", "Lloyds", "NatWest", "Making Tax Digital",
    "Sage Tax", "TaxCalc", "BambooHR", "Workday", "SuccessFactors", "PeopleHR", "Breathe HR", "RotaCloud", "Deputy",
    "When I Work", "Planday", "Shiftboard", "Indeed", "Reed", "CV-Library", "Totaljobs", "LinkedIn Talent",
    "Cornerstone OnDemand", "TalentLMS", "Moodle", "Skillsoft", "15Five", "Lattice", "Culture Amp",
    "Small Improvements", "NHS Digital APIs", "Summary Care Record", "GP Connect", "PharmOutcomes",
    "Sonar Informatics", "Cegedim", "EMIS Health", "SystmOne", "EMIS Web", "Vision", "MiDOS", "Clinisys", "Sunquest",
    "Cerner", "Epic", "Attend Anywhere", "Accurx", "Doctorlink", "Push Doctor", "Coupa", "Ariba",
    "Oracle Procurement", "Jaggaer", "TradeGecko", "Cin7", "Unleashed", "Brightpearl", "UpKeep", "Fiix",
    "Maintenance Connection", "MPulse", "Samsara", "Verizon Connect", "TomTom Telematics", "Microsoft Teams",
    "Slack", "Zoom", "WhatsApp Business",
]


@pytest.mark.parametrize("path", sorted(p for p in TEMPLATES.glob("*.yaml") if p.name != "catalog.yaml"),
                         ids=lambda p: p.stem)
def test_every_manifest_validates(path: Path) -> None:
    m = load_manifest(path)
    assert m.id == path.stem
    for name, stream in m.streams.items():
        assert stream.fields, f"{name} has no field schema"


def test_catalog_names_every_system_in_the_spec() -> None:
    cat = load_catalog(TEMPLATES)
    names = " | ".join(e.name for e in cat.entries)
    missing = [s for s in SPEC_SYSTEMS if s.lower() not in names.lower()]
    assert not missing
    assert len(cat.entries) >= 80
    assert {e.category for e in cat.entries} == {"finance", "hr_workforce", "healthcare", "operations"}
    built = {e.id for e in cat.entries if e.availability == "available"}
    assert {"xero", "quickbooks", "sage_accounting", "hmrc_vat"} <= built
    by_id = {e.id: e for e in cat.entries}
    assert "file exchange" in by_id["sage_50"].integration_method
    assert "no public api" in by_id["cv_library"].note.lower()


def test_bad_auth_type_names_file_field_and_allowed_values(tmp_path: Path) -> None:
    shutil.copy(TEMPLATES / "xero.yaml", tmp_path / "xero.yaml")
    data = yaml.safe_load((tmp_path / "xero.yaml").read_text())
    data["auth"]["type"] = "oauth3"
    (tmp_path / "xero.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ManifestError) as err:
        load_catalog(tmp_path)
    e = err.value
    assert e.path.endswith("xero.yaml") and e.field == "auth"
    assert "oauth2_authorization_code" in e.allowed and "nhs_signed_jwt" in e.allowed
    assert "xero.yaml" in str(e) and "Allowed values" in str(e)


def test_bad_paginator_and_literal_fields(tmp_path: Path) -> None:
    data = yaml.safe_load((TEMPLATES / "sage_accounting.yaml").read_text())
    data["streams"]["contacts"]["paginator"]["type"] = "scroll"
    (tmp_path / "sage_accounting.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ManifestError) as err:
        load_catalog(tmp_path)
    assert err.value.field == "streams.contacts.paginator"
    assert "quickbooks_query" in err.value.allowed and "odata" in err.value.allowed
    data = yaml.safe_load((TEMPLATES / "sage_accounting.yaml").read_text())
    data["category"] = "fun"
    (tmp_path / "sage_accounting.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ManifestError) as err:
        load_catalog(tmp_path)
    assert err.value.field == "category" and "healthcare" in err.value.allowed


def test_bad_catalog_entry(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump({"systems": [
        {"id": "x", "name": "X", "category": "finance", "subcategory": "a", "integration_method": "carrier pigeon",
         "availability": "planned", "note": "nothing to see here"}]}))
    with pytest.raises(ManifestError) as err:
        load_catalog(tmp_path)
    assert err.value.field == "systems.0.integration_method"
    assert "file exchange" in err.value.allowed and "HL7 v2" in err.value.allowed


def test_json_schema_exports() -> None:
    schema = manifest_json_schema()
    assert "streams" in schema["properties"]
    assert "OAuth2AuthorizationCode" in schema["$defs"]


def test_cli_list() -> None:
    rows = list_connectors(TEMPLATES)
    assert any(r["id"] == "xero" and r["availability"] == "available" for r in rows)
