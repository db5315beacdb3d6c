"""Strict input checks run right after authentication: JSON bodies validated in pydantic's strict JSON mode
(``false`` is not an integer, ``0`` is not a boolean), query parameters given once, integers written as digits.

FastAPI validates bodies in lax mode, which would quietly accept such values; these checks turn them into the
same 422 problem documents as any other validation error.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError

_DIGITS = re.compile(r"\d{1,9}")
_plans: dict[int, tuple[TypeAdapter[Any] | None, frozenset[str], frozenset[str]]] = {}


def _plan(route: APIRoute) -> tuple[TypeAdapter[Any] | None, frozenset[str], frozenset[str]]:
    plan = _plans.get(id(route))
    if plan is None:
        adapter = None
        annotation = route.body_field.field_info.annotation if route.body_field is not None else None
        if annotation is not None:
            adapter = TypeAdapter(annotation)
        params = _query_params(route.dependant)
        ints = frozenset(p.alias for p in params if p.field_info.annotation in (int, int | None))
        names = frozenset(p.alias for p in params)
        plan = _plans[id(route)] = (adapter, ints, names)
    return plan


def _nul_path(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where the first NUL character sits in a JSON document (keys and strings), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return (*path, key.replace("\x00", "\\0"))
            found = _nul_path(item, (*path, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, (*path, i))
            if found is not None:
                return found
    return None


def _query_params(dependant: Dependant) -> list[Any]:
    out = list(dependant.query_params)
    for sub in dependant.dependencies:
        out.extend(_query_params(sub))
    return out


async def check_request(request: Request) -> None:
    """Raise a validation error for inputs lax parsing would have accepted."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    adapter, ints, _names = _plan(route)
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key, value in request.query_params.multi_items():
        if key in seen:
            errors.append({"loc": ("query", key), "msg": "must be given once", "type": "repeated"})
        seen.add(key)
        if "\x00" in value:
            errors.append({"loc": ("query", key), "msg": "must not contain NUL characters", "type": "nul"})
        if key in ints and not _DIGITS.fullmatch(value):
            errors.append({"loc": ("query", key), "msg": "must be a whole number", "type": "int_parsing"})
    if adapter is not None:
        raw = await request.body()
        if raw.strip():
            try:
                adapter.validate_json(raw, strict=True)
            except ValidationError as exc:
                errors.extend({"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                              for e in exc.errors(include_url=False))
            else:
                where = _nul_path(json.loads(raw))
                if where is not None:  # PostgreSQL text and JSONB cannot hold NUL
                    errors.append({"loc": ("body", *where), "msg": "must not contain NUL characters", "type": "nul"})
    if errors:
        raise RequestValidationError(errors)
