"""Who is signed in to the browser session, and what their role allows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nicegui import app, ui

ROLE_RANK = {"manager": 1, "onboarding": 1, "admin": 2}


def current_user() -> dict[str, Any] | None:
    """The signed-in user as stored in the session: ``{"id", "email", "role", "name"}``."""
    user = app.storage.user.get("user")
    return user if isinstance(user, dict) else None


def sign_in(user_id: int, email: str, role: str, name: str) -> None:
    """Remember the user in the signed session cookie."""
    app.storage.user["user"] = {"id": user_id, "email": email, "role": role, "name": name}


def sign_out() -> None:
    """Forget the user and return to the login page."""
    app.storage.user.pop("user", None)
    ui.navigate.to("/login")


def has_role(allowed: Iterable[str]) -> bool:
    """True when the signed-in user has one of ``allowed`` (admins always do)."""
    user = current_user()
    if user is None:
        return False
    return user["role"] == "admin" or user["role"] in set(allowed)


def actor() -> str:
    """The signed-in user's email for audit rows."""
    user = current_user()
    return str(user["email"]) if user else "anonymous"
