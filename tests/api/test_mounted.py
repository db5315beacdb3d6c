"""The API as mounted in the web app: /api/v1/openapi.json, /api/v1/docs and problem answers."""

from __future__ import annotations

from typing import Any

import httpx


async def test_mounted_api(ctx: Any, redis_url: str) -> None:
    from nicegui import app as nicegui_app

    import app.web

    app.web.configure()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=nicegui_app), base_url="http://t") as c:
        spec = await c.get("/api/v1/openapi.json")
        assert spec.status_code == 200
        doc = spec.json()
        assert doc["servers"] == [{"url": "/api/v1"}]
        operations = [op for path in doc["paths"].values() for op in path.values()]
        assert len(operations) == 22
        for op in operations:  # an example for every operation
            assert any("example" in c for r in op["responses"].values() for c in r.get("content", {}).values()), op
        docs = await c.get("/api/v1/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        denied = await c.get("/api/v1/integrations/available")
        assert denied.status_code == 401 and denied.headers["content-type"] == "application/problem+json"
