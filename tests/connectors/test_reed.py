"""Reed Jobseeker API connector against its sandbox: basic auth with the key, resultsToSkip/resultsToTake
paging with totalResults, employer and local-market searches, read-only streams, storms, JobPosting mapping."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed, ConnectorError
from connectors.sandboxes.reed import API_KEY, EMPLOYER_ID
from engine.ports import OutboundRecord

from .workforce_helpers import (
    check_registered,
    manifest,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

RECORDS = {"jobs": 260}
OWN = sum(1 for i in range(260) if i % 4 != 3)


def reed(app: Any, key: str = API_KEY, **config: Any) -> Any:
    return session("reed", app, {"employer_id": str(EMPLOYER_ID), **config}, {"api_key": key})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("reed")
    m = manifest("reed")
    assert all(s.write is None and s.incremental is None for s in m.streams.values())  # read only, no filter


async def test_full_read_of_our_adverts_across_pages() -> None:
    app = sandbox("reed", records=RECORDS)
    async with reed(app) as s:
        records, pages = await read_all(s, "jobs")
    assert len(pages) == 2 and len(records) == OWN == len({r.external_id for r in records})
    assert all(r.data["employerId"] == EMPLOYER_ID for r in records)
    assert s.stats.failed_calls == 0 and pages[-1].checkpoint == {}


async def test_local_market_search_uses_keywords_and_location() -> None:
    app = sandbox("reed", records=RECORDS)
    async with reed(app) as s:
        everything, _ = await read_all(s, "local_market")
    async with reed(app, keywords="nurse") as s:
        carers, _ = await read_all(s, "local_market")
    assert len(everything) == RECORDS["jobs"]
    assert 0 < len(carers) < len(everything) and all("nurse" in r.data["jobTitle"].lower() for r in carers)
    assert {r.data["employerId"] for r in carers} - {EMPLOYER_ID}  # competitors' adverts too


async def test_bad_key_and_writes_refused() -> None:
    app = sandbox("reed", records=RECORDS)
    async with reed(app, key="not-a-key") as s:
        with pytest.raises(AuthFailed, match="Authorization has been denied"):
            await read_all(s, "jobs")
        result = await s.test_connection()
        with pytest.raises(ConnectorError, match="read-only"):
            await s.write("jobs", [OutboundRecord("k", {"jobTitle": "Chef"})])
    assert not result.ok and "did not accept" in result.reason


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("reed", records=RECORDS)
    async with reed(app) as s:
        records, _ = await read_all(s, "local_market", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == RECORDS["jobs"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_template_maps_sandbox_adverts() -> None:
    app = sandbox("reed", records=RECORDS)
    async with reed(app) as s:
        adverts = await s.sample("jobs", 60)
    postings = map_records("reed", "JobPosting", adverts)
    assert all(p["status"] == "open" and p["channels"] == ["Reed"] for p in postings)
    assert all(p["salaryFromPence"] <= p["salaryToPence"] and p["closingDate"] > "2026" for p in postings)
    assert postings[0]["externalRefs"]["reed"] == str(adverts[0].data["jobId"])
