"""NiceGUI pages; :func:`register_all` (re)registers every page module's routes.

A page module either declares routes with ``@ui.page`` at module level or defines a
``register()`` function. NiceGUI's test fixtures clear all routes between tests, so
modules already imported are reloaded to run their decorators again.
"""

from __future__ import annotations

import importlib
import sys

PAGE_MODULES = ["ui.pages.login", "ui.pages.home", "ui.pages.gallery", "ui.pages.connect", "ui.pages.integrations",
                "ui.pages.designer", "ui.pages.ownership", "ui.pages.settings"]
# Operate (timeline, runs, errors, health) and migrate (wizard): issue 9.
PAGE_MODULES += ["ui.pages.timeline", "ui.pages.run_detail", "ui.pages.errors", "ui.pages.health", "ui.pages.migration"]


def register_all() -> None:
    """Register every page module's routes (idempotent per NiceGUI app reset)."""
    for name in PAGE_MODULES:
        module = importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)
        register = getattr(module, "register", None)
        if callable(register):
            register()
