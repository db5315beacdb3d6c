"""Error handling endpoints: the errors inbox, retry and resolve."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Header, Query

from app.api.convert import error_out, run_out
from app.api.deps import ApiUser, context
from app.api.examples import ok
from app.api.integrations import COMMON, IntegrationId, Limit, Offset
from app.api.problems import problem_responses
from app.api.roles import owned_integration
from app.api.runs import start_run
from app.api.schemas import IntegrationErrorOut, PageOut, ResolveRequest, RetryOut, RetryRequest
from app.context import AppContext
from storage import integrations as svc
from storage.models import Integration, RunTrigger

router = APIRouter(tags=["errors"])


@router.get("/integrations/{integrationId}/errors", operation_id="listErrors", summary="The errors inbox",
            response_model=PageOut[IntegrationErrorOut], responses={**COMMON, **ok("listErrors")})
def list_errors(integrationId: IntegrationId,
                access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("listErrors"))],
                ctx: Annotated[AppContext, Depends(context)], offset: Offset = 0, limit: Limit = 50,
                error_type: Annotated[str | None, Query(alias="errorType", max_length=40,
                                                        description="validation, vendor, auth, conflict...")] = None,
                state: Annotated[Literal["open", "resolved", "all"], Query()] = "open",
                ) -> PageOut[IntegrationErrorOut]:
    """Errors newest first, filtered by type and state (open, resolved, all)."""
    user, integration = access
    with ctx.db.session() as session:
        page = svc.list_errors(session, integration_id=integration.id, error_type=error_type, state=state,
                               offset=offset, limit=limit)
        svc.record_view(session, actor=user.email, integration_id=integration.id, what="errors")
    return PageOut[IntegrationErrorOut](items=[error_out(e) for e in page.items], total=page.total, offset=offset,
                                        limit=limit)


@router.post("/integrations/{integrationId}/retry-failed", operation_id="retryFailed", status_code=202,
             summary="Retry failed records", response_model=RetryOut,
             responses={**COMMON, **problem_responses(400, 409, 413), **ok("retryFailed", 202)})
async def retry_failed(integrationId: IntegrationId,
                       access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("retryFailed"))],
                       ctx: Annotated[AppContext, Depends(context)],
                       body: Annotated[RetryRequest | None, Body()] = None,
                       _key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
                       ) -> RetryOut:
    """Queue a retry run for the given errors (default: every open error still under its retry limit)."""
    user, integration = access
    with ctx.db.session() as session:
        errors = svc.errors_to_retry(session, integration_id=integration.id,
                                     error_ids=body.error_ids if body else None,
                                     error_type=body.error_type if body else None)
        ids = [e.id for e in errors]
        params = {"error_ids": ids, "record_ids": sorted({e.record_id for e in errors if e.record_id}),
                  "streams": sorted({e.stream for e in errors if e.stream})}
    if not ids:
        return RetryOut(run=None, errors=0)
    run = await start_run(ctx, integration_id=integration.id, trigger=RunTrigger.RETRY.value, params=params,
                          actor=user.email)
    with ctx.db.session() as session:
        rows = svc.errors_to_retry(session, integration_id=integration.id, error_ids=ids)
        svc.mark_retried(session, actor=user.email, integration_id=integration.id, errors=rows, run_id=run.id)
    return RetryOut(run=run_out(run), errors=len(ids))


@router.put("/integrations/{integrationId}/resolve-error", operation_id="resolveError",
            summary="Resolve, ignore or mark an error for retry", response_model=IntegrationErrorOut,
            responses={**COMMON, **problem_responses(400, 413), **ok("resolveError")})
def resolve_error(integrationId: IntegrationId, body: ResolveRequest,
                  access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("resolveError"))],
                  ctx: Annotated[AppContext, Depends(context)]) -> IntegrationErrorOut:
    """Close the error with an action and a note; the audit log records who did it."""
    user, integration = access
    with ctx.db.session() as session:
        row = svc.resolve_error(session, actor=user.email, integration_id=integration.id, error_id=body.error_id,
                                action=body.resolution_action, note=body.note)
    return error_out(row)
