"""Colours with enough contrast for white text (WCAG AA): the default light blue is too pale."""

from __future__ import annotations

from nicegui import app, ui

PRIMARY = "#115e59"  # teal-800, 7.6:1 against white


def apply() -> None:
    """Set this page's Quasar brand colours."""
    ui.colors(primary=PRIMARY, secondary="#1e3a8a", accent="#6b21a8", positive="#166534", negative="#991b1b",
              info="#1e40af", warning="#92400e")


def install() -> None:
    """Set the brand colours and link colour for every page of the app (pages without ``ui.colors`` too)."""
    app.colors(primary=PRIMARY, secondary="#1e3a8a", accent="#6b21a8", positive="#166534", negative="#991b1b",
               info="#1e40af", warning="#92400e")
    # NiceGUI's link blue (#3b82f6) is 3.7:1 on white; blue-700 is 6.7:1. Header links keep text-white.
    ui.add_css(".nicegui-link:not(.text-white) { color: #1d4ed8; }", shared=True)
    # Quasar's request progress bar has role=progressbar but no name; give it one as it appears.
    ui.add_head_html("""<script>
new MutationObserver(() => document.querySelectorAll('.q-loading-bar:not([aria-label])')
  .forEach(el => el.setAttribute('aria-label', 'Loading'))).observe(document.documentElement,
  {childList: true, subtree: true});
</script>""", shared=True)
