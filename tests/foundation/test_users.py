"""Users, argon2 passwords, login throttling, API tokens and their audit rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from storage.models import ApiToken, AuditLog, Role, User, utcnow
from storage.users import UserError, authenticate, create_user, ensure_admin, issue_token, user_for_token


def test_create_and_authenticate(db: object) -> None:
    with db.session() as s:  # type: ignore[attr-defined]
        user = create_user(s, email="Jo@Home.example", password="long-enough-pw", role=Role.MANAGER)
        assert user.password_hash.startswith("$argon2")
    with db.session() as s:  # type: ignore[attr-defined]
        assert authenticate(s, "jo@home.example", "long-enough-pw").user is not None
        assert authenticate(s, "jo@home.example", "wrong-password").user is None
        actions = [(a.action, a.outcome) for a in s.exec(select(AuditLog)).all()]
        assert ("user.create", "ok") in actions and ("login", "ok") in actions and ("login", "denied") in actions


@pytest.mark.parametrize(("email", "password", "role", "message"), [
    ("nope", "long-enough-pw", "manager", "not an email"),
    ("a@b.c", "short", "manager", "at least 10"),
    ("a@b.c", "long-enough-pw", "owner", "Unknown role 'owner'"),
])
def test_create_refuses_bad_input(db: object, email: str, password: str, role: str, message: str) -> None:
    with db.session() as s, pytest.raises(UserError, match=message):  # type: ignore[attr-defined]
        create_user(s, email=email, password=password, role=role)


def test_lockout_after_five_failures(db: object) -> None:
    with db.session() as s:  # type: ignore[attr-defined]
        create_user(s, email="lock@home.example", password="long-enough-pw", role="admin")
    for _ in range(5):
        with db.session() as s:  # type: ignore[attr-defined]
            assert authenticate(s, "lock@home.example", "bad-password-x").user is None
    with db.session() as s:  # type: ignore[attr-defined]
        result = authenticate(s, "lock@home.example", "long-enough-pw")
        assert result.user is None and "Too many failed attempts" in result.reason
    with db.session() as s:  # type: ignore[attr-defined]
        later = utcnow() + timedelta(minutes=16)
        assert authenticate(s, "lock@home.example", "long-enough-pw", now=later).user is not None


def test_tokens_are_stored_hashed(db: object) -> None:
    with db.session() as s:  # type: ignore[attr-defined]
        user = create_user(s, email="api@home.example", password="long-enough-pw", role="onboarding")
        token = issue_token(s, user)
    with db.session() as s:  # type: ignore[attr-defined]
        rows = s.exec(select(ApiToken)).all()
        assert all(token not in (r.token_hash + r.prefix) for r in rows)
        found = user_for_token(s, token)
        assert found is not None and found.email == "api@home.example"
        assert user_for_token(s, token + "x") is None


def test_ensure_admin_creates_once(db: object) -> None:
    with db.session() as s:  # type: ignore[attr-defined]
        admin, password = ensure_admin(s, "boss@home.example", None)
        assert password and admin.role == "admin"
    with db.session() as s:  # type: ignore[attr-defined]
        again, password2 = ensure_admin(s, "boss@home.example", None)
        assert again.id == admin.id and password2 is None
        assert len(s.exec(select(User)).all()) == 1
