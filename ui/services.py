"""What the pages need from the composition root, handed over by ``app`` at start-up.

``ui`` may not import ``app`` (layer rule), so ``app`` calls :func:`configure` once and
pages call :func:`services`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from storage.crypto import SecretBox
from storage.db import Database


@dataclass
class Services:
    """Shared, long-lived objects for page handlers."""

    db: Database
    box: SecretBox
    redis_url: str
    allow_private_hosts: bool = False
    sandboxes_enabled: bool = True
    public_url: str = "http://localhost:8080"
    # Queue a manual sync run: (integration_id, requested_by) -> run id. Set by ``app`` (ui may not import it).
    enqueue_run: Callable[[str, str], Awaitable[str]] | None = None
    # Queue a retry run of failed records: (integration_id, params, requested_by) -> run id. Set by ``app``.
    enqueue_retry: Callable[[str, dict[str, Any], str], Awaitable[str]] | None = None


_services: Services | None = None


def configure(services: Services) -> None:
    """Install the services (called by ``app.web`` before serving)."""
    global _services
    _services = services


def services() -> Services:
    """The installed services; raises if the app was not configured."""
    if _services is None:
        raise RuntimeError("ui.services.configure() was not called by the app")
    return _services
