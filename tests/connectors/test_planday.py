"""Planday connector against its sandbox: refresh-token grant (non-rotating) with X-ClientId, 50-a-page
offset paging with paging.total, rolling shift windows, idempotent shift edits, storms, mapping templates."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed
from connectors.sandboxes.planday import CLIENT_ID, REFRESH_TOKEN
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

RECORDS = {"employees": 130, "shifts": 330}
SECRETS = {"client_id": CLIENT_ID, "refresh_token": REFRESH_TOKEN}


def planday(app: Any, secrets: dict[str, Any] | None = None) -> Any:
    return session("planday", app, {}, secrets or SECRETS)


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("planday")


async def test_first_call_swaps_refresh_token_then_reads_every_page() -> None:
    app = sandbox("planday", records=RECORDS)
    active = sum(1 for e in app.state.sandbox.datasets["employees"].iter() if e["isActive"])
    async with planday(app) as s:
        staff, pages = await read_all(s, "employees")
        shifts, shift_pages = await read_all(s, "shifts")
    assert len(pages) == -(-active // 50) and len(staff) == len({r.external_id for r in staff}) == active
    assert len(shift_pages) == 7 and len(shifts) == len({r.external_id for r in shifts}) == RECORDS["shifts"]
    assert app.state.sandbox.token_grants == {"refresh_token": 1}  # one swap serves every call


async def test_expired_access_token_is_renewed_once_with_the_same_refresh_token() -> None:
    app = sandbox("planday", records=RECORDS)

    async def expire(n: int) -> None:
        if n in (1, 3):
            await control(app, "/_sandbox/expire-tokens")

    async with planday(app) as s:
        shifts, _ = await read_all(s, "shifts", between=expire)
    assert len(shifts) == RECORDS["shifts"] and s.stats.refreshes == 2
    assert app.state.sandbox.token_grants == {"refresh_token": 3}


async def test_wrong_client_is_refused() -> None:
    app = sandbox("planday")
    async with planday(app, {"client_id": "someone-else", "refresh_token": REFRESH_TOKEN}) as s:
        with pytest.raises(AuthFailed, match="invalid_client"):
            await read_all(s, "departments")


async def test_shift_edit_retried_is_applied_once() -> None:
    app = sandbox("planday", records=RECORDS)
    async with planday(app) as s:
        shifts, _ = await read_all(s, "shifts")
        target = shifts[10]
        new_end = target.data["endDateTime"].replace(":00:00.000", ":30:00.000")
        change = OutboundRecord("edit-1", {"endDateTime": new_end, "comment": "Stayed for handover"},
                                external_id=target.external_id)
        first = await s.write("shifts", [change])
        stamp = app.state.sandbox.datasets["shifts"].get(target.external_id)["dateTimeModified"]
        again = await s.write("shifts", [change])
        bad = await s.write("shifts", [OutboundRecord("edit-2", {"departmentId": 1}, external_id=target.external_id)])
    assert first[0].ok and again[0].ok and first[0].external_id == target.external_id
    rec = app.state.sandbox.datasets["shifts"].get(target.external_id)
    assert rec["endDateTime"] == new_end and rec["dateTimeModified"] == stamp
    assert not bad[0].ok and "does not exist" in (bad[0].error_message or "")


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("planday", records=RECORDS)
    async with planday(app) as s:
        shifts, _ = await read_all(s, "shifts", between=storm_starter(app, storm))
    assert len(shifts) == len({r.external_id for r in shifts}) == RECORDS["shifts"]
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("planday", records=RECORDS)
    async with planday(app) as s:
        staff, _ = await read_all(s, "employees")
        shifts = await s.sample("shifts", 60)
    people = map_records("planday", "Employee", staff)
    assert people[0]["employeeNumber"] == "WC0001" and people[0]["phone"].startswith("+447")
    rota = map_records("planday", "Shift", shifts)
    assert all(r["end"] > r["start"] and r["source"] == "planday" for r in rota)


async def test_connect_flow_authorization_code_then_reads() -> None:
    import httpx

    from connectors.auth import OAuth2AuthorizationCodeAuthenticator

    app = sandbox("planday", records=RECORDS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://planday.sandbox") as c:
        resp = await c.get("/connect/authorize", params={"client_id": "carehub-sandbox-app", "state": "s1",
                                                          "redirect_uri": "http://hub/oauth/callback"})
    assert resp.status_code == 302 and "state=s1" in resp.headers["location"]
    code = resp.headers["location"].split("code=")[1].split("&")[0]
    async with planday(app, {"client_id": "carehub-sandbox-app"}) as s:
        assert isinstance(s.auth, OAuth2AuthorizationCodeAuthenticator)
        tokens = await s.auth.exchange_code(code, "http://hub/oauth/callback")
        departments, _ = await read_all(s, "departments")
    assert tokens["refresh_token"] and len(departments) == 4
