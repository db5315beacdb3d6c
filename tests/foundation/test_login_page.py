"""The login page in NiceGUI's simulated browser: success, wrong password, lockout, redirect."""

from __future__ import annotations

from nicegui.testing import User

from storage.users import create_user


def _make_user(db: object, email: str, role: str = "manager") -> None:
    with db.session() as s:  # type: ignore[attr-defined]
        create_user(s, email=email, password="long-enough-pw", role=role, name="Sam Carer")


async def test_anonymous_is_sent_to_login(user: User, db: object) -> None:
    await user.open("/")
    await user.should_see("Sign in to CareHub")


async def test_login_then_home(user: User, db: object) -> None:
    _make_user(db, "sam@home.example")
    await user.open("/login")
    user.find("Email").type("sam@home.example")
    user.find("Password").type("long-enough-pw")
    user.find(marker="sign-in").click()
    await user.should_see("Integrations", retries=50)
    await user.should_see("Sam Carer (manager)")


async def test_wrong_password_says_so(user: User, db: object) -> None:
    _make_user(db, "kim@home.example")
    await user.open("/login")
    user.find("Email").type("kim@home.example")
    user.find("Password").type("not-the-password")
    user.find(marker="sign-in").click()
    await user.should_see("Wrong email or password.", retries=50)
    await user.should_not_see("Sam Carer")
