"""The compiled design: mapping, validation messages, masking, filters, rules, reverse, templates, preview."""

import time
from pathlib import Path

import pytest

from engine.mapping import (
    MappingError,
    ReverseMappingError,
    SourceField,
    compile_design,
    explain_design,
    explain_mapping,
    list_mapping_templates,
    load_mapping_template,
    load_mapping_template_file,
    mapping_design_json_schema,
    preview,
    record_hash,
    suggest_mappings,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "mappings"


def design(*mappings, care_type="Employee", **extra):
    return {"connector": "bamboohr", "stream": "employees", "careType": care_type, "mappings": list(mappings), **extra}


def m(source, target, *steps, **kw):
    return {"sourceField": source, "targetField": target,
            "transformation": [{"function": s[0], "args": s[1] if len(s) > 1 else {}} for s in steps], **kw}


def test_snake_and_camel_case_both_accepted_and_schema_exported():
    a = compile_design(design(m("firstName", "givenName")))
    b = compile_design({"connector": "x", "stream": "s", "care_type": "Employee",
                        "mappings": [{"source_field": "firstName", "target_field": "givenName"}]})
    assert a.apply({"firstName": "Jo"}).values == b.apply({"firstName": "Jo"}).values == {"givenName": "Jo"}
    schema = mapping_design_json_schema()
    assert "careType" in schema["properties"] and "FieldMapping" in schema["$defs"]


def test_validation_messages_name_field_and_mask_sensitive_values():
    c = compile_design(design(
        m("nhs", "nhsNumber"), m("first", "givenName"), m("last", "familyName"), m("dob", "dateOfBirth"),
        m("level", "careLevel"), care_type="Resident"))
    r = c.apply({"nhs": "9434765976", "first": "Jane", "dob": "12/01/1950", "level": "palliative"})
    by_field = {e.field: e for e in r.errors}
    assert '"9*******76"' in by_field["nhsNumber"].message and "NHS number" in by_field["nhsNumber"].message
    assert "9434765976" not in by_field["nhsNumber"].message
    assert by_field["familyName"].code == "required"
    assert by_field["dateOfBirth"].value == '"1*******50"'
    assert "careLevel" in by_field["careLevel"].message and '"p*******ve"' in by_field["careLevel"].message  # health: masked
    assert r.values == {"givenName": "Jane"}


def test_transform_errors_are_per_field_and_masked():
    c = compile_design(design(m("ni", "niNumber", ("ni_number",)), m("fn", "givenName"), m("ln", "familyName"),
                              m("no", "employeeNumber")))
    r = c.apply({"ni": "ZZ999999Z", "fn": "A", "ln": "B", "no": "1"})
    assert [e.field for e in r.errors] == ["niNumber"]
    assert "ZZ999999Z" not in r.errors[0].message and '"Z******9Z"' in r.errors[0].message


def test_rules_pattern_range_length_allowed_identifier_and_date_order():
    c = compile_design(design(
        m("a", "jobTitle", validationRules=[{"rule": "pattern", "pattern": "[A-Z][a-z]+"}]),
        m("b", "contractedHoursPerWeek", validationRules=[{"rule": "range", "min": 0, "max": 48}]),
        m("c", "department", validationRules=[{"rule": "length", "max": 5}]),
        m("d", "site", validationRules=[{"rule": "allowed_values", "values": ["Oak House"]}]),
        m("e", "payrollId", validationRules=[{"rule": "identifier", "identifier": "sort_code"}]),
        m("s", "startDate"), m("t", "endDate", validationRules=[{"rule": "after", "field": "startDate"}]),
    ))
    r = c.apply({"a": "carer", "b": 60, "c": "Nursing", "d": "Elm", "e": "x", "s": "2024-05-01", "t": "2024-04-01"})
    assert sorted(e.code for e in r.errors) == ["allowed_values", "date_order", "identifier", "length", "pattern", "range"]
    ok = c.apply({"a": "Carer", "b": 37.5, "c": "Care", "d": "Oak House", "e": "12-34-56", "s": "2024-05-01", "t": "2024-06-01"})
    assert ok.ok, ok.errors


def test_filters_and_transformation_rules():
    c = compile_design(design(
        m("name", "givenName"), m("ln", "familyName"), m("no", "employeeNumber"),
        filters=[{"field": "status", "operator": "equals", "value": "Active"}],
        transformationRules=[{"name": "agency", "when": [{"field": "type", "operator": "equals", "value": "Agency"}],
                              "setValues": {"employmentType": "agency"}},
                             {"name": "test accounts", "when": [{"field": "ln", "operator": "equals", "value": "TEST"}],
                              "skip": True}]))
    skipped = c.apply({"status": "Inactive", "name": "A"})
    assert skipped.skipped_reason and "status" in skipped.skipped_reason and "'Inactive'" in skipped.skipped_reason
    r = c.apply({"status": "Active", "name": "A", "ln": "B", "no": "1", "type": "Agency"})
    assert r.values["employmentType"] == "agency"
    assert c.apply({"status": "Active", "ln": "TEST"}).skipped_reason == "left out by the rule 'test accounts'"


def test_reverse_and_one_way_fields():
    c = compile_design(design(
        m("hireDate", "startDate", ("to_date", {"from": "us"}), bidirectional=True),
        m("pay", "payRatePence", ("pounds_to_pence",), bidirectional=True),
        m("Address.Lines[1]", "address.line2", ("trim",), bidirectional=True),
        m("full", "givenName", ("split_name", {"part": "given"}), bidirectional=True),
        {"expression": "names[0]", "targetField": "familyName", "bidirectional": True},
        m("dept", "department"),
    ))
    assert set(c.one_way_fields) == {"givenName", "familyName", "department"}
    assert "split name" in c.one_way_fields["givenName"]
    care = c.apply({"hireDate": "03/25/2021", "pay": "11.44", "Address": {"Lines": ["1 High St", " Flat 2 "]}}).values
    assert care == {"startDate": "2021-03-25", "payRatePence": 1144, "address": {"line2": "Flat 2"}}
    assert c.reverse(care) == {"hireDate": "03/25/2021", "pay": 11.44, "Address": {"Lines": [None, "Flat 2"]}}
    with pytest.raises(ReverseMappingError, match="startDate"):
        c.reverse({"startDate": "not a date"})


@pytest.mark.parametrize("bad", [
    {"connector": "x", "stream": "s", "careType": "Patient", "mappings": []},
    design(m("a", "shoeSize")),
    design(m("a", "givenName", ("no_such_function",))),
    design(m("a", "givenName", ("pad", {"width": 10**9}))),
    design({"expression": "foo[", "targetField": "givenName"}),
    design({"expression": "a" + ".b" * 2000, "targetField": "givenName"}),
    design(m("a", "givenName", validationRules=[{"rule": "pattern", "pattern": "(a+)+$"}])),
    design(m("a", "givenName"), m("b", "givenName")),
])
def test_bad_designs_are_refused_with_mapping_error(bad):
    with pytest.raises(MappingError):
        compile_design(bad)


def test_every_template_loads_compiles_and_maps_an_empty_record():
    found = list_mapping_templates(TEMPLATES)
    expected = {("xero", "Contact"), ("xero", "Invoice"), ("xero", "LedgerAccount"), ("xero", "BankTransaction"),
                ("xero", "Payment"), ("xero", "Employee"), ("quickbooks", "Contact"), ("quickbooks", "Invoice"),
                ("quickbooks", "LedgerAccount"), ("sage", "Contact"), ("sage", "Invoice"), ("sage", "LedgerAccount"),
                ("hmrc_vat", "VatReturn"), ("bamboohr", "Employee"), ("bamboohr", "Absence"), ("deputy", "Employee"),
                ("deputy", "Shift"), ("deputy", "Timesheet"), ("nhs_pds", "Resident"), ("slack", "Message")}
    assert expected <= set(found)
    for (connector, care_type), path in found.items():
        d = load_mapping_template_file(path)
        assert (d.connector, d.care_type) == (connector, care_type)
        c = compile_design(d)
        c.apply({})
        assert explain_design(d)


def test_xero_invoice_template_on_a_real_shaped_record():
    c = compile_design(load_mapping_template_file(TEMPLATES / "xero" / "Invoice.yaml"))
    rec = {"Type": "ACCREC", "InvoiceID": "243216c5", "InvoiceNumber": "INV-0042", "Contact": {"ContactID": "c1", "Name": "Kent CC"},
           "Date": "/Date(1719792000000+0000)/", "DueDate": "/Date(1722384000000+0000)/", "Status": "AUTHORISED",
           "LineItems": [{"Description": "Residential care, July", "Quantity": 1.0, "UnitAmount": 1150.5, "AccountCode": "200", "TaxType": "EXEMPTOUTPUT"}],
           "SubTotal": 1150.5, "TotalTax": 0.0, "Total": 1150.5, "AmountPaid": 0.0, "CurrencyCode": "GBP"}
    r = c.apply(rec)
    assert r.ok, r.errors
    assert r.values["kind"] == "sales" and r.values["issueDate"] == "2024-07-01" and r.values["totalPence"] == 115050
    assert r.values["lines"][0]["unitAmountPence"] == 115050
    assert c.reverse(r.values)["Type"] == "ACCREC"
    assert c.apply({**rec, "Status": "DELETED"}).skipped_reason


def test_pds_template_on_the_published_example_shape():
    c = compile_design(load_mapping_template_file(TEMPLATES / "nhs_pds" / "Resident.yaml"))
    patient = {"resourceType": "Patient", "id": "9000000009", "gender": "female", "birthDate": "2010-10-22",
               "name": [{"use": "usual", "family": "Smith", "given": ["Jane"], "prefix": ["Mrs"]}],
               "address": [{"use": "home", "line": ["1 Trevelyan Square", "Boar Lane", "Leeds", "West Yorkshire"], "postalCode": "LS1 6AE"}],
               "telecom": [{"system": "phone", "value": "01632960587"}, {"system": "email", "value": "jane.smith@example.com"}],
               "generalPractitioner": [{"identifier": {"value": "Y12345"}}]}
    r = c.apply(patient)
    assert r.values["nhsNumber"] == "9000000009" and r.values["address"]["town"] == "Leeds"
    assert r.values["gpPracticeOdsCode"] == "Y12345" and r.values["status"] == "active"
    assert c.apply({**patient, "deceasedDateTime": "2024-01-01T00:00:00+00:00"}).values["status"] == "deceased"


def test_loader_rejects_bad_text():
    with pytest.raises(MappingError):
        load_mapping_template("connector: [unclosed")
    with pytest.raises(MappingError, match="careType"):
        load_mapping_template("connector: x\nstream: y\nmappings: []\n")


def test_record_hash_is_stable_and_order_free():
    assert record_hash({"a": 1, "b": {"c": [1, 2]}}) == record_hash({"b": {"c": [1, 2]}, "a": 1})
    assert record_hash({"a": 1}) != record_hash({"a": 2})
    assert len(record_hash({})) == 64


def test_suggestions_by_name_and_shape():
    s = {x.source: x for x in suggest_mappings([
        SourceField("hireDate", ["03/25/2021", "11/02/2020"]), SourceField("dob", ["1980-01-02"]),
        SourceField("surname", ["Smith"]), SourceField("nino", ["AB123456C"]), SourceField("zz", ["9434765919"]),
        SourceField("mobilePhone", ["07911 123456"])], "Employee")}
    assert s["hireDate"].target == "startDate" and s["hireDate"].transformation[0].args == {"from": "us"}
    assert s["dob"].target == "dateOfBirth" and s["surname"].target == "familyName"
    assert s["nino"].target == "niNumber" and s["mobilePhone"].transformation[0].function == "phone_e164"
    r = {x.source: x for x in suggest_mappings([SourceField("zz", ["9434765919", "9990000018"])], "Resident")}
    assert r["zz"].target == "nhsNumber" and "sample values look like" in r["zz"].reason


def test_explanations_are_plain_english():
    from engine.mapping import FieldMapping

    fm = FieldMapping.model_validate(m("hireDate", "startDate", ("to_date", {"from": "us"})))
    assert explain_mapping(fm, "BambooHR", "Employee").startswith(
        "BambooHR's hireDate becomes the employee's start date, read as a US-style date")
    d = load_mapping_template_file(TEMPLATES / "bamboohr" / "Employee.yaml")
    text = explain_design(d, "BambooHR owns staff details", "Runs every 15 minutes", connector_label="BambooHR")
    assert "BambooHR employees" in text and "owns staff details" in text and "every 15 minutes" in text


def thirty_field_design():
    maps = [m("id", "employeeNumber", ("to_text",)), m("first", "givenName", ("trim",)), m("last", "familyName", ("trim",)),
            m("pref", "preferredName", ("title_case",)), m("dob", "dateOfBirth", ("to_date", {"from": "uk"})),
            m("ni", "niNumber", ("ni_number",)), m("mail", "email", ("trim",), ("lower",)), m("tel", "phone", ("phone_e164",)),
            m("addr.l1", "address.line1"), m("addr.l2", "address.line2"), m("addr.town", "address.town", ("title_case",)),
            m("addr.county", "address.county"), m("addr.pc", "address.postcode", ("postcode",)),
            m("hired", "startDate", ("to_date", {"from": "us"})), m("left", "endDate", ("to_date", {"from": "iso"})),
            m("job", "jobTitle"), m("dept", "department", ("upper",)), m("site", "site"),
            m("etype", "employmentType", ("value_map", {"map": {"FT": "full-time", "PT": "part-time"}})),
            m("hours", "contractedHoursPerWeek", ("to_number",)), m("rate", "payRatePence", ("pounds_to_pence",)),
            m("basis", "payBasis", ("lower",)), m("payroll", "payrollId"), m("dbs", "dbsCheckDate", ("to_date", {"from": "dotnet"})),
            m("rtw", "rightToWorkExpiry", ("to_date", {"from": "unix"})),
            m("active", "status", ("to_boolean",), ("value_map", {"map": {"True": "active", "False": "inactive"}})),
            m("xid", "externalRefs.bamboohr"), m("other", "externalRefs.other"),
            m("first2", "externalRefs.display", ("concat", {"fields": ["last"]})),
            m("gp", "externalRefs.note", ("template", {"source": "{{ value }}/{{ record.site }}"}))]
    assert len(maps) == 30
    return design(*maps)


def sample(i):
    return {"id": i, "first": " Amara ", "last": "Okafor ", "pref": "amy", "dob": "12/01/1980", "ni": "AB 12 34 56 C",
            "mail": " Amara.Okafor@Example.org ", "tel": "07911 123456", "addr": {"l1": "1 High St", "l2": "", "town": "leeds",
            "county": "West Yorkshire", "pc": "ls1 6ae"}, "hired": "03/25/2021", "left": None, "job": "Carer",
            "dept": "care", "site": "Oak House", "etype": "FT", "hours": "37.5", "rate": "11.44", "basis": "Hourly",
            "payroll": f"P{i}", "dbs": "/Date(1700000000000+0000)/", "rtw": 1900000000, "active": "yes", "xid": str(i),
            "other": "o", "first2": "Amara", "gp": "x"}


def test_preview_of_50_records_through_a_30_field_design():
    c = compile_design(thirty_field_design())
    samples = [sample(i) for i in range(50)]
    current = {"3": {"givenName": "Amara", "familyName": "Okafor-Jones"}}
    started = time.perf_counter()
    res = preview(c, samples, current, key_field="id")
    elapsed = time.perf_counter() - started
    print(f"preview of 50 records x 30 fields: {elapsed * 1000:.1f} ms")  # measured, not asserted (see bench/)
    assert res.mapped == 50 and res.with_errors == 0
    row = res.rows[3]
    assert not row.is_new and any(ch.field == "familyName" for ch in row.diff)
    assert res.rows[4].is_new
    assert row.after["niNumber"] == "A******6C" and row.before["ni"].startswith("A")
    assert "AB 12 34 56 C" not in str(row.before)
