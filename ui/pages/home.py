"""Home: what is connected, what ran last, and what needs attention."""

from __future__ import annotations

from dataclasses import dataclass

from nicegui import run, ui
from sqlmodel import col, func, select

from storage.models import Integration, IntegrationError, SyncRun
from ui.layout import frame
from ui.services import services


@dataclass(frozen=True, slots=True)
class Overview:
    """Counts shown on the home page."""

    integrations: int
    active: int
    runs_today: int
    open_errors: int


def _overview() -> Overview:
    with services().db.session() as session:
        total = session.exec(select(func.count()).select_from(Integration)
                             .where(col(Integration.deleted_at).is_(None))).one()
        active = session.exec(select(func.count()).select_from(Integration)
                              .where(Integration.status == "active")).one()
        runs = session.exec(select(func.count()).select_from(SyncRun)).one()
        errors = session.exec(select(func.count()).select_from(IntegrationError)
                              .where(col(IntegrationError.resolved).is_(False))).one()
    return Overview(int(total), int(active), int(runs), int(errors))


@ui.page("/")
async def home_page() -> None:
    """The signed-in landing page."""
    overview = await run.io_bound(_overview)
    if overview is None:  # the server is shutting down
        return
    with frame("Home"):
        with ui.row().classes("gap-4"):
            for label, value in [("Integrations", overview.integrations), ("Active", overview.active),
                                 ("Sync runs", overview.runs_today), ("Open errors", overview.open_errors)]:
                with ui.card().classes("w-48"):
                    ui.label(label).classes("text-sm text-gray-700")
                    ui.label(str(value)).classes("text-3xl font-bold")
        with ui.row().classes("gap-2"):
            ui.button("Connect a system", on_click=lambda: ui.navigate.to("/gallery"))
