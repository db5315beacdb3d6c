"""SAP SuccessFactors connector against its sandbox: Basic user@companyId, OData v2 $top/$skip with
server-driven __next ($skiptoken), $filter on lastModifiedDateTime for incremental reads, MERGE updates,
OData error bodies, storms and the Employee mapping."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.successfactors import COMPANY_ID, FIRST_USER, PASSWORD, USERNAME
from engine.ports import OutboundRecord

from .workforce_helpers import (
    check_registered,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

USERS = 530
RECORDS = {"users": USERS}


def sf(app: Any, password: str = PASSWORD) -> Any:
    return session("successfactors", app, {"api_server": "api.sandbox", "company_id": COMPANY_ID},
                   {"username": USERNAME, "password": password})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("successfactors")


async def test_full_read_follows_next_links() -> None:
    app = sandbox("successfactors", records=RECORDS)
    async with sf(app) as s:
        records, pages = await read_all(s, "users")
    assert [len(p.records) for p in pages] == [200, 200, 130]
    assert len({r.external_id for r in records}) == USERS
    assert all(r.updated_at is not None for r in records)
    assert pages[1].checkpoint is not None and "$skiptoken" in pages[1].checkpoint["page"]["next_url"]
    assert pages[-1].checkpoint == {"since": max(r.updated_at for r in records if r.updated_at).isoformat()}


async def test_merge_update_then_incremental_read_and_retry_is_harmless() -> None:
    app = sandbox("successfactors", records=RECORDS)
    uid = str(FIRST_USER + 17)
    change = OutboundRecord("k-17", {"title": "Senior Care Assistant", "email": "sam.new@willowcourtcare.example"},
                            external_id=uid)
    async with sf(app) as s:
        _, pages = await read_all(s, "users")
        first = await s.write("users", [change])
        again = await s.write("users", [change])  # a retry after a lost reply: MERGE of the same values
        changed, _ = await read_all(s, "users", pages[-1].checkpoint)
        bad = await s.write("users", [OutboundRecord("k-x", {"salary": 1}, external_id=uid)])
    assert first[0].ok and again[0].ok and first[0].external_id == uid
    assert [r.external_id for r in changed] == [uid] and changed[0].data["title"] == "Senior Care Assistant"
    assert not bad[0].ok and bad[0].error_code == "COE_PROPERTY_NOT_UPDATABLE"
    assert "Property salary of entity User cannot be updated" in (bad[0].error_message or "")


async def test_bad_password_gives_odata_message() -> None:
    app = sandbox("successfactors", records=RECORDS)
    async with sf(app, password="wrong") as s:
        with pytest.raises(AuthFailed, match=r"\[LGN0011\]Invalid user name or password"):
            await read_all(s, "users")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("successfactors", records=RECORDS)
    async with sf(app) as s:
        records, _ = await read_all(s, "users", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == USERS
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_template_maps_sandbox_users() -> None:
    app = sandbox("successfactors", records=RECORDS)
    async with sf(app) as s:
        users = await s.sample("users", 80)
    staff = map_records("successfactors", "Employee", users)
    assert staff[0]["employeeNumber"] == "WC0001" and staff[0]["externalRefs"]["successfactors"] == str(FIRST_USER)
    assert all(len(e["startDate"]) == 10 and e["phone"].startswith("+44") for e in staff)
    assert {e["status"] for e in staff} <= {"active", "inactive"}


async def test_job_information_pages_and_increments() -> None:
    app = sandbox("successfactors", records=RECORDS)
    async with sf(app) as s:
        jobs, pages = await read_all(s, "jobs")
        cut = jobs[449].updated_at
        assert cut is not None
        later, _ = await read_all(s, "jobs", {"since": cut.isoformat()})
    assert [len(p.records) for p in pages] == [200, 200, 130]
    assert len({r.external_id for r in jobs}) == USERS and all(r.data["fte"] for r in jobs)
    assert [r.external_id for r in later] == [r.external_id for r in jobs[450:]]
