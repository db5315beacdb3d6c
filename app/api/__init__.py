"""The REST API under /api/v1: a FastAPI sub-application with its own OpenAPI document and docs.

``api_app`` is mounted at /api/v1 by :mod:`app.web`; its OpenAPI document is /api/v1/openapi.json and the
interactive docs are /api/v1/docs. Every error is an RFC 9457 problem document.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Mount

from app.api import errors, health, integrations, mappings, webhooks
from app.api.middleware import ApiGuard
from app.api.problems import Problem, install_problem_handlers

DESCRIPTION = """CareHub's integration hub over REST: connect systems, map fields, sync, watch errors.

* Authenticate with `Authorization: Bearer <token>`; roles: manager (own integrations), onboarding (read and
  preview), admin (everything).
* Errors are `application/problem+json` (RFC 9457) with `errors[]` naming each field and reason.
* Send `Idempotency-Key` on POST to retry safely; send the `ETag` you read as `If-Match` on PUT (required on
  field mappings) so two editors never overwrite each other.
* Secrets (`credentials`, webhook `secret`) are write-only: responses say `credentialsSet` / `secretSet`.
* Lists are paged with `offset` and `limit`; rate limits answer 429 with `Retry-After`.
"""

api_router = APIRouter()
for module in (health, integrations, mappings, webhooks, errors):
    api_router.include_router(module.router)


def create_api(redis_url: str | None = None) -> FastAPI:
    """Build the API application (tests may build their own with a given Redis URL)."""
    api = FastAPI(title="CareHub Integration Hub API", version="1.0.0", description=DESCRIPTION,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    api.include_router(api_router)
    install_problem_handlers(api)
    api.add_middleware(ApiGuard, redis_url=redis_url)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(title=api.title, version=api.version, description=api.description,
                                 routes=api.routes, servers=[{"url": "/api/v1"}])
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}")
            schema["components"]["schemas"].update(
                Problem.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}))
            schema["components"]["schemas"]["Problem"].pop("$defs", None)
            _add_links(schema)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


def _add_links(schema: dict[str, Any]) -> None:
    """OpenAPI links, so clients (and stateful testers) can follow a created integration or webhook."""
    operations = {op["operationId"]: (path, op) for path, ops in schema["paths"].items() for op in ops.values()}
    configure = operations["configureIntegration"][1]["responses"]["201"]
    configure["links"] = {
        op_id: {"operationId": op_id, "parameters": {"integrationId": "$response.body#/id"}}
        for op_id, (path, _op) in operations.items() if path.count("{") == 1 and "{integrationId}" in path}
    created = operations["createWebhook"][1]["responses"]["201"]
    created["links"] = {op_id: {"operationId": op_id, "parameters": {
        "integrationId": "$response.body#/integrationId", "webhookId": "$response.body#/id"}}
        for op_id in ("updateWebhook", "deleteWebhook")}


api_app = create_api()


def api_mount(app: FastAPI | None = None, path: str = "/api/v1") -> Mount:
    """The API mounted at ``path``; unlike a plain Mount it also routes paths holding encoded newlines, so
    even those get problem documents from the API rather than the web app's HTML 404 page."""
    mount = Mount(path, app=app or api_app)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount
