"""Integration management and data synchronisation endpoints of the spec."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Response

from app.api.convert import etag, integration_out, parse_if_match, run_out, split_secrets, sync_config_out
from app.api.deps import ApiUser, context
from app.api.examples import ok
from app.api.problems import ProblemError, problem_responses
from app.api.roles import authorize, owned_integration
from app.api.runs import start_run
from app.api.schemas import (
    AvailableSystem,
    ExternalIntegration,
    IntegrationConfigure,
    IntegrationStatusOut,
    IntegrationUpdate,
    PageOut,
    SyncConfigurationIn,
    SyncConfigurationOut,
    SyncRequest,
    SyncRunOut,
    SyncStatusOut,
)
from app.context import AppContext
from storage import integrations as svc
from storage.models import Integration, RunStatus, RunTrigger

router = APIRouter(tags=["integrations"])
IntegrationId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$",
                                    description="The integration's id", examples=["4f1c0d2e9a8b4c7d8e6f5a4b3c2d1e0f"])]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=200,
                                       description="The ETag you read; 412 if the resource changed since")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="How many items to skip")]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
COMMON = problem_responses(401, 403, 404, 422, 429)
ETAG_HEADER = {"ETag": {"description": "Send it back as If-Match when you change this resource",
                        "schema": {"type": "string"}}}
ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.WAITING.value, RunStatus.PAUSED.value)


@lru_cache(maxsize=1)
def _catalog() -> list[AvailableSystem]:
    try:
        from connectors.catalog import default_directory, load_catalog

        catalog = load_catalog(default_directory())
    except Exception:
        return []
    rows: list[dict[str, Any]] = catalog.as_rows()
    return [AvailableSystem.model_validate(row) for row in rows]


def _expected(if_match: str | None, integration: Integration) -> int | None:
    expected = parse_if_match(if_match, "integration", integration.id)
    if expected == -1:
        raise ProblemError(412, "If-Match does not name a revision of this integration; GET it and use its ETag.")
    return expected


def _full(ctx: AppContext, integration_id: str) -> ExternalIntegration:
    with ctx.db.session() as session:
        row = svc.get_integration(session, integration_id=integration_id)
        config = svc.get_sync_settings(session, integration_id=integration_id)
        designs = svc.current_designs(session, integration_id=integration_id)
        return integration_out(row, config, designs)


@router.get("/integrations/available", operation_id="listAvailableIntegrations",
            summary="Systems CareHub can connect to", response_model=PageOut[AvailableSystem],
            responses={**problem_responses(401, 403, 422, 429), **ok("listAvailableIntegrations")})
def list_available(_user: Annotated[ApiUser, Depends(authorize("listAvailableIntegrations"))], offset: Offset = 0,
                   limit: Limit = 50,
                   category: Annotated[str | None, Query(max_length=50, description="e.g. Financial")] = None,
                   ) -> PageOut[AvailableSystem]:
    """Every system of the product spec with its integration route and availability, paged."""
    rows = [r for r in _catalog() if category is None or r.category.lower() == category.lower()]
    return PageOut[AvailableSystem](items=rows[offset:offset + limit], total=len(rows), offset=offset, limit=limit)


@router.post("/integrations/configure", operation_id="configureIntegration", status_code=201,
             summary="Connect a system", response_model=ExternalIntegration,
             responses={**problem_responses(400, 401, 403, 409, 413, 422, 429),
                        **ok("configureIntegration", 201, ETAG_HEADER)})
def configure(body: IntegrationConfigure, response: Response,
              user: Annotated[ApiUser, Depends(authorize("configureIntegration"))],
              ctx: Annotated[AppContext, Depends(context)],
              _key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255,
                                                 description="Repeat-safe retries")] = None,
              ) -> ExternalIntegration:
    """Create an integration; secrets (``credentials`` and secret-looking connection details) are encrypted."""
    details, hidden = split_secrets(body.connection_details)
    credentials = {**hidden, **(body.credentials or {})}
    sync = body.sync_configuration.model_dump(exclude_none=True, mode="json") if body.sync_configuration else {}
    with ctx.db.session() as session:
        row = svc.configure_integration(
            session, box=ctx.box, actor=user.email, name=body.name, connector_id=body.connector_id,
            integration_type=body.integration_type, system_name=body.system_name,
            system_version=body.system_version, authentication_method=body.authentication_method,
            connection_details=details, credentials=credentials or None, operation_mode=body.operation_mode.value,
            data_filters=[f.model_dump(by_alias=True, mode="json") for f in body.data_filters],
            transformation_rules=[r.model_dump(by_alias=True, mode="json") for r in body.transformation_rules],
            error_handling=body.error_handling, sync_settings=sync, status=body.status)
        integration_id = row.id
    out = _full(ctx, integration_id)
    response.headers["ETag"] = etag("integration", out.id, out.revision)
    response.headers["Location"] = f"/api/v1/integrations/{out.id}/status"
    return out


@router.put("/integrations/{integrationId}", operation_id="updateIntegration", summary="Change an integration",
            response_model=ExternalIntegration,
            responses={**COMMON, **problem_responses(400, 412, 413), **ok("updateIntegration", 200, ETAG_HEADER)})
def update(integrationId: IntegrationId, body: IntegrationUpdate, response: Response,
           access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("updateIntegration"))],
           ctx: Annotated[AppContext, Depends(context)], if_match: IfMatch = None) -> ExternalIntegration:
    """Change settings; fields left out keep their value; ``credentials`` are merged into the stored ones."""
    user, integration = access
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"credentials"}, mode="json")
    changes = {k: v for k, v in changes.items() if v is not None}
    credentials = dict(body.credentials) if body.credentials else None
    if "connection_details" in changes:
        changes["connection_details"], hidden = split_secrets(changes["connection_details"])
        if hidden:
            credentials = {**hidden, **(credentials or {})}
    for key in ("data_filters", "transformation_rules"):
        if key in changes:
            changes[key] = [dict(_camel(item)) for item in changes[key]]
    with ctx.db.session() as session:
        svc.update_integration(session, box=ctx.box, actor=user.email, integration_id=integration.id,
                               expected_revision=_expected(if_match, integration), credentials=credentials,
                               **changes)
    out = _full(ctx, integration.id)
    response.headers["ETag"] = etag("integration", out.id, out.revision)
    return out


def _camel(item: dict[str, Any]) -> dict[str, Any]:
    from pydantic.alias_generators import to_camel

    return {to_camel(k): v for k, v in item.items()}


@router.delete("/integrations/{integrationId}", operation_id="deleteIntegration", status_code=204,
               summary="Remove an integration (soft delete)",
               responses={**COMMON, **problem_responses(412), 204: {"description": "Deleted"}})
def delete(integrationId: IntegrationId,
           access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("deleteIntegration"))],
           ctx: Annotated[AppContext, Depends(context)], if_match: IfMatch = None) -> Response:
    """Soft-delete: history and audit stay, the integration stops syncing and leaves every list."""
    user, integration = access
    with ctx.db.session() as session:
        svc.delete_integration(session, actor=user.email, integration_id=integration.id,
                               expected_revision=_expected(if_match, integration))
    return Response(status_code=204)


@router.get("/integrations/{integrationId}/status", operation_id="getIntegrationStatus",
            summary="Integration status", response_model=IntegrationStatusOut,
            responses={**COMMON, **ok("getIntegrationStatus", 200, ETAG_HEADER)})
def status(integrationId: IntegrationId, response: Response,
           access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("getIntegrationStatus"))],
           ctx: Annotated[AppContext, Depends(context)]) -> IntegrationStatusOut:
    """Status, last and next sync, staleness, open errors and the run in progress."""
    _user, integration = access
    with ctx.db.session() as session:
        row = svc.get_integration(session, integration_id=integration.id)
        last = svc.latest_run(session, integration_id=row.id)
        current = last if last is not None and last.status in ACTIVE else None
        out = IntegrationStatusOut(id=row.id, name=row.name, status=row.status, last_sync=row.last_sync,
                                   last_success=row.last_success, next_sync=row.next_sync, stale=svc.is_stale(row),
                                   open_errors=svc.count_open_errors(session, integration_id=row.id),
                                   current_run=run_out(current))
    response.headers["ETag"] = etag("integration", row.id, row.revision)
    return out


async def _sync(ctx: AppContext, user: ApiUser, integration: Integration, body: SyncRequest | None,
                trigger: str) -> SyncRunOut:
    params: dict[str, Any] = {"fullRefresh": bool(body and body.full_refresh)}
    if body and body.streams:
        params["streams"] = list(body.streams)
    if body and body.reason:
        params["reason"] = body.reason
    run = await start_run(ctx, integration_id=integration.id, trigger=trigger, params=params, actor=user.email)
    out = run_out(run)
    assert out is not None
    return out


@router.post("/integrations/{integrationId}/sync", operation_id="startSync", status_code=202,
             summary="Start a sync now (incremental by default)", response_model=SyncRunOut,
             responses={**COMMON, **problem_responses(400, 409, 413), **ok("startSync", 202)})
async def sync(integrationId: IntegrationId,
               access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("startSync"))],
               ctx: Annotated[AppContext, Depends(context)],
               body: Annotated[SyncRequest | None, Body()] = None,
               _key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None) -> SyncRunOut:
    """Queue a scheduled-style run of the configured streams; the answer is the queued run."""
    return await _sync(ctx, access[0], access[1], body, RunTrigger.SCHEDULED.value)


@router.get("/integrations/{integrationId}/sync-status", operation_id="getSyncStatus", summary="Sync status",
            response_model=SyncStatusOut, responses={**COMMON, **ok("getSyncStatus")})
def sync_status(integrationId: IntegrationId,
                access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("getSyncStatus"))],
                ctx: Annotated[AppContext, Depends(context)]) -> SyncStatusOut:
    """The run in progress (if any), the last run, and when the next one is due."""
    integration = access[1]
    with ctx.db.session() as session:
        last = svc.latest_run(session, integration_id=integration.id)
    current = last if last is not None and last.status in ACTIVE else None
    return SyncStatusOut(integration_id=integration.id, state=current.status if current else "idle",
                         current_run=run_out(current), last_run=run_out(last), last_sync=integration.last_sync,
                         last_success=integration.last_success, next_sync=integration.next_sync)


@router.put("/integrations/{integrationId}/sync-settings", operation_id="updateSyncSettings",
            summary="Change sync settings", response_model=SyncConfigurationOut,
            responses={**COMMON, **problem_responses(400, 412, 413), **ok("updateSyncSettings", 200, ETAG_HEADER)})
def sync_settings(integrationId: IntegrationId, body: SyncConfigurationIn, response: Response,
                  access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("updateSyncSettings"))],
                  ctx: Annotated[AppContext, Depends(context)], if_match: IfMatch = None) -> SyncConfigurationOut:
    """Direction, frequency, batch size, retry policy, conflict strategy, thresholds, streams."""
    user, integration = access
    values = body.model_dump(exclude_unset=True, mode="json")
    values = {k: v for k, v in values.items() if v is not None}
    with ctx.db.session() as session:
        config = svc.update_sync_settings(session, actor=user.email, integration_id=integration.id,
                                          expected_revision=_expected(if_match, integration), **values)
        revision = svc.get_integration(session, integration_id=integration.id).revision
    out = sync_config_out(config)
    assert out is not None
    response.headers["ETag"] = etag("integration", integration.id, revision)
    return out


@router.get("/integrations/{integrationId}/sync-history", operation_id="getSyncHistory",
            summary="Past sync runs, newest first", response_model=PageOut[SyncRunOut],
            responses={**COMMON, **ok("getSyncHistory")})
def sync_history(integrationId: IntegrationId,
                 access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("getSyncHistory"))],
                 ctx: Annotated[AppContext, Depends(context)], offset: Offset = 0, limit: Limit = 50,
                 run_status: Annotated[str | None, Query(alias="status", max_length=20)] = None,
                 ) -> PageOut[SyncRunOut]:
    """Runs with their trigger, status, counts and timing, paged."""
    with ctx.db.session() as session:
        page = svc.list_runs(session, integration_id=access[1].id, offset=offset, limit=limit, status=run_status)
    items = [r for r in (run_out(x) for x in page.items) if r is not None]
    return PageOut[SyncRunOut](items=items, total=page.total, offset=offset, limit=limit)


@router.post("/integrations/{integrationId}/manual-sync", operation_id="startManualSync", status_code=202,
             summary="Start a manual sync (optionally a full refresh)", response_model=SyncRunOut,
             responses={**COMMON, **problem_responses(400, 409, 413), **ok("startManualSync", 202)})
async def manual_sync(integrationId: IntegrationId,
                      access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("startManualSync"))],
                      ctx: Annotated[AppContext, Depends(context)],
                      body: Annotated[SyncRequest | None, Body()] = None,
                      _key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
                      ) -> SyncRunOut:
    """Queue a run requested by a person, recorded as manual in the history."""
    return await _sync(ctx, access[0], access[1], body, RunTrigger.MANUAL.value)
