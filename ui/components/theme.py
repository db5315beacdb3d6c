"""Colours with enough contrast for white text (WCAG AA): the default light blue is too pale."""

from __future__ import annotations

from nicegui import ui

PRIMARY = "#115e59"  # teal-800, 7.6:1 against white


def apply() -> None:
    """Set this page's Quasar brand colours."""
    ui.colors(primary=PRIMARY, secondary="#1e3a8a", accent="#6b21a8", positive="#166534", negative="#991b1b",
              info="#1e40af", warning="#92400e")
