"""The sandboxes' shared update opening (connectors/sandboxes/handlers.py) over real HTTP into a small app:
refused first, then the record (404) before the body (400) by path, or the body before the record by body."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.handlers import record_to_update

RECORDS = {"7": {"id": "7", "name": "Night shift"}}


def _error(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status)


def _denied(request: Request) -> Response | None:
    return None if request.headers.get("authorization") == "Bearer ok" else _error(401, "denied")


def _app() -> FastAPI:
    app = FastAPI()

    @app.put("/by-path/{key}")
    async def by_path(key: str, request: Request) -> Response:
        got = await record_to_update(request, denied=_denied, error=_error, find=lambda _: RECORDS.get(key),
                                     not_found=f"{key} not found", bad_json="not JSON", not_object="not an object")
        return got if isinstance(got, Response) else JSONResponse({"record": got[0], "body": got[1]})

    @app.put("/by-body")
    async def by_body(request: Request) -> Response:
        got = await record_to_update(
            request, denied=_denied, error=_error, body_first=True, not_found="ID names no record",
            bad_json="not JSON", find=lambda body: RECORDS.get(str(body.get("id"))) if isinstance(body, dict) else None)
        return got if isinstance(got, Response) else JSONResponse({"record": got[0], "body": got[1]})

    return app


async def _put(path: str, content: str, token: str = "ok") -> tuple[int, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://sb") as c:
        resp = await c.put(path, content=content, headers={"Authorization": f"Bearer {token}"})
        return resp.status_code, resp.json()


async def test_by_path_refuses_then_looks_up_then_reads_the_body() -> None:
    assert await _put("/by-path/missing", "{broken", token="bad") == (401, {"message": "denied"})
    assert await _put("/by-path/missing", "{broken") == (404, {"message": "missing not found"})
    assert await _put("/by-path/7", "{broken") == (400, {"message": "not JSON"})
    assert await _put("/by-path/7", "[1, 2]") == (400, {"message": "not an object"})
    assert await _put("/by-path/7", '{"name": "Late"}') == (200, {"record": RECORDS["7"], "body": {"name": "Late"}})


async def test_by_body_reads_the_body_before_the_look_up() -> None:
    assert await _put("/by-body", "{broken", token="bad") == (401, {"message": "denied"})
    assert await _put("/by-body", "{broken") == (400, {"message": "not JSON"})
    assert await _put("/by-body", '{"id": "9"}') == (404, {"message": "ID names no record"})
    assert await _put("/by-body", "[1]") == (404, {"message": "ID names no record"})
    assert await _put("/by-body", '{"id": "7", "name": "x"}') == (200, {"record": RECORDS["7"],
                                                                     "body": {"id": "7", "name": "x"}})
