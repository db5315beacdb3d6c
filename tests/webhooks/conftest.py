"""Webhook fixtures: an ASGI client on the inbound receiver app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest


@pytest.fixture
async def hooks(ctx: Any, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``/webhooks/{integration_id}/{webhook_id}`` (the receiver app, in process)."""
    from app.webhooks_in import forget_receivers, webhooks_app

    forget_receivers()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=webhooks_app), base_url="http://t") as c:
        yield c
    forget_receivers()
