"""Mapping configuration endpoints: versioned field mappings (ETag/If-Match), preview, templates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.exc import IntegrityError

from app.api.convert import etag, parse_if_match, stored_design_out
from app.api.deps import ApiUser, context
from app.api.examples import ok
from app.api.integrations import COMMON, ETAG_HEADER, IfMatch, IntegrationId, Limit, Offset
from app.api.problems import ProblemError, problem_responses
from app.api.roles import owned_integration
from app.api.schemas import (
    FieldMappingsOut,
    FieldMappingsPut,
    MappingTemplateOut,
    PageOut,
    PreviewFieldError,
    PreviewRowOut,
    TestMappingOut,
    TestMappingRequest,
)
from app.context import AppContext
from engine.mapping import (
    FieldMapping,
    MappingDesign,
    MappingError,
    compile_design,
    load_mapping_template_file,
    preview,
)
from storage import integrations as svc
from storage.models import Integration

router = APIRouter(tags=["mappings"])
TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "mappings"


def _mappings_out(ctx: AppContext, integration_id: str) -> tuple[FieldMappingsOut, int]:
    with ctx.db.session() as session:
        row = svc.get_integration(session, integration_id=integration_id)
        designs = svc.current_designs(session, integration_id=integration_id)
        stored = [stored_design_out(d) for d in designs]
    flat: list[FieldMapping] = [m for d in stored for m in d.design.mappings]
    return FieldMappingsOut(integration_id=integration_id, revision=row.revision, designs=stored,
                            field_mappings=flat), row.revision


@router.get("/integrations/{integrationId}/field-mappings", operation_id="getFieldMappings",
            summary="Current field mappings", response_model=FieldMappingsOut,
            responses={**COMMON, **ok("getFieldMappings", 200, ETAG_HEADER)})
def get_mappings(integrationId: IntegrationId, response: Response,
                 access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("getFieldMappings"))],
                 ctx: Annotated[AppContext, Depends(context)]) -> FieldMappingsOut:
    """Every current design (one per stream and care type) and the flat list of field mappings.

    The ETag names the integration's revision: send it as If-Match on PUT."""
    out, revision = _mappings_out(ctx, access[1].id)
    response.headers["ETag"] = etag("integration", access[1].id, revision)
    return out


@router.put("/integrations/{integrationId}/field-mappings", operation_id="updateFieldMappings",
            summary="Save field mappings (new version)", response_model=FieldMappingsOut,
            responses={**COMMON, **problem_responses(400, 412, 413, 428),
                       **ok("updateFieldMappings", 200, ETAG_HEADER)})
def put_mappings(integrationId: IntegrationId, body: FieldMappingsPut, response: Response,
                 access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("updateFieldMappings"))],
                 ctx: Annotated[AppContext, Depends(context)], if_match: IfMatch = None) -> FieldMappingsOut:
    """Validate the design with the mapping engine and save it as the next version of its stream and care type.

    If-Match is required (428 without it; 412 if someone saved in between), so two editors never overwrite
    each other silently."""
    user, integration = access
    if if_match is None:
        raise ProblemError(428, "Send If-Match with the ETag from GET field-mappings, so two editors never "
                                "overwrite each other.")
    expected = parse_if_match(if_match, "integration", integration.id)
    if expected == -1:
        raise ProblemError(412, "If-Match does not name a revision of this integration; GET it and use its ETag.")
    design = body.design.model_dump(by_alias=True, mode="json", exclude_none=True)
    try:
        with ctx.db.session() as session:
            svc.save_mapping_design(session, actor=user.email, integration_id=integration.id, design=design,
                                    comment=body.comment, expected_revision=expected)
    except IntegrityError:  # a concurrent save took the same version number first
        raise ProblemError(412, "Someone saved these mappings at the same moment; reload and apply your change "
                                "again.") from None
    out, revision = _mappings_out(ctx, integration.id)
    response.headers["ETag"] = etag("integration", integration.id, revision)
    return out


@router.post("/integrations/{integrationId}/test-mapping", operation_id="testMapping",
             summary="Preview a mapping on sample records", response_model=TestMappingOut,
             responses={**COMMON, **problem_responses(400, 413), **ok("testMapping")})
def test_mapping(integrationId: IntegrationId, body: TestMappingRequest,
                 access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("testMapping"))],
                 ctx: Annotated[AppContext, Depends(context)]) -> TestMappingOut:
    """Run the samples through the given design (or the current one for ``stream``/``careType``) and show
    before, after and per-field errors; personal and health values are masked."""
    user, integration = access
    design = body.design
    if design is None:
        with ctx.db.session() as session:
            current = [d for d in svc.current_designs(session, integration_id=integration.id)
                       if (body.stream is None or d.stream == body.stream)
                       and (body.care_type is None or d.care_type == body.care_type)]
            svc.record_view(session, actor=user.email, integration_id=integration.id, what="mapping_preview")
        if not current:
            raise ProblemError(422, "There is no saved design for that stream and care type; send `design`.",
                               errors=[svc.FieldProblem("design", "required when nothing is saved yet")])
        design = MappingDesign.model_validate(current[0].design)
    try:
        compiled = compile_design(design)
        result = preview(compiled, body.samples, mask_sensitive=True)
    except MappingError as exc:
        raise ProblemError(422, str(exc), title="The mapping design is not valid",
                           errors=[svc.FieldProblem("design", str(exc))]) from None
    rows = [PreviewRowOut(key=r.key, before=r.before, after=r.after, skipped_reason=r.skipped_reason,
                          errors=[PreviewFieldError.model_validate(e.to_dict()) for e in r.errors])
            for r in result.rows]
    return TestMappingOut(mapped=result.mapped, with_errors=result.with_errors, skipped=result.skipped,
                          elapsed_ms=round(result.elapsed_ms, 3), rows=rows)


@router.get("/integrations/{integrationId}/mapping-templates", operation_id="getMappingTemplates",
            summary="Ready-made mappings for this connector", response_model=PageOut[MappingTemplateOut],
            responses={**COMMON, **ok("getMappingTemplates")})
def mapping_templates(integrationId: IntegrationId,
                      access: Annotated[tuple[ApiUser, Integration],
                                        Depends(owned_integration("getMappingTemplates"))],
                      offset: Offset = 0, limit: Limit = 50,
                      care_type: Annotated[str | None, Query(alias="careType", max_length=50)] = None,
                      ) -> PageOut[MappingTemplateOut]:
    """Templates from ``templates/mappings/<connector>/`` to start a design from."""
    connector = access[1].connector_id
    items: list[MappingTemplateOut] = []
    for path in sorted((TEMPLATES / connector).glob("*.yaml")) if (TEMPLATES / connector).is_dir() else []:
        if care_type and path.stem != care_type:
            continue
        try:
            design = load_mapping_template_file(path)
        except MappingError:
            continue
        items.append(MappingTemplateOut(connector=connector, care_type=path.stem, design=design))
    return PageOut[MappingTemplateOut](items=items[offset:offset + limit], total=len(items), offset=offset,
                                       limit=limit)
