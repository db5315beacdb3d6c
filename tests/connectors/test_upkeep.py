"""UpKeep connector against its sandbox over real HTTP: session-token login (and one re-login after the
session lapses), limit/offset paging, updatedAtGreaterThan incremental, work orders created once even when a
reply is lost, updates, 429/5xx storms, and the WorkOrder/Asset mappings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.sandboxes import upkeep
from engine.ports import OutboundRecord

from .ops_helpers import (
    LoseReplies,
    check_registered,
    control,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

SECRETS = {"email": upkeep.EMAIL, "password": upkeep.PASSWORD}


def s(app: Any, **kw: Any) -> Any:
    return session("upkeep", app, {}, kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("upkeep")
    assert m.auth.type == "session_token" and m.auth.header == "Session-Token"
    assert m.streams["work_orders"].write is not None


async def test_full_read_across_pages_with_one_login() -> None:
    app = sandbox("upkeep", records={"work_orders": 260, "assets": 130})
    async with s(app) as sess:
        orders, pages = await read_all(sess, "work_orders")
        assets, _ = await read_all(sess, "assets")
        locations, _ = await read_all(sess, "locations")
    assert len({r.external_id for r in orders}) == 260 and len(pages) == 3
    assert len({r.external_id for r in assets}) == 130
    assert [loc.data["name"] for loc in locations] == list(upkeep.CARE_HOMES)
    assert app.state.sandbox.token_grants == {"login": 1}
    assert orders[0].data["status"] in upkeep.STATUSES and sess.stats.failed_calls == 0


async def test_lapsed_session_logs_in_once_more_and_bad_password_is_explained() -> None:
    app = sandbox("upkeep", records={"work_orders": 250, "assets": 5})

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-tokens")

    async with s(app) as sess:
        orders, _ = await read_all(sess, "work_orders", between=expire)
    assert len(orders) == 250 and sess.stats.refreshes == 1 and app.state.sandbox.token_grants == {"login": 2}
    async with s(app, secrets={**SECRETS, "password": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "Invalid username/password." in result.reason


async def test_incremental_read_returns_only_changes() -> None:
    app = sandbox("upkeep", records={"work_orders": 180, "assets": 20})
    async with s(app) as sess:
        orders, pages = await read_all(sess, "work_orders")
        cp = pages[-1].checkpoint
        target = orders[10].external_id
        out = await sess.write("work_orders", [OutboundRecord("wo-upd", {"status": "complete"}, target)])
        assert out[0].ok and out[0].external_id == target
        changed, _ = await read_all(sess, "work_orders", cp)
    assert [r.external_id for r in changed] == [target]  # updatedAtGreaterThan is strict
    assert changed[0].data["status"] == "complete" and changed[0].data["completedDate"]


async def test_create_is_not_duplicated_when_the_reply_is_lost_or_resent() -> None:
    app = sandbox("upkeep", records={"work_orders": 30, "assets": 10})
    data = app.state.sandbox.datasets["work_orders"]
    flaky = LoseReplies(app, "POST", "/work-orders", times=1)
    asset = app.state.sandbox.datasets["assets"].id_of(3)
    job = OutboundRecord("a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0",
                         {"title": "Hoist in room 12 not lifting", "priority": 3, "asset": asset})
    async with s(app, transport=httpx.ASGITransport(app=flaky)) as sess:
        first = await sess.write("work_orders", [job])
        again = await sess.write("work_orders", [job])  # the engine re-sending after a crash
        bad = await sess.write("work_orders", [OutboundRecord("k-bad", {"title": "", "priority": 1})])
    assert first[0].ok and again[0].ok and first[0].external_id == again[0].external_id
    assert len(data.overlay) == 1 and flaky.left == 0
    assert next(iter(data.overlay.values()))[1]["workOrderNo"] == job.idempotency_key
    assert not bad[0].ok and bad[0].error_message == "title is required."


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("upkeep", records={"work_orders": 420, "assets": 10})
    async with s(app) as sess:
        orders, _ = await read_all(sess, "work_orders", between=storm_starter(app, storm))
    assert len({r.external_id for r in orders}) == 420
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_mappings_compile_and_map_sandbox_records() -> None:
    app = sandbox("upkeep", records={"work_orders": 40, "assets": 40})
    async with s(app) as sess:
        orders = await sess.sample("work_orders", 40)
        assets = await sess.sample("assets", 40)
    jobs = map_records("upkeep", "WorkOrder", orders, stream="work_orders")
    assert all(j["priority"] in {"low", "medium", "high"} for j in jobs)
    assert {j["status"] for j in jobs} <= {"open", "on-hold", "in-progress", "done"}
    kit = map_records("upkeep", "Asset", assets, stream="assets")
    assert kit[0]["tag"] == "WCH-00001" and kit[0]["site"] == upkeep.CARE_HOMES[0]
    assert kit[0]["status"] in {"in-service", "out-of-service"}
