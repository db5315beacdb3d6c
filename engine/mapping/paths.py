"""Plain dotted paths (``Contact.Name``, ``Addresses[0].PostalCode``): the fast path, no JMESPath per record."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.mapping.errors import MappingError

Getter = Callable[[Mapping[str, Any]], Any]
PathPart = str | int

_SEGMENT = re.compile(r"^([A-Za-z_$@][A-Za-z0-9_$@\- ]*)?((?:\[\d{1,4}\])*)$")
_INDEX = re.compile(r"\[(\d{1,4})\]")
MAX_PATH_CHARS = 256
MAX_PATH_PARTS = 12


def is_plain_path(text: str) -> bool:
    """True when ``text`` is a dotted path the fast path can read without JMESPath."""
    try:
        parse_path(text)
    except MappingError:
        return False
    return True


def parse_path(text: str) -> tuple[PathPart, ...]:
    """``'a.b[0].c'`` -> ``('a', 'b', 0, 'c')``; raises :class:`MappingError` for anything else."""
    if not isinstance(text, str) or not text or len(text) > MAX_PATH_CHARS:
        raise MappingError(f"{text!r} is not a field path")
    parts: list[PathPart] = []
    for segment in text.split("."):
        m = _SEGMENT.match(segment)
        if not m or (not m.group(1) and not m.group(2)):
            raise MappingError(f"{text!r} is not a plain field path (use an expression for anything fancier)")
        if m.group(1):
            parts.append(m.group(1))
        parts.extend(int(i) for i in _INDEX.findall(m.group(2)))
    if len(parts) > MAX_PATH_PARTS:
        raise MappingError(f"{text!r} is nested more than {MAX_PATH_PARTS} levels deep")
    return tuple(parts)


def _step(container: Any, part: PathPart) -> Any:
    if type(part) is int:
        if isinstance(container, list) and -len(container) <= part < len(container):
            return container[part]
        return None
    # A plain dict first: the abstract Mapping check costs more than the whole step otherwise.
    if type(container) is dict or isinstance(container, Mapping):
        return container.get(part)
    return None


def make_getter(text: str) -> Getter:
    """A closure reading ``text`` from a record; missing parts give None, never an exception."""
    parts = parse_path(text)
    if len(parts) == 1 and isinstance(parts[0], str):
        key = parts[0]

        def get1(record: Mapping[str, Any]) -> Any:
            return record.get(key)

        return get1
    if len(parts) == 2 and isinstance(parts[0], str) and isinstance(parts[1], str):
        k0, k1 = str(parts[0]), str(parts[1])

        def get2(record: Mapping[str, Any]) -> Any:
            v = record.get(k0)
            return v.get(k1) if isinstance(v, dict) else None

        return get2

    if len(parts) == 3 and isinstance(parts[0], str) and type(parts[1]) is int and isinstance(parts[2], str):
        return _item_key_getter(parts[0], parts[1], parts[2])

    def get_n(record: Mapping[str, Any]) -> Any:
        v: Any = record
        for part in parts:
            v = _step(v, part)
            if v is None:
                return None
        return v

    return get_n


def _item_key_getter(key: str, index: int, inner: str) -> Getter:
    """``key[index].inner`` (``Addresses[0].City``), the commonest nested path, without the general loop."""

    def get_item_key(record: Mapping[str, Any]) -> Any:
        items = record.get(key)
        if not isinstance(items, list) or not -len(items) <= index < len(items):
            return None
        item = items[index]
        if type(item) is dict or isinstance(item, Mapping):
            return item.get(inner)
        return None

    return get_item_key


def set_path(target: dict[str, Any], parts: tuple[PathPart, ...], value: Any) -> None:
    """Write ``value`` at ``parts`` inside ``target``, creating dicts and lists on the way."""
    current: Any = target
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt: Any = None if last else ([] if isinstance(parts[i + 1], int) else {})
        if isinstance(part, int):
            assert isinstance(current, list)
            while len(current) <= part:
                current.append(None)
            if last:
                current[part] = value
            else:
                if current[part] is None:
                    current[part] = nxt
                current = current[part]
        else:
            assert isinstance(current, dict)
            if last:
                current[part] = value
            else:
                existing = current.get(part)
                if not isinstance(existing, (dict, list)):
                    current[part] = nxt
                current = current[part]


def get_path(record: Mapping[str, Any], text: str) -> Any:
    """Read one path once (slow path for occasional use; compile a getter for loops)."""
    return make_getter(text)(record)
