"""Maintenance Connection and MPulse by file exchange: each export layout round-trips its sample byte for byte,
malformed exports are refused whole with row, column and reason, the WorkOrder/Asset mappings map the samples,
and a real sync worker imports the files into the care store (a bad file imports nothing and fails the run)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from arq.connections import ArqRedis

from app.sync_jobs import enqueue_run
from connectors.catalog import load_catalog
from connectors.files.codec import FileRejected, parse_file, write_file
from connectors.files.layout import load_layout
from connectors.files.session import FileExchangeSession
from connectors.manifest import load_manifest
from connectors.sessions import open_session, session_class
from engine.mapping import compile_design, load_mapping_template_file
from storage import runs as runrepo

from .conftest import TEMPLATES
from .worker_harness import count_care, drain, folder_integration

SAMPLES = Path(__file__).parent / "samples"
MAPPINGS = TEMPLATES.parent / "mappings"
FIELD_TYPES = {"string": "string", "integer": "integer", "decimal": "number", "date": "date", "datetime": "datetime",
               "boolean": "boolean"}
CONNECTORS = {"maintenance_connection_files": ("maintenance_connection", {"work_orders": "WorkOrder",
                                                                         "assets": "Asset"}),
              "mpulse_files": ("mpulse", {"work_orders": "WorkOrder", "equipment": "Asset"})}
SAMPLE_FILES = [
    ("maintenance_connection_work_orders", "mc-work-orders_2025-03.csv", 5),
    ("maintenance_connection_assets", "mc-assets_2025-03.csv", 4),
    ("mpulse_work_orders", "mpulse-work-orders_2025-03.csv", 3),
    ("mpulse_equipment", "mpulse-equipment_2025-03.csv", 3),
]


def test_manifests_mirror_their_layouts_and_the_catalog_routes_to_them() -> None:
    by_id = {e.id: e for e in load_catalog(TEMPLATES).entries}
    for cid, (catalog_id, streams) in CONNECTORS.items():
        m = load_manifest(TEMPLATES / f"{cid}.yaml")
        assert m.integration_method == "file exchange" and session_class(cid) is FileExchangeSession
        assert {name: st.care_type for name, st in m.streams.items()} == streams
        for name, stream in m.streams.items():
            layout = load_layout(stream.params["layout"])
            assert [(f.name, f.type) for f in stream.fields] == [(c.name, FIELD_TYPES[c.type]) for c in layout.columns]
            assert stream.primary_key == layout.primary_key and stream.care_type == layout.care_type, name
            assert "unconfirmed" in layout.source
        entry = by_id[catalog_id]
        assert entry.connector == cid and entry.availability == "available"
        assert entry.integration_method == "file exchange" and "CSV" in entry.note


@pytest.mark.parametrize(("layout_id", "sample", "rows"), SAMPLE_FILES)
def test_samples_round_trip_byte_for_byte(layout_id: str, sample: str, rows: int) -> None:
    layout = load_layout(layout_id)
    data = (SAMPLES / sample).read_bytes()
    records = parse_file(layout, data, sample)
    assert len(records) == rows
    assert write_file(layout, records) == data
    assert parse_file(layout, write_file(layout, records)) == records


def test_values_are_typed_as_the_exports_write_them() -> None:
    wo = {r["wo_id"]: r for r in parse_file(load_layout("maintenance_connection_work_orders"),
                                             (SAMPLES / "mc-work-orders_2025-03.csv").read_bytes())}
    assert wo["WO-25-00413"]["completed"] == "2025-03-05T11:20:00" and wo["WO-25-00414"]["priority"] == 1
    assert wo["WO-25-00416"]["reason"] == 'Legionella flush, unused outlets, "east wing"'
    assert wo["WO-25-00416"]["asset_id"] is None
    assets = parse_file(load_layout("maintenance_connection_assets"), (SAMPLES / "mc-assets_2025-03.csv").read_bytes())
    assert [a["in_service"] for a in assets] == [True, True, True, False] and assets[1]["installed"] == "2021-06-14"
    mp = parse_file(load_layout("mpulse_work_orders"), (SAMPLES / "mpulse-work-orders_2025-03.csv").read_bytes())
    assert [r["wo_number"] for r in mp] == ["004512", "004513", "004514"]  # leading zeros kept


@pytest.mark.parametrize(("layout_id", "sample", "expected"), [
    ("maintenance_connection_work_orders", "mc-work-orders_malformed.csv", {
        (3, "Status", "must be one of Requested, Issued, Responded, On Hold, Completed, Closed, Canceled"),
        (4, "Requested", "not a date in the format DD/MM/YYYY hh:mm"),
        (5, "Priority", "not a whole number")}),
    ("mpulse_equipment", "mpulse-equipment_malformed.csv", {
        (3, "Description", "a value is required"),
        (4, "In Service Date", "not a date in the format DD/MM/YYYY"),
        (4, "Status", "must be one of Active, Inactive, Retired")}),
])
def test_malformed_exports_are_rejected_with_row_column_and_reason(layout_id: str, sample: str,
                                                                   expected: set[tuple[int, str, str]]) -> None:
    with pytest.raises(FileRejected) as exc:
        parse_file(load_layout(layout_id), (SAMPLES / sample).read_bytes(), sample)
    assert {(i.row, i.column, i.reason) for i in exc.value.issues} == expected
    assert str(exc.value).startswith(f"{sample} was not imported: 3 problem(s): row ")


def _map(connector: str, care_type: str, rows: list[dict[str, Any]]) -> list[Any]:
    compiled = compile_design(load_mapping_template_file(MAPPINGS / connector / f"{care_type}.yaml"))
    return [compiled.apply(r) for r in rows]


def test_mappings_map_the_samples() -> None:
    def rows(layout: str, sample: str) -> list[dict[str, Any]]:
        return parse_file(load_layout(layout), (SAMPLES / sample).read_bytes())

    mc_wo = _map("maintenance_connection_files", "WorkOrder",
                 rows("maintenance_connection_work_orders", "mc-work-orders_2025-03.csv"))
    assert not [r.errors for r in mc_wo if r.errors] and all(r.ok for r in mc_wo)
    jobs = {r.values["externalRefs"]["maintenance_connection_files"]: dict(r.values) for r in mc_wo}
    assert jobs["WO-25-00414"]["priority"] == "urgent" and jobs["WO-25-00414"]["status"] == "open"
    assert jobs["WO-25-00415"]["status"] == "on-hold" and jobs["WO-25-00413"]["status"] == "done"
    assert jobs["WO-25-00412"]["assetRef"] == "HOIST-012"
    mc_assets = _map("maintenance_connection_files", "Asset", rows("maintenance_connection_assets", "mc-assets_2025-03.csv"))
    assert not [r.errors for r in mc_assets if r.errors]
    kept = [dict(r.values) for r in mc_assets if r.ok]
    assert [a["tag"] for a in kept] == ["HOIST-012", "HOIST-B01", "BOILER-01"]  # the location row is filtered out
    assert kept[2]["status"] == "out-of-service" and kept[0]["nextServiceAt"] == "2025-06-14"
    mp_wo = _map("mpulse_files", "WorkOrder", rows("mpulse_work_orders", "mpulse-work-orders_2025-03.csv"))
    assert [r.values["status"] for r in mp_wo] == ["open", "done", "in-progress"]
    assert [r.values["priority"] for r in mp_wo] == ["high", "medium", "urgent"]
    mp_eq = _map("mpulse_files", "Asset", rows("mpulse_equipment", "mpulse-equipment_2025-03.csv"))
    assert [r.values["status"] for r in mp_eq] == ["in-service", "in-service", "retired"]
    assert mp_eq[0].values["site"] == "Rosewood Lodge"


async def test_folder_read_takes_good_exports_and_nothing_from_a_bad_one(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "mpulse-equipment_2025-03.csv", inbox / "mpulse-equipment_2025-03.csv")
    shutil.copy(SAMPLES / "mpulse-equipment_malformed.csv", inbox / "mpulse-equipment_2025-04.csv")
    os.utime(inbox / "mpulse-equipment_2025-04.csv", (2_000_000_000, 2_000_000_000))
    shutil.copy(SAMPLES / "mc-assets_2025-03.csv", inbox / "mc-assets_2025-03.csv")  # another vendor's pattern
    s = open_session(load_manifest(TEMPLATES / "mpulse_files.yaml"), {"inbox_dir": str(inbox)}, {},
                     connection_id="files-mpulse")
    assert isinstance(s, FileExchangeSession)
    async with s:
        pages = []
        with pytest.raises(FileRejected):
            async for page in s.read("equipment"):
                pages.append(page)
    assert [r.external_id for p in pages for r in p.records] == ["KIT-FAN-01", "BED-003", "WASH-02"]
    assert [f.name for f in s.rejected] == ["mpulse-equipment_2025-04.csv"]
    assert (inbox / "rejected" / "mpulse-equipment_2025-04.csv").exists()


# --------------------------------------------------------------------------- end to end through the worker


def _integration(ctx: Any, connector: str, inbox: Path, streams: dict[str, str]) -> str:
    designs = {st: (ct, yaml.safe_load((MAPPINGS / connector / f"{ct}.yaml").read_text())) for st, ct in streams.items()}
    return folder_integration(ctx, connector, connector, {"inbox_dir": inbox}, designs)


async def test_maintenance_connection_exports_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str,
                                                                 tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "mc-work-orders_2025-03.csv", inbox / "mc-work-orders_2025-03.csv")
    shutil.copy(SAMPLES / "mc-assets_2025-03.csv", inbox / "mc-assets_2025-03.csv")
    integ = _integration(ctx, "maintenance_connection_files", inbox, {"assets": "Asset", "work_orders": "WorkOrder"})

    run1 = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await drain(ctx, redis_url, "maintenance-files-worker")
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1 is not None
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 5 + 4 and r1.counts["created"] == 5 + 3  # the location row is filtered
    assert count_care(ctx, "WorkOrder") == 5 and count_care(ctx, "Asset") == 3

    shutil.copy(SAMPLES / "mc-work-orders_malformed.csv", inbox / "mc-work-orders_2025-04.csv")
    os.utime(inbox / "mc-work-orders_2025-04.csv", (2_000_000_000, 2_000_000_000))
    run2 = await enqueue_run(ctx.db, arq, integ, "manual")
    await drain(ctx, redis_url, "maintenance-files-worker")
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2 is not None and r2.status == "failed"
    assert "mc-work-orders_2025-04.csv was not imported" in (r2.error or "")
    assert "row 5, column 'Priority': not a whole number" in (r2.error or "")
    assert count_care(ctx, "WorkOrder") == 5  # nothing from the bad file, not even its good row

    run3 = await enqueue_run(ctx.db, arq, integ, "manual")
    await drain(ctx, redis_url, "maintenance-files-worker")
    r3 = runrepo.get_run(ctx.db, run3)
    assert r3 is not None and r3.status == "succeeded" and r3.counts["read"] == 0


async def test_mpulse_exports_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(SAMPLES / "mpulse-work-orders_2025-03.csv", inbox / "mpulse-work-orders_2025-03.csv")
    shutil.copy(SAMPLES / "mpulse-equipment_2025-03.csv", inbox / "mpulse-equipment_2025-03.csv")
    integ = _integration(ctx, "mpulse_files", inbox, {"equipment": "Asset", "work_orders": "WorkOrder"})
    run = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await drain(ctx, redis_url, "mpulse-files-worker")
    r = runrepo.get_run(ctx.db, run)
    assert r is not None
    assert r.status == "succeeded", r.error
    assert r.counts["created"] == 6 and count_care(ctx, "WorkOrder") == 3 and count_care(ctx, "Asset") == 3
