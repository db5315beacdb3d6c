"""Load mapping templates (``templates/mappings/<connector>/<CareType>.yaml``) into designs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.mapping.errors import MappingError
from engine.mapping.models import MappingDesign

MAX_TEMPLATE_BYTES = 256 * 1024


def load_mapping_template(source: str | Mapping[str, Any]) -> MappingDesign:
    """A design from YAML (or JSON) text or an already-parsed dict; :class:`MappingError` if invalid."""
    if isinstance(source, str):
        if len(source) > MAX_TEMPLATE_BYTES:
            raise MappingError("the mapping template is too large")
        import yaml  # data-format parser only; templates are data, never code

        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise MappingError(f"the mapping template is not valid YAML: {exc}") from None
    else:
        data = dict(source)
    if not isinstance(data, Mapping):
        raise MappingError("a mapping template must be a mapping of keys to values")
    try:
        return MappingDesign.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MappingError(f"the mapping template is not valid: {first['msg']} (at {where})") from None


def load_mapping_template_file(path: str | Path) -> MappingDesign:
    """Read and load one template file."""
    return load_mapping_template(Path(path).read_text(encoding="utf-8"))


def list_mapping_templates(root: str | Path) -> dict[tuple[str, str], Path]:
    """``{(connector, CareType): path}`` for every template under ``root`` (templates/mappings)."""
    base = Path(root)
    return {(p.parent.name, p.stem): p for p in sorted(base.glob("*/*.yaml"))}
