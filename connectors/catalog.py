"""The connector catalog: every system in the spec, with its honest integration route.

``templates/connectors/catalog.yaml`` lists all systems (category, subcategory, method, availability,
note). Systems with a deep connector also have ``<id>.yaml`` manifests beside it; those are loaded and
validated here too. Everything is read from a directory given by the caller (``templates/`` is data).
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.errors import ManifestError
from connectors.manifest import (
    Availability,
    Category,
    ConnectorManifest,
    IntegrationMethod,
    load_manifest,
    manifest_error_from,
)

CATALOG_FILE = "catalog.yaml"


class CatalogEntry(BaseModel):
    """One system named in the product spec."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    category: Category
    subcategory: str
    integration_method: IntegrationMethod
    availability: Availability
    note: str = Field(min_length=10)
    connector: str | None = None  # id of the deep connector manifest, when one is built


class CatalogFile(BaseModel):
    """The catalog file's shape."""

    model_config = ConfigDict(extra="forbid")

    systems: list[CatalogEntry]


class Catalog:
    """Validated catalog entries and connector manifests loaded from a directory."""

    def __init__(self, entries: list[CatalogEntry], manifests: dict[str, ConnectorManifest]) -> None:
        self.entries = entries
        self.manifests = manifests

    def get(self, connector_id: str) -> ConnectorManifest:
        """The manifest of a built connector; KeyError lists the known ids."""
        try:
            return self.manifests[connector_id]
        except KeyError:
            raise KeyError(f"unknown connector `{connector_id}`; known: {', '.join(sorted(self.manifests))}") from None

    def list(self) -> builtins.list[CatalogEntry]:
        """All systems, built or not."""
        return list(self.entries)

    def as_rows(self) -> builtins.list[dict[str, Any]]:
        """Plain dicts for the CLI and the API."""
        return [e.model_dump() for e in self.entries]


def load_catalog(directory: str | Path) -> Catalog:
    """Load and validate ``catalog.yaml`` and every ``<id>.yaml`` manifest in ``directory``.

    Raises :class:`ManifestError` naming the file, the field and the allowed values.
    """
    root = Path(directory)
    manifests: dict[str, ConnectorManifest] = {}
    for path in sorted(root.glob("*.yaml")):
        if path.name == CATALOG_FILE:
            continue
        m = load_manifest(path)
        if m.id != path.stem:
            raise ManifestError(str(path), "id", f"must match the file name `{path.stem}`, got `{m.id}`")
        manifests[m.id] = m
    cat_path = root / CATALOG_FILE
    entries: list[CatalogEntry] = []
    if cat_path.exists():
        try:
            raw = yaml.safe_load(cat_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ManifestError(str(cat_path), "<yaml>", f"not valid YAML: {exc}") from None
        try:
            entries = CatalogFile.model_validate(raw).systems
        except ValidationError as exc:
            raise manifest_error_from(str(cat_path), exc) from None
        seen: set[str] = set()
        for i, e in enumerate(entries):
            if e.id in seen:
                raise ManifestError(str(cat_path), f"systems.{i}.id", f"duplicate id `{e.id}`")
            seen.add(e.id)
            if e.connector and e.connector not in manifests:
                raise ManifestError(str(cat_path), f"systems.{i}.connector", f"no manifest `{e.connector}.yaml`",
                                    sorted(manifests))
    listed = {e.connector for e in entries}
    for m in manifests.values():
        if m.id not in listed:
            entries.append(CatalogEntry(id=m.id, name=m.name, category=m.category, subcategory=m.subcategory,
                                        integration_method=m.integration_method, availability=m.availability,
                                        note=m.note or f"{m.name} connector", connector=m.id))
    return Catalog(entries, manifests)


def default_directory() -> Path:
    """``templates/connectors`` of this checkout (for the CLI; callers may pass any directory)."""
    return Path(__file__).resolve().parent.parent / "templates" / "connectors"
