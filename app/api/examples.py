"""Example responses of every operation, shown in the OpenAPI document and the interactive docs."""

from __future__ import annotations

from typing import Any

IID = "4f1c0d2e9a8b4c7d8e6f5a4b3c2d1e0f"
WID = "9a8b7c6d5e4f40312a1b2c3d4e5f6a7b"
NOW = "2026-11-28T06:30:00Z"

_RUN = {"id": "0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5", "integrationId": IID, "trigger": "manual", "status": "queued",
        "direction": "inbound", "params": {"fullRefresh": False}, "counts": {}, "error": "", "attempt": 0,
        "queuedAt": NOW, "startedAt": None, "finishedAt": None, "requestedBy": "manager@oakwood.example"}
_DONE = {**_RUN, "status": "succeeded", "startedAt": NOW, "finishedAt": "2026-11-28T06:31:12Z",
         "counts": {"read": 120, "created": 4, "updated": 9, "unchanged": 107, "failed": 0}}
_SYNC = {"syncDirection": "inbound", "syncFrequency": {"kind": "minutes", "every": 30}, "batchSize": 100,
         "retryPolicy": {"maxAttempts": 5, "initialDelaySeconds": 1, "maxDelaySeconds": 60},
         "conflictResolution": "primary_wins", "dataValidation": [], "transformationPipeline": [],
         "errorThreshold": 50, "notificationSettings": {}, "pauseOnEmptyRead": True, "maxChangeShare": 0.5,
         "streams": [{"stream": "invoices", "careType": "Invoice"}], "updatedAt": NOW}
_MAPPING = {"sourceField": "InvoiceNumber", "targetField": "number", "transformation": [], "validationRules": [],
            "required": True, "bidirectional": False}
_DESIGN = {"connector": "xero", "stream": "invoices", "careType": "Invoice", "mappings": [_MAPPING],
           "filters": [], "transformationRules": [], "version": 3, "keyField": "InvoiceID"}
_INTEGRATION = {
    "id": IID, "name": "Xero - Oakwood House", "connectorId": "xero", "integrationType": "accounting",
    "systemName": "Xero", "systemVersion": "2.0", "connectionDetails": {"environment": "sandbox"},
    "authenticationMethod": "oauth2", "credentialsSet": True, "syncConfiguration": _SYNC,
    "fieldMappings": [_MAPPING], "dataFilters": [], "transformationRules": [], "errorHandling": {},
    "status": "active", "operationMode": "hybrid_equal", "lastSync": NOW, "nextSync": "2026-11-28T07:00:00Z",
    "syncFrequency": {"kind": "minutes", "every": 30}, "revision": 4, "createdBy": "manager@oakwood.example",
    "createdAt": NOW, "updatedAt": NOW}
_WEBHOOK = {"id": WID, "integrationId": IID, "direction": "outbound", "url": "https://hooks.example.org/carehub",
            "events": ["run.finished", "run.failed"], "active": True, "disabledReason": "",
            "description": "Finance team alerts", "revision": 1, "createdAt": NOW, "secretSet": True,
            "receiverUrl": None, "signingSecret": None}
_ERROR = {"id": "e1d2c3b4a5f647382910abcdef012345", "integrationId": IID, "errorType": "validation",
          "errorCode": "invalid_vat_code", "errorMessage": "Invoice INV-0042 has no VAT code Xero accepts",
          "errorDetails": {"field": "lines.taxType"}, "recordId": "INV-0042", "timestamp": NOW, "resolved": False,
          "resolutionAction": None, "retryCount": 0, "maxRetries": 3, "runId": _RUN["id"], "stream": "invoices"}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {"items": [item], "total": 1, "offset": 0, "limit": 50}


EXAMPLES: dict[str, Any] = {
    "listAvailableIntegrations": _page({
        "id": "xero", "name": "Xero", "category": "Financial", "subcategory": "Accounting Software",
        "integrationMethod": "REST API", "availability": "available", "note": "OAuth2 with PKCE; webhooks signed",
        "connector": "xero"}),
    "configureIntegration": _INTEGRATION,
    "updateIntegration": _INTEGRATION,
    "getIntegrationStatus": {"id": IID, "name": "Xero - Oakwood House", "status": "active", "lastSync": NOW,
                             "lastSuccess": NOW, "nextSync": "2026-11-28T07:00:00Z", "stale": False,
                             "openErrors": 2, "currentRun": None},
    "startSync": {**_RUN, "trigger": "scheduled"},
    "startManualSync": _RUN,
    "getSyncStatus": {"integrationId": IID, "state": "running", "currentRun": {**_RUN, "status": "running"},
                      "lastRun": {**_RUN, "status": "running"}, "lastSync": NOW, "lastSuccess": NOW,
                      "nextSync": None},
    "updateSyncSettings": _SYNC,
    "getSyncHistory": _page(_DONE),
    "getFieldMappings": {"integrationId": IID, "revision": 4, "fieldMappings": [_MAPPING], "designs": [{
        "stream": "invoices", "careType": "Invoice", "version": 3, "comment": "map totals",
        "createdBy": "manager@oakwood.example", "createdAt": NOW, "design": _DESIGN}]},
    "updateFieldMappings": {"integrationId": IID, "revision": 5, "fieldMappings": [_MAPPING], "designs": [{
        "stream": "invoices", "careType": "Invoice", "version": 4, "comment": "map totals",
        "createdBy": "manager@oakwood.example", "createdAt": NOW, "design": {**_DESIGN, "version": 4}}]},
    "testMapping": {"mapped": 1, "withErrors": 0, "skipped": 0, "elapsedMs": 0.4, "rows": [{
        "key": "inv-1", "before": {"InvoiceID": "inv-1", "InvoiceNumber": "INV-0001"},
        "after": {"number": "INV-0001"}, "errors": [], "skippedReason": None}]},
    "getMappingTemplates": _page({"connector": "xero", "careType": "Invoice", "design": _DESIGN}),
    "createWebhook": {**_WEBHOOK, "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    "listWebhooks": _page(_WEBHOOK),
    "updateWebhook": {**_WEBHOOK, "revision": 2},
    "listErrors": _page(_ERROR),
    "retryFailed": {"run": {**_RUN, "trigger": "retry"}, "errors": 1},
    "resolveError": {**_ERROR, "resolved": True, "resolutionAction": "resolved"},
    "healthCheck": {"status": "ok", "database": {"ok": True}, "redis": {"ok": True, "workers": 1, "queueDepth": 0},
                    "integrations": [{"id": IID, "name": "Xero - Oakwood House", "status": "active",
                                      "lastSuccess": NOW, "stale": False}]},
}


def ok(operation: str, status: int = 200, headers: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The success ``responses`` entry of an operation with its example (and documented headers)."""
    entry: dict[str, Any] = {"content": {"application/json": {"example": EXAMPLES[operation]}}}
    if headers:
        entry["headers"] = headers
    return {status: entry}
