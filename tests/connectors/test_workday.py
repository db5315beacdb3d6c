"""Workday connector against its sandbox: refresh-token grant of an API Client for Integrations (no rotation),
REST workers with limit/offset and total, a RaaS JSON custom report with an Updated_From prompt for incremental
reads, token expiry mid-read, storms and mappings."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.workday import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, REPORT, REPORT_OWNER, TENANT

from .workforce_helpers import (
    check_registered,
    control,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

RECORDS = {"workers": 230, "time_off": 300}
CONFIG = {"host": "wd3-impl-services1.workday.com", "tenant": TENANT, "report_owner": REPORT_OWNER,
          "report_name": REPORT}


def workday(app: Any, refresh_token: str = REFRESH_TOKEN) -> Any:
    return session("workday", app, CONFIG, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                            "refresh_token": refresh_token})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("workday")


async def test_workers_full_read_with_one_token_and_renewal_mid_read() -> None:
    app = sandbox("workday", records=RECORDS)

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-tokens")

    async with workday(app) as s:
        records, pages = await read_all(s, "workers", between=expire)
    assert [len(p.records) for p in pages] == [100, 100, 30]
    assert len({r.external_id for r in records}) == RECORDS["workers"]
    assert app.state.sandbox.token_grants == {"refresh_token": 2} and s.stats.refreshes == 1


async def test_time_off_report_incremental() -> None:
    app = sandbox("workday", records=RECORDS)
    async with workday(app) as s:
        everything, pages = await read_all(s, "time_off")
        newest = pages[-1].checkpoint
        nothing, _ = await read_all(s, "time_off", newest)
        cut = everything[249].data["Last_Updated"]
        recent, _ = await read_all(s, "time_off", {"since": cut})
    assert len(everything) == RECORDS["time_off"] and len(pages) == 1
    assert nothing == [] and [r.external_id for r in recent] == [r.external_id for r in everything[250:]]


async def test_bad_refresh_token_is_refused() -> None:
    app = sandbox("workday", records=RECORDS)
    async with workday(app, refresh_token="stale") as s:
        with pytest.raises(AuthFailed, match="Invalid refresh token"):
            await read_all(s, "workers")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("workday", records=RECORDS)
    async with workday(app) as s:
        records, _ = await read_all(s, "workers", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == RECORDS["workers"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("workday", records=RECORDS)
    async with workday(app) as s:
        workers = await s.sample("workers", 100)
        time_off, _ = await read_all(s, "time_off")
    staff = map_records("workday", "Employee", workers)
    assert all(e["givenName"] and e["familyName"] and e["phone"].startswith("+44") for e in staff)
    leave = map_records("workday", "Absence", time_off)
    assert {a["type"] for a in leave} == {"holiday", "sickness", "other"}
    assert all(a["hours"] > 0 and a["start"] == a["end"] for a in leave)
