"""The connector manifests the worker runs: ``CAREHUB_CONNECTOR_DIRS`` first, then ``templates/connectors``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from connectors.catalog import default_directory
from connectors.manifest import ConnectorManifest, load_manifest


@lru_cache(maxsize=128)
def connector_manifest(connector_id: str) -> ConnectorManifest | None:
    """One connector's manifest, parsed once per process; None when no file names it.

    Raises :class:`connectors.errors.ManifestError` for a manifest that does not validate.
    """
    dirs = [Path(p) for p in os.environ.get("CAREHUB_CONNECTOR_DIRS", "").split(os.pathsep) if p]
    for d in [*dirs, default_directory()]:
        path = d / f"{connector_id}.yaml"
        if path.exists():
            return load_manifest(path)
    return None
