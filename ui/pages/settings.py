"""Schedule and settings: how often, how much at once, retries, when to stop, whom to tell."""

from __future__ import annotations

import re
from typing import Any

from nicegui import ui

from storage.integrations import (
    InvalidInput,
    NotFound,
    get_integration,
    get_sync_settings,
    update_sync_settings,
)
from ui.auth import actor
from ui.components import theme
from ui.components.ownership_text import schedule_sentence
from ui.layout import frame
from ui.services import services

FREQUENCIES = {"manual": "Only when I press Sync now", "minutes": "Every few minutes", "hourly": "Every hour",
               "daily": "Once a day"}
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def collect(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Turn the form's values into sync settings; the second item lists problems in plain words."""
    problems: list[str] = []
    kind = str(values.get("kind") or "manual")
    frequency: dict[str, Any] = {"kind": kind}
    if kind == "minutes":
        every = _int(values.get("every"), "Minutes between runs", 5, 1440, problems)
        frequency["every"] = every
    elif kind == "daily":
        at = str(values.get("at") or "")
        if not _TIME.match(at):
            problems.append("Time of day must look like 02:00.")
        frequency["at"] = at
    email = str(values.get("email") or "").strip()
    if email and not _EMAIL.match(email):
        problems.append("The email address does not look right.")
    settings = {
        "sync_frequency": frequency,
        "batch_size": _int(values.get("batch_size"), "Records per batch", 1, 10_000, problems),
        "retry_policy": {"max_attempts": _int(values.get("max_attempts"), "Tries per record", 1, 20, problems),
                         "backoff_seconds": _int(values.get("backoff_seconds"), "Seconds between tries", 1, 86_400,
                                                 problems)},
        "error_threshold": _int(values.get("error_threshold"), "Errors before the sync stops", 0, 1_000_000, problems),
        "pause_on_empty_read": bool(values.get("pause_on_empty_read")),
        "max_change_share": _int(values.get("max_change_pct"), "Largest share of records one run may change", 1, 100,
                                 problems) / 100,
        "notification_settings": {"on_failure": bool(values.get("on_failure")),
                                  "on_success": bool(values.get("on_success")), "email": email},
    }
    return settings, problems


def _int(value: Any, label: str, low: int, high: int, problems: list[str]) -> int:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        problems.append(f"{label} must be a whole number.")
        return low
    if not low <= number <= high:
        problems.append(f"{label} must be between {low} and {high}.")
    return number


@ui.page("/integrations/{integration_id}/settings")
def settings_page(integration_id: str) -> None:
    """The schedule and the safety settings of one integration."""
    theme.apply()
    with frame("Schedule and settings"):
        try:
            with services().db.session() as session:
                row = get_integration(session, integration_id=integration_id)
                cfg = get_sync_settings(session, integration_id=integration_id)
        except NotFound:
            ui.label("That integration does not exist (it may have been deleted).").mark("settings-missing")
            ui.link("See all integrations", "/integrations")
            return
        freq = dict(cfg.sync_frequency or {"kind": "manual"})
        retry = dict(cfg.retry_policy or {})
        notes = dict(cfg.notification_settings or {})
        values: dict[str, Any] = {
            "kind": freq.get("kind", "manual"), "every": freq.get("every", 15), "at": freq.get("at", "02:00"),
            "batch_size": cfg.batch_size, "max_attempts": retry.get("max_attempts", 3),
            "backoff_seconds": retry.get("backoff_seconds", 60), "error_threshold": cfg.error_threshold,
            "pause_on_empty_read": cfg.pause_on_empty_read, "max_change_pct": round(cfg.max_change_share * 100),
            "on_failure": notes.get("on_failure", True), "on_success": notes.get("on_success", False),
            "email": notes.get("email", ""),
        }

        def setv(key: str) -> Any:
            def apply(e: Any) -> None:
                values[key] = e.value
                summary.text = schedule_sentence({"kind": values["kind"], "every": values["every"],
                                                  "at": values["at"]}) + "."
            return apply

        with ui.card().classes("w-full max-w-3xl gap-2"):
            ui.label("When to sync").classes("text-lg font-semibold").props("role=heading aria-level=2")
            ui.select(FREQUENCIES, value=values["kind"], label="How often", on_change=setv("kind")).classes(
                "w-72").mark("frequency")
            with ui.row().classes("gap-4"):
                every = ui.number("Minutes between runs", value=values["every"], min=5, max=1440,
                                  on_change=setv("every")).classes("w-80").mark("every")
                at = ui.input("Time of day, like 02:00", value=values["at"], on_change=setv("at")).classes(
                    "w-80").mark("at")
            every.bind_visibility_from(values, "kind", backward=lambda k: k == "minutes")
            at.bind_visibility_from(values, "kind", backward=lambda k: k == "daily")
            summary = ui.label(schedule_sentence(freq) + ".").props("aria-live=polite").mark("schedule-sentence")
        with ui.card().classes("w-full max-w-3xl gap-2"):
            ui.label("How much at once, and retries").classes("text-lg font-semibold").props("role=heading aria-level=2")
            ui.number("Records per batch", value=values["batch_size"], min=1, max=10_000,
                      on_change=setv("batch_size")).classes("w-64").mark("batch-size")
            ui.label("Smaller batches are gentler on the other system; larger ones finish sooner.").classes("text-sm")
            with ui.row().classes("gap-4"):
                ui.number("Tries per record", value=values["max_attempts"], min=1, max=20,
                          on_change=setv("max_attempts")).classes("w-64").mark("max-attempts")
                ui.number("Seconds between tries", value=values["backoff_seconds"], min=1,
                          on_change=setv("backoff_seconds")).classes("w-64").mark("backoff")
        with ui.card().classes("w-full max-w-3xl gap-2"):
            ui.label("When to stop and ask").classes("text-lg font-semibold").props("role=heading aria-level=2")
            ui.number("Errors before the sync stops", value=values["error_threshold"], min=0,
                      on_change=setv("error_threshold")).classes("w-64").mark("error-threshold")
            ui.number("Largest share of records one run may change (%)", value=values["max_change_pct"], min=1,
                      max=100, on_change=setv("max_change_pct")).classes("w-80").mark("max-change")
            ui.checkbox("Pause and ask me if a run finds no records when there usually are some",
                        value=values["pause_on_empty_read"], on_change=setv("pause_on_empty_read"))
        with ui.card().classes("w-full max-w-3xl gap-2"):
            ui.label("Notifications").classes("text-lg font-semibold").props("role=heading aria-level=2")
            ui.checkbox("Tell me when a sync fails", value=values["on_failure"], on_change=setv("on_failure"))
            ui.checkbox("Tell me when a sync finishes", value=values["on_success"], on_change=setv("on_success"))
            ui.input("Email for notifications (optional)", value=values["email"], on_change=setv("email")).props(
                "type=email").classes("w-96").mark("email")
        message = ui.label("").props("role=alert").classes("text-red-800").mark("settings-message")

        def save() -> None:
            settings, problems = collect(values)
            if problems:
                message.text = "Not saved: " + " ".join(problems)
                return
            try:
                with services().db.session() as session:
                    update_sync_settings(session, actor=actor(), integration_id=row.id, **settings)
            except InvalidInput as exc:
                message.text = "Not saved: " + "; ".join(f"{p.field} {p.reason}" for p in exc.problems)
                return
            message.text = ""
            ui.notify("Settings saved.", type="positive")

        with ui.row().classes("gap-2"):
            ui.button("Save settings", icon="save", on_click=save).props("no-caps").mark("save-settings")
            ui.button("Next: review and sync", icon="arrow_forward",
                      on_click=lambda: ui.navigate.to(f"/integrations/{row.id}")).props("flat no-caps").mark(
                "next-review")
