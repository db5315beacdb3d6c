"""Fix-it controls for one integration error: retry, edit the value and resubmit, map to another
record, ignore with a reason, resolve. Used by the errors inbox and the run page."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from storage import ops_queries as oq
from storage.models import IntegrationError
from ui.auth import actor
from ui.components.ops_common import attempt, in_session, plain_table
from ui.services import services

Done = Callable[[], Awaitable[None]]


async def queue_retries(plans: dict[str, dict[str, Any]]) -> list[str]:
    """Queue one ``retry`` run per integration: through the sync worker when the app wired it
    (``Services.enqueue_retry``), else as a queued run row."""
    enqueue_retry = services().enqueue_retry
    run_ids = []
    for integration_id, params in plans.items():
        if enqueue_retry is not None:
            run_ids.append(await enqueue_retry(integration_id, params, actor()))
        else:
            run_ids.append(await in_session(oq.queue_retry_run, integration_id, params, actor()))
    return run_ids


async def retry(error_ids: list[str], done: Done) -> None:
    """Mark the errors for retry, queue the retry runs and refresh."""
    plans = await attempt(oq.retry_errors, error_ids, actor())
    if plans is not None:
        await queue_retries(plans)
        ui.notify(f"Retry queued for {len(error_ids)} error(s).", type="positive")
        await done()


def _dialog_edit(error: IntegrationError, done: Done) -> None:
    details = error.error_details
    field = str(details.get("field") or "")
    with ui.dialog() as dialog, ui.card().classes("w-[32rem]").props('role=dialog aria-label="Edit and resubmit"'):
        ui.label("Correct the value and resubmit").classes("text-lg font-semibold").props("role=heading aria-level=2")
        ui.label(f"{error.stream or details.get('care_type', '')} record {error.record_id or ''}").classes("text-sm")
        ui.label(f"Problem: {field} {details.get('problem', error.error_message)}").classes("text-sm")
        name = ui.input("Field", value=field).props("readonly" if field else "").classes("w-full").mark("fix-field")
        value = ui.input(f"New value for {field or 'the field'}", value=str(details.get("value") or "")).classes(
            "w-full").mark("fix-value")

        async def submit() -> None:
            record = await attempt(oq.resubmit_with_value, error.id, str(name.value or ""), value.value, actor(),
                                   success="Saved: the corrected record was written.")
            if record is not None:
                dialog.close()
                await done()

        with ui.row().classes("justify-end w-full"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Resubmit", on_click=submit).mark("fix-submit")
    dialog.open()


def _dialog_text(title: str, label: str, button: str, action: Callable[[str], Awaitable[bool]]) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-[28rem]").props(f'role=dialog aria-label="{title}"'):
        ui.label(title).classes("text-lg font-semibold").props("role=heading aria-level=2")
        text = ui.input(label).classes("w-full").mark("fix-text")

        async def submit() -> None:
            if await action(str(text.value or "")):
                dialog.close()

        with ui.row().classes("justify-end w-full"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button(button, on_click=submit).mark("fix-text-submit")
    dialog.open()


def fix_buttons(error: IntegrationError, done: Done) -> None:
    """The fix-it choices that fit this error's cause, as buttons."""
    actions = oq.explain(error.error_type).actions

    async def ignore(reason: str) -> bool:
        ok = await attempt(oq.ignore_error, error.id, reason, actor(), success="Ignored.") is not None
        if ok:
            await done()
        return ok

    async def resolve(note: str) -> bool:
        ok = await attempt(oq.resolve_error, error.id, note, actor(), success="Marked as resolved.") is not None
        if ok:
            await done()
        return ok

    async def remap(record_id: str) -> bool:
        ok = await attempt(oq.map_to_record, error.id, record_id, actor(), success="Mapped.") is not None
        if ok:
            await done()
        return ok

    if "choose" in actions and isinstance(error.error_details.get("incoming"), dict):
        _conflict_choice(error, done)
    with ui.row().classes("gap-1"):
        if "retry" in actions:
            ui.button("Retry", icon="replay", on_click=lambda: retry([error.id], done)).props(
                "dense outline no-caps").mark(f"retry-{error.id}")
        if "edit" in actions and isinstance(error.error_details.get("record"), dict):
            ui.button("Edit value and resubmit", icon="edit", on_click=lambda: _dialog_edit(error, done)).props(
                "dense outline no-caps").mark(f"edit-{error.id}")
        if "map" in actions:
            ui.button("Map to another record", icon="link", on_click=lambda: _dialog_text(
                "Map to another record", "Care record id", "Map", remap)).props("dense outline no-caps")
        ui.button("Ignore", icon="block", on_click=lambda: _dialog_text(
            "Ignore this error", "Why can it be ignored?", "Ignore", ignore)).props("dense outline no-caps").mark(
            f"ignore-{error.id}")
        ui.button("Resolve", icon="check", on_click=lambda: _dialog_text(
            "Mark as resolved", "What was done (optional)", "Resolve", resolve)).props("dense outline no-caps")


def _conflict_choice(error: IntegrationError, done: Done) -> None:
    """Both versions side by side, and a button to keep each."""
    local = error.error_details.get("local") or {}
    incoming = error.error_details.get("incoming") or {}
    changes = oq.diff(local if isinstance(local, dict) else {}, incoming)
    plain_table([("field", "Field"), ("before", "WriteCareNotes now"), ("after", "Incoming")],
                [{"field": c.field, "before": shown(c.before), "after": shown(c.after)} for c in changes],
                caption="Where the two versions differ").mark(f"conflict-{error.id}")

    async def keep(which: str) -> None:
        if await attempt(oq.resolve_conflict, error.id, which, actor(), success="Conflict settled.") is not None:
            await done()

    with ui.row().classes("gap-1"):
        ui.button("Keep WriteCareNotes' version", on_click=lambda: keep("writecarenotes")).props(
            "dense no-caps").mark(f"keep-local-{error.id}")
        ui.button("Use the incoming version", on_click=lambda: keep("incoming")).props("dense no-caps").mark(
            f"keep-incoming-{error.id}")


def shown(value: Any) -> str:
    """A field value as text for the comparison table."""
    return "—" if value is None else value if isinstance(value, str) else json.dumps(value, default=str)
