"""Coupa connector against its sandbox over real HTTP: OAuth2 client credentials with scopes (one new
token after expiry), limit/offset paging capped at 50, updated_at[gt_or_eq] incremental, hyphenated JSON
keys, 429/5xx storms, and the PurchaseOrder mapping."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.sandboxes import coupa

from .ops_helpers import check_registered, control, map_records, read_all, sandbox, session, storm_starter

CONFIG = {"instance": "willowcourt"}
SECRETS = {"client_id": coupa.CLIENT_ID, "client_secret": coupa.CLIENT_SECRET}


def s(app: Any, **kw: Any) -> Any:
    return session("coupa", app, CONFIG, kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("coupa")
    assert m.auth.type == "oauth2_client_credentials" and "core.purchase_order.read" in m.auth.scopes
    assert all(st.paginator.type == "offset_limit" and st.paginator.page_size == 50 for st in m.streams.values())


async def test_full_read_in_pages_of_fifty_with_one_token() -> None:
    app = sandbox("coupa", records={"purchase_orders": 230, "suppliers": 60})
    async with s(app) as sess:
        orders, pages = await read_all(sess, "purchase_orders")
        suppliers, _ = await read_all(sess, "suppliers")
    assert len({r.external_id for r in orders}) == 230 and len(pages) == 5
    assert len(suppliers) == 60 and orders[0].data["po-number"] == "3001"
    assert orders[-1].updated_at is not None and app.state.sandbox.token_grants == {"client_credentials": 1}
    assert sess.stats.failed_calls == 0


async def test_expired_token_renewed_once_and_bad_client_explained() -> None:
    app = sandbox("coupa", records={"purchase_orders": 120, "suppliers": 5})

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-tokens")

    async with s(app) as sess:
        orders, _ = await read_all(sess, "purchase_orders", between=expire)
    assert len(orders) == 120 and sess.stats.refreshes == 1
    async with s(app, secrets={"client_id": "practice", "client_secret": "mode"}) as sess:
        assert (await sess.test_connection()).ok  # practice mode: any client, like the shared OAuth sandbox
    strict = sandbox("coupa", records={"purchase_orders": 5, "suppliers": 5}, require_valid_client=True)
    async with s(strict, secrets={**SECRETS, "client_secret": "wrong"}) as sess:
        result = await sess.test_connection()
    assert not result.ok and "invalid_client" in result.reason


async def test_incremental_read_returns_only_changes() -> None:
    app = sandbox("coupa", records={"purchase_orders": 140, "suppliers": 5})
    data = app.state.sandbox.datasets["purchase_orders"]
    async with s(app) as sess:
        orders, pages = await read_all(sess, "purchase_orders")
        cp = pages[-1].checkpoint
        for pid in ("3005", "3100"):  # received at the home and closed in Coupa
            rec = {**(data.get(pid) or {}), "status": "closed"}
            at = data.put(pid, rec)
            rec["updated-at"] = coupa._iso(at)
        again, _ = await read_all(sess, "purchase_orders", cp)
    # gt_or_eq at one-second resolution: the newest order of the last read comes again (an upsert)
    assert [r.external_id for r in again] == [orders[-1].external_id, "3005", "3100"]
    assert again[-1].data["status"] == "closed"


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("coupa", records={"purchase_orders": 330, "suppliers": 5})
    async with s(app) as sess:
        orders, _ = await read_all(sess, "purchase_orders", between=storm_starter(app, storm))
    assert len({r.external_id for r in orders}) == 330
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_purchase_order_mapping_compiles_and_maps_sandbox_records() -> None:
    app = sandbox("coupa", records={"purchase_orders": 40, "suppliers": 8})
    async with s(app) as sess:
        orders = await sess.sample("purchase_orders", 40)
    pos = map_records("coupa", "PurchaseOrder", orders, stream="purchase_orders")
    assert pos[0]["number"] == "3001" and pos[0]["site"] == coupa.CARE_HOMES[0]
    assert pos[0]["lines"] and isinstance(pos[0]["lines"][0]["unitPricePence"], int)
    assert {p["status"] for p in pos} <= {"draft", "ordered", "received", "cancelled"}
