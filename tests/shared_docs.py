"""Where the shared design folder (with ``vendor-specs/``) is: beside the checkout, as CI lays it out."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    Path(os.environ["CAREHUB_SHARED_DIR"]) if os.environ.get("CAREHUB_SHARED_DIR") else None,
    Path(__file__).resolve().parents[2] / "shared",
    Path("/work/shared"),
]
SHARED_DIR: Path = next((p for p in _CANDIDATES if p is not None and (p / "vendor-specs").is_dir()),
                        Path(__file__).resolve().parents[2] / "shared")
VENDOR_SPECS: Path = SHARED_DIR / "vendor-specs"
