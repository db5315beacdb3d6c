"""Telemedicine services without an API (Attend Anywhere, Accurx, Doctorlink, Push Doctor): their consultation
report exports as file layouts. Samples round-trip byte for byte, NHS numbers are checked, a malformed file is
refused with row, column and reason and imports nothing, records map to telemedicine Appointments, and files
dropped in a folder reach the care store through the real sync worker. MiDOS points at the legacy care files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from arq.connections import ArqRedis
from sqlalchemy import select

from app.sync_jobs import enqueue_run
from connectors.catalog import load_catalog
from connectors.files.codec import FileRejected, parse_file, write_file
from connectors.files.layout import load_layout
from connectors.files.session import FileExchangeSession
from connectors.manifest import load_manifest
from connectors.sessions import open_session, session_class
from engine.mapping import compile_design, load_mapping_template_file
from storage import runs as runrepo
from storage.models import CareRecord

from .conftest import TEMPLATES
from .worker_harness import count_care, drain, folder_integration

SAMPLES = Path(__file__).parent / "samples" / "telemedicine"
SERVICES = {"attend_anywhere": 3, "accurx": 2, "doctorlink": 2, "push_doctor": 2}
FIELD_TYPES = {"string": "string", "nhs_number": "string", "integer": "integer", "date": "date",
               "datetime": "datetime"}
MAPPING = TEMPLATES.parent / "mappings" / "telemedicine_files" / "Appointment.yaml"


def test_manifest_mirrors_the_layouts_and_the_catalog_routes_each_service() -> None:
    m = load_manifest(TEMPLATES / "telemedicine_files.yaml")
    assert m.integration_method == "file exchange" and m.availability == "available"
    assert session_class("telemedicine_files") is FileExchangeSession
    assert set(m.streams) == set(SERVICES)
    for name, stream in m.streams.items():
        layout = load_layout(stream.params["layout"])
        assert layout.id == f"{name}_consultations" and "unconfirmed" in layout.source
        assert [(f.name, f.type) for f in stream.fields] == [(c.name, FIELD_TYPES[c.type]) for c in layout.columns]
        assert stream.primary_key == layout.primary_key == "consultation_id"
        assert stream.care_type == layout.care_type == "Appointment"
        assert layout.column("nhs_number").type == "nhs_number"
        assert {"consultation_id", "start", "clinician", "nhs_number", "outcome", "link"} <= {c.name for c in
                                                                                            layout.columns}
    by_id = {e.id: e for e in load_catalog(TEMPLATES).entries}
    for service in ("attend_anywhere", "accurx", "doctorlink", "push_doctor"):
        entry = by_id[service]
        assert (entry.availability, entry.connector, entry.integration_method) == ("available", "telemedicine_files",
                                                                                   "file exchange")
        assert "no public api" in entry.note.lower() and "zoom" in entry.note.lower()
    midos = by_id["midos"]
    assert (midos.availability, midos.connector) == ("available", "legacy_care_files")
    assert "no uk health or care system of this name" in midos.note.lower()
    assert by_id["legacy_care_files"].connector == "legacy_care_files"  # still listed under its own name too


@pytest.mark.parametrize(("service", "rows"), sorted(SERVICES.items()))
def test_each_sample_round_trips_byte_for_byte(service: str, rows: int) -> None:
    layout = load_layout(f"{service}_consultations")
    data = (SAMPLES / f"{service}_consultations.csv").read_bytes()
    records = parse_file(layout, data, f"{service}.csv")
    assert len(records) == rows
    assert write_file(layout, records) == data
    assert all(r["nhs_number"] is None or len(r["nhs_number"]) == 10 for r in records)
    assert all(r["start"][4] == "-" and "T" in r["start"] for r in records)  # typed: ISO date-times


def test_sample_values_are_typed() -> None:
    aa = parse_file(load_layout("attend_anywhere_consultations"),
                    (SAMPLES / "attend_anywhere_consultations.csv").read_bytes())
    assert aa[0]["start"] == "2025-03-04T10:15:00" and aa[0]["duration_minutes"] == 17
    assert aa[2]["patient_name"] == "Zoë Hughes" and aa[2]["nhs_number"] is None
    assert aa[2]["waiting_area"] == "Community Nursing, Headingley"
    dl = parse_file(load_layout("doctorlink_consultations"), (SAMPLES / "doctorlink_consultations.csv").read_bytes())
    assert dl[0]["end"] == "2025-03-08T08:19:00" and dl[0]["date_of_birth"] == "1935-02-14"


def test_malformed_file_is_rejected_with_row_column_and_reason() -> None:
    with pytest.raises(FileRejected) as exc:
        parse_file(load_layout("attend_anywhere_consultations"),
                   (SAMPLES / "attend_anywhere_consultations_malformed.csv").read_bytes(), "bad.csv")
    assert {(i.row, i.column, i.reason) for i in exc.value.issues} == {
        (3, "NHS Number", "not a valid NHS number (10 digits with a correct check digit)"),
        (4, "Call Start", "not a date in the format DD/MM/YYYY hh:mm"),
        (4, "Call Outcome", "must be one of Completed, Did not attend, Cancelled, Call failed"),
    }
    assert "bad.csv was not imported: 3 problem(s)" in str(exc.value)


def test_nhs_numbers_are_checked_and_required_where_the_service_always_has_them() -> None:
    layout = load_layout("accurx_consultations")
    rows = parse_file(layout, (SAMPLES / "accurx_consultations.csv").read_bytes())
    with pytest.raises(FileRejected) as exc:
        write_file(layout, [{**rows[0], "nhs_number": None}, {**rows[1], "nhs_number": "999 412 7714"}])
    assert {(i.row, i.column, i.reason) for i in exc.value.issues} == {
        (2, "NHS Number", "a value is required"),
        (3, "NHS Number", "not a valid NHS number (10 digits with a correct check digit)"),
    }
    spaced = (SAMPLES / "accurx_consultations.csv").read_bytes().replace(b"9994127713", b"999 412 7713")
    assert parse_file(layout, spaced)[0]["nhs_number"] == "9994127713"


def test_one_template_maps_every_service_to_telemedicine_appointments() -> None:
    design = load_mapping_template_file(MAPPING)
    assert (design.connector, design.care_type) == ("telemedicine_files", "Appointment")
    compiled = compile_design(design)
    out: dict[str, list[dict[str, Any]]] = {}
    for service in SERVICES:
        rows = parse_file(load_layout(f"{service}_consultations"),
                          (SAMPLES / f"{service}_consultations.csv").read_bytes())
        mapped = [compiled.apply(r) for r in rows]
        assert all(m.ok for m in mapped), [m.errors for m in mapped]
        out[service] = [dict(m.values) for m in mapped]
    assert all(a["service"] == "telemedicine" for rows in out.values() for a in rows)
    first = out["attend_anywhere"][0]
    assert first["start"] == "2025-03-04T10:15:00+00:00" and first["end"] == "2025-03-04T10:32:00+00:00"
    assert first["link"] == "https://nhs.vc/leeds-care-homes-gp" and first["location"] == "Leeds Care Homes GP Clinic"
    assert first["residentRef"] == "9994127713" and first["status"] == "fulfilled"
    assert out["attend_anywhere"][2]["residentRef"] == "RES00051"  # no NHS number: the home's own identifier
    assert [a["status"] for a in out["attend_anywhere"]] == ["fulfilled", "noshow", "fulfilled"]
    assert [a["status"] for a in out["accurx"]] == ["fulfilled", "booked"]
    assert [a["status"] for a in out["doctorlink"]] == ["fulfilled", "noshow"]
    assert [a["status"] for a in out["push_doctor"]] == ["fulfilled", "cancelled"]
    assert out["push_doctor"][0]["start"] == "2025-03-09T19:20:00+00:00" and "link" not in out["push_doctor"][1]
    assert out["doctorlink"][1]["location"] == "Telephone"


async def test_folder_read_of_every_service_and_a_bad_file_set_aside(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    for service in SERVICES:
        shutil.copy(SAMPLES / f"{service}_consultations.csv", inbox / f"{service}_2025-03.csv")
    shutil.copy(SAMPLES / "attend_anywhere_consultations_malformed.csv", inbox / "attend_anywhere_2025-04.csv")
    os.utime(inbox / "attend_anywhere_2025-04.csv", (2_000_000_000, 2_000_000_000))
    m = load_manifest(TEMPLATES / "telemedicine_files.yaml")
    sess = open_session(m, {"inbox_dir": str(inbox)}, {}, connection_id="tele-test")
    assert isinstance(sess, FileExchangeSession)
    assert (await sess.test_connection()).detail["waiting"] == 5
    for service, rows in SERVICES.items():
        if service == "attend_anywhere":
            continue
        pages = [p async for p in sess.read(service)]
        assert [len(p.records) for p in pages] == [rows]
    got: list[Any] = []
    with pytest.raises(FileRejected) as exc:
        async for page in sess.read("attend_anywhere"):
            got.append(page)
    assert [len(p.records) for p in got] == [3]  # the good file only
    assert "attend_anywhere_2025-04.csv was not imported" in str(exc.value)
    assert (inbox / "rejected" / "attend_anywhere_2025-04.csv").exists()
    again = [p async for p in sess.read("attend_anywhere", got[-1].checkpoint)]
    assert [len(p.records) for p in again] == [0]


def _integration(ctx: Any, inbox: Path) -> str:
    design = yaml.safe_load(MAPPING.read_text())
    return folder_integration(ctx, "telemedicine_files", "Telemedicine reports", {"inbox_dir": inbox},
                              {st: ("Appointment", {**design, "stream": st}) for st in ("attend_anywhere", "accurx")})


async def test_consultation_reports_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str,
                                                       tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "attend_anywhere_consultations.csv", inbox / "attend_anywhere_2025-03.csv")
    shutil.copy(SAMPLES / "accurx_consultations.csv", inbox / "accurx_2025-03.csv")
    integ = _integration(ctx, inbox)

    run1 = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await drain(ctx, redis_url, "tele-test-worker")
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 5 and r1.counts["created"] == 5
    assert count_care(ctx, "Appointment") == 5
    with ctx.db.session() as s:
        stored = [r.data for r in s.execute(select(CareRecord).where(CareRecord.care_type == "Appointment")).scalars()]
    assert {a["service"] for a in stored} == {"telemedicine"}
    assert sorted(a["status"] for a in stored) == ["booked", "fulfilled", "fulfilled", "fulfilled", "noshow"]

    shutil.copy(SAMPLES / "attend_anywhere_consultations_malformed.csv", inbox / "attend_anywhere_2025-04.csv")
    os.utime(inbox / "attend_anywhere_2025-04.csv", (2_000_000_000, 2_000_000_000))
    run2 = await enqueue_run(ctx.db, arq, integ, "manual")
    await drain(ctx, redis_url, "tele-test-worker")
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2.status == "failed"
    assert "attend_anywhere_2025-04.csv was not imported" in (r2.error or "")
    assert "row 3, column 'NHS Number': not a valid NHS number" in (r2.error or "")
    assert count_care(ctx, "Appointment") == 5  # nothing from the bad file
