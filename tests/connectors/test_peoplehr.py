"""PeopleHR connector against its sandbox: the API key and Action in a POST body, the isError envelope
(errors with HTTP 200), saved-query reads, idempotent employee updates, storms, mapping templates."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed, VendorError
from connectors.sandboxes.peoplehr import ABSENCE_QUERY, API_KEY, HOLIDAY_QUERY
from engine.ports import OutboundRecord

from .workforce_helpers import (
    check_registered,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

RECORDS = {"employees": 140, "holidays": 300, "absences": 90}
CONFIG = {"holiday_query": HOLIDAY_QUERY, "absence_query": ABSENCE_QUERY}


def phr(app: Any, key: str = API_KEY, **config: Any) -> Any:
    return session("peoplehr", app, {**CONFIG, **config}, {"api_key": key})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("peoplehr")


@pytest.mark.parametrize("stream", ["employees", "holidays", "absences"])
async def test_full_read(stream: str) -> None:
    app = sandbox("peoplehr", records=RECORDS)
    async with phr(app) as s:
        records, _ = await read_all(s, stream)
    assert len(records) == len({r.external_id for r in records}) == RECORDS[stream]
    assert s.stats.failed_calls == 0
    if stream == "employees":
        assert records[0].external_id == "PW1" and records[0].updated_at is not None


async def test_envelope_errors_become_typed_errors() -> None:
    app = sandbox("peoplehr", records=RECORDS)
    async with phr(app, key="wrong") as s:
        with pytest.raises(AuthFailed, match="Invalid API key"):
            await read_all(s, "employees")
    async with phr(app, holiday_query="No such query") as s:
        with pytest.raises(VendorError) as err:
            await read_all(s, "holidays")
    assert err.value.status == 404 and "not found" in err.value.vendor_message


async def test_employee_update_retried_is_applied_once() -> None:
    app = sandbox("peoplehr", records=RECORDS)
    change = OutboundRecord("u-1", {"JobRole": "Night Care Assistant", "KnownAs": "Jo"}, external_id="PW7")
    async with phr(app) as s:
        first = await s.write("employees", [change])
        before = app.state.sandbox.datasets["employees"].get("PW7")["LastModified"]
        again = await s.write("employees", [change])
        bad = await s.write("employees", [OutboundRecord("u-2", {"EmailId": "nope"}, external_id="PW7")])
        records, _ = await read_all(s, "employees")
    assert first[0].ok and again[0].ok and first[0].external_id == again[0].external_id == "PW7"
    assert app.state.sandbox.datasets["employees"].get("PW7")["LastModified"] == before
    assert [r.data["JobRole"]["DisplayValue"] for r in records if r.external_id == "PW7"] == ["Night Care Assistant"]
    assert len(records) == RECORDS["employees"]
    assert not bad[0].ok and "Invalid email address" in (bad[0].error_message or "")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("peoplehr", records=RECORDS)
    async with phr(app) as s:
        await read_all(s, "employees", between=storm_starter(app, storm))
        holidays, _ = await read_all(s, "holidays")
        absences, _ = await read_all(s, "absences")
    assert len(holidays) == RECORDS["holidays"] and len(absences) == RECORDS["absences"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("peoplehr", records=RECORDS)
    async with phr(app) as s:
        staff, _ = await read_all(s, "employees")
        absences, _ = await read_all(s, "absences")
    people = map_records("peoplehr", "Employee", staff)
    assert people[0]["employeeNumber"] == "PW1" and {p["status"] for p in people} == {"active", "leaver"}
    away = map_records("peoplehr", "Absence", absences)
    assert {a["type"] for a in away} == {"sickness", "other"} and all(a["status"] == "approved" for a in away)
