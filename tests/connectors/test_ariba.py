"""SAP Ariba connector against its sandbox over real HTTP: OAuth2 client credentials (Basic) plus the apiKey header
on every call (checked together by the gateway), $top/$skip paging, lastModifiedDate incremental, X-RateLimit
headers, 429/5xx storms, and the PurchaseOrder mapping."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.sandboxes import procurement as pr

from .ops_helpers import check_registered, control, map_records, read_all, sandbox, session, storm_starter

CONFIG = {"realm": pr.ARIBA_REALM}
SECRETS = {"client_id": pr.ARIBA_CLIENT_ID, "client_secret": pr.ARIBA_CLIENT_SECRET, "api_key": pr.ARIBA_API_KEY}


def s(app: Any, **kw: Any) -> Any:
    return session("ariba", app, kw.pop("config", CONFIG), kw.pop("secrets", SECRETS), **kw)


def test_manifest_validates_and_is_registered() -> None:
    m = check_registered("ariba")
    assert m.auth.type == "oauth2_client_credentials" and m.auth.client_auth == "basic"
    assert m.headers["apiKey"] == "{secrets.api_key}"
    orders = m.streams["orders"]
    assert orders.paginator.type == "odata" and orders.write is None and orders.incremental is not None


async def test_full_read_in_pages_with_token_and_api_key() -> None:
    app = sandbox("ariba", records={"orders": 230})
    seen: list[httpx.Request] = []
    inner = httpx.ASGITransport(app=app)

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await inner.handle_async_request(request)

    async with s(app, transport=Spy()) as sess:
        orders, pages = await read_all(sess, "orders")
    assert len({r.external_id for r in orders}) == 230 and len(pages) == 3
    assert orders[0].external_id == "PO40000" and orders[-1].updated_at is not None
    api = [r for r in seen if r.url.path == pr.ARIBA_ORDERS]
    assert [r.url.params["$skip"] for r in api] == ["0", "100", "200"]
    assert all(r.headers["apikey"] == pr.ARIBA_API_KEY and r.headers["authorization"].startswith("Bearer ")
               and r.url.params["realm"] == pr.ARIBA_REALM for r in api)
    token = [r for r in seen if r.url.path == "/v2/oauth/token"]
    assert len(token) == 1 and token[0].headers["authorization"].startswith("Basic ")
    assert app.state.sandbox.token_grants == {"client_credentials": 1} and sess.stats.failed_calls == 0


async def test_missing_or_mismatched_api_key_and_expired_token() -> None:
    app = sandbox("ariba", records={"orders": 120})
    async with s(app, secrets={**SECRETS, "api_key": ""}) as sess:
        missing = await sess.test_connection()
    async with s(app, secrets={**SECRETS, "api_key": "another-app"}) as sess:
        mismatched = await sess.test_connection()
    assert not missing.ok and "apiKey header is missing" in missing.reason
    assert not mismatched.ok and "does not match" in mismatched.reason

    async def expire(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/expire-tokens")

    async with s(app) as sess:
        orders, _ = await read_all(sess, "orders", between=expire)
    assert len(orders) == 120 and sess.stats.refreshes == 1
    async with s(app, config={"realm": "someone-else"}) as sess:
        wrong = await sess.test_connection()
    assert not wrong.ok and "Unknown realm" in wrong.reason


async def test_incremental_read_returns_only_changes() -> None:
    app = sandbox("ariba", records={"orders": 140})
    data = app.state.sandbox.datasets["orders"]
    async with s(app) as sess:
        orders, pages = await read_all(sess, "orders")
        for po in ("PO40005", "PO40120"):
            rec = dict(data.get(po) or {})
            at = data.put(po, rec)
            rec.update(status="Received", lastModifiedDate=pr._iso(at))
        again, _ = await read_all(sess, "orders", pages[-1].checkpoint)
    assert len(orders) == 140 and [r.external_id for r in again] == ["PO40005", "PO40120"]
    assert again[0].data["status"] == "Received"


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storms_mid_read_end_with_every_record(storm: str) -> None:
    app = sandbox("ariba", records={"orders": 330})
    async with s(app) as sess:
        orders, _ = await read_all(sess, "orders", between=storm_starter(app, storm))
    assert len({r.external_id for r in orders}) == len(orders) == 330
    assert sess.stats.failed_calls == 0
    assert (sess.stats.throttled if storm == "storm_429" else sess.stats.server_errors) == 6


async def test_rate_limit_headers_are_sent() -> None:
    app = sandbox("ariba", records={"orders": 3})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ariba.sandbox") as c:
        tok = (await c.post("/v2/oauth/token", data={"grant_type": "client_credentials"},
                            auth=(pr.ARIBA_CLIENT_ID, pr.ARIBA_CLIENT_SECRET))).json()
        resp = await c.get(pr.ARIBA_ORDERS, params={"realm": pr.ARIBA_REALM, "$top": "2"},
                           headers={"Authorization": f"Bearer {tok['access_token']}", "apiKey": pr.ARIBA_API_KEY})
    assert tok["expires_in"] == 1440 and resp.status_code == 200
    assert resp.headers["X-RateLimit-Limit-minute"] == "60" and "X-RateLimit-Remaining-day" in resp.headers
    assert resp.json()["totalElements"] == 3 and len(resp.json()["content"]) == 2


async def test_purchase_order_mapping_compiles_and_maps_sandbox_records() -> None:
    app = sandbox("ariba", records={"orders": 40})
    async with s(app) as sess:
        orders = await sess.sample("orders", 40)
    pos = map_records("ariba", "PurchaseOrder", orders, stream="orders")
    assert len(pos) == 40 and pos[0]["number"] == "PO40000" and pos[0]["supplierRef"].startswith("AN")
    assert pos[0]["lines"] and isinstance(pos[0]["lines"][0]["unitPricePence"], int)
    assert {p["status"] for p in pos} <= {"ordered", "received", "cancelled"}
