"""Safe evaluation of user-supplied jinja2 templates and JMESPath expressions.

Limits (from shared/notes/reliability-security.md, INJ-2 and INJ-3):
template <= 8 kB, render <= 1 s, output <= 1 MB; expression <= 1 kB, AST depth <= 10,
bounded multiselect fan-out, evaluation <= 1 s, result <= 5 MB.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath
import jmespath.exceptions
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.mapping.errors import MappingError, StepError
from engine.mapping.watchdog import run_with_time_limit

MAX_TEMPLATE_CHARS = 8 * 1024
MAX_OUTPUT_CHARS = 1024 * 1024
MAX_RENDER_SECONDS = 1.0
MAX_EXPRESSION_CHARS = 1024
MAX_EXPRESSION_DEPTH = 10
MAX_FANOUT = 64
MAX_EVAL_SECONDS = 1.0
MAX_RESULT_ITEMS = 5 * 1024 * 1024
MAX_STRING_RESULT = 1024 * 1024
MAX_FOR_NESTING = 2

_SAFE_FILTERS = (
    "abs", "capitalize", "default", "d", "first", "float", "int", "join", "last", "length", "count",
    "list", "lower", "replace", "round", "string", "title", "trim", "upper", "tojson", "min", "max",
    "sum", "sort", "unique", "select", "reject", "selectattr", "rejectattr", "map", "items", "batch",
    "slice", "truncate", "striptags",
)
_SAFE_TESTS = (
    "defined", "undefined", "none", "number", "string", "mapping", "sequence", "boolean", "true", "false",
    "integer", "float", "lower", "upper", "eq", "ne", "lt", "le", "gt", "ge", "in", "odd", "even",
    "divisibleby", "equalto", "sameas", "iterable",
)
# Unsafe str methods: padding and formatting can allocate gigabytes from a tiny template.
_BLOCKED_METHODS = frozenset({
    "format", "format_map", "center", "ljust", "rjust", "zfill", "expandtabs", "translate", "maketrans",
    "encode", "mro", "__class__",
})


class _MappingTemplateEnv(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            raise SecurityError("the ** operator is not allowed in mapping templates")
        if operator_ == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed in mapping templates")
        if operator_ == "*" and (isinstance(left, (str, list, tuple)) or isinstance(right, (str, list, tuple))):
            raise SecurityError("repeating text or lists with * is not allowed in mapping templates")
        if (
            operator_ == "+"
            and isinstance(left, (str, list, tuple))
            and isinstance(right, (str, list, tuple))
            and len(left) + len(right) > MAX_OUTPUT_CHARS
        ):
            raise SecurityError("the template builds a value larger than the output limit")
        return super().call_binop(context, operator_, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if attribute in _BLOCKED_METHODS:
            return self.unsafe_undefined(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, str) and argument in _BLOCKED_METHODS:
            return self.unsafe_undefined(obj, argument)
        return super().getitem(obj, argument)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in _BLOCKED_METHODS:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))


def _make_env() -> _MappingTemplateEnv:
    env = _MappingTemplateEnv(undefined=StrictUndefined, autoescape=False)
    env.globals.clear()
    env.filters = {k: v for k, v in env.filters.items() if k in _SAFE_FILTERS}
    env.tests = {k: v for k, v in env.tests.items() if k in _SAFE_TESTS}
    return env


TEMPLATE_ENV = _make_env()

_FORBIDDEN_NODES: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Macro, "macros"),
    (nodes.CallBlock, "call blocks"),
    (nodes.Assign, "{% set %}"),
    (nodes.AssignBlock, "{% set %} blocks"),
    (nodes.With, "{% with %}"),
    (nodes.Extends, "{% extends %}"),
    (nodes.Include, "{% include %}"),
    (nodes.Import, "{% import %}"),
    (nodes.FromImport, "{% from ... import %}"),
    (nodes.FilterBlock, "filter blocks"),
)


def _check_template_ast(tree: nodes.Template) -> None:
    for node_type, label in _FORBIDDEN_NODES:
        if tree.find(node_type) is not None:
            raise MappingError(f"templates may not use {label}")

    def depth(node: nodes.Node, level: int) -> None:
        if isinstance(node, nodes.For):
            if node.recursive:
                raise MappingError("templates may not use recursive loops")
            level += 1
            if level > MAX_FOR_NESTING:
                raise MappingError(f"templates may nest loops at most {MAX_FOR_NESTING} deep")
        for child in node.iter_child_nodes():
            depth(child, level)

    depth(tree, 0)


class CompiledTemplate:
    """A template compiled once at design save time; :meth:`render` enforces time and output limits."""

    __slots__ = ("_template", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str):
            raise MappingError("a template must be text")
        if len(source) > MAX_TEMPLATE_CHARS:
            raise MappingError(f"the template is {len(source)} characters long; the limit is {MAX_TEMPLATE_CHARS}")
        try:
            tree = TEMPLATE_ENV.parse(source)
            _check_template_ast(tree)
            self._template = TEMPLATE_ENV.from_string(tree)
        except TemplateSyntaxError as exc:
            raise MappingError(f"the template has a syntax error on line {exc.lineno}: {exc.message}") from None
        self.source = source

    def _render(self, context: Mapping[str, Any]) -> str:
        parts: list[str] = []
        size = 0
        for chunk in self._template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise StepError(f"the template's output is larger than {MAX_OUTPUT_CHARS} characters")
            parts.append(chunk)
        return "".join(parts)

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with ``context`` (plain data only); raises :class:`StepError` on any failure."""
        try:
            return run_with_time_limit(MAX_RENDER_SECONDS, lambda: self._render(context))
        except TimeoutError:
            raise StepError(f"the template took longer than {MAX_RENDER_SECONDS:g} s and was stopped") from None
        except SecurityError as exc:
            raise StepError(f"the template tried something not allowed: {exc}") from None
        except (TemplateError, ArithmeticError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            if isinstance(exc, StepError):
                raise
            raise StepError(f"the template failed: {exc}") from None
        except (MemoryError, RecursionError):
            raise StepError("the template used too much memory or recursion and was stopped") from None


# ---------------------------------------------------------------- JMESPath

_FANOUT_TYPES = {"multi_select_list", "multi_select_dict"}


def _check_expression_ast(node: Mapping[str, Any]) -> None:
    # Fan-out is the product over every multi-select in the tree: sequential projections multiply too.
    fanout = 1
    stack: list[tuple[Mapping[str, Any], int]] = [(node, 0)]
    while stack:
        n, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            raise MappingError(f"the expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep")
        children = n.get("children", [])
        if n.get("type") in _FANOUT_TYPES:
            fanout *= max(1, len(children))
            if fanout > MAX_FANOUT:
                raise MappingError("the expression multiplies its input too many times (nested multi-selects)")
        stack.extend((c, depth + 1) for c in children if isinstance(c, Mapping))


def _result_size(value: Any, budget: int) -> int:
    """Approximate size of a result, stopping early once over ``budget``."""
    stack = [value]
    size = 0
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            size += len(v)
        elif isinstance(v, dict):
            size += len(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            size += len(v)
            stack.extend(v)
        else:
            size += 1
        if size > budget:
            break
    return size


class CompiledExpression:
    """A JMESPath expression checked and compiled once; :meth:`search` enforces time and size limits."""

    __slots__ = ("_parsed", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise MappingError("an expression must be non-empty text")
        if len(source) > MAX_EXPRESSION_CHARS:
            raise MappingError(f"the expression is {len(source)} characters long; the limit is {MAX_EXPRESSION_CHARS}")
        try:
            parsed = jmespath.compile(source)
        except jmespath.exceptions.JMESPathError as exc:
            raise MappingError(f"the expression is not valid JMESPath: {exc}") from None
        except RecursionError:
            raise MappingError("the expression is nested too deeply") from None
        _check_expression_ast(parsed.parsed)
        self._parsed = parsed
        self.source = source

    def _search(self, data: Any) -> Any:
        result = self._parsed.search(data)
        if _result_size(result, MAX_RESULT_ITEMS) > MAX_RESULT_ITEMS:
            raise StepError("the expression produced a result larger than the limit")
        return result

    def search(self, data: Any) -> Any:
        """Evaluate against ``data``; raises :class:`StepError` on failure, time-out or oversize."""
        try:
            return run_with_time_limit(MAX_EVAL_SECONDS, lambda: self._search(data))
        except TimeoutError:
            raise StepError(f"the expression took longer than {MAX_EVAL_SECONDS:g} s and was stopped") from None
        except jmespath.exceptions.JMESPathError as exc:
            raise StepError(f"the expression failed: {exc}") from None
        except (MemoryError, RecursionError):
            raise StepError("the expression used too much memory and was stopped") from None

