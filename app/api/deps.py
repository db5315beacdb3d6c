"""Dependencies shared by every /api/v1 route: the context, a session, the bearer user, roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status
from sqlmodel import Session

from app.context import AppContext, get_context
from storage.users import user_for_token


@dataclass(frozen=True, slots=True)
class ApiUser:
    """The caller behind a bearer token."""

    id: int
    email: str
    role: str


def context() -> AppContext:
    """The process-wide application context."""
    return get_context()


def db_session(ctx: AppContext = Depends(context)) -> Iterator[Session]:
    """One session per request; commits when the handler returns without error."""
    with ctx.db.session() as session:
        yield session


def api_user(request: Request, ctx: AppContext = Depends(context)) -> ApiUser:
    """Resolve ``Authorization: Bearer <token>`` to a user, or answer 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Send an API token as 'Authorization: Bearer <token>'.",
                            headers={"WWW-Authenticate": "Bearer"})
    with ctx.db.session() as session:
        user = user_for_token(session, token.strip())
        if user is None or user.id is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "The API token is unknown or revoked.",
                                headers={"WWW-Authenticate": "Bearer"})
        return ApiUser(id=user.id, email=user.email, role=user.role)


def require_roles(*roles: str) -> Callable[[ApiUser], ApiUser]:
    """A dependency allowing only ``roles`` (admins are always allowed)."""

    def check(user: ApiUser = Depends(api_user)) -> ApiUser:
        if user.role != "admin" and user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"Your role '{user.role}' may not do this; it needs one of: {', '.join(roles)}.")
        return user

    return check
