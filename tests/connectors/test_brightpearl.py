"""Brightpearl connector against its sandbox over real HTTP: private-app headers, search results as column
arrays turned into named records, 1-based firstResult paging, updatedOn ranges, 503 throttling with
brightpearl-next-throttle-period, 5xx storms, and the StockItem/PurchaseOrder mappings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.errors import RateLimited
from connectors.sandboxes import brightpearl

from .ops_helpers import (
    check_registered,
    control,
    fast_rules,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

CONFIG = {"datacentre": "euw1", "account_code": brightpearl.ACCOUNT, "app_ref": brightpearl.APP_REF}
SECRETS = {"account_token": brightpearl.ACCOUNT_TOKEN}


def s(app: Any, **kw: Any) -> Any:
    return session("brightpearl", app, kw.pop("config", CONFIG), kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("brightpearl")
    assert m.errors.throttle_statuses == [503] and m.rate_limits.per_minute == 200
    assert m.environments["production"].base_url == "https://{config.datacentre}.brightpearlconnect.com"


async def test_full_read_turns_column_arrays_into_records_across_pages() -> None:
    app = sandbox("brightpearl", records={"products": 1180, "purchase_orders": 520, "suppliers": 30})
    async with s(app) as sess:
        products, pages = await read_all(sess, "products")
        orders, _ = await read_all(sess, "purchase_orders")
        suppliers, _ = await read_all(sess, "suppliers")
    assert len({r.external_id for r in products}) == 1180 and len(pages) == 3  # 500 + 500 + 180
    assert pages[0].checkpoint["page"] == {"first": 501}
    first = products[0].data
    assert first["productId"] == 1001 and first["SKU"] == "PPE-GLV-001" and first["stockTracked"] is True
    assert len(orders) == 520 and orders[0].data["orderTypeId"] == 2 and len(suppliers) == 30
    assert sess.stats.failed_calls == 0


async def test_bad_token_is_refused_and_every_reply_counts_down() -> None:
    app = sandbox("brightpearl", records=5)
    async with s(app, secrets={"account_token": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "rejected the credentials: Not authenticated: the app reference" in result.reason
    headers = {"brightpearl-app-ref": brightpearl.APP_REF, "brightpearl-account-token": brightpearl.ACCOUNT_TOKEN}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        one = await c.get(f"/public-api/{brightpearl.ACCOUNT}/contact-service/contact-search", headers=headers)
        two = await c.get(f"/public-api/{brightpearl.ACCOUNT}/contact-service/contact-search", headers=headers)
    assert int(one.headers["brightpearl-requests-remaining"]) == int(two.headers["brightpearl-requests-remaining"]) + 1


async def test_real_minute_limit_answers_503_and_the_wait_comes_from_brightpearl() -> None:
    app = sandbox("brightpearl", records={"products": 40, "suppliers": 5}, rate_limit_per_minute=2,
                  faults={"retry_after": "30"})  # brightpearl-next-throttle-period: 30000 ms
    m = check_registered("brightpearl")
    async with s(app, error_rules=fast_rules(m, deadline_seconds=5)) as sess:
        await read_all(sess, "suppliers")
        await read_all(sess, "suppliers")
        with pytest.raises(RateLimited) as caught:
            await read_all(sess, "suppliers")  # the third call this minute: Brightpearl says wait 30 s
    assert caught.value.retry_after == 30.0 and sess.stats.throttled == 1
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        reply = await c.get(f"/public-api/{brightpearl.ACCOUNT}/product-service/product-search")
    assert reply.status_code == 503 and reply.headers["brightpearl-next-throttle-period"] == "30000"
    assert "retry-after" not in reply.headers
    await control(app, "/_sandbox/faults", {"retry_after": None})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        reply = await c.get(f"/public-api/{brightpearl.ACCOUNT}/product-service/product-search")
    assert 0 < int(reply.headers["brightpearl-next-throttle-period"]) <= 60_000  # until the minute resets


async def test_throttle_period_header_sets_the_wait() -> None:
    app = sandbox("brightpearl", records={"products": 1200, "suppliers": 5})
    async with s(app) as sess:
        products, _ = await read_all(sess, "products",
                                     between=storm_starter(app, "storm_429", size=2, retry_after="0.2"))
    assert len(products) == 1200 and sess.stats.throttled == 2
    assert sess.stats.slept_seconds == pytest.approx(0.4)  # 2 x 200 ms from the header, not the 60 s default


async def test_incremental_reads_return_only_changes() -> None:
    app = sandbox("brightpearl", records={"products": 700, "suppliers": 5})
    data = app.state.sandbox.datasets["products"]
    async with s(app) as sess:
        products, pages = await read_all(sess, "products")
        cp = pages[-1].checkpoint
        for pid in ("1003", "1650"):  # edited in Brightpearl after the read
            rec = dict(data.get(pid) or {})
            at = data.put(pid, rec)
            rec["updatedOn"] = brightpearl._iso(at)
        again, _ = await read_all(sess, "products", cp)
    # updatedOn "from/" is inclusive: the newest product of the last read comes again, then the edits
    assert [r.external_id for r in again] == [products[-1].external_id, "1003", "1650"]


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_throttle_and_5xx_storms_end_with_every_record(storm: str) -> None:
    app = sandbox("brightpearl", records={"products": 1600, "suppliers": 5})
    async with s(app) as sess:
        products, _ = await read_all(sess, "products", between=storm_starter(app, storm))
    assert len({r.external_id for r in products}) == 1600
    assert sess.stats.failed_calls == 0
    # the sandbox's throttle reply is Brightpearl's: 503, no Retry-After
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_mappings_compile_and_map_sandbox_records() -> None:
    app = sandbox("brightpearl", records={"products": 30, "purchase_orders": 30, "suppliers": 6})
    await control(app, "/_sandbox/faults", {})
    async with s(app) as sess:
        products = await sess.sample("products", 30)
        orders = await sess.sample("purchase_orders", 30)
    items = map_records("brightpearl", "StockItem", products, stream="products")
    assert items[0] == {"externalRefs": {"brightpearl": "1001"}, "sku": "PPE-GLV-001",
                        "name": "Nitrile gloves, powder free (box of 100)"}
    pos = map_records("brightpearl", "PurchaseOrder", orders, stream="purchase_orders")
    assert pos[0]["number"] == "5001" and pos[0]["status"] in {"draft", "ordered", "received", "cancelled"}
