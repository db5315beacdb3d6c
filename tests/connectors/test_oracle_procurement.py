"""Oracle Procurement Cloud connector against its sandbox over real HTTP: basic auth, purchaseOrders with
limit/offset paged until hasMore is false, expand=lines, LastUpdateDate q incremental, 429/5xx storms, and the
PurchaseOrder mapping."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.sandboxes import procurement as pr

from .ops_helpers import check_registered, map_records, read_all, sandbox, session, storm_starter

CONFIG = {"pod": "ehxk-test", "data_centre": "em2"}
SECRETS = {"username": pr.ORACLE_USER, "password": pr.ORACLE_PASSWORD}


def s(app: Any, **kw: Any) -> Any:
    return session("oracle_procurement", app, CONFIG, kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("oracle_procurement")
    assert m.auth.type == "basic" and m.headers["REST-Framework-Version"] == "2"
    po = m.streams["purchase_orders"]
    assert po.paginator.type == "offset_limit" and po.params["expand"] == "lines" and po.write is None


async def test_full_read_pages_until_has_more_is_false() -> None:
    app = sandbox("oracle_procurement", records={"purchaseOrders": 300})  # a multiple of the page size
    seen: list[httpx.Request] = []
    inner = httpx.ASGITransport(app=app)

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await inner.handle_async_request(request)

    async with s(app, transport=Spy()) as sess:
        orders, pages = await read_all(sess, "purchase_orders")
    assert len({r.external_id for r in orders}) == 300 and len(pages) == 3  # hasMore false stops at once
    assert [r.url.params["offset"] for r in seen] == ["0", "100", "200"]
    assert all(r.headers["authorization"].startswith("Basic ") for r in seen)
    assert orders[0].data["OrderNumber"] == "UK100000" and orders[0].data["lines"]
    assert sess.stats.failed_calls == 0


async def test_wrong_password_is_explained() -> None:
    app = sandbox("oracle_procurement", records={"purchaseOrders": 3})
    async with s(app, secrets={**SECRETS, "password": "nope"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "did not accept the credentials" in result.reason


async def test_incremental_read_returns_only_changes() -> None:
    app = sandbox("oracle_procurement", records={"purchaseOrders": 150})
    data = app.state.sandbox.datasets["purchaseOrders"]
    async with s(app) as sess:
        orders, pages = await read_all(sess, "purchase_orders")
        changed = [str(pr.ORACLE_PO_BASE + i) for i in (7, 140)]
        for po in changed:
            rec = dict(data.get(po) or {})
            at = data.put(po, rec)
            rec.update(Status="CLOSED FOR RECEIVING", LastUpdateDate=pr._iso(at))
        again, _ = await read_all(sess, "purchase_orders", pages[-1].checkpoint)
    assert len(orders) == 150 and [r.external_id for r in again] == changed
    assert again[0].data["Status"] == "CLOSED FOR RECEIVING"


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("oracle_procurement", records={"purchaseOrders": 330})
    async with s(app) as sess:
        orders, _ = await read_all(sess, "purchase_orders", between=storm_starter(app, storm))
    assert len({r.external_id for r in orders}) == len(orders) == 330
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_purchase_order_mapping_compiles_and_maps_sandbox_records() -> None:
    app = sandbox("oracle_procurement", records={"purchaseOrders": 40})
    async with s(app) as sess:
        orders = await sess.sample("purchase_orders", 40)
    pos = map_records("oracle_procurement", "PurchaseOrder", orders, stream="purchase_orders")
    assert len(pos) == 40 and pos[0]["number"] == "UK100000"
    assert pos[0]["lines"] and isinstance(pos[0]["lines"][0]["unitPricePence"], int)
    assert {p["status"] for p in pos} <= {"draft", "ordered", "received", "cancelled"}
