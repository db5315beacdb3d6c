"""Culture Amp connector against its sandbox: client-credentials token (Basic client auth), next-page paths,
429/503 throttles, storms and the Review and Employee mappings."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.culture_amp import CLIENT_ID, CLIENT_SECRET, CYCLES

from .workforce_helpers import (
    check_registered,
    control,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

EMPLOYEES = 81
RECORDS = {"employees": EMPLOYEES}
REVIEWS = (EMPLOYEES - 1) * len(CYCLES)


def culture_amp(app: Any, secret: str = CLIENT_SECRET) -> Any:
    return session("culture_amp", app, {}, {"client_id": CLIENT_ID, "client_secret": secret})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("culture_amp")


async def test_manager_reviews_follow_next_paths() -> None:
    app = sandbox("culture_amp", records=RECORDS)
    async with culture_amp(app) as s:
        records, pages = await read_all(s, "manager_reviews")
        cycles, _ = await read_all(s, "performance_cycles")
    assert [len(p.records) for p in pages] == [50, 50, 50, 10]
    assert len({r.external_id for r in records}) == REVIEWS
    assert [c.data["name"] for c in cycles] == [c[0] for c in CYCLES]
    assert app.state.sandbox.token_grants == {"client_credentials": 1}


async def test_bad_secret_and_503_throttle() -> None:
    app = sandbox("culture_amp", records=RECORDS)
    async with culture_amp(app, secret="nope") as s:
        with pytest.raises(AuthFailed, match="Client authentication failed"):
            await read_all(s, "employees")

    async def busy(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/faults", {"storm_5xx": 3, "error_status": 503, "retry_after": "0"})

    async with culture_amp(app) as s:
        records, _ = await read_all(s, "employees", between=busy)
    assert len(records) == EMPLOYEES and s.stats.failed_calls == 0


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("culture_amp", records=RECORDS)
    async with culture_amp(app) as s:
        records, _ = await read_all(s, "manager_reviews", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == REVIEWS
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors + s.stats.throttled) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("culture_amp", records=RECORDS)
    async with culture_amp(app) as s:
        reviews, _ = await read_all(s, "manager_reviews")
        employees, _ = await read_all(s, "employees")
    mapped = map_records("culture_amp", "Review", reviews)
    done = [m for m in mapped if m.get("completedAt")]
    assert done and all(m["rating"] and m["summary"] for m in done)
    assert {m["cycle"] for m in mapped} == {c[0] for c in CYCLES}
    staff = map_records("culture_amp", "Employee", employees)
    assert staff[0]["employeeNumber"] == "WC0001" and all(e["jobTitle"] and e["site"] for e in staff)
