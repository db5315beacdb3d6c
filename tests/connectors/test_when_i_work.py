"""When I Work connector against its sandbox: developer-key log-in (W-Key -> W-Token, W-UserId), one
re-login after a refused token, page/limit paging, rolling windows, shift writes without duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.when_i_work import DEVELOPER_KEY, EMAIL, FIRST_USER, PASSWORD
from engine.ports import OutboundRecord

from .workforce_helpers import (
    check_registered,
    control,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

RECORDS = {"users": 450, "shifts": 600, "requests": 120}
SECRETS = {"developer_key": DEVELOPER_KEY, "email": EMAIL, "password": PASSWORD}


def wiw(app: Any, secrets: dict[str, Any] | None = None) -> Any:
    return session("when_i_work", app, {"user_id": str(FIRST_USER)}, secrets or SECRETS)


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("when_i_work")


async def test_users_page_from_zero_with_one_login() -> None:
    app = sandbox("when_i_work", records=RECORDS)
    async with wiw(app) as s:
        records, pages = await read_all(s, "users")
        stored = await s.token_store.load(s.connection_id)
    assert len(pages) == 3 and len(records) == len({r.external_id for r in records}) == RECORDS["users"]
    assert app.state.sandbox.extra["logins"] == 1 and stored is not None and stored["access_token"]


@pytest.mark.parametrize("stream", ["shifts", "times", "requests"])
async def test_window_reads(stream: str) -> None:
    app = sandbox("when_i_work", records=RECORDS)
    expected = app.state.sandbox.datasets[stream].n
    async with wiw(app) as s:
        records, _ = await read_all(s, stream)
    assert len(records) == len({r.external_id for r in records}) == expected


async def test_refused_token_means_one_new_login() -> None:
    app = sandbox("when_i_work", records=RECORDS)

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-login-tokens")

    async with wiw(app) as s:
        records, _ = await read_all(s, "users", between=expire)
    assert len(records) == RECORDS["users"] and s.stats.refreshes == 1
    assert app.state.sandbox.extra["logins"] == 2


async def test_wrong_password_is_auth_failed() -> None:
    app = sandbox("when_i_work")
    async with wiw(app, {**SECRETS, "password": "nope"}) as s:
        with pytest.raises(AuthFailed, match="Incorrect email or password"):
            await read_all(s, "users")


async def test_shift_create_retried_is_not_duplicated() -> None:
    app = sandbox("when_i_work", records=RECORDS)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    payload = {"user_id": FIRST_USER + 4, "location_id": 7701, "position_id": 3302,
               "start_time": format_datetime(start), "end_time": format_datetime(start + timedelta(hours=12)),
               "break_time": 1.0}
    async with wiw(app) as s:
        first = await s.write("shifts", [OutboundRecord("wcn-shift-31", payload)])
        again = await s.write("shifts", [OutboundRecord("wcn-shift-31", payload)])
        edit = await s.write("shifts", [OutboundRecord("wcn-shift-31b", {"break_time": 0.5},
                                                       external_id=first[0].external_id)])
        bad = await s.write("shifts", [OutboundRecord("wcn-bad", {**payload, "end_time": payload["start_time"]})])
        records, _ = await read_all(s, "shifts")
    assert first[0].ok and again[0].ok and first[0].external_id == again[0].external_id
    assert edit[0].ok and edit[0].data["break_time"] == 0.5
    assert len(records) == RECORDS["shifts"] + 1
    assert not bad[0].ok and "end time must be after" in (bad[0].error_message or "")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("when_i_work", records=RECORDS)
    async with wiw(app) as s:
        records, _ = await read_all(s, "users", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == RECORDS["users"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("when_i_work", records=RECORDS)
    async with wiw(app) as s:
        users = await s.sample("users", 60)
        shifts = await s.sample("shifts", 60)
        times, _ = await read_all(s, "times")
        requests, _ = await read_all(s, "requests")
    staff = map_records("when_i_work", "Employee", users)
    assert staff[0]["employeeNumber"] == "WC0001" and staff[0]["payBasis"] == "hourly"
    rota = map_records("when_i_work", "Shift", shifts)
    assert all(r["end"] > r["start"] for r in rota)
    clock = map_records("when_i_work", "Timesheet", times[:60])
    assert all(c["approvedMinutes"] > 0 for c in clock)
    away = map_records("when_i_work", "Absence", requests)
    assert {a["status"] for a in away} <= {"requested", "approved", "denied", "cancelled"}
