"""Fast JSON on the read path: orjson bodies and compiled JMESPath searches.

Every page of every stream goes through these, once per record for keys and timestamps: compiling an
expression per call (what ``jmespath.search`` does) costs more than the lookup itself, and a plain field
name needs no interpreter at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import httpx
import jmespath
import orjson

Search = Callable[[Any], Any]

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_PLAIN = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*")


def _dotted(keys: tuple[str, ...]) -> Search:
    if len(keys) == 1:
        key = keys[0]

        def one(data: Any) -> Any:
            return data.get(key) if isinstance(data, dict) else None

        return one

    def many(data: Any) -> Any:
        for key in keys:
            if not isinstance(data, dict):
                return None
            data = data.get(key)
        return data

    return many


@lru_cache(maxsize=2048)
def compiled(expression: str) -> Search:
    """A search function for ``expression`` with JMESPath's semantics, compiled once per expression.

    Dotted identifiers (``Contact.Name``) read dictionaries directly, giving None wherever JMESPath would.
    """
    if _PLAIN.fullmatch(expression):
        return _dotted(tuple(expression.split(".")))
    return jmespath.compile(expression).search


def search(expression: str, data: Any) -> Any:
    """``jmespath.search`` without compiling ``expression`` again."""
    return compiled(expression)(data)


def response_json(resp: httpx.Response) -> Any:
    """The decoded JSON body of ``resp`` (orjson for UTF-8 bodies, the standard library otherwise).

    Raises ``ValueError`` (as ``Response.json`` does) when the body is not JSON.
    """
    try:
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        # Other encodings, NaN and integers past 64 bits: the standard library decodes what orjson refuses.
        return json.loads(resp.text)
