"""RFC 9457 problem details: every API error is ``application/problem+json`` with type, title, status, detail
and, for invalid input, ``errors`` naming each field and the reason."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from storage.integrations import FieldProblem, InvalidInput, NotFound, RevisionMismatch

log = logging.getLogger("carehub.api")
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://carehub.local/problems/"


class ProblemField(BaseModel):
    """One invalid input: where it is (a dotted path) and why."""

    field: str = Field(examples=["syncConfiguration.batchSize"])
    reason: str = Field(examples=["must be between 1 and 10000"])


class Problem(BaseModel):
    """An RFC 9457 problem details document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[TYPE_BASE + "validation-error"])
    title: str = Field(examples=["Your request has invalid fields"])
    status: int = Field(examples=[422])
    detail: str = Field(default="", examples=["batchSize: must be between 1 and 10000"])
    instance: str | None = Field(default=None, examples=["/api/v1/integrations/4f1c.../sync-settings"])
    errors: list[ProblemField] = Field(default_factory=list)


_SLUGS = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
    406: "not-acceptable", 409: "conflict", 412: "precondition-failed", 413: "payload-too-large",
    415: "unsupported-media-type", 422: "validation-error", 428: "precondition-required",
    429: "too-many-requests", 500: "internal-error", 503: "unavailable",
}


class ProblemError(Exception):
    """Raise from a handler to answer with a problem document."""

    def __init__(self, status: int, detail: str = "", *, title: str | None = None,
                 errors: Sequence[FieldProblem] = (), headers: Mapping[str, str] | None = None,
                 slug: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.slug = slug


def problem_body(status: int, detail: str = "", *, title: str | None = None,
                 errors: Sequence[FieldProblem] = (), instance: str | None = None, slug: str | None = None) -> bytes:
    """The JSON bytes of a problem document."""
    doc: dict[str, Any] = {
        "type": TYPE_BASE + (slug or _SLUGS.get(status, "error")),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "errors": [{"field": e.field, "reason": e.reason} for e in errors],
    }
    if instance:
        doc["instance"] = instance
    return json.dumps(doc).encode()


def problem_response(status: int, detail: str = "", *, title: str | None = None,
                     errors: Sequence[FieldProblem] = (), headers: Mapping[str, str] | None = None,
                     instance: str | None = None, slug: str | None = None) -> Response:
    """A ready ``application/problem+json`` response."""
    return Response(problem_body(status, detail, title=title, errors=errors, instance=instance, slug=slug),
                    status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        kind, rest = parts[0], parts[1:]
        return ".".join(rest) if kind == "body" and rest else ".".join([kind, *rest]) if rest else kind
    return ".".join(parts)


def install_problem_handlers(api: FastAPI) -> None:
    """Answer every error of ``api`` (including 404/405 from routing and validation errors) as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(exc.status, exc.detail, title=exc.title, errors=exc.errors, headers=exc.headers,
                                instance=request.url.path, slug=exc.slug)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no API resource at {request.url.path}."
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
            headers["Allow"] = ", ".join(_allowed_methods(api, request))
        return problem_response(exc.status_code, detail, headers=headers, instance=request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [FieldProblem(_loc(err.get("loc", ())), str(err.get("msg", "invalid"))) for err in exc.errors()]
        summary = "; ".join(f"{e.field}: {e.reason}" for e in errors[:5])
        status = 400 if any(str(err.get("type")) == "json_invalid" for err in exc.errors()) else 422
        return problem_response(status, summary, title="Your request has invalid fields", errors=errors,
                                instance=request.url.path, slug="validation-error")

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidInput)
        return problem_response(422, str(exc), title="Your request has invalid fields", errors=exc.problems,
                                instance=request.url.path, slug="validation-error")

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return problem_response(404, str(exc), instance=request.url.path)

    async def on_revision(request: Request, exc: Exception) -> Response:
        return problem_response(412, str(exc), instance=request.url.path)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled API error on %s %s", request.method, request.url.path)
        return problem_response(500, "Something went wrong on our side; it has been logged.",
                                instance=request.url.path)

    api.add_exception_handler(ProblemError, on_problem)
    api.add_exception_handler(StarletteHTTPException, on_http)
    api.add_exception_handler(RequestValidationError, on_validation)
    api.add_exception_handler(InvalidInput, on_invalid)
    api.add_exception_handler(NotFound, on_not_found)
    api.add_exception_handler(RevisionMismatch, on_revision)
    api.add_exception_handler(Exception, on_crash)


def _allowed_methods(api: FastAPI, request: Request) -> list[str]:
    """Every method some route offers on this path (Starlette's own 405 names only one route's)."""
    methods: set[str] = set()
    for route in api.router.routes:
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses, each a problem+json document."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        example = {"type": TYPE_BASE + _SLUGS.get(status, "error"), "title": HTTPStatus(status).phrase,
                   "status": status, "detail": _EXAMPLE_DETAIL.get(status, HTTPStatus(status).description),
                   "errors": []}
        if status == 422:
            example["errors"] = [{"field": "batchSize", "reason": "must be between 1 and 10000"}]
        entry: dict[str, Any] = {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}, "example": example}},
        }
        if status == 429:
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
        out[status] = entry
    return out


_EXAMPLE_DETAIL = {
    400: "The body is not valid JSON.",
    401: "Send an API token as 'Authorization: Bearer <token>'.",
    403: "Your role 'onboarding' may not do this; it needs one of: manager, admin.",
    404: "No integration with id '4f1c0d2e9a8b4c7d8e6f5a4b3c2d1e0f'.",
    409: "A request with this Idempotency-Key is still being processed.",
    412: "The integration changed since you loaded it; reload and apply your change again.",
    422: "batchSize: must be between 1 and 10000",
    428: "Send If-Match with the ETag you read, so two editors never overwrite each other.",
    429: "Too many requests for this token; retry after 12 seconds.",
}
