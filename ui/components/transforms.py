"""The transform picker's data: library functions described in plain words, and argument parsing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.mapping import FUNCTIONS, FunctionSpec

ADVANCED_CATEGORIES = {"advanced"}


def function_options(advanced: bool) -> dict[str, str]:
    """``{name: "Description"}`` for the picker, grouped by category; expressions only in Advanced mode."""
    specs = sorted(FUNCTIONS.values(), key=lambda s: (s.category, s.name))
    out = {"": "No change (use the value as it is)"}
    for spec in specs:
        if spec.category in ADVANCED_CATEGORIES and not advanced:
            continue
        if spec.name == "identity":
            continue
        ex = spec.example
        out[spec.name] = (f"{spec.category.capitalize()}: {spec.description} "
                          f"(e.g. {describe_arg(ex.input)} → {describe_arg(ex.output)})")
    return out


def example_text(spec: FunctionSpec) -> str:
    """``Example: "03/04/2024" becomes "2024-04-03"``."""
    ex = spec.example
    args = ""
    if ex.args:
        args = " (with " + ", ".join(f"{k} {describe_arg(v)}" for k, v in ex.args.items()) + ")"
    return f"Example{args}: {describe_arg(ex.input)} becomes {describe_arg(ex.output)}"


def describe_arg(value: Any) -> str:
    """A value as a person would write it."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def arg_text(value: Any, kind: str) -> str:
    """An argument's current value as the text shown in its input."""
    if value is None:
        return ""
    if kind == "mapping" and isinstance(value, Mapping):
        return "\n".join(f"{k} = {v}" for k, v in value.items())
    if kind == "list" and isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if kind == "boolean":
        return "yes" if value else "no"
    return str(value)


def parse_arg(text: str, kind: str) -> Any:
    """Read what a manager typed into an argument box; raises ValueError with a plain reason."""
    text = text.strip()
    if text == "":
        return None
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
    if kind == "number":
        try:
            return float(text) if "." in text else int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if kind == "boolean":
        if text.lower() in ("yes", "true", "y", "1"):
            return True
        if text.lower() in ("no", "false", "n", "0"):
            return False
        raise ValueError("write yes or no")
    if kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    if kind == "mapping":
        out: dict[str, Any] = {}
        for line in text.replace(";", "\n").splitlines():
            if not line.strip():
                continue
            if "=" not in line:
                raise ValueError(f"write each pair as 'from = to' (got {line.strip()!r})")
            left, _, right = line.partition("=")
            out[left.strip()] = right.strip()
        return out
    if kind == "any":
        try:
            return json.loads(text) if text[:1] in "[{" or text in ("true", "false") else text
        except ValueError:
            return text
    return text


OPERATOR_WORDS: dict[str, str] = {
    "equals": "is", "not_equals": "is not", "in": "is one of", "not_in": "is not one of",
    "exists": "is filled in", "missing": "is empty", "contains": "contains", "gt": "is more than",
    "gte": "is at least", "lt": "is less than", "lte": "is at most",
}
NO_VALUE_OPERATORS = {"exists", "missing"}


def filter_value(text: str, operator: str, source_type: str) -> Any:
    """Read a filter's value as typed: lists for 'one of', numbers and yes/no where the source field has them."""
    if operator in NO_VALUE_OPERATORS:
        return None
    if operator in ("in", "not_in"):
        return parse_arg(text, "list") or []
    kind = {"boolean": "boolean", "integer": "number", "number": "number"}.get(source_type, "string")
    if operator in ("gt", "gte", "lt", "lte") and kind == "string":
        kind = "number" if text.strip().replace(".", "", 1).lstrip("-").isdigit() else "string"
    return parse_arg(text, kind)


def filter_sentence(field: str, operator: str, value: Any) -> str:
    """"Only records whose Status is one of AUTHORISED, PAID"."""
    words = OPERATOR_WORDS.get(operator, operator)
    if operator in NO_VALUE_OPERATORS:
        return f"Only records whose {field} {words}"
    return f"Only records whose {field} {words} {describe_arg(value)}"
