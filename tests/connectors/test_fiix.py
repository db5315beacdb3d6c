"""Fiix connector against its sandbox over real HTTP: every request URL signed (hex HMAC of the URL without
its scheme), RPC FindRequest paging with startObjectIndex/maxObjects, a last-modified filter for incremental
reads, RPC errors inside HTTP 200 replies, 429/5xx storms, and the WorkOrder/Asset mappings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.sandboxes import fiix

from .ops_helpers import check_registered, map_records, read_all, sandbox, session, storm_starter

CONFIG = {"tenant": "willowcourt"}
SECRETS = {"app_key": fiix.APP_KEY, "access_key": fiix.ACCESS_KEY, "secret_key": fiix.SECRET_KEY}


def s(app: Any, **kw: Any) -> Any:
    return session("fiix", app, CONFIG, kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("fiix")
    assert m.auth.type == "signed_request" and m.auth.signs == "url_without_scheme" and m.auth.encoding == "hex"
    assert m.environments["production"].base_url == "https://{config.tenant}.macmms.com"
    assert all(st.method == "POST" and st.body and st.body["_maCn"] == "FindRequest" for st in m.streams.values())


def test_signature_known_answer() -> None:
    url = ("willowcourt.macmms.com/api/?service=cmms&appKey=macmms-app-key-0f1e2d3c&accessKey=macmms-access-key-"
           "4b5a6978&signatureMethod=HmacSHA256&signatureVersion=1")
    # printf '%s' "$url" | openssl dgst -sha256 -hmac macmms-secret-key-sandbox-9a8b7c6d5e4f
    assert fiix.signature(url) == "bc8040d0231d4c792dccfb5dfc12e473d3d86a5a794c66a9b50219f981d18434"
    assert fiix.signature(url.replace("cmms", "CMMS")) != fiix.signature(url)


async def test_full_read_of_every_class_across_pages() -> None:
    app = sandbox("fiix", records={"work_orders": 230, "assets": 140, "purchase_orders": 60})
    async with s(app) as sess:
        orders, pages = await read_all(sess, "work_orders")
        assets, _ = await read_all(sess, "assets")
        pos, _ = await read_all(sess, "purchase_orders")
        sites, _ = await read_all(sess, "sites")
    assert len({r.external_id for r in orders}) == 230 and len(pages) == 3
    assert pages[0].checkpoint["page"] == {"start": 100}
    assert len({r.external_id for r in assets}) == 140 and len(pos) == 60
    assert [x.data["strName"] for x in sites] == list(fiix.CARE_HOMES)
    assert orders[0].data["className"] == "WorkOrder" and orders[0].updated_at is not None
    assert sess.stats.failed_calls == 0


async def test_bad_secret_is_an_rpc_error_inside_http_200() -> None:
    app = sandbox("fiix", records=5)
    async with s(app, secrets={**SECRETS, "secret_key": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "the request signature is not valid" in result.reason
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fiix.sandbox") as c:
        raw = await c.post("/api/?service=cmms", json={"_maCn": "FindRequest", "className": "Site"})
    assert raw.status_code == 200 and raw.json()["error"]["code"] == 401


async def test_incremental_reads_return_only_changes() -> None:
    app = sandbox("fiix", records={"work_orders": 150, "assets": 10})
    data = app.state.sandbox.datasets["WorkOrder"]
    async with s(app) as sess:
        orders, pages = await read_all(sess, "work_orders")
        cp = pages[-1].checkpoint
        for wid in ("30004", "30120"):  # closed by the maintenance team in Fiix
            rec = dict(data.get(wid) or {})
            rec["intWorkOrderStatusID"] = 5
            at = data.put(wid, rec)
            rec["dtmDateLastModified"] = at.strftime("%Y-%m-%d %H:%M:%S")
        again, _ = await read_all(sess, "work_orders", cp)
    # ">=" on a one-second clock: the newest job of the last read comes again (an upsert), then the changes
    assert [r.external_id for r in again] == [orders[-1].external_id, "30004", "30120"]


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("fiix", records={"work_orders": 420, "assets": 10})
    async with s(app) as sess:
        orders, _ = await read_all(sess, "work_orders", between=storm_starter(app, storm))
    assert len({r.external_id for r in orders}) == 420
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_mappings_compile_and_map_sandbox_records() -> None:
    app = sandbox("fiix", records={"work_orders": 40, "assets": 40, "purchase_orders": 30})
    async with s(app) as sess:
        orders = await sess.sample("work_orders", 40)
        assets = await sess.sample("assets", 40)
    jobs = map_records("fiix", "WorkOrder", orders, stream="work_orders")
    assert {j["status"] for j in jobs} <= {"open", "in-progress", "on-hold", "done"}
    assert jobs[0]["assetRef"].startswith("2") and jobs[0]["reportedAt"] == "2024-01-01T00:00:00+00:00"
    kit = map_records("fiix", "Asset", assets, stream="assets")
    assert kit[0]["tag"] == "AST-00001" and kit[0]["site"] == fiix.CARE_HOMES[0]
    async with s(app) as sess:
        orders = await sess.sample("purchase_orders", 30)
    pos = map_records("fiix", "PurchaseOrder", orders, stream="purchase_orders")
    assert pos[0]["number"] == "1000" and isinstance(pos[0]["totalPence"], int)
    assert {p["status"] for p in pos} <= {"draft", "ordered", "received", "cancelled"}
