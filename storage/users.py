"""Users, passwords (argon2), login throttling and API bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pwdlib import PasswordHash
from sqlmodel import Session, select

from storage.audit import record_audit
from storage.models import ApiToken, Role, User, utcnow

_hasher = PasswordHash.recommended()
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
TOKEN_PREFIX = "chub_"


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The outcome of a login attempt; ``reason`` is safe to show to the person."""

    user: User | None
    reason: str = ""


def hash_password(password: str) -> str:
    """Hash a password with argon2."""
    return _hasher.hash(password)


def create_user(session: Session, *, email: str, password: str, role: Role | str, name: str = "",
                actor: str = "system") -> User:
    """Create a user; refuses duplicates, unknown roles and passwords under 10 characters."""
    email = email.strip().lower()
    if "@" not in email:
        raise UserError(f"'{email}' is not an email address")
    if len(password) < 10:
        raise UserError("Passwords need at least 10 characters")
    try:
        role = Role(role)
    except ValueError as exc:
        raise UserError(f"Unknown role '{role}': choose one of {', '.join(r.value for r in Role)}") from exc
    if session.exec(select(User).where(User.email == email)).first() is not None:
        raise UserError(f"A user with email {email} already exists")
    user = User(email=email, password_hash=hash_password(password), role=role.value, name=name)
    session.add(user)
    session.flush()
    record_audit(session, actor=actor, action="user.create", entity_type="user", entity_id=str(user.id),
                 detail={"email": email, "role": role.value})
    return user


def authenticate(session: Session, email: str, password: str, *, now: datetime | None = None) -> LoginResult:
    """Check a login; after five failures the account is locked for fifteen minutes."""
    now = now or utcnow()
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.is_active:
        _hasher.hash(password)  # equalise timing with the known-user path
        record_audit(session, actor=email, action="login", outcome="denied", detail={"reason": "unknown"})
        return LoginResult(None, "Wrong email or password.")
    locked_until = _aware(user.locked_until)
    if locked_until and locked_until > now:
        record_audit(session, actor=email, action="login", entity_type="user", entity_id=str(user.id),
                     outcome="locked")
        minutes = max(1, int((locked_until - now).total_seconds() // 60))
        return LoginResult(None, f"Too many failed attempts: try again in {minutes} minutes.")
    if not _hasher.verify(password, user.password_hash):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        session.add(user)
        record_audit(session, actor=email, action="login", entity_type="user", entity_id=str(user.id),
                     outcome="denied")
        return LoginResult(None, "Wrong email or password.")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.add(user)
    record_audit(session, actor=email, action="login", entity_type="user", entity_id=str(user.id))
    return LoginResult(user)


def issue_token(session: Session, user: User, name: str = "api") -> str:
    """Create an API bearer token for ``user``; the clear token is returned once, only its hash stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    assert user.id is not None
    session.add(ApiToken(user_id=user.id, name=name, token_hash=token_hash(token), prefix=token[:10]))
    record_audit(session, actor=user.email, action="token.create", entity_type="user", entity_id=str(user.id))
    return token


def token_hash(token: str) -> str:
    """SHA-256 of a bearer token (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a bearer token belongs to, or None."""
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).first()
    if row is None or row.revoked:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    row.last_used_at = utcnow()
    session.add(row)
    return user


def ensure_admin(session: Session, email: str, password: str | None) -> tuple[User, str | None]:
    """Make sure an admin exists; returns it and the generated password when one was created."""
    existing = session.exec(select(User).where(User.role == Role.ADMIN.value)).first()
    if existing is not None:
        return existing, None
    clear = password or secrets.token_urlsafe(12)
    return create_user(session, email=email, password=clear, role=Role.ADMIN, name="Administrator"), clear


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
