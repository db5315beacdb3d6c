"""Lattice connector against its sandbox: bearer API key, limit/startingAfter cursor paging on endingCursor and
hasMore, review answers of every cycle (parent/child with cursor paging inside each cycle, resumable), storms and
the Review and Employee mappings."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.lattice import API_KEY, CYCLES, QUESTIONS

from .workforce_helpers import (
    check_registered,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

USERS = 31
RECORDS = {"users": USERS}
PER_CYCLE = (USERS - 1) * 2 * len(QUESTIONS)  # self and manager answers to each question, per reviewee


def lattice(app: Any, key: str = API_KEY) -> Any:
    return session("lattice", app, {}, {"api_key": key})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("lattice")


async def test_users_follow_the_cursor() -> None:
    app = sandbox("lattice", records={"users": 230})
    async with lattice(app) as s:
        records, pages = await read_all(s, "users")
    assert [len(p.records) for p in pages] == [100, 100, 30]
    assert len({r.external_id for r in records}) == 230


async def test_reviews_of_every_cycle_across_pages_and_resume() -> None:
    app = sandbox("lattice", records=RECORDS)
    async with lattice(app) as s:
        records, pages = await read_all(s, "reviews")
    assert not pages[0].records  # the cycle list
    assert len(pages) == 1 + len(CYCLES) * -(-PER_CYCLE // 100)
    assert len(records) == len({r.external_id for r in records}) == PER_CYCLE * len(CYCLES)
    assert {r.data["cycle_name"] for r in records} == {c[0] for c in CYCLES}
    async with lattice(app) as s:
        rest, _ = await read_all(s, "reviews", pages[4].checkpoint)
    assert [r.external_id for r in rest] == [r.external_id for r in records][-len(rest):]
    assert len(rest) == len(records) - sum(len(p.records) for p in pages[:5])


async def test_bad_key_is_refused() -> None:
    app = sandbox("lattice", records=RECORDS)
    async with lattice(app, key="nope") as s:
        with pytest.raises(AuthFailed, match="invalid API key"):
            await read_all(s, "users")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("lattice", records=RECORDS)
    async with lattice(app) as s:
        records, _ = await read_all(s, "reviews", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == PER_CYCLE * len(CYCLES)
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("lattice", records=RECORDS)
    async with lattice(app) as s:
        reviews, _ = await read_all(s, "reviews")
        users, _ = await read_all(s, "users")
    mapped = map_records("lattice", "Review", reviews)
    rated = [m for m in mapped if m.get("rating")]
    assert rated and all(m["rating"] in {"2", "3", "4", "5"} for m in rated)
    assert any(m.get("summary") for m in mapped) and any(m["reviewer"] == "Self review" for m in mapped)
    assert all(m["cycle"] and m["employeeRef"] for m in mapped)
    staff = map_records("lattice", "Employee", users)
    assert staff[2]["employeeNumber"] == "WC0003" and staff[2]["givenName"]
