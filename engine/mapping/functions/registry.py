"""The function library's registry: every transformation a manager can pick in the designer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.mapping.errors import MappingError, StepError

Step = Callable[[Any, Mapping[str, Any]], Any]
Builder = Callable[[dict[str, Any]], Step]
InverseOf = Callable[[dict[str, Any]], "tuple[str, dict[str, Any]] | None"]
Phrase = Callable[[dict[str, Any]], str]


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One argument of a function: its name, JSON type, meaning and constraints."""

    name: str
    type: str  # string | integer | number | boolean | mapping | list | any
    description: str
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class Example:
    """A worked example shown in the designer and checked by the golden tests."""

    input: Any
    output: Any
    args: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A library function. ``inverse(args)`` names the step that undoes it (None: one-way)."""

    name: str
    category: str
    description: str
    examples: tuple[Example, ...]
    args: tuple[ArgSpec, ...]
    build: Builder
    phrase: Phrase
    inverse: InverseOf | None = None
    uses_record: bool = False
    passes_none: bool = True  # None in -> None out without calling the function

    @property
    def example(self) -> Example:
        """The first (headline) example."""
        return self.examples[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description for the REST API and the designer's function picker."""
        return {
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "invertible": self.inverse is not None,
            "args": [
                {"name": a.name, "type": a.type, "description": a.description, "required": a.required,
                 "default": a.default, "choices": list(a.choices) if a.choices else None}
                for a in self.args
            ],
            "examples": [{"input": e.input, "args": e.args, "output": e.output} for e in self.examples],
        }


REGISTRY: dict[str, FunctionSpec] = {}

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "mapping": (dict,),
    "list": (list, tuple),
}


def register(
    name: str,
    category: str,
    description: str,
    examples: list[Example],
    args: list[ArgSpec] | None = None,
    *,
    phrase: Phrase | str,
    inverse: InverseOf | None = None,
    uses_record: bool = False,
    passes_none: bool = True,
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder ``(args) -> step`` under ``name``."""

    def deco(build: Builder) -> Builder:
        ph: Phrase = _constant_phrase(phrase) if isinstance(phrase, str) else phrase
        REGISTRY[name] = FunctionSpec(
            name=name, category=category, description=description, examples=tuple(examples),
            args=tuple(args or ()), build=build, phrase=ph, inverse=inverse,
            uses_record=uses_record, passes_none=passes_none,
        )
        return build

    return deco


def _constant_phrase(text: str) -> Phrase:
    def ph(_a: dict[str, Any]) -> str:
        return text

    return ph


def get_function(name: str) -> FunctionSpec:
    """The library function called ``name``; :class:`MappingError` listing close names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise MappingError(f"there is no transformation called {name!r}.{hint}") from None


def resolve_args(spec: FunctionSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``args`` against the function's argument schema; fill defaults."""
    known = {a.name for a in spec.args}
    unknown = set(args) - known
    if unknown:
        raise MappingError(f"{spec.name} does not take {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for a in spec.args:
        if a.name not in args or args[a.name] is None:
            if a.required:
                raise MappingError(f"{spec.name} needs the {a.name!r} argument ({a.description})")
            out[a.name] = a.default
            continue
        v = args[a.name]
        types = _JSON_TYPES.get(a.type)
        if types and (not isinstance(v, types) or (a.type in ("integer", "number") and isinstance(v, bool))):
            raise MappingError(f"{spec.name}'s {a.name!r} must be a {a.type}, not {v!r}")
        if a.choices is not None and v not in a.choices:
            options = ", ".join(repr(c) for c in a.choices)
            raise MappingError(f"{spec.name}'s {a.name!r} must be one of {options}, not {v!r}")
        out[a.name] = v
    return out


def build_step(name: str, args: Mapping[str, Any]) -> tuple[FunctionSpec, dict[str, Any], Step]:
    """Resolve and build one step, raising :class:`MappingError` for bad names or arguments."""
    spec = get_function(name)
    resolved = resolve_args(spec, args)
    try:
        built = spec.build(resolved)
    except StepError as exc:
        raise MappingError(f"{spec.name}: {exc}") from None
    return spec, resolved, built


def run_example(spec: FunctionSpec, example: Example) -> Any:
    """Apply ``spec`` to an example's input (used by tests and by the designer's 'try it')."""
    _, _, step = build_step(spec.name, example.args)
    if example.input is None and spec.passes_none:
        return None
    return step(example.input, example.record or {})
