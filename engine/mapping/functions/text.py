"""Text functions: trim, case, split, join, replace, pad, substring, concat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.mapping.errors import StepError
from engine.mapping.functions.registry import ArgSpec, Example, Step, register
from engine.mapping.paths import make_getter

MAX_PAD = 1000


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise StepError(f"expected text, got {type(v).__name__}")


def _identity(_a: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("identity", {})


@register("identity", "text", "Leaves the value exactly as it is.", [Example("Jane", "Jane")], phrase="copied as is",
          inverse=_identity)
def _identity_b(_a: dict[str, Any]) -> Step:
    return lambda v, _r: v


@register("trim", "text", "Removes spaces at the start and end.", [Example("  Jane ", "Jane"), Example("Ann", "Ann")],
          phrase="with surrounding spaces removed", inverse=_identity)
def _trim(_a: dict[str, Any]) -> Step:
    def trim(v: Any, _r: Mapping[str, Any]) -> Any:
        return v.strip() if isinstance(v, str) else v

    return trim


@register("upper", "text", "Changes the text to CAPITALS.", [Example("sw1a 1aa", "SW1A 1AA")], phrase="in capitals")
def _upper(_a: dict[str, Any]) -> Step:
    return lambda v, _r: _text(v).upper()


@register("lower", "text", "Changes the text to lower case.", [Example("Jane@Example.COM", "jane@example.com")],
          phrase="in lower case")
def _lower(_a: dict[str, Any]) -> Step:
    return lambda v, _r: _text(v).lower()


@register("title_case", "text", "Capitalises the first letter of each word.", [Example("jane SMITH", "Jane Smith")],
          phrase="with each word capitalised")
def _title(_a: dict[str, Any]) -> Step:
    return lambda v, _r: _text(v).title()


@register(
    "split", "text", "Splits the text at a separator; with an index, keeps just that piece (0 is the first).",
    [Example("a,b,c", ["a", "b", "c"], {"separator": ","}), Example("Room 12", "12", {"separator": " ", "index": 1})],
    [ArgSpec("separator", "string", "Where to split, e.g. a comma.", required=True),
     ArgSpec("index", "integer", "Which piece to keep (0 = first, -1 = last); leave empty for all pieces.")],
    phrase=lambda a: f"split at {a['separator']!r}" + ("" if a["index"] is None else f", keeping piece {a['index']}"),
    inverse=lambda a: ("join", {"separator": a["separator"]}) if a["index"] is None else None,
)
def _split(a: dict[str, Any]) -> Step:
    sep: str = a["separator"]
    idx: int | None = a["index"]

    def split(v: Any, _r: Mapping[str, Any]) -> Any:
        pieces = _text(v).split(sep) if sep else list(_text(v))
        if idx is None:
            return pieces
        return pieces[idx] if -len(pieces) <= idx < len(pieces) else None

    return split


@register(
    "join", "text", "Joins a list of values into one text with a separator.",
    [Example(["a", "b"], "a, b", {"separator": ", "})],
    [ArgSpec("separator", "string", "What to put between the pieces.", default=", ")],
    phrase=lambda a: f"joined with {a['separator']!r}",
    inverse=lambda a: ("split", {"separator": a["separator"]}) if a["separator"] else None,
)
def _join(a: dict[str, Any]) -> Step:
    sep: str = a["separator"]

    def join(v: Any, _r: Mapping[str, Any]) -> Any:
        if isinstance(v, (list, tuple)):
            return sep.join(_text(x) for x in v if x is not None)
        return _text(v)

    return join


@register(
    "replace", "text", "Replaces every occurrence of some text with other text.",
    [Example("07700-900123", "07700900123", {"old": "-", "new": ""})],
    [ArgSpec("old", "string", "The text to look for.", required=True),
     ArgSpec("new", "string", "What to put instead.", default="")],
    phrase=lambda a: f"with {a['old']!r} replaced by {a['new']!r}",
)
def _replace(a: dict[str, Any]) -> Step:
    old: str = a["old"]
    new: str = a["new"]
    if not old:
        raise StepError("replace needs some text to look for")
    return lambda v, _r: _text(v).replace(old, new)


@register(
    "pad", "text", "Pads the text to a width with a character, on the left (e.g. leading zeros) or the right.",
    [Example("42", "00042", {"width": 5, "char": "0"}), Example("7", "7  ", {"width": 3, "side": "right"})],
    [ArgSpec("width", "integer", "The length to pad to (at most 1000).", required=True),
     ArgSpec("char", "string", "The single padding character.", default=" "),
     ArgSpec("side", "string", "Which side to pad.", default="left", choices=("left", "right"))],
    phrase=lambda a: f"padded to {a['width']} characters with {a['char']!r}",
)
def _pad(a: dict[str, Any]) -> Step:
    width: int = a["width"]
    char: str = a["char"]
    if not 0 <= width <= MAX_PAD or len(char) != 1:
        raise StepError(f"pad needs a width between 0 and {MAX_PAD} and a single character")
    left = a["side"] == "left"
    return lambda v, _r: _text(v).rjust(width, char) if left else _text(v).ljust(width, char)


@register(
    "substring", "text", "Keeps part of the text, from a start position up to (not including) an end position.",
    [Example("GB123456789", "123456789", {"start": 2}), Example("ABCDEF", "ABC", {"start": 0, "end": 3})],
    [ArgSpec("start", "integer", "Where to start (0 is the first character).", default=0),
     ArgSpec("end", "integer", "Where to stop; leave empty for the end of the text.")],
    phrase=lambda a: f"characters {a['start']} to {a['end'] if a['end'] is not None else 'the end'}",
)
def _substring(a: dict[str, Any]) -> Step:
    start: int = a["start"]
    end: int | None = a["end"]
    return lambda v, _r: _text(v)[start:end]


@register(
    "concat", "text", "Joins this value with other source fields into one text (empty ones are left out).",
    [Example("Jane", "Jane Smith", {"fields": ["lastName"]}, record={"lastName": "Smith"})],
    [ArgSpec("fields", "list", "Other source fields to add after this value.", required=True),
     ArgSpec("separator", "string", "What to put between the pieces.", default=" ")],
    phrase=lambda a: f"joined with {', '.join(a['fields'])}", uses_record=True, passes_none=False,
)
def _concat(a: dict[str, Any]) -> Step:
    getters = [make_getter(str(p)) for p in a["fields"]]
    sep: str = a["separator"]

    def concat(v: Any, r: Mapping[str, Any]) -> Any:
        pieces = [v, *(g(r) for g in getters)]
        out = sep.join(_text(p) for p in pieces if p is not None and p != "")
        return out or None

    return concat


@register("to_text", "text", "Turns a number or other value into text.", [Example(42, "42")], phrase="as text")
def _to_text(_a: dict[str, Any]) -> Step:
    def to_text(v: Any, _r: Mapping[str, Any]) -> Any:
        if isinstance(v, bool):
            return "true" if v else "false"
        return v if isinstance(v, str) else str(v)

    return to_text
