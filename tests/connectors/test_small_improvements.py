"""Small Improvements connector against its sandbox: personal access token, plain arrays, reviews of every cycle
(parent/child), Spring error bodies, storms and the Review and Employee mappings; the catalog stays honest
(API access is granted on request)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.catalog import load_catalog
from connectors.errors import AuthFailed
from connectors.sandboxes.small_improvements import CYCLES, TOKEN

from .workforce_helpers import CONNECTORS, manifest, map_records, read_all, sandbox, session, storm_starter

USERS = 41
RECORDS = {"users": USERS}
REVIEWS = (USERS - 1) * len(CYCLES)


def si(app: Any, token: str = TOKEN) -> Any:
    return session("small_improvements", app, {}, {"token": token})


def test_manifest_sandbox_and_honest_catalog() -> None:
    m = manifest("small_improvements")
    assert m.availability == "partner-only" and all(f.description for s in m.streams.values() for f in s.fields)
    entry = next(e for e in load_catalog(CONNECTORS).entries if e.id == "small_improvements")
    assert entry.connector == "small_improvements" and entry.availability == "partner-only"


async def test_reviews_of_every_cycle() -> None:
    app = sandbox("small_improvements", records=RECORDS)
    async with si(app) as s:
        records, pages = await read_all(s, "reviews")
        users, _ = await read_all(s, "users")
    assert len(pages) == 1 + len(CYCLES) and len(users) == USERS
    assert len(records) == len({r.external_id for r in records}) == REVIEWS
    assert {r.data["cycleName"] for r in records} == {c[0] for c in CYCLES}


async def test_bad_token_gets_spring_message() -> None:
    app = sandbox("small_improvements", records=RECORDS)
    async with si(app, token="nope") as s:
        with pytest.raises(AuthFailed, match="Invalid or revoked personal access token"):
            await read_all(s, "users")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("small_improvements", records=RECORDS)
    async with si(app) as s:
        records, _ = await read_all(s, "reviews", between=storm_starter(app, storm, size=3))
    assert len(records) == len({r.external_id for r in records}) == REVIEWS
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 3


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("small_improvements", records=RECORDS)
    async with si(app) as s:
        reviews, _ = await read_all(s, "reviews")
        users, _ = await read_all(s, "users")
    mapped = map_records("small_improvements", "Review", reviews)
    done = [m for m in mapped if m.get("completedAt")]
    assert done and all(m["rating"] and m["summary"] for m in done)
    staff = map_records("small_improvements", "Employee", users)
    assert staff[0]["employeeNumber"] == "WC0001"
