"""Finance and inventory file routes: Sage Payroll (UK), Sage Tax, generic invoice files and TradeGecko CSV exports.

Every layout round-trips its sample file; malformed files are refused with row, column and reason and import
nothing; invoice and purchase-order rows are grouped into documents whose totals must add up; writes land as one
idempotent file in the outbox; and the real sync worker turns dropped files into Employee, Invoice and StockItem
care records.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlmodel import col

from app.sync_jobs import enqueue_run
from connectors.files.codec import FileRejected, parse_file, write_file
from connectors.files.grouped import (
    GroupedFileExchangeSession,
    Grouping,
    layout_for,
    parse_grouped,
    write_grouped,
)
from connectors.files.layout import load_layout
from connectors.files.session import FileExchangeSession
from connectors.manifest import load_manifest
from connectors.sessions import open_session, session_class
from engine.mapping import compile_design, load_mapping_template_file
from engine.ports import OutboundRecord
from storage import runs as runrepo
from storage.models import CareRecord

from .conftest import TEMPLATES
from .worker_harness import count_care, drain, folder_integration

SAMPLES = Path(__file__).parent / "samples"
MAPPINGS = TEMPLATES.parent / "mappings"
CONNECTORS = {"sage_payroll_files": FileExchangeSession, "sage_tax_files": GroupedFileExchangeSession,
              "invoicing_files": GroupedFileExchangeSession, "tradegecko_files": GroupedFileExchangeSession}
FIELD_TYPES = {"string": "string", "postcode": "string", "email": "string", "phone": "string", "nhs_number": "string",
               "integer": "integer", "decimal": "number", "date": "date", "datetime": "datetime", "boolean": "boolean"}


def _grouping(connector: str, stream: str) -> Grouping:
    grouping = Grouping.from_params(load_manifest(TEMPLATES / f"{connector}.yaml").streams[stream].params)
    assert grouping is not None
    return grouping


def test_manifests_mirror_their_layouts_and_use_file_sessions() -> None:
    for cid, cls in CONNECTORS.items():
        m = load_manifest(TEMPLATES / f"{cid}.yaml")
        assert m.integration_method == "file exchange" and m.availability == "available"
        assert session_class(cid) is cls
        for name, stream in m.streams.items():
            layout = load_layout(stream.params["layout"])
            expected = [(c.name, FIELD_TYPES[c.type]) for c in layout.columns]
            grouping = Grouping.from_params(stream.params)
            if grouping is not None:
                grouping.check(layout)
                expected.append(("lines", "array"))
            assert [(f.name, f.type) for f in stream.fields] == expected, name
            assert stream.primary_key == layout.primary_key and stream.care_type == layout.care_type, name


def test_catalog_lines_point_at_the_built_connectors() -> None:
    raw = yaml.safe_load((TEMPLATES / "catalog.yaml").read_text(encoding="utf-8"))
    by_id = {e["id"]: e for e in raw["systems"]}
    for system, connector in (("sage_payroll", "sage_payroll_files"), ("sage_tax", "sage_tax_files"),
                              ("invoicing_files", "invoicing_files"), ("tradegecko", "tradegecko_files")):
        entry = by_id[system]
        assert (entry["connector"], entry["availability"], entry["integration_method"]) == (
            connector, "available", "file exchange"), system
        assert (TEMPLATES / f"{connector}.yaml").exists()
    assert "unconfirmed" in by_id["sage_tax"]["note"] and "HMRC" in by_id["sage_tax"]["note"]


@pytest.mark.parametrize(("layout_id", "sample", "rows"), [
    ("sage_payroll_employees", "sage_payroll_employees.csv", 4),
    ("sage_payroll_timesheet", "sage_payroll_timesheet.csv", 3),
    ("sage_payroll_payments_summary", "sage_payroll_payments_summary.csv", 4),
    ("sage_tax_trial_balance", "sage_tax_trial_balance.csv", 7),
    ("tradegecko_products", "tradegecko_products.csv", 4),
])
def test_row_samples_round_trip(layout_id: str, sample: str, rows: int) -> None:
    layout = load_layout(layout_id)
    data = (SAMPLES / sample).read_bytes()
    records = parse_file(layout, data, sample)
    assert len(records) == rows
    assert write_file(layout, records) == data  # byte for byte
    assert parse_file(layout, write_file(layout, records)) == records  # write -> parse -> same records


@pytest.mark.parametrize(("connector", "stream", "sample", "documents", "lines"), [
    ("invoicing_files", "invoices", "invoices_generic.csv", 3, 7),
    ("tradegecko_files", "purchase_orders", "tradegecko_purchase_orders.csv", 2, 3),
])
def test_grouped_samples_round_trip_as_csv_and_xlsx(connector: str, stream: str, sample: str, documents: int,
                                                     lines: int) -> None:
    spec = load_manifest(TEMPLATES / f"{connector}.yaml").streams[stream]
    layout, grouping = load_layout(spec.params["layout"]), _grouping(connector, stream)
    data = (SAMPLES / sample).read_bytes()
    docs = parse_grouped(layout, grouping, data, sample)
    assert len(docs) == documents and sum(len(d["lines"]) for d in docs) == lines
    assert write_grouped(layout, grouping, docs) == data
    as_xlsx = layout_for(layout, "export.xlsx")
    assert as_xlsx.format == "xlsx"
    workbook = write_grouped(as_xlsx, grouping, docs)
    assert workbook[:2] == b"PK"
    assert parse_grouped(as_xlsx, grouping, workbook) == docs


def test_values_are_typed_in_the_documented_layouts() -> None:
    emp = {r["employee_ref"]: r for r in parse_file(load_layout("sage_payroll_employees"),
                                                    (SAMPLES / "sage_payroll_employees.csv").read_bytes())}
    assert "Siân".encode("cp1252") in (SAMPLES / "sage_payroll_employees.csv").read_bytes()
    assert emp["1001"]["forename"] == "Siân" and emp["1001"]["date_of_birth"] == "1979-04-12"
    assert emp["1002"]["week1_month1"] is True and emp["1002"]["address_1"] == "Flat 3, 88 Otley Road"
    assert emp["1004"]["leave_date"] == "2025-02-28" and emp["1003"]["email"] is None
    ts = parse_file(load_layout("sage_payroll_timesheet"), (SAMPLES / "sage_payroll_timesheet.csv").read_bytes())
    assert [(t["payment_ref"], t["units"], t["rate"]) for t in ts] == [("1", 37.5, None), ("1", 36.0, 12.21),
                                                                        ("2", 4.25, 18.315)]
    inv = parse_grouped(load_layout("invoices_generic"), _grouping("invoicing_files", "invoices"),
                        (SAMPLES / "invoices_generic.csv").read_bytes())
    assert inv[0]["invoice_number"] == "CF-2025-0301" and inv[0]["_rows"] == [2, 3, 4]
    assert [ln["line_net"] for ln in inv[0]["lines"]] == [3875.0, 36.0, 304.0]
    assert inv[2]["total"] == 411.12 and inv[2]["resident_ref"] is None


def test_malformed_employee_file_is_refused_with_row_column_and_reason() -> None:
    with pytest.raises(FileRejected) as exc:
        parse_file(load_layout("sage_payroll_employees"),
                   (SAMPLES / "sage_payroll_employees_malformed.csv").read_bytes(), "employees_bad.csv")
    got = {(i.row, i.column, i.reason.split(" (")[0]) for i in exc.value.issues}
    assert got == {
        (2, "NI Number", "does not match the required pattern"),
        (3, "Date of Birth", "not a date in the format DD/MM/YYYY"),
        (4, "Surname", "a value is required"),
        (5, "Employee Reference", "duplicate of row 3"),
        (6, "-", "expected 21 columns, found 3"),
    }
    assert str(exc.value).startswith("employees_bad.csv was not imported: 5 problem(s): row 2, column 'NI Number'")


def test_malformed_invoice_file_is_refused_by_its_groups() -> None:
    layout, grouping = load_layout("invoices_generic"), _grouping("invoicing_files", "invoices")
    with pytest.raises(FileRejected) as exc:
        parse_grouped(layout, grouping, (SAMPLES / "invoices_generic_malformed.csv").read_bytes(), "inv_bad.csv")
    assert [(i.row, i.column, i.reason) for i in exc.value.issues] == [
        (3, "Customer Reference", "differs from row 2 of the same Invoice Number CF-2025-0301"),
        (5, "Invoice Net", "is 3890.00 but the lines of CF-2025-0302 add up to 3890.09"),
        (7, "Invoice Total", "is 410.12 but Invoice Net + Invoice VAT is 411.12"),
    ]
    # Cell-level problems (a repeated line number, a VAT rate over 100) are found before any grouping.
    good = (SAMPLES / "invoices_generic.csv").read_bytes().decode("utf-8-sig").split("\r\n")
    good[3] = good[3].replace(",Sent,3,Chiropody,", ",Sent,2,Chiropody,")
    good[7] = good[7].replace(",5000,20.00,90.00,", ",5000,120.00,90.00,")
    with pytest.raises(FileRejected) as cells:
        parse_grouped(layout, grouping, "\r\n".join(good).encode("utf-8"))
    assert [(i.row, i.column, i.reason) for i in cells.value.issues] == [
        (4, "Line Number", "duplicate of row 3"), (8, "VAT Rate", "must be at most 100")]
    assert cells.value.issues[0].value == "CF-2025-0301, 2"


def _session(connector: str, inbox: Path, outbox: Path, **extra: str) -> FileExchangeSession:
    s = open_session(load_manifest(TEMPLATES / f"{connector}.yaml"),
                     {"inbox_dir": str(inbox), "outbox_dir": str(outbox), **extra}, {},
                     connection_id=f"files-{connector}")
    assert isinstance(s, FileExchangeSession)
    return s


async def test_invoice_folder_read_imports_documents_and_nothing_from_a_bad_file(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    shutil.copy(SAMPLES / "invoices_generic.csv", inbox / "invoices_2025-03.csv")
    shutil.copy(SAMPLES / "invoices_generic_malformed.csv", inbox / "invoices_2025-04.csv")
    os.utime(inbox / "invoices_2025-04.csv", (2_000_000_000, 2_000_000_000))
    async with _session("invoicing_files", inbox, outbox) as s:
        assert (await s.test_connection()).ok
        pages = []
        with pytest.raises(FileRejected) as refused:
            async for page in s.read("invoices"):
                pages.append(page)
        assert str(refused.value).startswith("invoices_2025-04.csv was not imported: 3 problem(s): row 3, column "
                                             "'Customer Reference'")
        records = [r for p in pages for r in p.records]
        assert [r.external_id for r in records] == ["CF-2025-0301", "CF-2025-0302", "PI-88123"]
        assert [len(r.data["lines"]) for r in records] == [3, 2, 2]
        assert records[1].data["_row"] == 5 and "_rows" not in records[1].data
        assert (inbox / "rejected" / "invoices_2025-04.csv").exists()
        cp = pages[-1].checkpoint
        assert sum(len(p.records) for p in [p async for p in s.read("invoices", cp)]) == 0
        # An XLSX export of one more invoice is picked up by its extension.
        layout, grouping = load_layout("invoices_generic"), _grouping("invoicing_files", "invoices")
        extra = {**records[2].data, "invoice_number": "PI-88124"}
        (inbox / "invoices_2025-05.xlsx").write_bytes(write_grouped(layout_for(layout, "x.xlsx"), grouping, [extra]))
        fresh = [r for p in [p async for p in s.read("invoices", cp)] for r in p.records]
        assert [(r.external_id, len(r.data["lines"])) for r in fresh] == [("PI-88124", 2)]


async def test_tradegecko_exports_read_as_stock_items_and_orders(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "tradegecko_products.csv", inbox / "products_export.csv")
    shutil.copy(SAMPLES / "tradegecko_purchase_orders.csv", inbox / "purchase_orders_export.csv")
    async with _session("tradegecko_files", inbox, tmp_path / "out") as s:
        products = [r for p in [p async for p in s.read("products")] for r in p.records]
        orders = [r for p in [p async for p in s.read("purchase_orders")] for r in p.records]
        sample = await s.sample("purchase_orders", 1)
        with pytest.raises(Exception, match="read-only"):
            await s.write("products", [OutboundRecord("k", products[0].data)])
    assert [p.external_id for p in products] == ["GLV-NIT-M", "GLV-NIT-L", "APR-WHT-200", "NUT-CLR-175"]
    assert [(o.external_id, [ln["sku"] for ln in o.data["lines"]]) for o in orders] == [
        ("PO-0107", ["GLV-NIT-M", "APR-WHT-200"]), ("PO-0108", ["NUT-CLR-175"])]
    assert sample[0].external_id == "PO-0107" and "_rows" not in sample[0].data


async def test_timesheet_hours_are_written_once_for_the_payroll_import(tmp_path: Path) -> None:
    """Approved rota timesheets (care records) -> two-way mapping -> Sage payments import file."""
    design = compile_design(load_mapping_template_file(MAPPINGS / "sage_payroll_files" / "Timesheet.yaml"))
    care = [
        {"employeeRef": "1001", "payCode": "1", "approvedMinutes": 2250, "clockIn": "2025-03-07T07:00:00+00:00"},
        {"employeeRef": "1002", "payCode": "1", "approvedMinutes": 2160, "clockIn": "2025-03-07T19:00:00+00:00"},
        {"employeeRef": "1002", "payCode": "2", "approvedMinutes": 255, "clockIn": "2025-03-08T19:00:00+00:00"},
    ]
    refs = ["rota-2025-w10-1001", "rota-2025-w10-1002", "rota-2025-w10-1002-ot"]
    payloads = [{**design.reverse(c), "timesheet_ref": ref} for c, ref in zip(care, refs, strict=True)]
    assert payloads[2] == {"employee_ref": "1002", "payment_ref": "2", "units": 4.25,
                           "date_worked": "2025-03-08T19:00:00+00:00", "timesheet_ref": "rota-2025-w10-1002-ot"}
    recs = [OutboundRecord(f"run3-{p['timesheet_ref']}", p) for p in payloads]
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    async with _session("sage_payroll_files", inbox, outbox) as s:
        first = await s.write("timesheet", recs)
        again = await s.write("timesheet", recs)
        bad = await s.write("timesheet", [OutboundRecord("b1", {**payloads[0], "payment_ref": "basic"}),
                                          OutboundRecord("b2", payloads[1])])
    files = sorted(p.name for p in outbox.iterdir())
    assert len(files) == 1 and files[0].startswith("sage_payroll_timesheet_")
    assert all(o.ok for o in first) and [o.external_id for o in first] == refs
    assert all(o.ok and o.data["duplicate"] for o in again)
    assert not bad[0].ok and "Payment Reference" in (bad[0].error_message or "") and not bad[1].ok
    written = parse_file(load_layout("sage_payroll_timesheet"), (outbox / files[0]).read_bytes())
    assert [(r["employee_ref"], r["payment_ref"], r["units"], r["date_worked"]) for r in written] == [
        ("1001", "1", 37.5, "2025-03-07"), ("1002", "1", 36.0, "2025-03-07"), ("1002", "2", 4.25, "2025-03-08")]
    text = (outbox / files[0]).read_bytes()
    assert text.startswith(b"Employee Reference,Payment Reference,Hours/Units,Rate,Date Worked,Timesheet Reference\r\n")


async def test_invoices_and_trial_balance_are_written_in_their_layouts(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    layout, grouping = load_layout("invoices_generic"), _grouping("invoicing_files", "invoices")
    docs = parse_grouped(layout, grouping, (SAMPLES / "invoices_generic.csv").read_bytes())
    recs = [OutboundRecord(f"run9-{d['invoice_number']}", {k: v for k, v in d.items() if k != "_rows"}) for d in docs]
    async with _session("invoicing_files", inbox, outbox) as s:
        csv_out = await s.write("invoices", recs)
        again = await s.write("invoices", recs)
        broken = {**recs[1].payload, "lines": [{**recs[1].payload["lines"][0], "description": None}]}
        bad = await s.write("invoices", [recs[0], OutboundRecord("bad-1", broken)])
    async with _session("invoicing_files", inbox, tmp_path / "xlsx", file_format="xlsx") as sx:
        xlsx_out = await sx.write("invoices", recs)
    files = sorted(p.name for p in outbox.iterdir())
    assert len(files) == 1 and files[0].startswith("carehub_invoices_")  # never matches the inbox pattern
    assert all(o.ok for o in csv_out) and all(o.data.get("duplicate") for o in again)
    assert (outbox / files[0]).read_bytes() == (SAMPLES / "invoices_generic.csv").read_bytes()
    assert bad[0].ok is False and bad[0].error_message == "another record in this file is invalid"
    assert not bad[1].ok and "Line Description: a value is required" in (bad[1].error_message or "")
    workbook = next((tmp_path / "xlsx").iterdir())
    assert workbook.suffix == ".xlsx" and all(o.ok for o in xlsx_out)
    assert parse_grouped(layout_for(layout, workbook.name), grouping, workbook.read_bytes()) == docs

    tb = parse_file(load_layout("sage_tax_trial_balance"), (SAMPLES / "sage_tax_trial_balance.csv").read_bytes())
    async with _session("sage_tax_files", inbox, tmp_path / "tb") as st:
        out = await st.write("trial_balance", [OutboundRecord(f"tb-{r['nominal_code']}", r) for r in tb])
    assert [o.external_id for o in out] == ["0030", "1200", "2200", "3200", "4000", "7000", "7100"]
    assert next((tmp_path / "tb").iterdir()).read_bytes() == (SAMPLES / "sage_tax_trial_balance.csv").read_bytes()


async def test_a_trial_balance_that_does_not_balance_is_neither_read_nor_written(tmp_path: Path) -> None:
    data = (SAMPLES / "sage_tax_trial_balance.csv").read_bytes()
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    (inbox / "trial_balance_2025-03.csv").write_bytes(data.replace(b"7100,Rent,72943.50,", b"7100,Rent,72934.50,"))
    (inbox / "trial_balance_2025-04.csv").write_bytes(data.replace(b"4000,Residential care fees,,412650.00",
                                                                   b"4000,Residential care fees,10.00,412660.00"))
    os.utime(inbox / "trial_balance_2025-04.csv", (2_000_000_000, 2_000_000_000))
    rows = parse_file(load_layout("sage_tax_trial_balance"), data)
    s = _session("sage_tax_files", inbox, outbox)
    async with s:
        assert s.check_file("trial_balance", data) == rows  # the sample balances: 454,932.40 each side
        with pytest.raises(FileRejected) as refused:
            _ = [p async for p in s.read("trial_balance")]
        assert [(f.name, [(i.row, i.column, i.reason) for i in f.issues]) for f in s.rejected] == [
            ("trial_balance_2025-03.csv", [(8, "Credit", "the file does not balance: Debit totals 454923.40, "
                                                         "Credit totals 454932.40")]),
            ("trial_balance_2025-04.csv", [(6, "Credit", "fill exactly one of Debit or Credit (both given)")]),
        ]
        assert "trial_balance_2025-03.csv and trial_balance_2025-04.csv" in str(refused.value)
        short = [{**r, "debit": 72000.0} if r["nominal_code"] == "7100" else r for r in rows]
        refused_write = await s.write("trial_balance", [OutboundRecord(f"tb-{r['nominal_code']}", r) for r in short])
        both = await s.write("trial_balance", [OutboundRecord("x", {**rows[0], "credit": 1.0}),
                                               OutboundRecord("y", {**rows[1], "debit": None, "credit": 18449.0})])
    assert not any(o.ok for o in refused_write)
    assert refused_write[0].error_message == ("Credit: the file does not balance: Debit totals 453988.90, "
                                              "Credit totals 454932.40")
    assert both[0].error_message == "row 2, Credit: fill exactly one of Debit or Credit (both given)"
    assert both[1].error_message == "another record in this file is invalid"
    assert not outbox.exists() or not list(outbox.iterdir())


async def test_staff_are_written_back_as_an_employee_details_import(tmp_path: Path) -> None:
    design = compile_design(load_mapping_template_file(MAPPINGS / "sage_payroll_files" / "Employee.yaml"))
    staff = {"employeeNumber": "1010", "givenName": "Grace", "familyName": "Adeyemi", "dateOfBirth": "1990-08-14",
             "niNumber": "AB123456C", "email": "grace.adeyemi@example.org", "startDate": "2025-04-01",
             "jobTitle": "Care Assistant", "department": "Care",
             "address": {"line1": "5 Beech Grove", "town": "Leeds", "postcode": "LS8 2QL"}}
    payload = design.reverse(staff)
    async with _session("sage_payroll_files", tmp_path / "in", tmp_path / "out") as s:
        out = await s.write("employees", [OutboundRecord("emp-1010", payload)])
        bad = await s.write("employees", [OutboundRecord("emp-1011", {**payload, "ni_number": "AB123456"})])
    assert out[0].ok and out[0].external_id == "1010"
    assert not bad[0].ok and "NI Number" in (bad[0].error_message or "")
    written = parse_file(load_layout("sage_payroll_employees"), next((tmp_path / "out").iterdir()).read_bytes())
    assert len(written) == 1
    assert {k: v for k, v in written[0].items() if v is not None} == {
        "employee_ref": "1010", "forename": "Grace", "surname": "Adeyemi", "date_of_birth": "1990-08-14",
        "ni_number": "AB123456C", "email": "grace.adeyemi@example.org", "start_date": "2025-04-01",
        "job_title": "Care Assistant", "department": "Care", "address_1": "5 Beech Grove", "address_3": "Leeds",
        "post_code": "LS8 2QL"}


async def test_an_invoice_whose_lines_do_not_add_up_is_not_written(tmp_path: Path) -> None:
    layout, grouping = load_layout("invoices_generic"), _grouping("invoicing_files", "invoices")
    docs = parse_grouped(layout, grouping, (SAMPLES / "invoices_generic.csv").read_bytes())
    payloads = [{k: v for k, v in d.items() if k != "_rows"} for d in docs]
    payloads[1]["lines"] = payloads[1]["lines"][:1]  # the 0.12 rounding line dropped: 3889.88 != 3890.00
    async with _session("invoicing_files", tmp_path / "in", tmp_path / "out") as s:
        out = await s.write("invoices", [OutboundRecord(f"inv-{p['invoice_number']}", p) for p in payloads])
    assert [o.ok for o in out] == [False, False, False]
    assert out[1].error_message == ("row 5, Invoice Net: is 3890.00 but the lines of CF-2025-0302 add up to "
                                    "3889.88")
    assert out[0].error_message == "another record in this file is invalid"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _map(connector: str, care_type: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    compiled = compile_design(load_mapping_template_file(MAPPINGS / connector / f"{care_type}.yaml"))
    results = [compiled.apply(r) for r in rows]
    assert not [r.errors for r in results if r.errors]
    return [dict(r.values) for r in results if r.ok]


def test_every_template_compiles_and_maps_its_sample() -> None:
    for connector in CONNECTORS:
        for path in sorted((MAPPINGS / connector).glob("*.yaml")):
            design = load_mapping_template_file(path)
            assert design.connector == connector
            compile_design(design)
    staff = _map("sage_payroll_files", "Employee", parse_file(
        load_layout("sage_payroll_employees"), (SAMPLES / "sage_payroll_employees.csv").read_bytes()))
    assert [(s["employeeNumber"], s["status"]) for s in staff] == [
        ("1001", "active"), ("1002", "active"), ("1003", "active"), ("1004", "leaver")]
    assert staff[0]["niNumber"] == "JK482913C" and staff[0]["address"]["postcode"] == "LS6 2AB"
    assert staff[3]["endDate"] == "2025-02-28"
    pay = _map("sage_payroll_files", "PayItem", parse_file(
        load_layout("sage_payroll_payments_summary"), (SAMPLES / "sage_payroll_payments_summary.csv").read_bytes()))
    assert [(p["element"], p["amountPence"]) for p in pay] == [("basic", 218563), ("holiday", 20175),
                                                               ("basic", 346500), ("pension", -17325)]
    times = _map("sage_payroll_files", "Timesheet", parse_file(
        load_layout("sage_payroll_timesheet"), (SAMPLES / "sage_payroll_timesheet.csv").read_bytes()))
    assert [t["approvedMinutes"] for t in times] == [2250, 2160, 255]
    accounts = _map("sage_tax_files", "LedgerAccount", parse_file(
        load_layout("sage_tax_trial_balance"), (SAMPLES / "sage_tax_trial_balance.csv").read_bytes()))
    assert [a["type"] for a in accounts] == ["asset", "asset", "liability", "equity", "revenue", "expense", "expense"]
    invoices = _map("invoicing_files", "Invoice", parse_grouped(
        load_layout("invoices_generic"), _grouping("invoicing_files", "invoices"),
        (SAMPLES / "invoices_generic.csv").read_bytes()))
    assert [(i["kind"], i["totalPence"], i["status"]) for i in invoices] == [
        ("sales", 421500, "authorised"), ("sales", 389000, "paid"), ("purchase", 41112, "authorised")]
    assert invoices[0]["lines"][0] == {"description": "Residential care fees, 1-31 March 2025 (31 nights)",
                                       "quantity": 31.0, "unitAmountPence": 12500, "accountCode": "4000",
                                       "taxType": "0%"}
    assert invoices[0]["residentRef"] == "RES-0042" and invoices[2]["lines"][1]["taxType"] == "20%"
    stock = _map("tradegecko_files", "StockItem", parse_file(
        load_layout("tradegecko_products"), (SAMPLES / "tradegecko_products.csv").read_bytes()))
    assert [s["name"] for s in stock] == ["Nitrile gloves - Medium", "Nitrile gloves - Large", "Disposable aprons",
                                          "Thickener, Nutilis Clear - 175 g tin"]
    assert stock[3]["quantityOnHand"] == 9.5 and stock[0]["costPence"] == 421
    orders = _map("tradegecko_files", "PurchaseOrder", parse_grouped(
        load_layout("tradegecko_purchase_orders"), _grouping("tradegecko_files", "purchase_orders"),
        (SAMPLES / "tradegecko_purchase_orders.csv").read_bytes()))
    assert [(o["number"], o["status"], o["totalPence"], len(o["lines"])) for o in orders] == [
        ("PO-0107", "ordered", 34260, 2), ("PO-0108", "received", 14220, 1)]
    assert orders[0]["lines"][0] == {"item": "GLV-NIT-M", "quantity": 60.0, "unitPricePence": 421}


# ---------------------------------------------------------------- end to end through the real sync worker


def _integration(ctx: Any, connector: str, stream: str, care_type: str, inbox: Path) -> str:
    design = yaml.safe_load((MAPPINGS / connector / f"{care_type}.yaml").read_text())
    return folder_integration(ctx, connector, f"{connector} (files)",
                              {"inbox_dir": inbox, "outbox_dir": inbox.parent / "out"}, {stream: (care_type, design)})


def _care(ctx: Any, care_type: str) -> list[dict[str, Any]]:
    with ctx.db.session() as s:
        rows = s.execute(select(CareRecord).where(col(CareRecord.care_type) == care_type)).scalars()
        return [dict(r.data) for r in rows]


def _run(ctx: Any, run_id: str) -> Any:
    run = runrepo.get_run(ctx.db, run_id)
    assert run is not None
    return run


async def test_sage_payroll_employees_sync_into_the_care_store(ctx: Any, arq: ArqRedis, redis_url: str,
                                                                tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "sage_payroll_employees.csv", inbox / "employees_2025-03.csv")
    integ = _integration(ctx, "sage_payroll_files", "employees", "Employee", inbox)
    before = count_care(ctx, "Employee")

    run1 = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await drain(ctx, redis_url, "finance-files-worker")
    r1 = _run(ctx, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 4 and r1.counts["created"] == 4
    assert count_care(ctx, "Employee") == before + 4
    staff = {e["employeeNumber"]: e for e in _care(ctx, "Employee") if "sage_payroll_files" in e.get("externalRefs", {})}
    assert staff["1004"]["status"] == "leaver" and staff["1001"]["givenName"] == "Siân"

    shutil.copy(SAMPLES / "sage_payroll_employees_malformed.csv", inbox / "employees_2025-04.csv")
    os.utime(inbox / "employees_2025-04.csv", (2_000_000_000, 2_000_000_000))
    run2 = await enqueue_run(ctx.db, arq, integ, "manual")
    await drain(ctx, redis_url, "finance-files-worker")
    r2 = _run(ctx, run2)
    assert r2.status == "failed"
    assert "employees_2025-04.csv was not imported" in (r2.error or "")
    assert "row 3, column 'Date of Birth': not a date in the format DD/MM/YYYY" in (r2.error or "")
    assert count_care(ctx, "Employee") == before + 4  # nothing from the bad file


async def test_generic_invoices_sync_into_the_care_store(ctx: Any, arq: ArqRedis, redis_url: str,
                                                          tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "invoices_generic.csv", inbox / "invoices_2025-03.csv")
    integ = _integration(ctx, "invoicing_files", "invoices", "Invoice", inbox)
    before = count_care(ctx, "Invoice")

    run1 = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await drain(ctx, redis_url, "finance-files-worker")
    r1 = _run(ctx, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 3 and r1.counts["created"] == 3
    assert count_care(ctx, "Invoice") == before + 3
    mine = {i["number"]: i for i in _care(ctx, "Invoice") if "invoicing_files" in i.get("externalRefs", {})}
    assert sorted(mine) == ["CF-2025-0301", "CF-2025-0302", "PI-88123"]
    assert [ln["unitAmountPence"] for ln in mine["CF-2025-0301"]["lines"]] == [12500, 1800, 30400]
    assert mine["PI-88123"]["vatPence"] == 6852 and mine["PI-88123"]["kind"] == "purchase"

    shutil.copy(SAMPLES / "invoices_generic_malformed.csv", inbox / "invoices_2025-04.csv")
    os.utime(inbox / "invoices_2025-04.csv", (2_000_000_000, 2_000_000_000))
    run2 = await enqueue_run(ctx.db, arq, integ, "manual")
    await drain(ctx, redis_url, "finance-files-worker")
    r2 = _run(ctx, run2)
    assert r2.status == "failed"
    assert "row 5, column 'Invoice Net': is 3890.00 but the lines of CF-2025-0302 add up to 3890.09" in (r2.error or "")
    assert count_care(ctx, "Invoice") == before + 3

    run3 = await enqueue_run(ctx.db, arq, integ, "manual")
    await drain(ctx, redis_url, "finance-files-worker")
    r3 = _run(ctx, run3)
    assert r3.status == "succeeded" and r3.counts["read"] == 0


async def test_tradegecko_stock_migrates_into_the_care_store(ctx: Any, arq: ArqRedis, redis_url: str,
                                                              tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "tradegecko_products.csv", inbox / "products_export.csv")
    integ = _integration(ctx, "tradegecko_files", "products", "StockItem", inbox)
    before = count_care(ctx, "StockItem")
    run1 = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await drain(ctx, redis_url, "finance-files-worker")
    r1 = _run(ctx, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 4 and r1.counts["created"] == 4
    assert count_care(ctx, "StockItem") == before + 4
    mine = {i["sku"]: i for i in _care(ctx, "StockItem") if "tradegecko_files" in i.get("externalRefs", {})}
    assert mine["NUT-CLR-175"]["site"] == "Kitchen" and mine["GLV-NIT-L"]["quantityOnHand"] == 31
