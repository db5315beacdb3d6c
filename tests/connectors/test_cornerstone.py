"""Cornerstone OnDemand connector against its sandbox: JSON client-credentials token with the transcript:read
scope, Transcript Search in 24-hour windows with 50-record pages, incremental reads from the newest change,
token expiry, storms and the TrainingRecord mapping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.cornerstone import CLIENT_ID, CLIENT_SECRET, CORP, DATA_DAYS, PAGE_SIZE

from .workforce_helpers import (
    check_registered,
    control,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

TRANSCRIPTS = 600
RECORDS = {"transcripts": TRANSCRIPTS, "users": 60}
FROM = "2026-10-01"
SECRETS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


def csod(app: Any, secrets: dict[str, Any] | None = None, since_from: str = FROM) -> Any:
    return session("cornerstone", app, {"corp": CORP, "transcripts_from": since_from}, secrets or SECRETS)


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("cornerstone")


async def test_full_read_in_day_windows_and_pages() -> None:
    app = sandbox("cornerstone", records=RECORDS)
    async with csod(app) as s:
        records, pages = await read_all(s, "transcripts")
    days = (datetime.now(UTC) - datetime(2026, 10, 1, tzinfo=UTC)).days
    assert len(pages) >= days + DATA_DAYS  # one request a day, and a second page on busy days
    assert max(len(p.records) for p in pages) == PAGE_SIZE
    keys = [r.external_id for r in records]
    assert len(records) == TRANSCRIPTS and len(set(keys)) <= TRANSCRIPTS
    assert app.state.sandbox.token_grants == {"client_credentials": 1}
    assert pages[-1].checkpoint == {"since": max(r.updated_at for r in records if r.updated_at).isoformat()}


async def test_incremental_read_returns_only_changes() -> None:
    app = sandbox("cornerstone", records=RECORDS)
    async with csod(app) as s:
        _, pages = await read_all(s, "transcripts")
        done = (await control(app, "/_sandbox/complete", {"count": 7}))["completed"]
        await asyncio.sleep(1.05)  # windows end at whole seconds: let the changes fall before the read's end
        changed, _ = await read_all(s, "transcripts", pages[-1].checkpoint)
    fresh = [r for r in changed if r.data["Status"] == "Completed" and r.external_id in done]
    assert len(fresh) == 7 and len(changed) <= 8  # the changes, plus at most the boundary record


async def test_bad_client_and_expired_token() -> None:
    app = sandbox("cornerstone", records=RECORDS)
    async with csod(app, {"client_id": CLIENT_ID, "client_secret": "nope"}) as s:
        with pytest.raises(AuthFailed, match="Client authentication failed"):
            await read_all(s, "transcripts")

    async def expire(n: int) -> None:
        if n == 3:
            await control(app, "/_sandbox/expire-tokens")

    async with csod(app) as s:
        records, _ = await read_all(s, "transcripts", between=expire)
    assert len(records) == TRANSCRIPTS and s.stats.refreshes == 1


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("cornerstone", records=RECORDS)
    async with csod(app) as s:
        records, _ = await read_all(s, "transcripts", between=storm_starter(app, storm))
    assert len(records) == TRANSCRIPTS
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_template_maps_sandbox_transcripts() -> None:
    app = sandbox("cornerstone", records=RECORDS)
    async with csod(app) as s:
        records, _ = await read_all(s, "transcripts")
    training = map_records("cornerstone", "TrainingRecord", records[:200])
    assert {t["status"] for t in training} == {"completed", "in-progress", "assigned"}
    assert all(t["employeeRef"].startswith("WC") and t["provider"] == "Cornerstone OnDemand" for t in training)
    assert all(bool(t.get("completedAt")) == (t["status"] == "completed") for t in training)
