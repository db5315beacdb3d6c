"""NiceGUI pages; each module registers its routes when :func:`register_all` imports it."""

from __future__ import annotations

import importlib

PAGE_MODULES = ["ui.pages.login", "ui.pages.home"]


def register_all() -> None:
    """Import every page module so its ``@ui.page`` routes exist."""
    for name in PAGE_MODULES:
        importlib.import_module(name)
