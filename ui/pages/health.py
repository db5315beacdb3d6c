"""Health: the spec's targets against measured figures, overall and per integration, with trends,
stale-data warnings and the alerts that were sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nicegui import ui
from sqlmodel import Session

from storage import ops_queries as oq
from storage.audit import recent_audit
from ui.components.ops_common import allowed, in_session, pct_text, plain_table, seconds_text, when
from ui.layout import frame

TARGET_TEXT = {
    "success_pct": ("Sync success", "more than 99.5 %"),
    "accuracy_pct": ("Data accuracy", "more than 99.9 %"),
    "duration_seconds": ("Sync duration (95th percentile)", "under 5 minutes"),
    "resolution_hours": ("Error resolution (95th percentile)", "under 2 hours"),
    "uptime_pct": ("Integration uptime", "more than 99.9 %"),
}


@dataclass
class HealthView:
    """Figures for one visit."""

    overall: oq.Health
    per: list[oq.Health]
    trend: list[dict[str, Any]]
    alerts: list[tuple[str, str]]


def load_health(session: Session, days: int) -> HealthView:
    """Overall and per-integration figures, the daily trend and the latest alerts."""
    overall, per = oq.health(session, days=days)
    alerts = [(when(oq.aware(a.at)), str(a.detail.get("text", a.action)))
              for a in recent_audit(session, limit=10, action="alert.sent")]
    return HealthView(overall, per, oq.daily_trend(session, days=14), alerts)


def figure_text(key: str, value: float | None) -> str:
    """A measured figure in the unit of its target."""
    if key == "duration_seconds":
        return seconds_text(value)
    if key == "resolution_hours":
        return "—" if value is None else f"{value:.2f} h"
    return pct_text(value)


def verdict(met: bool | None) -> tuple[str, str]:
    """Words and classes for a target that was met, missed or not measured."""
    if met is None:
        return "Not measured yet", "bg-slate-200 text-slate-900"
    return ("Meets target", "bg-green-100 text-green-900") if met else ("Misses target", "bg-red-100 text-red-900")


@ui.page("/health")
async def health_page(days: int = 30) -> None:
    """Targets vs measured figures for the last ``days`` days."""
    with frame("Health"):
        if not allowed(("admin",)):
            return
        days = days if days in (1, 7, 30, 90) else 30
        view = await in_session(load_health, days)
        ui.label(f"Measured over the last {days} days. Uptime counts the time from a failed run to the "
                 "next successful one as down.").classes("text-sm text-slate-700")
        stale = [h for h in view.per if h.stale]
        if stale:
            with ui.card().classes("w-full bg-amber-50 border border-amber-700").props("role=alert").mark(
                    "stale-warning"):
                ui.label("Stale data: these integrations have not synced successfully for longer than they "
                         "should, so their data in WriteCareNotes may be out of date.").classes("font-medium")
                for h in stale:
                    ui.label(f"{h.name}: last success {when(h.last_success)}")
        if view.overall.aged_errors:
            with ui.card().classes("w-full bg-red-50 border border-red-700").props("role=alert").mark("aged-errors"):
                ui.label(f"{view.overall.aged_errors} errors have waited more than 2 hours.").classes("font-medium")
                ui.link("Open the errors inbox", "/errors").classes("text-blue-800")
        figures, meets = view.overall.figures(), view.overall.meets()
        with ui.row().classes("gap-4 w-full"):
            for key, (label, target) in TARGET_TEXT.items():
                words, classes = verdict(meets[key])
                with ui.card().classes("w-52").mark(f"target-{key}"):
                    ui.label(label).classes("text-sm text-slate-700")
                    ui.label(figure_text(key, figures[key])).classes("text-2xl font-bold")
                    ui.label(f"Target: {target}").classes("text-sm")
                    ui.label(words).classes(f"px-2 rounded text-sm font-medium {classes}")
        ui.label("Per integration").classes("text-lg font-semibold").props("role=heading aria-level=2")
        columns = [("name", "Integration"), *[(k, TARGET_TEXT[k][0]) for k in TARGET_TEXT], ("runs", "Runs"),
                   ("open", "Open errors"), ("last", "Last success")]
        rows = []
        for h in view.per:
            row: dict[str, Any] = {"name": h.name + (" (stale)" if h.stale else ""), "runs": h.runs,
                                   "open": h.open_errors, "last": when(h.last_success)}
            for key, value in h.figures().items():
                met = h.meets()[key]
                row[key] = figure_text(key, value) + ("" if met is None else (" (met)" if met else " (missed)"))
            rows.append(row)
        plain_table(columns, rows).mark("health-table")
        ui.label("Trend (last 14 days)").classes("text-lg font-semibold").props("role=heading aria-level=2")
        ui.echart({
            "animation": False, "aria": {"enabled": True}, "legend": {"top": 0}, "tooltip": {"trigger": "axis"},
            "grid": {"left": 60, "right": 60, "top": 40, "bottom": 30},
            "xAxis": {"type": "category", "data": [d["day"] for d in view.trend]},
            "yAxis": [{"type": "value", "name": "runs"}, {"type": "value", "name": "success %", "min": 0, "max": 100}],
            "series": [
                {"type": "bar", "name": "Runs", "data": [d["runs"] for d in view.trend], "itemStyle": {"color": "#0f766e"}},
                {"type": "line", "name": "Success %", "yAxisIndex": 1, "data": [d["success_pct"] for d in view.trend],
                 "itemStyle": {"color": "#b91c1c"}},
                {"type": "line", "name": "Average duration (s)", "data": [d["avg_seconds"] for d in view.trend],
                 "itemStyle": {"color": "#1d4ed8"}}],
        }).classes("w-full h-72").props('role=img aria-label="Daily runs, success rate and duration"')
        ui.label("Alerts sent").classes("text-lg font-semibold").props("role=heading aria-level=2")
        if not view.alerts:
            ui.label("No alerts yet. Alerts go out when a run fails or an error waits more than 2 hours, to the "
                     "people in each integration's notification settings.").classes("text-sm")
        for at, text in view.alerts:
            ui.label(f"{at}: {text}").classes("text-sm").mark("alert-row")
