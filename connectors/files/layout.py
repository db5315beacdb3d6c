"""File layouts as data: ``templates/file_layouts/<id>.yaml`` describes one vendor file (columns, order,
headers, types, formats, limits) so that importing and exporting it needs no vendor-specific code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.errors import ManifestError
from connectors.manifest import manifest_error_from

ColumnType = Literal["string", "integer", "decimal", "date", "datetime", "boolean", "nhs_number", "postcode",
                     "email", "phone"]


class Column(BaseModel):
    """One column of a vendor file, in file order."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    header: str
    type: ColumnType = "string"
    required: bool = False
    max_length: int | None = None
    pattern: str | None = None
    allowed: list[str] | None = None
    date_format: str | None = None  # strftime, e.g. "%d/%m/%Y"; defaults per layout
    decimals: int | None = None  # decimal places written on export (Sage 50: 2)
    min_value: float | None = None
    max_value: float | None = None
    description: str = ""
    sensitivity: Literal["none", "personal", "health", "financial"] = "none"


class FileLayout(BaseModel):
    """A vendor's documented import/export file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    vendor: str
    title: str
    source: str = Field(min_length=10)  # where the layout is documented, and what is assumed
    format: Literal["csv", "xlsx"] = "csv"
    encoding: str = "utf-8"
    delimiter: str = ","
    header: bool = True
    sheet: str | None = None  # XLSX sheet name; the first sheet when omitted
    line_terminator: str = "\r\n"
    date_format: str = "%d/%m/%Y"
    boolean_values: tuple[str, str] = ("Y", "N")
    primary_key: str
    care_type: str | None = None
    columns: list[Column] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> FileLayout:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        if self.primary_key not in names:
            raise ValueError(f"primary_key `{self.primary_key}` is not a column")
        return self

    def column(self, name: str) -> Column:
        """A column by name."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def default_layout_directory() -> Path:
    """``templates/file_layouts`` of this checkout."""
    return Path(__file__).resolve().parents[2] / "templates" / "file_layouts"


def load_layout(layout_id: str, directory: str | Path | None = None) -> FileLayout:
    """Read and validate one layout; ManifestError names the file and the field."""
    root = Path(directory) if directory else default_layout_directory()
    path = root / f"{layout_id}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in root.glob("*.yaml"))
        raise ManifestError(str(path), "id", f"no file layout `{layout_id}`", known)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ManifestError(str(path), "<yaml>", f"not valid YAML: {exc}") from None
    try:
        layout = FileLayout.model_validate(data)
    except ValidationError as exc:
        raise manifest_error_from(str(path), exc) from None
    if layout.id != layout_id:
        raise ManifestError(str(path), "id", f"must match the file name `{layout_id}`, got `{layout.id}`")
    return layout


def load_layouts(directory: str | Path | None = None) -> dict[str, FileLayout]:
    """Every layout in a directory, by id."""
    root = Path(directory) if directory else default_layout_directory()
    return {p.stem: load_layout(p.stem, root) for p in sorted(root.glob("*.yaml"))}
