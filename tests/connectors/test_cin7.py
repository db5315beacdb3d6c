"""Cin7 Core connector against its sandbox over real HTTP: header credentials, page/limit paging,
ModifiedSince/UpdatedSince incremental, purchase orders created once through retries, product updates,
429/5xx storms, and the StockItem/PurchaseOrder mappings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.sandboxes import cin7
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

CONFIG = {"account_id": cin7.ACCOUNT_ID}
SECRETS = {"application_key": cin7.APPLICATION_KEY}


def s(app: Any, **kw: Any) -> Any:
    return session("cin7", app, kw.pop("config", CONFIG), kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("cin7")
    assert m.auth.type == "api_key" and m.headers["api-auth-accountid"] == "{config.account_id}"
    assert {"products", "stock", "suppliers", "locations", "purchase_orders"} <= set(m.streams)


async def test_full_read_of_every_stream_across_pages() -> None:
    app = sandbox("cin7", records={"products": 230, "purchase_orders": 150, "suppliers": 30})
    async with s(app) as sess:
        products, pages = await read_all(sess, "products")
        stock, _ = await read_all(sess, "stock")
        orders, _ = await read_all(sess, "purchase_orders")
        suppliers, _ = await read_all(sess, "suppliers")
        locations, _ = await read_all(sess, "locations")
    assert len({r.external_id for r in products}) == 230 and len(pages) == 3
    assert len({r.external_id for r in stock}) == 230
    assert stock[0].external_id == f"{stock[0].data['ID']}|{stock[0].data['Location']}"
    assert len({r.external_id for r in orders}) == 150 and len(suppliers) == 30
    assert {loc.data["Name"] for loc in locations} == set(cin7.STORE_ROOMS)
    assert products[0].data["Name"].startswith("Nitrile gloves")
    assert sess.stats.failed_calls == 0


async def test_wrong_key_is_refused_with_cin7_message() -> None:
    app = sandbox("cin7", records=5)
    async with s(app, secrets={"application_key": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and result.reason == "Cin7 Core answered with an error: Incorrect credentials!"


async def test_incremental_reads_return_only_changes() -> None:
    app = sandbox("cin7", records={"products": 150, "purchase_orders": 120, "suppliers": 12})
    async with s(app) as sess:
        products, pages = await read_all(sess, "products")
        cp = pages[-1].checkpoint
        orders, po_pages = await read_all(sess, "purchase_orders")
        po_cp = po_pages[-1].checkpoint
        target = cin7.product_id(42, 17)
        out = await sess.write("products", [OutboundRecord("p17", {"ID": target, "MinimumBeforeReorder": 40.0},
                                                           target)])
        assert out[0].ok and out[0].external_id == target
        changed, _ = await read_all(sess, "products", cp)
        # ModifiedSince is "at or after": the newest record of the last read comes again (an upsert)
        assert [r.external_id for r in changed] == [products[-1].external_id, target]
        assert changed[-1].data["MinimumBeforeReorder"] == 40.0
        created = await sess.write("purchase_orders", [OutboundRecord(
            "po-key-1", {"SupplierID": cin7.supplier_id(42, 2), "Location": cin7.STORE_ROOMS[1], "Total": 96.5})])
        assert created[0].ok
        new, _ = await read_all(sess, "purchase_orders", po_cp)
        assert [r.external_id for r in new] == [orders[-1].external_id, created[0].external_id]


async def test_purchase_order_created_once_through_failures_and_resends() -> None:
    app = sandbox("cin7", records={"products": 10, "purchase_orders": 20, "suppliers": 5})
    state = app.state.sandbox
    order = OutboundRecord("po-7f3a", {"SupplierID": cin7.supplier_id(42, 1), "Location": cin7.STORE_ROOMS[0]})
    async with s(app) as sess:
        await control(app, "/_sandbox/faults", {"storm_5xx": 2, "storm_429": 1, "retry_after": "0"})
        first = await sess.write("purchase_orders", [order])
        second = await sess.write("purchase_orders", [order])  # the engine re-sending after a crash
        bad = await sess.write("purchase_orders", [OutboundRecord("po-bad", {"SupplierID": "nope"})])
    assert first[0].ok and second[0].ok and first[0].external_id == second[0].external_id
    overlay = state.datasets["purchase_orders"].overlay
    assert len(overlay) == 1 and next(iter(overlay.values()))[1]["OrderNumber"] == "po-7f3a"
    assert not bad[0].ok and bad[0].error_message == "Supplier not found. SupplierID or Supplier name is required."
    assert sess.stats.failed_calls == 1  # only the refused supplier


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("cin7", records={"products": 320})
    async with s(app) as sess:
        products, _ = await read_all(sess, "products", between=storm_starter(app, storm))
    assert len({r.external_id for r in products}) == 320
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_mappings_compile_and_map_sandbox_records() -> None:
    app = sandbox("cin7", records={"products": 30, "purchase_orders": 30, "suppliers": 8})
    async with s(app) as sess:
        stock = await sess.sample("stock", 30)
        orders = await sess.sample("purchase_orders", 30)
    items = map_records("cin7", "StockItem", stock, stream="stock")
    assert items[0]["sku"] == "PPE-GLV-001" and items[0]["site"] == cin7.STORE_ROOMS[0]
    assert isinstance(items[0]["quantityOnHand"], int | float)
    pos = map_records("cin7", "PurchaseOrder", orders, stream="purchase_orders")
    assert pos[0]["number"] == "PO-00001" and pos[0]["status"] in {"draft", "ordered", "received", "cancelled"}
    assert isinstance(pos[0]["totalPence"], int)


async def test_purchase_order_not_duplicated_when_cin7_acts_but_the_reply_is_lost() -> None:
    app = sandbox("cin7", records={"products": 5, "purchase_orders": 5, "suppliers": 5})
    flaky = LoseReplies(app, "POST", "/purchase", times=2)
    order = OutboundRecord("po-lost-reply", {"SupplierID": cin7.supplier_id(42, 3)})
    async with s(app, transport=httpx.ASGITransport(app=flaky)) as sess:
        out = await sess.write("purchase_orders", [order])
    assert out[0].ok and flaky.left == 1  # the first reply was lost; the look-up found the order
    assert len(app.state.sandbox.datasets["purchase_orders"].overlay) == 1
