"""Success criteria and rollback triggers of a migration phase, evaluated against measured figures."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

METRICS: dict[str, str] = {
    "accuracy_pct": "data accuracy (%)",
    "error_rate_pct": "records that failed (%)",
    "failed_records": "records that failed",
    "missing_records": "records missing after the phase",
    "mismatched_fields": "fields that differ from the legacy export",
    "unconfirmed_matches": "possible matches nobody confirmed",
    "duration_seconds": "phase run time (seconds)",
}
_OPS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    ">=": (operator.ge, "at least"), ">": (operator.gt, "more than"), "<=": (operator.le, "at most"),
    "<": (operator.lt, "less than"), "==": (operator.eq, "exactly"),
}
DEFAULT_SUCCESS: list[dict[str, Any]] = [
    {"metric": "accuracy_pct", "op": ">=", "value": 99.9},
    {"metric": "missing_records", "op": "<=", "value": 0},
    {"metric": "unconfirmed_matches", "op": "<=", "value": 0},
]
DEFAULT_ROLLBACK: list[dict[str, Any]] = [
    {"metric": "error_rate_pct", "op": ">", "value": 5},
    {"metric": "accuracy_pct", "op": "<", "value": 99.0},
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One criterion checked: whether it holds, and a sentence saying so."""

    metric: str
    holds: bool
    measured: float | None
    text: str


def describe(criterion: Mapping[str, Any]) -> str:
    """``{"metric": "accuracy_pct", "op": ">=", "value": 99.9}`` -> ``data accuracy (%) at least 99.9``."""
    label = METRICS.get(str(criterion.get("metric")), str(criterion.get("metric")))
    words = _OPS.get(str(criterion.get("op")), (operator.eq, str(criterion.get("op"))))[1]
    return f"{label} {words} {criterion.get('value')}"


def validate(criterion: Mapping[str, Any]) -> str | None:
    """A plain-English problem with a criterion, or None when it can be evaluated."""
    if criterion.get("metric") not in METRICS:
        return f"unknown measure {criterion.get('metric')!r}; choose one of {', '.join(METRICS)}"
    if criterion.get("op") not in _OPS:
        return f"unknown comparison {criterion.get('op')!r}"
    if not isinstance(criterion.get("value"), int | float) or isinstance(criterion.get("value"), bool):
        return "the threshold must be a number"
    return None


def evaluate(criteria: Sequence[Mapping[str, Any]], metrics: Mapping[str, float]) -> list[Verdict]:
    """Check every criterion against ``metrics``; a metric that was not measured does not hold."""
    verdicts: list[Verdict] = []
    for criterion in criteria:
        metric = str(criterion.get("metric"))
        text = describe(criterion)
        problem = validate(criterion)
        measured = metrics.get(metric)
        if problem or measured is None:
            verdicts.append(Verdict(metric, False, measured, f"{text}: {problem or 'not measured'}"))
            continue
        holds = bool(_OPS[str(criterion["op"])][0](measured, criterion["value"]))
        verdicts.append(Verdict(metric, holds, measured, f"{text}: measured {measured:g}"))
    return verdicts


def all_hold(verdicts: Sequence[Verdict]) -> bool:
    """True when every verdict holds (an empty list holds)."""
    return all(v.holds for v in verdicts)


def any_hold(verdicts: Sequence[Verdict]) -> bool:
    """True when any verdict holds (used for rollback triggers)."""
    return any(v.holds for v in verdicts)
