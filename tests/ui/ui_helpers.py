"""Helpers for the simulated-browser page tests: sign in, connect Xero through its sandbox."""

from __future__ import annotations

from typing import Any

from nicegui import ui
from nicegui.testing import User

from storage.integrations import list_integrations
from storage.users import create_user

PASSWORD = "long-enough-pw"


async def sign_in(user: User, db: Any, email: str = "manager@home.example", role: str = "manager") -> None:
    """Create a user and sign in through the login page."""
    with db.session() as s:
        create_user(s, email=email, password=PASSWORD, role=role, name="Mo Manager")
    await user.open("/login")
    user.find("Email").type(email)
    user.find("Password").type(PASSWORD)
    user.find(kind=ui.button, content="Sign in").click()
    await user.should_see("Connect a system", retries=300)


def newest_integration(db: Any) -> str:
    """The id of the integration created last."""
    with db.session() as s:
        rows = list_integrations(s, limit=1).items
    assert rows, "no integration was created"
    return rows[0].id


async def connect_xero(user: User, db: Any, name: str = "Xero for Willow Court") -> str:
    """Connect the Xero sandbox through the real authorization-code redirect; returns the integration id."""
    await user.open("/connect/xero")
    user.find(marker="connect-name").clear().type(name)
    user.find(marker="connect-submit").click()
    await user.should_see("Success: Connected to Xero", retries=100)
    return newest_integration(db)

