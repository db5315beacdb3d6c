"""The sign-in page."""

from __future__ import annotations

from nicegui import run, ui
from starlette.responses import RedirectResponse

from storage.users import LoginResult, authenticate
from ui.auth import current_user, sign_in
from ui.services import services


def _check(email: str, password: str) -> LoginResult:
    with services().db.session() as session:
        return authenticate(session, email, password)


@ui.page("/login")
def login_page(redirect_to: str = "/") -> RedirectResponse | None:
    """Email and password form; five failures lock the account for fifteen minutes."""
    if current_user():
        return RedirectResponse("/")
    ui.page_title("Sign in · CareHub")

    async def try_login() -> None:
        result = await run.io_bound(_check, email.value or "", password.value or "")
        if result is None:  # the server is shutting down
            return
        if result.user is None or result.user.id is None:
            message.text = result.reason
            message.set_visibility(True)
            return
        sign_in(result.user.id, result.user.email, result.user.role, result.user.name)
        target = redirect_to if redirect_to.startswith("/") and not redirect_to.startswith("//") else "/"
        ui.navigate.to(target)

    with ui.element("main").classes("w-full flex justify-center mt-16"), ui.card().classes("w-96"):
        ui.label("Sign in to CareHub").classes("text-xl font-semibold").props("role=heading aria-level=1")
        email = ui.input("Email").props('autocomplete=username type=email').classes("w-full")
        password = ui.input("Password", password=True, password_toggle_button=True).props(
            "autocomplete=current-password").classes("w-full")
        password.on("keydown.enter", try_login)
        message = ui.label("").classes("text-red-800").props('role=alert')
        message.set_visibility(False)
        ui.button("Sign in", on_click=try_login).classes("w-full").mark("sign-in")
    return None
