"""BrightPay Cloud connector against its sandbox: Bright ID OAuth2 (5-minute tokens, refresh on 401),
employer-scoped reads, loading timesheet hours into open payslips without doubling on retry, storms."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connectors.errors import VendorError
from connectors.sandboxes.brightpay import EMPLOYER_ID, ORGANISATION_ID
from engine.ports import OutboundRecord, SourceRecord

from .workforce_helpers import (
    check_registered,
    control,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

CONFIG = {"organisation_id": ORGANISATION_ID, "employer_id": EMPLOYER_ID}


def tokens(app: Any) -> dict[str, Any]:
    tok = app.state.sandbox.issue_tokens()
    return {"client_id": "carehub", "client_secret": "s3cret", "access_token": tok["access_token"],
            "refresh_token": tok["refresh_token"], "expires_at": time.time() + 300}


def bright(app: Any, config: dict[str, Any] | None = None) -> Any:
    return session("brightpay", app, config if config is not None else CONFIG, tokens(app))


def hours(employee_id: str, *lines: tuple[str, float], validate_only: bool = False) -> dict[str, Any]:
    return {"organisationId": ORGANISATION_ID, "employerId": EMPLOYER_ID, "employeeId": employee_id,
            "isRunValidationOnly": validate_only, "isRemoveExistingHourlyPayments": True,
            "hourlyPayments": [{"rateName": r, "numberOfUnits": u, "date": "2026-11-20"} for r, u in lines]}


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("brightpay")


@pytest.mark.parametrize(("stream", "count"), [("employers", 1), ("employees", 140), ("hourly_rates", 7)])
async def test_full_read(stream: str, count: int) -> None:
    app = sandbox("brightpay", records={"employees": 140})
    async with bright(app) as s:
        records, _ = await read_all(s, stream)
    assert len(records) == len({r.external_id for r in records}) == count
    assert s.stats.failed_calls == 0


async def test_expired_token_is_refreshed_once_mid_read() -> None:
    app = sandbox("brightpay", records={"employees": 40})
    async with bright(app) as s:
        await read_all(s, "employers")
        await control(app, "/_sandbox/expire-tokens")
        records, _ = await read_all(s, "employees")
    assert len(records) == 40 and s.stats.refreshes == 1
    assert app.state.sandbox.token_grants.get("refresh_token") == 1


async def test_one_employer_needs_no_ids_but_loads_do() -> None:
    app = sandbox("brightpay", records={"employees": 12})
    async with bright(app, {}) as s:
        staff, _ = await read_all(s, "employees")
        body = hours(staff[0].external_id, ("Basic Hours", 3))
        del body["organisationId"], body["employerId"]
        out = await s.write("hourly_payments", [OutboundRecord("no-org", body, external_id=staff[0].external_id)])
    assert len(staff) == 12
    assert not out[0].ok and "MISSINGMANDATORYFIELD" in (out[0].error_message or "")


async def test_wrong_employer_gives_brightpay_error_code() -> None:
    app = sandbox("brightpay")
    async with bright(app, {"organisation_id": ORGANISATION_ID, "employer_id": "00000000-0000-0000-0000-000000000000"}) as s:
        with pytest.raises(VendorError) as err:
            await read_all(s, "employees")
    assert err.value.status == 409 and "USERHASNOACCESSTOEMPLOYER" in err.value.vendor_message


async def test_hours_load_once_even_when_sent_twice() -> None:
    app = sandbox("brightpay", records={"employees": 30})
    async with bright(app) as s:
        staff, _ = await read_all(s, "employees")
        worker = next(r for r in staff if not r.data["isLeaver"])
        leaver = next((r for r in staff if r.data["isLeaver"]), None)
        lines = hours(worker.external_id, ("Basic Hours", 22.5), ("Night Hours", 12))["hourlyPayments"]
        # only the lines: the ids and the replace flag come from the manifest's constant body fields
        load = OutboundRecord("ts-2026-11-20", {"hourlyPayments": lines}, external_id=worker.external_id)
        first = await s.write("hourly_payments", [load])
        again = await s.write("hourly_payments", [load])
        check = await s.write("hourly_payments", [OutboundRecord("ts-check", hours(
            worker.external_id, ("Basic Hours", 1), validate_only=True), external_id=worker.external_id)])
        bad = await s.write("hourly_payments", [OutboundRecord("ts-bad", hours(worker.external_id, ("Mystery", 3)),
                                                               external_id=worker.external_id)])
        gone = None
        if leaver is not None:
            gone = await s.write("hourly_payments", [OutboundRecord("ts-leaver", hours(leaver.external_id, ("Basic Hours", 3)),
                                                                    external_id=leaver.external_id)])
    assert first[0].ok and again[0].ok and check[0].ok and first[0].external_id == worker.external_id
    slip = app.state.sandbox.extra["payslips"][worker.external_id]
    assert [(x["rateName"], x["numberOfUnits"]) for x in slip] == [("Basic Hours", 22.5), ("Night Hours", 12)]
    assert app.state.sandbox.extra["loads"] == 2  # the validation-only call loaded nothing
    assert not bad[0].ok and "HOURLYRATENOTFOUND" in (bad[0].error_message or "")
    if gone is not None:
        assert not gone[0].ok and "NOOPENPAYSLIP" in (gone[0].error_message or "")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("brightpay", records={"employees": 60})
    async with bright(app) as s:
        await read_all(s, "employers", between=storm_starter(app, storm))  # storm starts after this call
        records, _ = await read_all(s, "employees")
        rates, _ = await read_all(s, "hourly_rates")
    assert len(records) == 60 and len(rates) == 7 and s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("brightpay", records={"employees": 50})
    async with bright(app) as s:
        staff, _ = await read_all(s, "employees")
        worker = next(r for r in staff if not r.data["isLeaver"])
        await s.write("hourly_payments", [OutboundRecord("k", hours(worker.external_id, ("Basic Hours", 7.5),
                                                                      ("Overtime", 2)), external_id=worker.external_id)])
    people = map_records("brightpay", "Employee", staff)
    assert people[0]["employeeNumber"] == "WC0001" and people[0]["externalRefs"]["brightpay"] == staff[0].external_id
    lines = [SourceRecord(worker.external_id, line) for line in app.state.sandbox.extra["payslips"][worker.external_id]]
    pay = map_records("brightpay", "PayItem", lines)
    assert [(p["element"], p["units"], p["amountPence"]) for p in pay] == [("basic", 7.5, 9450), ("overtime", 2, 3780)]
