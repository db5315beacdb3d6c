"""Live progress of a sync run: a progress bar and counts, polled from the SyncRun row with ui.timer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from storage.ui_queries import RunNotFound, get_run
from ui.components.badges import RUN_STATUS
from ui.services import services

TERMINAL = {"succeeded", "failed", "cancelled", "rolled_back", "paused"}
COUNT_WORDS = [("read", "read"), ("created", "new"), ("updated", "updated"), ("unchanged", "unchanged"),
               ("written", "written"), ("skipped", "skipped"), ("failed", "failed")]


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """What the progress widget shows at one moment."""

    status: str
    counts: dict[str, Any]
    error: str
    fraction: float | None


def snapshot(run_id: str) -> RunSnapshot:
    """Read the run row now."""
    with services().db.session() as session:
        run = get_run(session, run_id)
        counts = dict(run.counts or {})
        status, error = run.status, run.error
    total = counts.get("total") or counts.get("expected")
    done = sum(int(counts.get(k) or 0) for k in ("created", "updated", "unchanged", "skipped", "failed"))
    fraction: float | None = None
    if status in TERMINAL:
        fraction = 1.0
    elif isinstance(total, int | float) and total > 0:
        fraction = min(1.0, done / float(total))
    return RunSnapshot(status, counts, error, fraction)


def counts_sentence(counts: dict[str, Any]) -> str:
    """"12 read, 10 new, 2 unchanged"; zero counts are left out."""
    parts = [f"{int(counts[k])} {word}" for k, word in COUNT_WORDS if int(counts.get(k) or 0)]
    return ", ".join(parts) if parts else "nothing counted yet"


def run_progress(run_id: str, *, interval: float = 1.0,
                 on_finish: Callable[[RunSnapshot], None] | None = None) -> None:
    """Show a run's progress until it ends, then its result and a link to it."""
    with ui.card().classes("w-full gap-2").mark("run-progress"):
        title = ui.label("Sync started").classes("font-semibold").props("role=status aria-live=polite").mark(
            "run-status")
        bar = ui.linear_progress(value=0, show_value=False).props(
            'indeterminate aria-label="Sync progress"').classes("w-full")
        counts = ui.label("Waiting for the worker to pick it up…").props("aria-live=polite").mark("run-counts")
        result = ui.column().classes("gap-1")

        def tick() -> None:
            try:
                snap = snapshot(run_id)
            except RunNotFound:
                title.text = "That sync run has disappeared."
                timer.deactivate()
                return
            label = RUN_STATUS.get(snap.status, (snap.status, ""))[0]
            title.text = f"Sync: {label}"
            if snap.fraction is None:
                bar.props(add="indeterminate")
            else:
                bar.props(remove="indeterminate")
                bar.value = snap.fraction
            if snap.status != "queued":
                counts.text = counts_sentence(snap.counts)
            if snap.status in TERMINAL:
                timer.deactivate()
                result.clear()
                with result:
                    if snap.status == "succeeded":
                        ui.label(f"Finished: {counts_sentence(snap.counts)}.").classes("text-green-900").mark(
                            "run-finished")
                    else:
                        ui.label(f"{label}: {snap.error or 'see the run for details'}").classes("text-red-800").mark(
                            "run-problem")
                    ui.link("Open this sync run", f"/runs/{run_id}").mark("run-link")
                if on_finish is not None:
                    on_finish(snap)

        timer = ui.timer(interval, tick)
