"""Small, accessible status badges: the word is always shown, colour only repeats it."""

from __future__ import annotations

from nicegui import ui

CATEGORY_LABELS: dict[str, str] = {
    "finance": "Finance",
    "hr_workforce": "HR and workforce",
    "healthcare": "Healthcare",
    "operations": "Operations",
}

AVAILABILITY: dict[str, tuple[str, str, str]] = {
    # value: (label, tailwind classes, sentence for screen readers and the card)
    "available": ("Available", "bg-green-100 text-green-900 border-green-700",
                  "You can connect this system now."),
    "planned": ("Planned", "bg-amber-100 text-amber-900 border-amber-700",
                "Not built yet: it is on the plan."),
    "partner-only": ("Partner-only", "bg-slate-200 text-slate-900 border-slate-700",
                     "The vendor only opens its API to approved partners."),
}

RUN_STATUS: dict[str, tuple[str, str]] = {
    "queued": ("Waiting to start", "bg-slate-200 text-slate-900"),
    "running": ("Running", "bg-blue-100 text-blue-900"),
    "paused": ("Paused for approval", "bg-amber-100 text-amber-900"),
    "waiting": ("Waiting (vendor limit)", "bg-amber-100 text-amber-900"),
    "succeeded": ("Finished", "bg-green-100 text-green-900"),
    "failed": ("Failed", "bg-red-100 text-red-900"),
    "cancelled": ("Cancelled", "bg-slate-200 text-slate-900"),
    "rolled_back": ("Rolled back", "bg-slate-200 text-slate-900"),
}

INTEGRATION_STATUS: dict[str, tuple[str, str]] = {
    "draft": ("Draft", "bg-slate-200 text-slate-900"),
    "active": ("Active", "bg-green-100 text-green-900"),
    "paused": ("Paused", "bg-amber-100 text-amber-900"),
    "error": ("Needs attention", "bg-red-100 text-red-900"),
    "deleted": ("Deleted", "bg-slate-200 text-slate-900"),
}


def pill(text: str, classes: str) -> ui.label:
    """A rounded label; the text carries the meaning."""
    return ui.label(text).classes(f"px-2 py-0.5 rounded-full text-sm font-medium border {classes}")


def availability_badge(value: str) -> ui.label:
    """Available / Planned / Partner-only."""
    label, classes, sentence = AVAILABILITY.get(value, (value, "bg-slate-200 text-slate-900", ""))
    return pill(label, classes).props(f'title="{sentence}"').mark(f"availability-{value}")


def run_status_badge(status: str) -> ui.label:
    """A sync run's status in plain words."""
    label, classes = RUN_STATUS.get(status, (status, "bg-slate-200 text-slate-900"))
    return pill(label, classes)


def integration_status_badge(status: str) -> ui.label:
    """An integration's lifecycle status in plain words."""
    label, classes = INTEGRATION_STATUS.get(status, (status, "bg-slate-200 text-slate-900"))
    return pill(label, classes)
