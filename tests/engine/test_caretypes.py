import pytest

from engine.caretypes import CARE_TYPES, FieldType, Sensitivity, get_care_type

EXPECTED = ["Resident", "Medication", "Allergy", "Observation", "Appointment", "Employee", "Shift", "Timesheet", "Absence", "PayItem", "TrainingRecord", "Applicant", "JobPosting", "Review", "Contact", "Invoice", "Payment", "LedgerAccount", "BankTransaction", "VatReturn", "PurchaseOrder", "StockItem", "Asset", "WorkOrder", "Vehicle", "Trip", "Message"]


def test_every_care_type_is_defined_with_described_fields():
    assert set(EXPECTED) <= set(CARE_TYPES)
    for ct in CARE_TYPES.values():
        assert ct.fhir_anchor and ct.description
        for path in ct.field_paths():
            f = ct.field(path)
            assert f is not None and f.description and f.description[0].isupper()


def test_key_fields_and_sensitivity():
    r = get_care_type("Resident")
    assert r.field("nhsNumber").type is FieldType.NHS_NUMBER
    assert r.field("nhsNumber").sensitivity is Sensitivity.HEALTH
    assert r.field("address.postcode").type is FieldType.POSTCODE
    assert r.field("careLevel").allowed_values == ("residential", "nursing", "dementia", "respite")
    e = get_care_type("Employee")
    assert e.field("niNumber").sensitivity is Sensitivity.PERSONAL
    assert e.field("payRatePence").type is FieldType.PENCE
    inv = get_care_type("Invoice")
    assert inv.field("lines.unitAmountPence").type is FieldType.PENCE
    assert [f"box{i}" for i in range(1, 10)] == [p for p in get_care_type("VatReturn").field_paths() if p.startswith("box")]


def test_unknown_care_type_lists_known_names():
    with pytest.raises(KeyError) as exc:
        get_care_type("Patient")
    assert "Resident" in str(exc.value) and "Patient" in str(exc.value)
