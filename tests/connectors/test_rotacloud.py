"""RotaCloud connector against its sandbox: bearer API key, rolling windows with limit/offset paging,
shift creation without duplicates on retry, shift edits, storms, mapping templates."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.rotacloud import API_KEY, FIRST_USER
from engine.ports import OutboundRecord

from .workforce_helpers import check_registered, map_records, read_all, sandbox, session, storm_starter

RECORDS = {"users": 230, "shifts": 700, "leave": 260}


def rota(app: Any, key: str = API_KEY) -> Any:
    return session("rotacloud", app, {}, {"api_key": key})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("rotacloud")


@pytest.mark.parametrize(("stream", "min_pages"), [("users", 3), ("shifts", 4), ("leave", 2), ("attendance", 2)])
async def test_full_read_across_pages(stream: str, min_pages: int) -> None:
    app = sandbox("rotacloud", records=RECORDS)
    expected = app.state.sandbox.datasets[stream].n
    async with rota(app) as s:
        records, pages = await read_all(s, stream)
    assert len(pages) >= min_pages
    ids = [r.external_id for r in records]
    assert len(ids) == len(set(ids)) == expected
    assert s.stats.failed_calls == 0
    if stream == "shifts":
        starts = [r.data["start_time"] for r in records]
        assert starts == sorted(starts) and min(starts) >= time.time() - 29 * 86400


async def test_checkpoint_resumes_in_the_same_window() -> None:
    app = sandbox("rotacloud", records=RECORDS)
    async with rota(app) as s:
        first = None
        async for page in s.read("shifts"):
            first = page
            break
        assert first is not None and first.checkpoint is not None and first.checkpoint["page"]["offset"] == 200
        rest, _ = await read_all(s, "shifts", first.checkpoint)
    ids = [r.external_id for r in first.records] + [r.external_id for r in rest]
    assert len(ids) == len(set(ids)) == RECORDS["shifts"]


async def test_bad_key_is_refused() -> None:
    app = sandbox("rotacloud", records=RECORDS)
    async with rota(app, key="nope") as s:
        with pytest.raises(AuthFailed, match="Invalid API key"):
            await read_all(s, "users")


async def test_shift_create_is_not_duplicated_when_retried_and_edits_apply() -> None:
    app = sandbox("rotacloud", records=RECORDS)
    start = int(time.time()) + 3 * 86400
    new = OutboundRecord("carehub-shift-7f1c", {"user": FIRST_USER + 3, "location": 8801, "role": 6601,
                                                "start_time": start, "end_time": start + 8 * 3600,
                                                "minutes_break": 30})
    async with rota(app) as s:
        created = await s.write("shifts", [new])
        retried = await s.write("shifts", [new])  # the first reply was lost; the engine sends it again
        assert created[0].ok and retried[0].ok and created[0].external_id == retried[0].external_id
        shift_id = created[0].external_id
        edit = OutboundRecord("carehub-shift-7f1c-v2", {"minutes_break": 45}, external_id=shift_id)
        edited = await s.write("shifts", [edit])
        bad = await s.write("shifts", [OutboundRecord("carehub-bad", {"location": 8801, "start_time": start,
                                                                       "end_time": start - 60})])
        records, _ = await read_all(s, "shifts")
    mine = [r for r in records if r.external_id == shift_id]
    assert len(mine) == 1 and mine[0].data["minutes_break"] == 45 and mine[0].data["notes"] == "carehub-shift-7f1c"
    assert len(records) == RECORDS["shifts"] + 1
    assert edited[0].ok and edited[0].external_id == shift_id
    assert not bad[0].ok and "end_time must be after start_time" in (bad[0].error_message or "")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("rotacloud", records=RECORDS)
    async with rota(app) as s:
        records, _ = await read_all(s, "shifts", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == RECORDS["shifts"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("rotacloud", records=RECORDS)
    async with rota(app) as s:
        users = await s.sample("users", 60)
        shifts = await s.sample("shifts", 60)
        leave = await s.sample("leave", 60)
        clock = await s.sample("attendance", 60)
    staff = map_records("rotacloud", "Employee", users)
    assert {e["status"] for e in staff} == {"active", "leaver"}  # leavers are read too
    assert staff[0]["employeeNumber"] == "WC0001" and staff[0]["payBasis"] in ("hourly", "salaried")
    rota_ = map_records("rotacloud", "Shift", shifts)
    assert all(x["end"] > x["start"] and x["source"] == "rotacloud" for x in rota_)
    absences = map_records("rotacloud", "Absence", leave)
    assert {a["type"] for a in absences} <= {"holiday", "sickness", "other"}
    times = map_records("rotacloud", "Timesheet", clock)
    assert all(t["approvedMinutes"] > 0 and t["status"] in ("approved", "submitted") for t in times)


async def test_care_shift_edit_goes_back_through_the_template() -> None:
    from engine.mapping import compile_design, load_mapping_template_file

    from .workforce_helpers import MAPPINGS

    app = sandbox("rotacloud", records=RECORDS)
    compiled = compile_design(load_mapping_template_file(MAPPINGS / "rotacloud" / "Shift.yaml"))
    async with rota(app) as s:
        shift = (await s.sample("shifts", 1))[0]
        care = dict(compiled.apply(shift.data).values)
        care["breakMinutes"] = 60
        payload = compiled.reverse(care)
        out = await s.write("shifts", [OutboundRecord("wcn-edit-1", payload, external_id=shift.external_id)])
    assert payload["minutes_break"] == 60 and payload["start_time"] == shift.data["start_time"]
    assert out[0].ok and app.state.sandbox.datasets["shifts"].get(shift.external_id)["minutes_break"] == 60
