"""IRIS Staffology connector against its sandbox: basic auth with the API key as password, pageNum/pageSize
paging, pay runs and the gross-to-net report, idempotent employee updates, storms, mapping templates."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed, VendorError
from connectors.sandboxes.staffology import API_KEY, EMPLOYER_ID
from engine.ports import OutboundRecord

from .workforce_helpers import check_registered, map_records, read_all, sandbox, session, storm_starter

CONFIG = {"employer_id": EMPLOYER_ID, "tax_year": "Year2026", "pay_period": "Monthly", "period_number": "6"}


def payroll(app: Any, key: str = API_KEY, **config: Any) -> Any:
    return session("staffology", app, {**CONFIG, **config}, {"api_key": key})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("staffology", catalog_id="iris_payroll")


async def test_employees_read_across_pages() -> None:
    app = sandbox("staffology", records={"employees": 250})
    async with payroll(app) as s:
        records, pages = await read_all(s, "employees")
        runs, _ = await read_all(s, "payruns")
    assert len(pages) == 3
    assert len(records) == len({r.external_id for r in records}) == 250
    assert all(r.updated_at is not None for r in records)
    assert [r.data["metadata"]["periodNumber"] for r in runs][:6] == [1, 2, 3, 4, 5, 6]


async def test_gross_to_net_report_and_missing_period() -> None:
    app = sandbox("staffology", records={"employees": 40})
    async with payroll(app) as s:
        lines, _ = await read_all(s, "gross_to_net")
    current = sum(1 for r in app.state.sandbox.datasets["employees"].iter() if r["status"] == "Current")
    assert len(lines) == current and all(x.data["netPay"] < x.data["totalGross"] for x in lines)
    async with payroll(app, period_number="12") as s:
        with pytest.raises(VendorError) as err:
            await read_all(s, "gross_to_net")
    assert err.value.status == 404 and "No pay run" in err.value.vendor_message


async def test_bad_key_is_refused() -> None:
    app = sandbox("staffology")
    async with payroll(app, key="wrong") as s:
        with pytest.raises(AuthFailed):
            await read_all(s, "employers")


async def test_employee_update_retried_is_applied_once() -> None:
    app = sandbox("staffology", records={"employees": 30})
    async with payroll(app) as s:
        staff, _ = await read_all(s, "employees")
        emp = staff[3].external_id
        change = OutboundRecord("upd-1", {"employmentDetails": {"jobTitle": "Senior Care Assistant"},
                                          "personalDetails": {"mobileNumber": "07400 123456"}}, external_id=emp)
        first = await s.write("employees", [change])
        again = await s.write("employees", [change])
        bad = await s.write("employees", [OutboundRecord("upd-2", {"personalDetails": {"niNumber": "AB12"}},
                                                         external_id=emp)])
        after, _ = await read_all(s, "employees")
    assert first[0].ok and again[0].ok and first[0].external_id == emp
    assert first[0].data["lastModified"] == again[0].data["lastModified"]
    assert first[0].data["personalDetails"]["firstName"]  # untouched fields kept
    assert len(after) == 30 and [r.data["metadata"]["jobTitle"] for r in after if r.external_id == emp] == \
        ["Senior Care Assistant"]
    assert not bad[0].ok and "NI Number is not valid" in (bad[0].error_message or "")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("staffology", records={"employees": 320})
    async with payroll(app) as s:
        records, _ = await read_all(s, "employees", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == 320
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("staffology", records={"employees": 60})
    async with payroll(app) as s:
        staff = await s.sample("employees", 60)
        lines, _ = await read_all(s, "gross_to_net")
    people = map_records("staffology", "Employee", staff)
    assert people[0]["employeeNumber"] == "WC0001" and people[0]["givenName"] and people[0]["familyName"]
    pay = map_records("staffology", "PayItem", lines)
    assert all(p["amountPence"] > 0 and p["element"] == "basic" for p in pay)
    assert pay[0]["amountPence"] == round(lines[0].data["totalGross"] * 100)
