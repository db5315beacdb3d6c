"""Shared pieces of the operate and migration pages: database calls off the event loop, status
badges, role gates, plain formatting. Vendor and user text is always shown as text, never HTML."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar, cast

from nicegui import run, ui
from sqlmodel import Session

from storage.migration_plans import MigrationError
from storage.ops_queries import OpsError
from ui.auth import has_role
from ui.services import services

T = TypeVar("T")

STATUS_STYLE: dict[str, tuple[str, str, str]] = {
    # status: (label, badge classes, chart colour)
    "queued": ("Waiting to start", "bg-slate-200 text-slate-900", "#64748b"),
    "running": ("Running", "bg-blue-100 text-blue-900", "#1d4ed8"),
    "paused": ("Paused for approval", "bg-amber-100 text-amber-900", "#b45309"),
    "waiting": ("Waiting (vendor limit)", "bg-amber-100 text-amber-900", "#d97706"),
    "succeeded": ("Succeeded", "bg-green-100 text-green-900", "#15803d"),
    "failed": ("Failed", "bg-red-100 text-red-900", "#b91c1c"),
    "cancelled": ("Cancelled", "bg-slate-200 text-slate-900", "#475569"),
    "rolled_back": ("Rolled back", "bg-purple-100 text-purple-900", "#7e22ce"),
}


def status_label(status: str) -> str:
    """The words for a run status."""
    return STATUS_STYLE.get(status, (status.replace("_", " ").capitalize(), "", ""))[0]


def status_colour(status: str) -> str:
    """The chart colour of a run status."""
    return STATUS_STYLE.get(status, ("", "", "#334155"))[2]


def status_badge(status: str) -> None:
    """A badge that always shows the status in words (colour only repeats it)."""
    label, classes, _ = STATUS_STYLE.get(status, (status, "bg-slate-200 text-slate-900", ""))
    ui.label(label).classes(f"px-2 py-0.5 rounded border text-sm font-medium {classes}").mark(f"status-{status}")


def escape(text: Any) -> str:
    """HTML-escaped text for the few places (chart tooltips) that render HTML."""
    return html.escape(str(text), quote=True)


def when(value: datetime | None) -> str:
    """A timestamp as people read it (UTC)."""
    return value.strftime("%d %b %Y %H:%M:%S") if value else "—"


def seconds_text(value: float | None) -> str:
    """``75.2`` -> ``1 min 15 s``."""
    if value is None:
        return "—"
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def pct_text(value: float | None) -> str:
    """A percentage with up to three decimals, or a dash."""
    return "—" if value is None else f"{value:.3f}".rstrip("0").rstrip(".") + " %"


async def in_session(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(session, *args)`` in one committed transaction, off the event loop."""

    def work() -> T:
        with services().db.session() as session:
            return fn(session, *args, **kwargs)

    return cast(T, await run.io_bound(work))  # None only while the app shuts down


async def attempt(fn: Callable[..., T], *args: Any, success: str = "", **kwargs: Any) -> T | None:
    """Like :func:`in_session`, but a refused action becomes a warning for the person, not a crash."""
    try:
        result = await in_session(fn, *args, **kwargs)
    except (OpsError, MigrationError) as exc:
        ui.notify(str(exc), type="warning", multi_line=True)
        return None
    if success:
        ui.notify(success, type="positive")
    return result


def allowed(roles: Iterable[str]) -> bool:
    """True when the signed-in user may see the page; otherwise says so on the page."""
    if has_role(roles):
        return True
    ui.label("You do not have access to this page. Ask an administrator for the right role.").props(
        "role=alert").classes("text-red-800")
    return False


def page_session(fn: Callable[[Session], T]) -> Callable[[], T]:
    """Wrap a query for :func:`nicegui.run.io_bound` with its own session."""

    def work() -> T:
        with services().db.session() as session:
            return fn(session)

    return work


def plain_table(columns: list[tuple[str, str]], rows: list[dict[str, Any]], *, caption: str = "") -> ui.element:
    """A plain HTML table (no scroll container, so nothing a keyboard cannot reach); cells are text."""
    with ui.element("table").classes("w-full text-sm border-collapse") as table:
        if caption:
            with ui.element("caption").classes("text-left font-medium"):
                ui.label(caption)
        with ui.element("thead"), ui.element("tr"):
            for _, label in columns:
                with ui.element("th").classes("text-left border-b p-2").props("scope=col"):
                    ui.label(label)
        with ui.element("tbody"):
            for row in rows:
                with ui.element("tr").classes("border-b"):
                    for key, _ in columns:
                        with ui.element("td").classes("p-2"):
                            ui.label(str(row.get(key, "")))
    return table
