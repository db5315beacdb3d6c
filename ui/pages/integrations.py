"""The integrations list, one integration's review page (activate, Sync now, records) and a run's page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from engine.caretypes import CARE_TYPES
from engine.mapping import MappingDesign, MappingError, explain_design
from storage.integrations import (
    NotFound,
    current_designs,
    get_integration,
    get_ownership,
    get_sync_settings,
    list_runs,
    record_view,
    update_integration,
)
from storage.models import IntegrationStatus
from storage.ui_queries import (
    integration_records,
    integration_rows,
)
from ui.auth import actor, has_role
from ui.components import theme
from ui.components.badges import integration_status_badge, run_status_badge
from ui.components.mapping_state import humanise
from ui.components.ownership_text import rule_sentence, schedule_sentence
from ui.components.run_progress import counts_sentence, run_progress
from ui.components.samples import MASKED_SENSITIVITY, short
from ui.layout import frame
from ui.services import services

RECORD_COLUMNS = 4


@ui.page("/integrations")
def integrations_page() -> None:
    """Every connection, its data types, status and last run."""
    theme.apply()
    with frame("Integrations"):
        with services().db.session() as session:
            rows = integration_rows(session)
        ui.button("Connect another system", icon="add", on_click=lambda: ui.navigate.to("/gallery")).props("no-caps")
        if not rows:
            ui.label("Nothing is connected yet. Start with the gallery.").mark("integrations-empty")
            return
        with ui.column().classes("w-full gap-2").props('role=list aria-label="Integrations"'):
            for r in rows:
                with ui.card().classes("w-full").props("role=listitem").mark(f"integration-{r.id}"):
                    with ui.row().classes("items-center justify-between w-full"):
                        ui.link(r.name, f"/integrations/{r.id}").classes("text-lg font-semibold")
                        integration_status_badge(r.status)
                    kinds = ", ".join(f"{s['stream'].replace('_', ' ')} → {s['care_type']}" for s in r.streams)
                    ui.label(f"{r.system_name}: {kinds or 'no data types chosen yet'}")
                    ui.label(f"Last sync: {r.last_run_at or 'never'}"
                             + (f" ({r.last_run_status})" if r.last_run_status else "")
                             + f" · {r.records} records linked").classes("text-sm text-slate-700")


def _review(integration_id: str) -> dict[str, Any]:
    with services().db.session() as session:
        row = get_integration(session, integration_id=integration_id)
        cfg = get_sync_settings(session, integration_id=integration_id)
        designs = {d.stream: d for d in current_designs(session, integration_id=integration_id)}
        owners = get_ownership(session, integration_id=integration_id)
    return {"row": row, "cfg": cfg, "designs": designs, "owners": owners}


@ui.page("/integrations/{integration_id}")
def integration_page(integration_id: str) -> None:
    """Review everything, switch it on, Sync now with live progress, see the records."""
    theme.apply()
    with frame("Review and sync"):
        try:
            data = _review(integration_id)
        except NotFound:
            ui.label("That integration does not exist (it may have been deleted).").mark("integration-missing")
            ui.link("See all integrations", "/integrations")
            return
        row, cfg = data["row"], data["cfg"]
        system = row.system_name or row.connector_id
        with ui.row().classes("items-center gap-3"):
            ui.label(row.name).classes("text-xl font-semibold").props("role=heading aria-level=2")
            status_holder = ui.row()
            with status_holder:
                integration_status_badge(row.status)
        if row.connection_details.get("tenant_name"):
            ui.label(f"{system} organisation: {row.connection_details['tenant_name']}")
        _checklist(row, cfg, data["designs"], data["owners"], system)

        @ui.refreshable
        def records() -> None:
            records_section(row.id)

        @ui.refreshable
        def recent() -> None:
            recent_runs(row.id)

        def after_run() -> None:
            records.refresh()
            recent.refresh()

        _actions(row.id, row.status, status_holder, after_run)
        recent()
        records()


def _checklist(row: Any, cfg: Any, designs: dict[str, Any], owners: list[Any], system: str) -> None:
    with ui.card().classes("w-full gap-2").mark("checklist"):
        ui.label("What is set up").classes("text-lg font-semibold").props("role=heading aria-level=2")
        streams = list(cfg.streams or [])
        _tick(bool(row.credentials_encrypted), f"Connected to {system}",
              f"/connect/{row.connector_id}?integration={row.id}", "Connection")
        _tick(bool(streams), "Data types chosen", f"/connect/{row.connector_id}?integration={row.id}", "Data types")
        for s in streams:
            d = designs.get(s["stream"])
            text = f"{s['stream'].replace('_', ' ')} → {s['care_type']}: " + (
                f"mapping version {d.version} saved" if d else "not mapped yet")
            _tick(d is not None, text, f"/integrations/{row.id}/design/{s['stream']}",
                  f"the {s['stream'].replace('_', ' ')} mapping")
            if d is not None:
                try:
                    paragraph = explain_design(MappingDesign.model_validate(d.design), connector_label=system,
                                               schedule_summary=schedule_sentence(dict(cfg.sync_frequency or {})))
                except (MappingError, ValueError, KeyError):
                    paragraph = ""
                if paragraph:
                    ui.label(paragraph).classes("text-sm ml-8").mark(f"explain-{s['stream']}")
        _tick(bool(owners), "Ownership decided", f"/integrations/{row.id}/ownership", "Ownership")
        for o in owners:
            ui.label(rule_sentence(o.care_type, system, o.primary_system, o.sync_direction, o.update_permissions,
                                   o.conflict_resolution)).classes("text-sm ml-8")
        _tick(True, schedule_sentence(dict(cfg.sync_frequency or {})), f"/integrations/{row.id}/settings",
              "Schedule and settings")


def _tick(ok: bool, text: str, link: str, link_label: str) -> None:
    with ui.row().classes("items-center gap-2"):
        ui.icon("check_circle" if ok else "radio_button_unchecked").classes(
            "text-green-800" if ok else "text-slate-600").props(f'aria-label="{"done" if ok else "to do"}"')
        ui.label(text)
        ui.link(f"Change {link_label[:1].lower()}{link_label[1:]}" if ok else f"Set up {link_label[:1].lower()}{link_label[1:]}",
                link).classes("text-sm")


def _actions(integration_id: str, status: str, status_holder: ui.row, refresh_records: Callable[[], None]) -> None:
    state = {"status": status}
    progress_area = ui.column().classes("w-full")

    def set_status(new: IntegrationStatus) -> None:
        with services().db.session() as session:
            update_integration(session, box=services().box, actor=actor(), integration_id=integration_id,
                               status=new.value)
        state["status"] = new.value
        status_holder.clear()
        with status_holder:
            integration_status_badge(new.value)
        buttons.refresh()
        ui.notify("Switched on." if new is IntegrationStatus.ACTIVE else "Paused.", type="positive")

    async def sync_now() -> None:
        enqueue = services().enqueue_run
        if enqueue is None:
            ui.notify("The sync worker is not available in this installation.", type="negative")
            return
        try:
            run_id = await enqueue(integration_id, actor())
        except (LookupError, ValueError, RuntimeError) as exc:
            ui.notify(f"Could not start the sync: {exc}", type="negative")
            return
        progress_area.clear()
        with progress_area:
            run_progress(run_id, on_finish=lambda _s: refresh_records())

    @ui.refreshable
    def buttons() -> None:
        with ui.row().classes("gap-2"):
            if state["status"] == IntegrationStatus.ACTIVE.value:
                ui.button("Pause", icon="pause", on_click=lambda: set_status(IntegrationStatus.PAUSED)).props(
                    "no-caps outline").mark("pause")
            else:
                ui.button("Switch on", icon="power_settings_new",
                          on_click=lambda: set_status(IntegrationStatus.ACTIVE)).props("no-caps").mark("activate")
            ui.button("Sync now", icon="sync", on_click=sync_now).props("no-caps").mark("sync-now")

    buttons()
    progress_area.move(target_index=-1)


def recent_runs(integration_id: str) -> None:
    """The integration's last five runs with links."""
    with services().db.session() as session:
        runs = list_runs(session, integration_id=integration_id, limit=5).items
    ui.label("Recent syncs").classes("text-lg font-semibold").props("role=heading aria-level=2")
    for run in runs:
        with ui.row().classes("items-center gap-3"):
            run_status_badge(run.status)
            ui.link(f"{run.queued_at:%d %b %Y %H:%M} ({run.trigger})", f"/runs/{run.id}")
            ui.label(counts_sentence(dict(run.counts or {}))).classes("text-sm text-slate-700")
    if not runs:
        ui.label("No syncs yet.").mark("no-runs")


def record_values(care_type: str, data: dict[str, Any], *, reveal: bool) -> str:
    """A record's values as one line of text; personal and health values masked unless ``reveal``."""
    ct = CARE_TYPES.get(care_type)
    parts: list[str] = []

    def walk(prefix: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            path = f"{prefix}{key}"
            if path == "externalRefs":
                continue
            if isinstance(value, dict):
                walk(path + ".", value)
                continue
            field = ct.field(path) if ct else None
            sensitive = field is not None and field.sensitivity.value in MASKED_SENSITIVITY
            parts.append(f"{humanise(path.split('.')[-1])}: {short(value, sensitive=sensitive and not reveal)}")

    walk("", data)
    return "; ".join(parts[:8])


def records_section(integration_id: str) -> None:
    """Care records this integration wrote, as text; personal and health values masked except for admins."""
    reveal = has_role(("admin",))
    with services().db.session() as session:
        rows = integration_records(session, integration_id, limit=25)
        if rows:
            record_view(session, actor=actor(), integration_id=integration_id, what="records")
    ui.label("Records in WriteCareNotes from this integration").classes("text-lg font-semibold").props(
        "role=heading aria-level=2")
    if not rows:
        ui.label("No records yet: press Sync now.").mark("no-records")
        return
    note = "" if reveal else " Personal details are partly hidden."
    ui.label(f"Showing the {len(rows)} most recently changed.{note}").mark("records-count")
    with ui.element("table").classes("w-full text-sm border-collapse").mark("records-table"):
        with ui.element("thead"), ui.element("tr"):
            for head in ("Data type", "Id in the other system", "Values", "Changed"):
                with ui.element("th").props("scope=col").classes("text-left border-b p-1"):
                    ui.label(head)
        with ui.element("tbody"):
            for link, record in rows:
                with ui.element("tr").classes("border-b"):
                    with ui.element("td").classes("p-1"):
                        ui.label(record.care_type)
                    with ui.element("td").classes("p-1"):
                        ui.label(short(link.external_id))
                    with ui.element("td").classes("p-1"):
                        ui.label(record_values(record.care_type, dict(record.data), reveal=reveal))
                    with ui.element("td").classes("p-1"):
                        ui.label(f"{record.updated_at:%d %b %H:%M}")
