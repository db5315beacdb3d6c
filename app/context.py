"""The composition root's shared objects: settings, database, secret box, Redis URL."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from app.settings import Settings, get_settings
from storage.crypto import SecretBox
from storage.db import Database

log = logging.getLogger("carehub")


@dataclass
class AppContext:
    """Everything long-lived that pages, API routes and jobs need."""

    settings: Settings
    db: Database
    box: SecretBox

    @property
    def redis_url(self) -> str:
        """Redis URL: the configured one, or the embedded server's socket."""
        if self.settings.redis_url:
            return self.settings.redis_url
        return f"unix://{self.settings.data_dir / 'redis' / 'redis.sock'}"


def build_context(settings: Settings | None = None) -> AppContext:
    """Build a context from settings (fails fast on unusable production settings)."""
    settings = settings or get_settings()
    settings.check_production()
    return AppContext(settings=settings, db=Database(settings.effective_database_url),
                      box=SecretBox(settings.fernet_keys()))


@lru_cache(maxsize=1)
def get_context() -> AppContext:
    """The process-wide context (tests call ``get_context.cache_clear()``)."""
    return build_context()
