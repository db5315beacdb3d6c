"""One sync run: summary, events, errors with fix-it choices, per-record outcomes with before/after
diffs and field lineage, and (for admins) rollback of everything the run wrote."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui
from sqlmodel import Session

from storage import ops_queries as oq
from storage.migration_plans import rollback_run
from storage.models import FieldLineage, RecordOutcome, SyncRun
from ui.auth import actor, has_role
from ui.components.ops_common import allowed, attempt, in_session, seconds_text, status_badge, when
from ui.components.ops_fix import fix_buttons
from ui.layout import frame

OUTCOME_PAGE = 20
ACTIVE = ("queued", "running", "waiting", "paused")
OUTCOME_LABELS = {"": "All outcomes", "created": "Created", "updated": "Updated", "written": "Written",
                  "unchanged": "Unchanged", "skipped": "Skipped",
                  "failed": "Failed", "conflict": "Conflict", "deleted": "Deleted"}


def _value(value: Any) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _outcomes(session: Session, run_id: str, page: int, outcome: str) -> tuple[
        list[RecordOutcome], int, dict[str, list[FieldLineage]]]:
    rows, total = oq.outcomes_page(session, run_id, page, OUTCOME_PAGE, outcome or None)
    lineage = {r.record_id: oq.lineage(session, r.record_id) for r in rows if r.record_id}
    return rows, total, lineage


def _status(session: Session, run_id: str) -> str | None:
    run = session.get(SyncRun, run_id)
    return run.status if run else None


@ui.page("/runs/{run_id}")
async def run_page(run_id: str) -> None:
    """The run's story, record by record."""
    with frame("Sync run"):
        if not allowed(("admin", "manager")):
            return

        @ui.refreshable
        async def summary() -> None:
            detail = await in_session(oq.run_detail, run_id)
            if detail is None:
                ui.label("There is no run with that id. It may have been removed.").props("role=alert")
                ui.link("Back to the timeline", "/timeline")
                return
            run = detail.run
            started, finished = oq.aware(run.started_at), oq.aware(run.finished_at)
            duration = (finished - started).total_seconds() if started and finished else None
            with ui.card().classes("w-full"):
                with ui.row().classes("items-center gap-3"):
                    ui.label(detail.integration).classes("text-xl font-semibold").props("role=heading aria-level=2")
                    status_badge(run.status)
                    ui.label(f"{run.trigger} run").classes("text-slate-700")
                with ui.grid(columns=4).classes("gap-x-8 gap-y-1"):
                    for label, value in [("Queued", when(oq.aware(run.queued_at))),
                                         ("Started", when(oq.aware(run.started_at))),
                                         ("Finished", when(oq.aware(run.finished_at))),
                                         ("Duration", seconds_text(duration))]:
                        ui.label(label).classes("text-sm text-slate-700")
                        ui.label(value)
                counts = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items()) if isinstance(v, int | float))
                ui.label(f"Records: {counts or 'none yet'}").mark("run-counts")
                streams = run.counts.get("streams")
                if isinstance(streams, dict):
                    for stream, per in sorted(streams.items()):
                        if isinstance(per, dict):
                            ui.label(f"{stream}: " + ", ".join(f"{k} {v}" for k, v in sorted(per.items()) if v)
                                     ).classes("text-sm text-slate-700")
                if run.error:
                    ui.label(run.error).classes("text-red-800")
                if detail.rollback_possible and has_role(("admin",)):
                    ui.button("Roll back this run", icon="undo", on_click=lambda: _confirm_rollback(run_id, refresh_all)
                              ).props("color=negative outline no-caps").mark("rollback-run")
            with ui.row().classes("w-full gap-4 items-start no-wrap"):
                with ui.card().classes("w-1/3"):
                    ui.label("Events").classes("text-lg font-semibold").props("role=heading aria-level=2")
                    with ui.timeline(side="right", layout="dense"):
                        for event in detail.events:
                            with ui.timeline_entry(subtitle=when(oq.aware(event.at)), icon="circle"):
                                ui.label(event.kind.replace("_", " ")).classes("font-medium")
                                ui.label(event.message).classes("text-sm")
                with ui.card().classes("grow"):
                    open_errors = [e for e in detail.errors if not e.resolved]
                    ui.label(f"Errors ({len(open_errors)} open of {len(detail.errors)})").classes(
                        "text-lg font-semibold").props("role=heading aria-level=2")
                    for error in detail.errors:
                        with ui.column().classes("gap-1 border-b py-2 w-full").mark(f"error-{error.id}"):
                            ui.label(error.error_message).classes("font-medium")
                            explanation = oq.explain(error.error_type)
                            ui.label(explanation.cause).classes("text-sm text-slate-700")
                            if error.resolved:
                                ui.label(f"Dealt with: {error.resolution_action} by {error.resolved_by} — "
                                         f"{error.resolution_note}").classes("text-sm text-green-900").mark(
                                    f"resolved-{error.id}")
                            else:
                                ui.label(f"How to fix: {explanation.fix}").classes("text-sm")
                                fix_buttons(error, refresh_all)

        @ui.refreshable
        async def outcomes() -> None:
            rows, total, lineage = await in_session(_outcomes, run_id, state["page"], state["outcome"])
            ui.label(f"Records ({total})").classes("text-lg font-semibold").props("role=heading aria-level=2")
            select = ui.select(OUTCOME_LABELS, value=state["outcome"], label="Show").classes("w-48")

            def change(e: Any) -> None:
                state.update(outcome=e.value or "", page=1)
                outcomes.refresh()

            select.on_value_change(change)
            for row in rows:
                title = f"{row.care_type or row.stream} {row.external_id} — {row.outcome}" + (
                    f": {row.reason}" if row.reason else "")
                with ui.expansion(title).classes("w-full border rounded").mark(f"outcome-{row.external_id}"):
                    changes = oq.diff(row.before or {}, row.after or {})
                    if changes:
                        ui.table(columns=[{"name": n, "label": lbl, "field": n, "align": "left"} for n, lbl in
                                          [("field", "Field"), ("before", "Before"), ("after", "After"),
                                           ("kind", "Change")]],
                                 rows=[{"field": c.field, "before": _value(c.before), "after": _value(c.after),
                                        "kind": c.kind} for c in changes], row_key="field").classes("w-full").props(
                            "flat dense hide-pagination :rows-per-page-options=[0]")
                    else:
                        ui.label("No field changed.").classes("text-sm")
                    if row.record_id:
                        ui.label(f"Care record {row.record_id}: where each field came from").classes(
                            "text-sm font-medium mt-2")
                        for item in lineage.get(row.record_id, []):
                            ui.label(f"{item.field}: {item.system or 'unknown system'}, run {item.run_id[:8]}, "
                                     f"source record {item.source_record_id}").classes("text-sm")
            pages = max(1, -(-total // OUTCOME_PAGE))
            if pages > 1:
                def go(e: Any) -> None:
                    state["page"] = int(e.value)
                    outcomes.refresh()
                ui.pagination(1, pages, direction_links=True, value=state["page"], on_change=go).props("max-pages=7")

        async def refresh_all() -> None:
            summary.refresh()
            outcomes.refresh()

        state: dict[str, Any] = {"page": 1, "outcome": ""}
        await summary()
        with ui.card().classes("w-full"):
            await outcomes()
        seen: dict[str, str | None] = {"status": await in_session(_status, run_id)}

        async def follow() -> None:
            status = await in_session(_status, run_id)
            if status in ACTIVE or status != seen["status"]:
                seen["status"] = status
                await refresh_all()

        ui.timer(3.0, follow)  # a run still going updates itself; a finished one stays still


def _confirm_rollback(run_id: str, done: Any) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-[30rem]").props('role=dialog aria-label="Roll back run"'):
        ui.label("Roll back this run?").classes("text-lg font-semibold").props("role=heading aria-level=2")
        ui.label("Every record this run created is removed and every record it changed gets its earlier "
                 "values back, from version history. This is recorded in the audit log.").classes("text-sm")
        reason = ui.input("Reason").classes("w-full").mark("rollback-reason")

        async def go() -> None:
            report = await attempt(rollback_run, run_id, actor=actor(), reason=str(reason.value or ""))
            if report is not None:
                ui.notify(f"Rolled back: {report.restored} restored, {report.removed} removed.", type="positive")
                dialog.close()
                await done()

        with ui.row().classes("justify-end w-full"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Roll back", on_click=go).props("color=negative").mark("rollback-confirm")
    dialog.open()
