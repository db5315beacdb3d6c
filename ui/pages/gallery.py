"""The gallery: every system the spec names, grouped by category, searchable, with honest availability."""

from __future__ import annotations

from nicegui import ui

from connectors.catalog import CatalogEntry
from ui.components import theme
from ui.components.badges import AVAILABILITY, CATEGORY_LABELS, availability_badge
from ui.components.connector_access import catalog
from ui.layout import frame


def matches(entry: CatalogEntry, text: str) -> bool:
    """True when every word of ``text`` appears in the system's name, category, kind, route or note."""
    hay = " ".join([entry.name, CATEGORY_LABELS.get(entry.category, entry.category), entry.subcategory,
                    entry.integration_method, entry.availability, entry.note]).lower()
    return all(word in hay for word in text.lower().split())


def _card(entry: CatalogEntry) -> None:
    card = ui.card().classes("w-72 gap-2").props("role=listitem").mark(f"system-{entry.id}")
    card.props["aria-label"] = entry.name
    with card:
        with ui.row().classes("items-center justify-between w-full no-wrap"):
            ui.label(entry.name).classes("text-lg font-semibold").props("role=heading aria-level=3")
            availability_badge(entry.availability)
        ui.label(f"{entry.subcategory.replace('_', ' ').capitalize()} · route: {entry.integration_method}").classes(
            "text-sm text-slate-700")
        ui.label(entry.note).classes("text-sm")
        ui.label(AVAILABILITY.get(entry.availability, ("", "", ""))[2]).classes("text-sm text-slate-700")
        if entry.connector and entry.availability in ("available", "partner-only"):
            # A bank's card opens the Open Banking connector with that bank already chosen.
            target = f"/connect/{entry.connector}" + (f"?bank={entry.id}" if entry.connector != entry.id
                                                      and entry.connector == "open_banking" else "")
            label = f"Connect {entry.name}" + (" (with partner access)" if entry.availability == "partner-only" else "")
            ui.button(label, icon="link", on_click=lambda t=target: ui.navigate.to(t)).props(
                "no-caps").mark(f"connect-{entry.id}")



@ui.page("/gallery")
def gallery_page(q: str = "") -> None:
    """Search and browse every system; connect the ones that are available."""
    entries = sorted(catalog().list(), key=lambda e: (e.category, e.subcategory, e.name.lower()))
    state = {"text": q, "available_only": False}

    @ui.refreshable
    def results() -> None:
        shown = [e for e in entries if matches(e, str(state["text"]))
                 and (not state["available_only"] or e.availability == "available")]
        ui.label(f"{len(shown)} of {len(entries)} systems").props('aria-live=polite').mark("gallery-count")
        if not shown:
            ui.label("No system matches your search. Try a shorter word, like a vendor name or 'payroll'.").mark(
                "gallery-empty")
            return
        for category, title in CATEGORY_LABELS.items():
            group = [e for e in shown if e.category == category]
            if not group:
                continue
            with ui.element("section").classes("w-full").props(f'aria-label="{title}"'):
                ui.label(f"{title} ({len(group)})").classes("text-xl font-semibold mt-2").props(
                    "role=heading aria-level=2")
                with ui.row().classes("gap-4 flex-wrap").props("role=list"):
                    for entry in group:
                        _card(entry)

    def on_search(value: str | None) -> None:
        state["text"] = value or ""
        results.refresh()

    def on_toggle(value: bool) -> None:
        state["available_only"] = bool(value)
        results.refresh()

    theme.apply()

    with frame("Connect a system"):
        ui.label("Pick the system your care home already uses. Systems marked Available can be connected "
                 "today; the others show how they will be reached.")
        with ui.row().classes("items-center gap-4 w-full"):
            ui.input("Search systems", value=q, on_change=lambda e: on_search(e.value)).props(
                'clearable type=search aria-label="Search systems"').classes("w-96").mark("gallery-search")
            ui.switch("Only systems I can connect now", on_change=lambda e: on_toggle(e.value)).mark(
                "gallery-available-only")
        results()
