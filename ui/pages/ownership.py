"""Who owns which data: the operation mode and the per-care-type ownership matrix."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from storage.integrations import (
    InvalidInput,
    NotFound,
    get_integration,
    get_ownership,
    get_sync_settings,
    set_operation_mode,
    set_ownership,
)
from ui.auth import actor
from ui.components import theme
from ui.components.ownership_text import CONFLICTS, DIRECTIONS, MODES, SYSTEMS, fill, rule_sentence
from ui.layout import frame
from ui.services import services


@ui.page("/integrations/{integration_id}/ownership")
def ownership_page(integration_id: str) -> None:
    """Pick one of the five operation modes, then adjust each data type's rule."""
    theme.apply()
    with frame("Who owns the data"):
        try:
            with services().db.session() as session:
                row = get_integration(session, integration_id=integration_id)
                streams = list(get_sync_settings(session, integration_id=integration_id).streams)
                existing = {o.care_type: o for o in get_ownership(session, integration_id=integration_id)}
        except NotFound:
            ui.label("That integration does not exist (it may have been deleted).").mark("ownership-missing")
            ui.link("See all integrations", "/integrations")
            return
        system = row.system_name or row.connector_id
        care_types = list(dict.fromkeys(str(s["care_type"]) for s in streams))
        if not care_types:
            ui.label("Choose what to sync first.").mark("ownership-no-types")
            ui.link("Choose data types", f"/connect/{row.connector_id}?integration={row.id}")
            return
        preset = MODES.get(row.operation_mode) or MODES["hybrid_equal"]
        rules: dict[str, dict[str, Any]] = {}
        for ct in care_types:
            o = existing.get(ct)
            rules[ct] = {"primary_system": o.primary_system if o else preset.primary,
                         "sync_direction": o.sync_direction if o else preset.direction,
                         "update_permissions": list(o.update_permissions) if o else list(preset.permissions),
                         "conflict_resolution": o.conflict_resolution if o else preset.conflict}
        state = {"mode": row.operation_mode if row.operation_mode in MODES else "hybrid_equal"}

        ui.label(f"Decide which system is in charge of each kind of record: WriteCareNotes or {system}.")
        with ui.card().classes("w-full"):
            ui.label("1. How do you work?").classes("text-lg font-semibold").props("role=heading aria-level=2")
            mode_sentence = ui.label(fill(MODES[state["mode"]].sentence, system)).mark("mode-sentence").props(
                "aria-live=polite")

            def choose_mode(value: str) -> None:
                state["mode"] = value
                p = MODES[value]
                mode_sentence.text = fill(p.sentence, system)
                for ct in care_types:
                    rules[ct] = {"primary_system": p.primary, "sync_direction": p.direction,
                                 "update_permissions": list(p.permissions), "conflict_resolution": p.conflict}
                matrix.refresh()

            ui.radio({k: f"{fill(m.label, system)}: {fill(m.sentence, system)}" for k, m in MODES.items()},
                     value=state["mode"], on_change=lambda e: choose_mode(e.value)).props(
                'aria-label="Operation mode"').mark("mode-picker")

        @ui.refreshable
        def matrix() -> None:
            with ui.card().classes("w-full gap-3"):
                ui.label("2. Each kind of record").classes("text-lg font-semibold").props("role=heading aria-level=2")
                for ct in care_types:
                    _rule_row(ct, rules[ct], system)

        matrix()
        message = ui.label("").props("role=alert").classes("text-red-800")

        def save() -> None:
            try:
                with services().db.session() as session:
                    set_operation_mode(session, actor=actor(), integration_id=row.id, mode=state["mode"])
                    for ct in care_types:
                        r = rules[ct]
                        if not r["update_permissions"]:
                            raise InvalidInput("at least one system must be allowed to change records")
                        set_ownership(session, actor=actor(), integration_id=row.id, care_type=ct, **r)
            except InvalidInput as exc:
                message.text = f"Not saved: {exc}"
                return
            message.text = ""
            ui.notify("Ownership saved.", type="positive")

        with ui.row().classes("gap-2"):
            ui.button("Save ownership", icon="save", on_click=save).props("no-caps").mark("save-ownership")
            ui.button("Next: schedule and settings", icon="arrow_forward",
                      on_click=lambda: ui.navigate.to(f"/integrations/{row.id}/settings")).props(
                "flat no-caps").mark("next-settings")


def _rule_row(care_type: str, rule: dict[str, Any], system: str) -> None:
    with ui.element("fieldset").classes("w-full border rounded p-3").mark(f"rule-{care_type}"):
        with ui.element("legend").classes("px-1 font-semibold"):
            ui.label(care_type)
        sentence = ui.label("").classes("text-sm").props("aria-live=polite").mark(f"rule-sentence-{care_type}")

        def update() -> None:
            sentence.text = rule_sentence(care_type, system, rule["primary_system"], rule["sync_direction"],
                                          rule["update_permissions"], rule["conflict_resolution"])

        def setter(key: str) -> Any:
            def apply(e: Any) -> None:
                rule[key] = e.value
                update()
            return apply

        with ui.row().classes("gap-4 w-full items-start"):
            ui.select({k: fill(v, system) for k, v in SYSTEMS.items()}, value=rule["primary_system"],
                      label=f"Main system for {care_type}", on_change=setter("primary_system")).classes("w-56").mark(
                f"primary-{care_type}")
            ui.select({k: fill(v, system) for k, v in DIRECTIONS.items()}, value=rule["sync_direction"],
                      label=f"Direction for {care_type}", on_change=setter("sync_direction")).classes("w-56").mark(
                f"direction-{care_type}")
            ui.select(CONFLICTS, value=rule["conflict_resolution"], label=f"When both change a {care_type}",
                      on_change=setter("conflict_resolution")).classes("w-64").mark(f"conflict-{care_type}")
            with ui.column().classes("gap-0"):
                ui.label("Who may change them").classes("text-sm")
                for key, name in SYSTEMS.items():
                    def toggle(e: Any, k: str = key) -> None:
                        perms = [p for p in rule["update_permissions"] if p != k]
                        if e.value:
                            perms.append(k)
                        rule["update_permissions"] = perms
                        update()
                    ui.checkbox(fill(name, system), value=key in rule["update_permissions"], on_change=toggle).mark(
                        f"may-{care_type}-{key}")
        update()
