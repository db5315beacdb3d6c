"""The mapping function library. Importing this package registers every function."""

from engine.mapping.functions import dates, logic, names, numbers, template, text, uk
from engine.mapping.functions.registry import (
    REGISTRY,
    ArgSpec,
    Example,
    FunctionSpec,
    Step,
    build_step,
    get_function,
    run_example,
)

__all__ = [
    "REGISTRY",
    "ArgSpec",
    "Example",
    "FunctionSpec",
    "Step",
    "build_step",
    "dates",
    "get_function",
    "logic",
    "names",
    "numbers",
    "run_example",
    "template",
    "text",
    "uk",
]
