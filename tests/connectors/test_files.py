"""File exchange: vendor layouts as data, byte-exact round trips, all-or-nothing rejection, folder sessions."""

from __future__ import annotations

import os
import shutil
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.files.codec import FileRejected, parse_file, write_file
from connectors.files.layout import load_layout, load_layouts
from connectors.files.session import FileExchangeSession
from connectors.manifest import load_manifest
from connectors.sessions import open_session, session_class
from engine.ports import OutboundRecord

from .conftest import TEMPLATES

SAMPLES = Path(__file__).parent / "samples"
FILE_CONNECTORS = ["sage50_files", "legacy_care_files", "recruitment_files", "taxcalc_files"]
FIELD_TYPES = {"string": "string", "postcode": "string", "email": "string", "phone": "string", "nhs_number": "string",
               "integer": "integer", "decimal": "number", "date": "date", "datetime": "datetime", "boolean": "boolean"}


def test_every_layout_loads_and_every_file_manifest_mirrors_its_layouts() -> None:
    layouts = load_layouts()
    assert {"sage50_customers", "sage50_audit_trail", "legacy_care_residents", "legacy_care_medications",
            "legacy_care_allergies", "cv_library_applicants", "totaljobs_applicants", "taxcalc_vat_bridge"} <= set(layouts)
    for cid in FILE_CONNECTORS:
        m = load_manifest(TEMPLATES / f"{cid}.yaml")
        assert m.integration_method == "file exchange"
        assert session_class(cid) is FileExchangeSession
        for name, stream in m.streams.items():
            layout = layouts[stream.params["layout"]]
            assert [(f.name, f.type) for f in stream.fields] == [(c.name, FIELD_TYPES[c.type]) for c in layout.columns], name
            assert stream.primary_key == layout.primary_key and stream.care_type == layout.care_type


@pytest.mark.parametrize(("layout_id", "sample", "rows"), [
    ("sage50_customers", "sage50_customers.csv", 4),
    ("sage50_audit_trail", "sage50_audit_trail.csv", 5),
    ("legacy_care_residents", "legacy_care_residents.csv", 3),
])
def test_csv_samples_round_trip_byte_for_byte(layout_id: str, sample: str, rows: int) -> None:
    layout = load_layout(layout_id)
    data = (SAMPLES / sample).read_bytes()
    records = parse_file(layout, data, sample)
    assert len(records) == rows
    assert write_file(layout, records) == data


def test_sage50_customer_values_are_typed_in_the_documented_layout() -> None:
    data = (SAMPLES / "sage50_customers.csv").read_bytes()
    assert data.startswith(b"Account Reference,Account Name,Street1,Street2,Town,County,Post Code,Contact Name")
    assert "Zoë".encode("cp1252") in data and b"\r\n" in data
    rec = {r["account_ref"]: r for r in parse_file(load_layout("sage50_customers"), data)}
    assert rec["OKAFORS"]["contact_name"] == "Zoë Okafor (daughter)"
    assert rec["LEEDSCC"]["credit_limit"] == 100000.0 and rec["LEEDSCC"]["department"] == 1
    assert rec["OKAFORS"]["street1"] == "Flat 4, Rosewood Lodge"


def test_xlsx_sample_round_trips_value_for_value() -> None:
    layout = load_layout("legacy_care_medications")
    records = parse_file(layout, (SAMPLES / "legacy_care_medications.xlsx").read_bytes())
    assert [r["dmd_code"] for r in records] == ["322236009", "319283006", "39695211000001102"]
    assert records[2]["prn"] is True and records[2]["end_date"] == "2025-04-30"
    again = parse_file(layout, write_file(layout, records))
    assert again == records


def test_malformed_csv_is_rejected_with_row_column_and_reason() -> None:
    with pytest.raises(FileRejected) as exc:
        parse_file(load_layout("sage50_customers"), (SAMPLES / "sage50_customers_malformed.csv").read_bytes(), "bad.csv")
    got = {(i.row, i.column, i.reason) for i in exc.value.issues}
    assert got == {
        (2, "Account Reference", "longer than 8 characters"),
        (3, "Post Code", "not a UK postcode"),
        (3, "Credit Limit", "not a number"),
        (4, "Account Name", "a value is required"),
        (5, "Account Reference", "duplicate of row 3"),
        (6, "-", "expected 24 columns, found 3"),
    }
    assert "bad.csv was not imported: 6 problem(s)" in str(exc.value)


def test_malformed_xlsx_is_rejected_with_row_column_and_reason() -> None:
    with pytest.raises(FileRejected) as exc:
        parse_file(load_layout("legacy_care_medications"),
                   (SAMPLES / "legacy_care_medications_malformed.xlsx").read_bytes())
    got = {(i.row, i.column) for i in exc.value.issues}
    assert got == {(2, "Start Date"), (3, "NHS Number"), (4, "Route")}
    assert any("check digit" in i.reason for i in exc.value.issues)


def test_wrong_headers_and_wrong_encoding_are_explained() -> None:
    layout = load_layout("sage50_customers")
    data = (SAMPLES / "sage50_customers.csv").read_bytes().replace(b"Account Name", b"Customer Name", 1)
    with pytest.raises(FileRejected) as exc:
        parse_file(layout, data)
    assert exc.value.issues[0].row == 1 and exc.value.issues[0].column == "Account Name"
    assert exc.value.issues[0].value == "Customer Name"
    resid = load_layout("legacy_care_residents")
    with pytest.raises(FileRejected) as exc2:
        parse_file(resid, "Resident ID\r\n\udcff".encode("utf-8", "surrogateescape"))
    assert "not utf-8-sig text" in exc2.value.issues[0].reason


def _session(connector: str, inbox: Path, outbox: Path) -> FileExchangeSession:
    s = open_session(load_manifest(TEMPLATES / f"{connector}.yaml"),
                     {"inbox_dir": str(inbox), "outbox_dir": str(outbox)}, {}, connection_id=f"files-{connector}")
    assert isinstance(s, FileExchangeSession)
    return s


async def test_folder_read_imports_good_files_and_nothing_from_a_bad_one(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    shutil.copy(SAMPLES / "sage50_customers.csv", inbox / "customers_2025-03.csv")
    shutil.copy(SAMPLES / "sage50_customers_malformed.csv", inbox / "customers_2025-04.csv")
    os.utime(inbox / "customers_2025-04.csv", (2_000_000_000, 2_000_000_000))
    async with _session("sage50_files", inbox, outbox) as s:
        assert (await s.test_connection()).ok
        pages = []
        with pytest.raises(FileRejected) as refused:
            async for page in s.read("customers"):
                pages.append(page)
        assert str(refused.value).startswith("customers_2025-04.csv was not imported: 6 problem(s): row 2, column "
                                             "'Account Reference': longer than 8 characters")
        records = [r for p in pages for r in p.records]
        assert [r.external_id for r in records] == ["ABBOTTM", "LEEDSCC", "OKAFORS", "WYICB01"]
        assert all(r.data["_file"] == "customers_2025-03.csv" for r in records)
        assert [f.name for f in s.rejected] == ["customers_2025-04.csv"]
        assert len(s.rejected[0].issues) == 6
        assert (inbox / "rejected" / "customers_2025-04.csv").exists()
        # Incremental: the next run finds nothing new, then picks up a newly dropped file only.
        cp = pages[-1].checkpoint
        assert sum(len(p.records) for p in [p async for p in s.read("customers", cp)]) == 0
        (inbox / "customers_2025-05.csv").write_bytes(
            write_file(s.layout("customers"), [{**records[0].data, "account_ref": "NEWRES1", "name": "Mr New Resident"}]))
        fresh = [r for p in [p async for p in s.read("customers", cp)] for r in p.records]
        assert [r.external_id for r in fresh] == ["NEWRES1"]


async def test_export_writes_one_atomic_file_and_a_retry_does_not_duplicate(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    layout = load_layout("sage50_audit_trail")
    rows = parse_file(layout, (SAMPLES / "sage50_audit_trail.csv").read_bytes())
    recs = [OutboundRecord(f"run7-{r['reference']}", r) for r in rows]
    async with _session("sage50_files", inbox, outbox) as s:
        first = await s.write("audit_trail", recs)
        again = await s.write("audit_trail", recs)
        bad = await s.write("audit_trail", [OutboundRecord("x1", {**rows[0], "tax_code": "VAT20", "reference": "Z1"}),
                                            OutboundRecord("x2", {**rows[1], "reference": "Z2"})])
    files = sorted(p.name for p in outbox.iterdir())
    assert len(files) == 1 and files[0].startswith("sage50_audit_trail_") and files[0].endswith(".csv")
    assert (outbox / files[0]).read_bytes() == (SAMPLES / "sage50_audit_trail.csv").read_bytes()
    assert all(o.ok for o in first) and [o.external_id for o in first] == [r["reference"] for r in rows]
    assert all(o.ok and o.data["duplicate"] for o in again)
    assert not bad[0].ok and "Tax Code" in (bad[0].error_message or "") and not bad[1].ok


async def test_xlsx_stream_reads_through_the_session(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "legacy_care_medications.xlsx", inbox / "medications_export.xlsx")
    shutil.copy(SAMPLES / "legacy_care_residents.csv", inbox / "residents_export.csv")
    async with _session("legacy_care_files", inbox, tmp_path / "out") as s:
        meds = [r for p in [p async for p in s.read("medications")] for r in p.records]
        residents = [r for p in [p async for p in s.read("residents")] for r in p.records]
        sample = await s.sample("residents", 2)
    assert [m.data["dmd_code"] for m in meds] == ["322236009", "319283006", "39695211000001102"]
    assert {r.data["nhs_number"] for r in residents} == {"9990001103", "9990002029", "9990003009"}
    assert len(sample) == 2


_text = st.text(alphabet=string.ascii_letters + string.digits + " ,.'-/\"&", min_size=1, max_size=30) \
    .map(str.strip).filter(bool)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["SI", "SC", "PI", "BP", "BR"]),
    "account_ref": st.text(alphabet=string.ascii_uppercase + string.digits, min_size=1, max_size=8),
    "nominal": st.sampled_from(["4000", "4010", "5000", "7100"]),
    "department": st.integers(0, 999),
    "date": st.dates().filter(lambda d: d.year >= 1900).map(lambda d: d.isoformat()),
    "details": _text,
    "net_amount": st.integers(0, 10_000_000).map(lambda p: p / 100),
    "tax_code": st.sampled_from(["T0", "T1", "T2", "T9"]),
    "tax_amount": st.integers(0, 1_000_000).map(lambda p: p / 100),
}), min_size=1, max_size=8, unique_by=lambda r: r["details"]))
def test_any_valid_audit_trail_round_trips(rows: list[dict[str, Any]]) -> None:
    layout = load_layout("sage50_audit_trail")
    full = [{c.name: None for c in layout.columns} | r | {"reference": f"REF{i}"} for i, r in enumerate(rows)]
    assert parse_file(layout, write_file(layout, full)) == full


def test_catalog_routes_systems_without_an_api_to_the_file_connectors() -> None:
    from connectors.catalog import load_catalog

    by_id = {e.id: e for e in load_catalog(TEMPLATES).entries}
    for system, connector in (("sage_50", "sage50_files"), ("taxcalc", "taxcalc_files"),
                              ("cv_library", "recruitment_files"), ("totaljobs", "recruitment_files"),
                              ("legacy_care_files", "legacy_care_files")):
        entry = by_id[system]
        assert (entry.connector, entry.availability, entry.integration_method) == (connector, "available",
                                                                                  "file exchange"), system


async def test_a_file_session_fits_the_sync_worker_contract(tmp_path: Path) -> None:
    s = open_session(load_manifest(TEMPLATES / "sage50_files.yaml"), {"inbox_dir": str(tmp_path)}, {},
                     connection_id="files-contract", base_url="http://ignored", token_store=None, redis=None,
                     allow_private=True, timeout=5)
    assert s.limiter.key.endswith(":sage50_files:files-contract")
    pages = [p async for p in s.read("customers")]
    assert len(pages) == 1 and not pages[0].records
    await s.aclose()
