"""API fixtures: an ASGI client on the /api/v1 sub-application, one bearer token per role, a canary secret."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest


@pytest.fixture
def api(ctx: Any, redis_url: str) -> Any:
    """A fresh API application on the test database and Redis."""
    from app.api import create_api

    return create_api(redis_url=redis_url)


@pytest.fixture
async def client(api: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the API in-process (base URL /api/v1 like the mounted app)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://test") as c:
        yield c


@pytest.fixture
def tokens(ctx: Any) -> dict[str, str]:
    """A bearer token for a manager, a second manager, an onboarding user and an admin."""
    from storage.users import create_user, issue_token

    out: dict[str, str] = {}
    with ctx.db.session() as s:
        for name, role in (("manager", "manager"), ("manager2", "manager"), ("onboarding", "onboarding"),
                           ("admin", "admin")):
            user = create_user(s, email=f"{name}@carehub.test", password="password-1234", role=role)
            out[name] = issue_token(s, user)
    return out
