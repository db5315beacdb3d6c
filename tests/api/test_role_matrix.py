"""Every operation with every role's token and with none: the role matrix (app.api.roles.ROLE_MATRIX) holds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_helpers import auth

from app.api.roles import ROLE_MATRIX
from storage import integrations as svc
from storage.models import IntegrationError

DESIGN = {"connector": "xero", "stream": "invoices", "careType": "Invoice",
          "mappings": [{"sourceField": "InvoiceNumber", "targetField": "number"}]}
BODIES: dict[str, Any] = {
    "configureIntegration": {"name": "X", "connectorId": "xero"},
    "updateIntegration": {"name": "Renamed"},
    "startSync": {"streams": ["invoices"]},
    "startManualSync": {"fullRefresh": True},
    "updateSyncSettings": {"batchSize": 50},
    "updateFieldMappings": {"design": DESIGN},
    "testMapping": {"design": DESIGN, "samples": [{"InvoiceNumber": "INV-1"}]},
    "createWebhook": {"url": "https://hooks.example.org/x", "events": ["run.failed"]},
    "updateWebhook": {"description": "changed"},
    "retryFailed": {},
    "resolveError": {"resolutionAction": "ignored"},
}
IDENTITIES = ("none", "manager", "manager2", "onboarding", "admin")


def _operations(api: Any) -> list[tuple[str, str, str, int]]:
    doc = api.openapi()
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            success = min(int(code) for code in op["responses"] if code.startswith("2"))
            out.append((op["operationId"], method.upper(), path, success))
    return out


def _fixture_ids(ctx: Any) -> dict[str, str]:
    with ctx.db.session() as s:
        integration = svc.configure_integration(s, box=ctx.box, actor="manager@carehub.test", name="Owned",
                                                connector_id="xero")
        hook, _ = svc.create_webhook(s, box=ctx.box, actor="manager@carehub.test", integration_id=integration.id,
                                     url="https://hooks.example.org/a")
        error = IntegrationError(integration_id=integration.id, error_type="validation", error_message="bad")
        s.add(error)
        s.flush()
        return {"integrationId": integration.id, "webhookId": hook.id, "errorId": error.id,
                "revision": str(integration.revision + 1)}  # the webhook bumped nothing; errors neither


def expected(operation: str, identity: str, success: int) -> int:
    """What the matrix says the answer must be."""
    if identity == "none":
        return 401
    role = "manager" if identity.startswith("manager") else identity
    rule = ROLE_MATRIX[operation]
    if role not in rule.roles:
        return 403
    if identity == "manager2" and rule.own:
        return 403
    return success


async def test_matrix_covers_every_operation(api: Any) -> None:
    assert {op for op, *_ in _operations(api)} == set(ROLE_MATRIX)


@pytest.mark.parametrize("identity", IDENTITIES)
async def test_role_matrix(api: Any, client: httpx.AsyncClient, tokens: dict[str, str], ctx: Any,
                           identity: str) -> None:
    results = []
    for operation, method, path, success in _operations(api):
        ids = _fixture_ids(ctx)
        url = path.replace("{integrationId}", ids["integrationId"]).replace("{webhookId}", ids["webhookId"])
        headers = auth(tokens[identity]) if identity != "none" else {}
        body = BODIES.get(operation)
        if operation == "resolveError":
            body = {**body, "errorId": ids["errorId"]}
        if operation == "updateFieldMappings":
            with ctx.db.session() as s:
                rev = svc.get_integration(s, integration_id=ids["integrationId"]).revision
            headers["If-Match"] = f'"integration-{ids["integrationId"]}-{rev}"'
        r = await client.request(method, url, headers=headers, json=body)
        want = expected(operation, identity, success)
        results.append((operation, r.status_code, want))
        assert r.status_code == want, (operation, identity, r.status_code, r.text[:300])
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json"
    assert len(results) == len(ROLE_MATRIX)
