"""The API end to end over ASGI: configure, secrets write-only, problems, ETags, idempotency, rate limit."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from api_helpers import CANARY, auth

DESIGN = {"connector": "xero", "stream": "invoices", "careType": "Invoice",
          "mappings": [{"sourceField": "InvoiceNumber", "targetField": "number"}]}


async def _configure(client: httpx.AsyncClient, token: str, **extra: Any) -> dict[str, Any]:
    body = {"name": "Xero", "connectorId": "xero", "credentials": {"clientSecret": CANARY},
            "connectionDetails": {"tenantId": "t-1", "apiToken": CANARY}, **extra}
    r = await client.post("/integrations/configure", json=body, headers=auth(token))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_configure_never_returns_secrets(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    created = await _configure(client, tokens["manager"])
    assert created["credentialsSet"] is True
    assert created["connectionDetails"] == {"tenantId": "t-1"}
    assert CANARY not in str(created)
    r = await client.get(f"/integrations/{created['id']}/status", headers=auth(tokens["manager"]))
    assert r.status_code == 200 and CANARY not in r.text


async def test_problem_details(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    r = await client.post("/integrations/configure", json={"name": ""}, headers=auth(tokens["admin"]))
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(doc)
    assert {e["field"] for e in doc["errors"]} >= {"name", "connectorId"}
    r = await client.get("/nowhere", headers=auth(tokens["admin"]))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await client.patch("/integrations/configure", headers=auth(tokens["admin"]))
    assert r.status_code == 405 and r.json()["status"] == 405 and "allow" in r.headers
    r = await client.post("/integrations/configure", content=b"{not json", headers={
        **auth(tokens["admin"]), "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"].endswith("validation-error")
    r = await client.get("/integrations/available")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


async def test_mapping_put_needs_if_match_and_detects_conflicts(client: httpx.AsyncClient,
                                                               tokens: dict[str, str]) -> None:
    iid = (await _configure(client, tokens["manager"]))["id"]
    h = auth(tokens["manager"])
    r = await client.get(f"/integrations/{iid}/field-mappings", headers=h)
    tag = r.headers["etag"]
    r = await client.put(f"/integrations/{iid}/field-mappings", json={"design": DESIGN}, headers=h)
    assert r.status_code == 428
    bad = dict(DESIGN, mappings=[{"sourceField": "X", "targetField": "noSuchField"}])
    r = await client.put(f"/integrations/{iid}/field-mappings", json={"design": bad}, headers={**h, "If-Match": tag})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "noSuchField"
    results = await asyncio.gather(*[
        client.put(f"/integrations/{iid}/field-mappings", json={"design": DESIGN, "comment": str(i)},
                   headers={**h, "If-Match": tag}) for i in range(2)])
    assert sorted(r.status_code for r in results) == [200, 412]
    ok = next(r for r in results if r.status_code == 200)
    assert ok.json()["designs"][0]["version"] == 1 and ok.headers["etag"] != tag


async def test_idempotency_key(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    h = {**auth(tokens["admin"]), "Idempotency-Key": "key-1"}
    body = {"name": "Once", "connectorId": "xero"}
    first = await client.post("/integrations/configure", json=body, headers=h)
    again = await client.post("/integrations/configure", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = await client.post("/integrations/configure", json={**body, "name": "Other"}, headers=h)
    assert other.status_code == 422 and other.headers["content-type"] == "application/problem+json"


async def test_rate_limit(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    from app.api.middleware import LIMITS

    old = LIMITS.requests_per_minute
    LIMITS.requests_per_minute = 5
    try:
        codes = [(await client.get("/integrations/available", headers=auth(tokens["onboarding"])))
                 for _ in range(7)]
    finally:
        LIMITS.requests_per_minute = old
    assert [r.status_code for r in codes[:5]] == [200] * 5
    assert codes[6].status_code == 429 and int(codes[6].headers["retry-after"]) >= 1


async def test_errors_inbox_retry_and_resolve(client: httpx.AsyncClient, tokens: dict[str, str], ctx: Any) -> None:
    from storage.models import IntegrationError, SyncRun

    iid = (await _configure(client, tokens["manager"]))["id"]
    with ctx.db.session() as s:
        s.add(IntegrationError(id="e" * 32, integration_id=iid, error_type="validation", error_message="bad VAT",
                               record_id="INV-1", stream="invoices"))
        s.add(IntegrationError(id="f" * 32, integration_id=iid, error_type="vendor", error_message="500"))
    h = auth(tokens["manager"])
    page = (await client.get(f"/integrations/{iid}/errors", params={"errorType": "validation"}, headers=h)).json()
    assert page["total"] == 1 and page["items"][0]["errorMessage"] == "bad VAT"
    r = await client.post(f"/integrations/{iid}/retry-failed", json={"errorIds": ["e" * 32]}, headers=h)
    assert r.status_code == 202 and r.json()["errors"] == 1
    with ctx.db.session() as s:
        run = s.get(SyncRun, r.json()["run"]["id"])
        assert run is not None and run.trigger == "retry"
        assert run.params["record_ids"] == ["INV-1"] and run.params["streams"] == ["invoices"]
    r = await client.put(f"/integrations/{iid}/resolve-error", json={"errorId": "f" * 32,
                                                                    "resolutionAction": "ignored"}, headers=h)
    assert r.status_code == 200 and r.json()["resolved"] is True
    resolved = (await client.get(f"/integrations/{iid}/errors", params={"state": "resolved"}, headers=h)).json()
    assert [e["id"] for e in resolved["items"]] == ["f" * 32]
    history = (await client.get(f"/integrations/{iid}/sync-history", headers=h)).json()
    assert history["total"] == 1 and history["items"][0]["trigger"] == "retry"


async def test_nul_characters_refused(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    h = auth(tokens["admin"])
    r = await client.post("/integrations/configure", headers=h,
                          json={"name": "X", "connectorId": "xero", "connectionDetails": {"a": "b\u0000c"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "connectionDetails.a"
    r = await client.get("/integrations/available", params={"category": "a\u0000"}, headers=h)
    assert r.status_code == 422
