"""The errors inbox: every open integration error and conflict, grouped by cause, with a plain-English
explanation and the fix-it choices that fit (retry, edit and resubmit, map, ignore, resolve)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nicegui import ui
from sqlmodel import Session

from storage import ops_queries as oq
from storage.models import IntegrationError, utcnow
from ui.components.ops_common import allowed, in_session, when
from ui.components.ops_fix import fix_buttons, retry
from ui.layout import frame

GROUP_PAGE = 20


@dataclass
class Inbox:
    """The inbox for one visit: groups, and the open page of each expanded group."""

    names: dict[str, str]
    groups: list[oq.ErrorGroup]
    resolved_recently: int
    median_resolution_minutes: float | None


def load_inbox(session: Session, integration_id: str | None) -> Inbox:
    """Groups of open errors plus how quickly errors were resolved in the last 30 days."""
    overall, _ = oq.health(session, days=30)
    minutes = sorted(overall.resolution_minutes)
    median = minutes[len(minutes) // 2] if minutes else None
    return Inbox(oq.integration_names(session), oq.error_groups(session, integration_id), len(minutes), median)


def _age(error_time: Any) -> str:
    opened = oq.aware(error_time)
    if opened is None:
        return "—"
    minutes = (utcnow() - opened).total_seconds() / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h" if minutes < 48 * 60 else f"{minutes / 1440:.0f} days"


@ui.page("/errors")
async def errors_page(integration: str = "") -> None:
    """Open errors by cause; fix one, or retry a whole group at once."""
    with frame("Errors inbox"):
        if not allowed(("admin", "manager")):
            return
        names = await in_session(oq.integration_names)
        state: dict[str, Any] = {"integration": integration if integration in names else None, "pages": {}}
        select = ui.select({"": "All integrations", **dict(sorted(names.items(), key=lambda kv: kv[1]))},
                           value=state["integration"] or "", label="Integration").classes("w-72").mark(
            "integration-filter")

        def change(e: Any) -> None:
            state["integration"] = e.value or None
            inbox.refresh()

        select.on_value_change(change)

        @ui.refreshable
        async def inbox() -> None:
            data = await in_session(load_inbox, state["integration"])
            median = "—" if data.median_resolution_minutes is None else \
                f"{data.median_resolution_minutes:.0f} minutes"
            ui.label(f"Resolved in the last 30 days: {data.resolved_recently}; median time to resolve: {median} "
                     "(target: under 2 hours).").classes("text-sm text-slate-700").mark("resolution-time")
            if not data.groups:
                ui.label("Nothing waiting: every error has been dealt with.").classes("text-green-900").mark(
                    "inbox-empty")
                return
            for group in data.groups:
                aged = (utcnow() - group.oldest).total_seconds() > oq.ERROR_AGE_ALERT.total_seconds()
                with ui.card().classes("w-full").mark(f"group-{group.key}"):
                    with ui.row().classes("items-center justify-between w-full"):
                        ui.label(f"{group.count} {group.error_type.replace('_', ' ')} error{'s' if group.count > 1 else ''}"
                                 f"{' — ' + group.error_code if group.error_code else ''}").classes(
                            "text-lg font-semibold").props("role=heading aria-level=2")
                        ui.label(f"oldest {_age(group.oldest)} ago" + (" — past the 2-hour target" if aged else "")
                                 ).classes("text-red-800 font-medium" if aged else "text-slate-700")
                    ui.label(f"Cause: {group.explanation.cause}")
                    ui.label(f"How to fix: {group.explanation.fix}")
                    await _group_errors(group, state, inbox)

        await inbox()


async def _group_errors(group: oq.ErrorGroup, state: dict[str, Any], inbox: Any) -> None:
    page = state["pages"].get(group.key, 1)
    rows, total = await in_session(oq.errors_in_group, group.error_type, group.error_code,
                                   integration_id=state["integration"], page=page, page_size=GROUP_PAGE)

    async def done() -> None:
        inbox.refresh()

    if "retry" in group.explanation.actions:
        async def retry_all() -> None:
            everything, _ = await in_session(oq.errors_in_group, group.error_type, group.error_code,
                                             integration_id=state["integration"], page=1, page_size=1000)
            await retry([e.id for e in everything], done)
        ui.button(f"Retry all {group.count}", icon="replay", on_click=retry_all).props("no-caps").mark(
            f"retry-all-{group.key}")
    with ui.expansion(f"Show the {total} errors", value=total <= 5).classes("w-full"):
        for error in rows:
            _error_row(error, done)
        pages = max(1, -(-total // GROUP_PAGE))
        if pages > 1:
            def go(e: Any) -> None:
                state["pages"][group.key] = int(e.value)
                inbox.refresh()
            ui.pagination(1, pages, direction_links=True, value=page, on_change=go).props("max-pages=7")


def _error_row(error: IntegrationError, done: Any) -> None:
    with ui.column().classes("w-full gap-1 border-b py-2").mark(f"error-{error.id}"):
        ui.label(error.error_message or error.error_code).classes("font-medium")
        with ui.row().classes("gap-4 text-sm text-slate-700"):
            ui.label(f"at {when(oq.aware(error.timestamp))}")
            ui.label(f"record {error.record_id or '—'}")
            ui.label(f"retries {error.retry_count}/{error.max_retries}")
            if error.run_id:
                ui.link("Open the run", f"/runs/{error.run_id}").classes("text-blue-800")
        fix_buttons(error, done)
