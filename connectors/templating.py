"""Tiny, safe placeholder substitution for manifest strings: ``{config.x}``, ``{secrets.y}``, ``{since}``.

Only dotted look-ups into the given mappings; no expressions, no attribute access.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?:\.([A-Za-z0-9_]+))?\}")


def render(template: str, context: Mapping[str, Any]) -> str:
    """Replace ``{scope.key}`` / ``{name}`` placeholders from ``context``; unknown keys become ''."""

    def sub(m: re.Match[str]) -> str:
        scope, key = m.group(1), m.group(2)
        value = context.get(scope)
        if key is not None:
            value = value.get(key) if isinstance(value, Mapping) else None
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(sub, template)


def render_map(templates: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    """Render every value; drop entries that render empty (an optional config value left out)."""
    out = {k: render(v, context) for k, v in templates.items()}
    return {k: v for k, v in out.items() if v != ""}
