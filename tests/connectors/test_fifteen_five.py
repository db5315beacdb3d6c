"""15Five connector against its sandbox: bearer API key, DRF pages followed through their absolute next links,
the 5-a-second limit declared, 429 with Retry-After, storms and the Review and Employee mappings."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.fifteen_five import API_KEY

from .workforce_helpers import (
    check_registered,
    manifest,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

RECORDS = {"users": 40, "reports": 333}


def fifteen(app: Any, key: str = API_KEY) -> Any:
    return session("fifteen_five", app, {}, {"api_key": key})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("fifteen_five")
    assert manifest("fifteen_five").rate_limits.per_second == 5


async def test_check_ins_follow_next_links() -> None:
    app = sandbox("fifteen_five", records=RECORDS)
    async with fifteen(app) as s:
        records, pages = await read_all(s, "check_ins")
    assert [len(p.records) for p in pages] == [100, 100, 100, 33]
    assert len({r.external_id for r in records}) == RECORDS["reports"]
    assert pages[-1].checkpoint == {"since": max(r.updated_at for r in records if r.updated_at).isoformat()}


async def test_bad_key_is_refused_with_drf_detail() -> None:
    app = sandbox("fifteen_five", records=RECORDS)
    async with fifteen(app, key="nope") as s:
        with pytest.raises(AuthFailed, match="Invalid token"):
            await read_all(s, "users")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("fifteen_five", records=RECORDS)
    async with fifteen(app) as s:
        records, _ = await read_all(s, "check_ins", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == RECORDS["reports"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("fifteen_five", records=RECORDS)
    async with fifteen(app) as s:
        check_ins, _ = await read_all(s, "check_ins")
        users, _ = await read_all(s, "users")
    reviews = map_records("fifteen_five", "Review", check_ins)
    assert all(r["rating"].startswith("Pulse ") and r["cycle"].startswith("Weekly check-in") for r in reviews)
    assert any("completedAt" not in r or r["completedAt"] is None for r in reviews)
    staff = map_records("fifteen_five", "Employee", users)
    assert staff[0]["employeeNumber"] == "WC0001" and {e["status"] for e in staff} <= {"active", "inactive"}
