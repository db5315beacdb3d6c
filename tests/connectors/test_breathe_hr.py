"""Breathe HR connector against its sandbox: Link-header paging, API-key auth, employee updates, storms."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.breathe_hr import API_KEY, FIRST_EMPLOYEE
from engine.ports import OutboundRecord

from .workforce_helpers import check_registered, map_records, read_all, sandbox, session, storm_starter

RECORDS = {"employees": 230, "absences": 340, "sicknesses": 120}


def breathe(app: Any, key: str = API_KEY, **config: Any) -> Any:
    return session("breathe_hr", app, config, {"api_key": key})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("breathe_hr")


@pytest.mark.parametrize(("stream", "pages"), [("employees", 3), ("absences", 4), ("sicknesses", 2)])
async def test_full_read_follows_link_header(stream: str, pages: int) -> None:
    app = sandbox("breathe_hr", records=RECORDS)
    async with breathe(app) as s:
        records, got = await read_all(s, stream)
    assert len(got) == pages
    ids = [r.external_id for r in records]
    assert len(ids) == len(set(ids)) == RECORDS[stream]
    assert s.stats.failed_calls == 0 and "page" not in (got[-1].checkpoint or {})


async def test_absences_window_from_settings() -> None:
    app = sandbox("breathe_hr", records=RECORDS)
    async with breathe(app, absences_from="2026-07-01") as s:
        records, _ = await read_all(s, "absences")
    assert 0 < len(records) < RECORDS["absences"]
    assert all(r.data["start_date"] >= "2026-07-01" for r in records)


async def test_bad_key_is_refused_with_breathe_message() -> None:
    app = sandbox("breathe_hr", records=RECORDS)
    async with breathe(app, key="wrong") as s:
        with pytest.raises(AuthFailed, match="401 Unauthorized"):
            await read_all(s, "employees")
        result = await s.test_connection()
    assert not result.ok and "did not accept" in result.reason


async def test_employee_update_retried_is_applied_once() -> None:
    app = sandbox("breathe_hr", records=RECORDS)
    emp_id = str(FIRST_EMPLOYEE + 5)
    change = OutboundRecord("key-1", {"job_title": "Senior Care Assistant", "known_as": "Sam"}, external_id=emp_id)
    async with breathe(app) as s:
        first = await s.write("employees", [change])
        again = await s.write("employees", [change])  # a retry after a lost reply
        records, _ = await read_all(s, "employees")
        bad = await s.write("employees", [OutboundRecord("key-2", {"email": "not-an-email"}, external_id=emp_id)])
    assert first[0].ok and again[0].ok and first[0].external_id == again[0].external_id == emp_id
    assert first[0].data["updated_at"] == again[0].data["updated_at"]  # the repeat changed nothing
    same = [r for r in records if r.external_id == emp_id]
    assert len(same) == 1 and same[0].data["job_title"] == "Senior Care Assistant"
    assert len(records) == RECORDS["employees"]
    assert not bad[0].ok and "Email is invalid" in (bad[0].error_message or "")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("breathe_hr", records=RECORDS)
    async with breathe(app) as s:
        records, _ = await read_all(s, "absences", between=storm_starter(app, storm))
    ids = {r.external_id for r in records}
    assert len(records) == len(ids) == RECORDS["absences"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("breathe_hr", records=RECORDS)
    async with breathe(app) as s:
        employees = await s.sample("employees", 50)
        absences = await s.sample("absences", 50)
    staff = map_records("breathe_hr", "Employee", employees)
    assert staff[1]["givenName"] and staff[1]["employeeNumber"] == "WC0002"
    assert staff[1]["externalRefs"]["breathe_hr"] == str(FIRST_EMPLOYEE + 1)
    assert all(len(e["niNumber"]) == 9 and e["phone"].startswith("+447") for e in staff)
    leave = map_records("breathe_hr", "Absence", absences)
    assert {a["type"] for a in leave} <= {"holiday", "other"} and all(a["start"] <= (a.get("end") or "9") for a in leave)
