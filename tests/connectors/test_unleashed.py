"""Unleashed connector against its sandbox over real HTTP: every request signed over its query string,
page numbers in the path, modifiedSince incremental on Microsoft JSON dates, 429/5xx storms, and the
StockItem/PurchaseOrder mappings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.sandboxes import unleashed
from connectors.sandboxes.unleashed import ms_json

from .ops_helpers import check_registered, map_records, read_all, sandbox, session, storm_starter

SECRETS = {"api_id": unleashed.API_ID, "api_key": unleashed.API_KEY}


def s(app: Any, **kw: Any) -> Any:
    return session("unleashed", app, {}, kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("unleashed")
    assert m.auth.type == "signed_request" and m.auth.signs == "query"
    assert all(st.write is None for st in m.streams.values())  # read-only, see the manifest note


def test_signature_known_answer() -> None:
    # echo -n 'pageSize=200&modifiedSince=2024-01-01T00:00:00' | openssl dgst -sha256 -hmac <key> -binary | base64
    query = "pageSize=200&modifiedSince=2024-01-01T00:00:00"
    assert unleashed.sign(query) == "1o6S9mmekAUT/16iXO6GdYQqeymZPkALdnCvJr2RvkY="
    assert unleashed.sign(query + "&x=1") != unleashed.sign(query)
    assert unleashed.sign("") == unleashed.sign(b"")


async def test_full_read_across_path_pages_is_signed_every_time() -> None:
    app = sandbox("unleashed", records={"products": 450, "purchase_orders": 210, "suppliers": 12})
    async with s(app) as sess:
        products, pages = await read_all(sess, "products")
        orders, _ = await read_all(sess, "purchase_orders")
        stock, _ = await read_all(sess, "stock_on_hand")
        warehouses, _ = await read_all(sess, "warehouses")
    assert len({r.external_id for r in products}) == 450 and len(pages) == 3  # 200 + 200 + 50
    assert pages[0].checkpoint["page"] == {"page": 2}
    assert len({r.external_id for r in orders}) == 210 and len({r.external_id for r in stock}) == 450
    assert len(warehouses) == len(unleashed.STORE_ROOMS)
    assert products[0].updated_at is not None and products[0].updated_at.year == 2024
    assert sess.stats.failed_calls == 0


async def test_bad_key_and_tampered_query_are_refused() -> None:
    app = sandbox("unleashed", records=5)
    async with s(app, secrets={**SECRETS, "api_key": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and result.reason == (
        "Unleashed answered with an error: Forbidden: the api-auth-signature does not match the query string")
    query = "pageSize=10"
    headers = {"api-auth-id": unleashed.API_ID, "api-auth-signature": unleashed.sign(query), "client-type": "t/t"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://u") as c:
        ok = await c.get(f"/Products/1?{query}", headers=headers)
        tampered = await c.get("/Products/1?pageSize=11", headers=headers)
    assert ok.status_code == 200 and ok.json()["Pagination"]["PageSize"] == 10
    assert tampered.status_code == 403


async def test_incremental_reads_return_only_changes() -> None:
    app = sandbox("unleashed", records={"products": 300, "purchase_orders": 20, "suppliers": 5})
    data = app.state.sandbox.datasets["products"]
    async with s(app) as sess:
        products, pages = await read_all(sess, "products")
        cp = pages[-1].checkpoint
        assert cp == {"since": products[-1].updated_at.isoformat() if products[-1].updated_at else None}
        changed = [unleashed.stable_uuid(42, "products", i) for i in (5, 250)]
        for guid in changed:  # changes made by staff in Unleashed
            rec = dict(data.get(guid) or {})
            at = data.put(guid, rec)
            rec["LastModifiedOn"] = ms_json(at)
        again, _ = await read_all(sess, "products", cp)
    ids = [r.external_id for r in again]
    # modifiedSince is "at or after" and sent at one-second resolution: the newest record of the last read
    # comes again (an upsert), then the two changes
    assert ids == [products[-1].external_id, *changed]


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("unleashed", records={"products": 700})
    async with s(app) as sess:
        products, _ = await read_all(sess, "products", between=storm_starter(app, storm))
    assert len({r.external_id for r in products}) == 700
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_mappings_compile_and_map_sandbox_records() -> None:
    app = sandbox("unleashed", records={"products": 40, "stock_on_hand": 40, "purchase_orders": 40, "suppliers": 6})
    async with s(app) as sess:
        stock = await sess.sample("stock_on_hand", 40)
        orders = await sess.sample("purchase_orders", 40)
    items = map_records("unleashed", "StockItem", stock, stream="stock_on_hand")
    assert items[0]["sku"] == "PPE-GLV-001" and isinstance(items[0]["costPence"], int)
    pos = map_records("unleashed", "PurchaseOrder", orders, stream="purchase_orders")
    assert pos[0]["number"] == "PO-00000001" and pos[0]["orderedAt"] == "2024-01-01"
    assert pos[0]["lines"] and isinstance(pos[0]["lines"][0]["unitPricePence"], int)
