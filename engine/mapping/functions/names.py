"""Names: split a full name into given and family names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.mapping.errors import StepError
from engine.mapping.functions.registry import ArgSpec, Example, Step, register

_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev", "lady", "lord"})


def split_full_name(text: str) -> tuple[str, str, str]:
    """``'Mrs Jane Ann Smith'`` / ``'Smith, Jane Ann'`` -> (title, given names, family name)."""
    text = " ".join(text.split())
    if "," in text:
        family, _, given = text.partition(",")
        words = given.split()
        title = ""
        if words and words[0].rstrip(".").lower() in _TITLES:
            title, words = words[0], words[1:]
        return title, " ".join(words), family.strip()
    words = text.split()
    title = ""
    if len(words) > 1 and words[0].rstrip(".").lower() in _TITLES:
        title, words = words[0], words[1:]
    if len(words) == 1:
        return title, words[0], ""
    return title, " ".join(words[:-1]), words[-1] if words else ""


@register(
    "split_name", "names", "Takes one part of a full name: the given (first) names, the family name or the title.",
    [Example("Jane Ann Smith", "Jane Ann", {"part": "given"}), Example("Smith, Jane", "Smith", {"part": "family"}),
     Example("Mrs Jane Smith", "Mrs", {"part": "title"})],
    [ArgSpec("part", "string", "Which part to keep.", required=True, choices=("given", "family", "title"))],
    phrase=lambda a: f"taking the {a['part']} name from a full name",
)
def _split_name(a: dict[str, Any]) -> Step:
    index = {"title": 0, "given": 1, "family": 2}[a["part"]]

    def split_name(v: Any, _r: Mapping[str, Any]) -> Any:
        if not isinstance(v, str):
            raise StepError(f"{v!r} is not a name")
        return split_full_name(v)[index] or None

    return split_name
