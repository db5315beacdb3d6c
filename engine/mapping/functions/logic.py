"""Choosing values: value_map, coalesce, if_empty, constant, booleans, first item of a list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.mapping.errors import StepError
from engine.mapping.functions.registry import ArgSpec, Example, Step, register
from engine.mapping.paths import make_getter

_TRUE = ("true", "yes", "y", "1", "t", "on", "active")
_FALSE = ("false", "no", "n", "0", "f", "off", "inactive", "")


def _value_map_inverse(a: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    mapping: dict[str, Any] = a["map"]
    values = list(mapping.values())
    if not all(isinstance(v, (str, int, float, bool)) for v in values) or len(set(values)) != len(values):
        return None
    return ("value_map", {"map": {str(v): k for k, v in mapping.items()}})


@register(
    "value_map", "choices", "Swaps each source value for the matching WriteCareNotes value, e.g. ACCREC -> sales.",
    [Example("ACCREC", "sales", {"map": {"ACCREC": "sales", "ACCPAY": "purchase"}}),
     Example("Other", "other", {"map": {"Vacation": "holiday"}, "default": "other"})],
    [ArgSpec("map", "mapping", "Source value -> target value.", required=True),
     ArgSpec("default", "any", "Used for a value not in the list; leave empty to report it as an error."),
     ArgSpec("ignore_case", "boolean", "Match regardless of capitals.", default=False)],
    phrase=lambda a: "translated through a value list", inverse=_value_map_inverse,
)
def _value_map(a: dict[str, Any]) -> Step:
    ignore_case: bool = a["ignore_case"]
    table = {(str(k).lower() if ignore_case else str(k)): v for k, v in a["map"].items()}
    default = a["default"]
    has_default = default is not None
    known = ", ".join(repr(k) for k in list(table)[:8])

    def value_map(v: Any, _r: Mapping[str, Any]) -> Any:
        key = str(v).lower() if ignore_case else (v if isinstance(v, str) else str(v))
        if key in table:
            return table[key]
        if has_default:
            return default
        raise StepError(f"{v!r} is not one of the listed values ({known})")

    return value_map


@register(
    "coalesce", "choices", "Uses the first of this value and the listed fields that is not empty.",
    [Example(None, "jane@home.example", {"fields": ["homeEmail"]}, record={"homeEmail": "jane@home.example"})],
    [ArgSpec("fields", "list", "Source fields to try, in order, when this value is empty.", required=True),
     ArgSpec("default", "any", "Used when every field is empty.")],
    phrase=lambda a: f"or else {' or '.join(a['fields'])}", uses_record=True, passes_none=False,
)
def _coalesce(a: dict[str, Any]) -> Step:
    getters = [make_getter(str(p)) for p in a["fields"]]
    default = a["default"]

    def coalesce(v: Any, r: Mapping[str, Any]) -> Any:
        if v is not None and v != "":
            return v
        for g in getters:
            x = g(r)
            if x is not None and x != "":
                return x
        return default

    return coalesce


@register("if_empty", "choices", "Uses a fixed value when the source value is missing or blank.",
          [Example(None, "GBP", {"value": "GBP"}), Example("EUR", "EUR", {"value": "GBP"})],
          [ArgSpec("value", "any", "The value to use instead.", required=True)],
          phrase=lambda a: f"or {a['value']!r} when empty", passes_none=False)
def _if_empty(a: dict[str, Any]) -> Step:
    fallback = a["value"]
    return lambda v, _r: fallback if v is None or v == "" else v


@register("constant", "choices", "Always gives the same value, whatever the source says.",
          [Example(None, "customer", {"value": "customer"})],
          [ArgSpec("value", "any", "The value to use.", required=True)],
          phrase=lambda a: f"always {a['value']!r}", passes_none=False)
def _constant(a: dict[str, Any]) -> Step:
    value = a["value"]
    return lambda _v, _r: value


@register(
    "to_boolean", "choices", "Reads yes/no, true/false, 1/0, Y/N as a yes-or-no value.",
    [Example("Yes", True), Example("0", False), Example("Active", True, {"true_values": ["Active"]})],
    [ArgSpec("true_values", "list", "Source values meaning yes (case ignored); leave empty for the usual ones."),
     ArgSpec("false_values", "list", "Source values meaning no (case ignored); leave empty for the usual ones."),
     ArgSpec("write_true_as", "any", "What to write back to the other system for yes.", default=True),
     ArgSpec("write_false_as", "any", "What to write back to the other system for no.", default=False)],
    phrase="read as yes or no",
    inverse=lambda a: ("format_boolean", {"true_value": a["write_true_as"], "false_value": a["write_false_as"]}),
)
def _to_boolean(a: dict[str, Any]) -> Step:
    trues = frozenset(str(x).lower() for x in (a["true_values"] or _TRUE))
    falses = frozenset(str(x).lower() for x in (a["false_values"] or _FALSE))

    def to_boolean(v: Any, _r: Mapping[str, Any]) -> Any:
        if isinstance(v, bool):
            return v
        key = str(v).strip().lower()
        if key in trues:
            return True
        if key in falses:
            return False
        raise StepError(f"{v!r} is neither yes nor no")

    return to_boolean


@register(
    "format_boolean", "choices", "Writes a yes-or-no value the way the other system wants it.",
    [Example(True, "Y", {"true_value": "Y", "false_value": "N"})],
    [ArgSpec("true_value", "any", "What to write for yes.", default=True),
     ArgSpec("false_value", "any", "What to write for no.", default=False)],
    phrase="written as yes or no",
    inverse=lambda a: ("to_boolean", {"true_values": [a["true_value"]], "false_values": [a["false_value"]],
                                      "write_true_as": a["true_value"], "write_false_as": a["false_value"]}),
)
def _format_boolean(a: dict[str, Any]) -> Step:
    t, f = a["true_value"], a["false_value"]

    def format_boolean(v: Any, _r: Mapping[str, Any]) -> Any:
        if not isinstance(v, bool):
            raise StepError(f"{v!r} is not yes or no")
        return t if v else f

    return format_boolean


@register("first", "lists", "Keeps the first item of a list (a single value is kept as it is).",
          [Example(["a", "b"], "a"), Example([], None)], phrase="taking the first item",
          inverse=lambda _a: ("wrap_list", {}))
def _first(_a: dict[str, Any]) -> Step:
    def first(v: Any, _r: Mapping[str, Any]) -> Any:
        if isinstance(v, list):
            return v[0] if v else None
        return v

    return first


@register("wrap_list", "lists", "Puts a single value into a list of one.", [Example("a", ["a"])],
          phrase="as a list of one", inverse=lambda _a: ("first", {}))
def _wrap(_a: dict[str, Any]) -> Step:
    return lambda v, _r: v if isinstance(v, list) else [v]




def _item_plan(spec: Any) -> tuple[Any, list[tuple[Step, bool]]]:
    from engine.mapping.functions.registry import build_step

    if isinstance(spec, str):
        return make_getter(spec), []
    if not isinstance(spec, dict) or not isinstance(spec.get("source"), str):
        raise StepError("each item field needs a source field name, or {source: ..., transformation: [...]}")
    steps = []
    for s in spec.get("transformation") or []:
        if not isinstance(s, dict) or "function" not in s:
            raise StepError("each item transformation step needs a function")
        fspec, _args, fn = build_step(str(s["function"]), dict(s.get("args") or {}))
        if fspec.name == "map_items":
            raise StepError("map_items cannot be nested")
        steps.append((fn, fspec.passes_none))
    return make_getter(spec["source"]), steps


@register(
    "map_items", "lists", "Maps every item of a list (e.g. invoice lines), field by field, with its own steps.",
    [Example([{"Description": "Fees", "UnitAmount": 950.0}], [{"description": "Fees", "unitAmountPence": 95000}],
             {"fields": {"description": "Description",
                         "unitAmountPence": {"source": "UnitAmount", "transformation": [{"function": "pounds_to_pence"}]}}})],
    [ArgSpec("fields", "mapping", "Item field -> source item field, or {source, transformation}.", required=True),
     ArgSpec("max_items", "integer", "Refuse lists longer than this.", default=1000)],
    phrase="mapped item by item",
)
def _map_items(a: dict[str, Any]) -> Step:
    plans = [(str(k), *_item_plan(v)) for k, v in a["fields"].items()]
    limit: int = a["max_items"]

    def map_items(v: Any, r: Mapping[str, Any]) -> Any:
        if not isinstance(v, list):
            raise StepError(f"expected a list of items, got {type(v).__name__}")
        if len(v) > limit:
            raise StepError(f"the list has {len(v)} items; the limit is {limit}")
        out = []
        for n, item in enumerate(v, 1):
            if not isinstance(item, Mapping):
                raise StepError(f"item {n} is not a group of fields")
            mapped: dict[str, Any] = {}
            for key, get, steps in plans:
                x = get(item)
                try:
                    for fn, passes_none in steps:
                        if passes_none and not x and (x is None or x == ""):
                            continue
                        x = fn(x, item)
                except StepError as exc:
                    raise StepError(f"item {n}, {key}: {exc}") from None
                if x is not None:
                    mapped[key] = x
            out.append(mapped)
        return out

    return map_items
