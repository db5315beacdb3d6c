"""The page frame: header with navigation, the signed-in user and sign-out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui

from ui.auth import current_user, has_role, sign_out

NAV: list[tuple[str, str, tuple[str, ...]]] = [
    ("Home", "/", ()),
    ("Gallery", "/gallery", ()),
    ("Integrations", "/integrations", ()),
    ("Timeline", "/timeline", ("admin",)),
    ("Errors", "/errors", ("admin", "manager")),
    ("Health", "/health", ("admin",)),
    ("Migration", "/migration", ("onboarding",)),
]


@contextmanager
def frame(title: str) -> Iterator[None]:
    """Lay out a signed-in page titled ``title``; the body goes inside the ``with`` block."""
    ui.page_title(f"{title} · CareHub")
    user = current_user()
    with ui.header().classes("items-center justify-between bg-teal-800"):
        with ui.row().classes("items-center gap-4"):
            ui.link("CareHub", "/").classes("text-white text-xl font-bold no-underline")
            with ui.element("nav").props('aria-label="Main"').classes("flex gap-3"):
                for label, path, roles in NAV:
                    if not roles or has_role(roles):
                        ui.link(label, path).classes("text-white")
        if user:
            with ui.row().classes("items-center gap-2"):
                ui.label(f"{user['name'] or user['email']} ({user['role']})").classes("text-white")
                ui.button("Sign out", on_click=sign_out).props("flat color=white")
    with ui.element("main").classes("w-full max-w-6xl mx-auto p-4 gap-4 flex flex-col"):
        ui.label(title).classes("text-2xl font-semibold").props("role=heading aria-level=1")
        yield
