"""CareHub settings: one pydantic-settings object, environment prefix ``CAREHUB_``."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ADMIN_PASSWORD = "change-me"
KEY_FILE_NAME = "secret.keys"


class Environment(StrEnum):
    """Where CareHub runs: ``local`` generates what is missing, ``production`` refuses to."""

    LOCAL = "local"
    PRODUCTION = "production"


class ConfigurationError(RuntimeError):
    """Raised at start-up when the settings cannot be used; the message says what to set."""


class Settings(BaseSettings):
    """Every setting CareHub reads, from ``CAREHUB_*`` environment variables or ``.env``."""

    model_config = SettingsConfigDict(env_prefix="CAREHUB_", env_file=".env", extra="ignore")

    env: Environment = Environment.LOCAL
    data_dir: Path = Path("data")
    database_url: str = ""
    redis_url: str = ""
    secret_keys: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    admin_email: str = "admin@carehub.local"
    admin_password: str = ""
    allow_private_hosts: bool = False
    sandboxes: bool = Field(default=True, description="Mount vendor sandboxes under /sandbox (local only)")
    session_secret: str = ""

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def is_production(self) -> bool:
        """True when running with ``CAREHUB_ENV=production``."""
        return self.env is Environment.PRODUCTION

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite under the data folder."""
        return self.database_url or f"sqlite:///{self.data_dir / 'carehub.db'}"

    @property
    def sandboxes_enabled(self) -> bool:
        """Sandboxes are mounted in local mode only, never in production."""
        return self.sandboxes and not self.is_production

    def fernet_keys(self) -> list[str]:
        """The Fernet keys, newest first; generated once into the data folder in local mode."""
        keys = [k.strip() for k in self.secret_keys.split(",") if k.strip()]
        if keys:
            for key in keys:
                try:
                    Fernet(key.encode())
                except ValueError as exc:
                    raise ConfigurationError(
                        "CAREHUB_SECRET_KEYS holds a value that is not a Fernet key; generate one with "
                        "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
                    ) from exc
            return keys
        if self.is_production:
            raise ConfigurationError(
                "CAREHUB_SECRET_KEYS is not set. In production CareHub will not generate its own encryption "
                "key: set CAREHUB_SECRET_KEYS to one or more comma-separated Fernet keys, newest first."
            )
        return [self._local_secret(KEY_FILE_NAME, lambda: Fernet.generate_key().decode())]

    def effective_session_secret(self) -> str:
        """The secret that signs browser sessions."""
        if self.session_secret:
            return self.session_secret
        if self.is_production:
            raise ConfigurationError("CAREHUB_SESSION_SECRET is not set: production needs a long random value.")
        return self._local_secret("session.secret", lambda: secrets.token_urlsafe(48))

    def check_production(self) -> None:
        """Fail fast with a clear message when production settings are missing or left at defaults."""
        if not self.is_production:
            return
        self.fernet_keys()
        self.effective_session_secret()
        if not self.database_url:
            raise ConfigurationError("CAREHUB_DATABASE_URL is not set: production needs an explicit database.")
        if not self.redis_url:
            raise ConfigurationError("CAREHUB_REDIS_URL is not set: production needs a Redis server.")
        if self.admin_password in {DEFAULT_ADMIN_PASSWORD, "admin", "password"}:
            raise ConfigurationError("CAREHUB_ADMIN_PASSWORD is a default value: choose a strong password.")

    def _local_secret(self, name: str, make: object) -> str:
        path = self.data_dir / name
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        assert callable(make)
        value = str(make())
        path.touch(mode=0o600)
        path.write_text(value + "\n")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()
