"""The ``template`` step: a jinja2 template in the immutable sandbox, with size and time limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.mapping.functions.registry import ArgSpec, Example, Step, register
from engine.mapping.sandbox import CompiledTemplate


@register(
    "template", "advanced",
    "Builds text from a template: {{ value }} is this field, {{ record.Field }} any source field.",
    [Example("Jane", "Dear Jane Smith", {"source": "Dear {{ value }} {{ record.lastName }}"}, record={"lastName": "Smith"})],
    [ArgSpec("source", "string", "The template text (at most 8 kB).", required=True)],
    phrase="built from a template", uses_record=True, passes_none=False,
)
def _template(a: dict[str, Any]) -> Step:
    compiled = CompiledTemplate(a["source"])

    def template(v: Any, r: Mapping[str, Any]) -> Any:
        return compiled.render({"value": v, "record": r})

    return template
