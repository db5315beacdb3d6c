"""Settings fail fast in production and generate what is missing, once, in local mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.settings import ConfigurationError, Settings


def _settings(tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {"data_dir": tmp_path, "secret_keys": "", "session_secret": "", "database_url": "",
                               "redis_url": "", "admin_password": ""}
    base.update(values)
    return Settings(**base)  # type: ignore[arg-type]


def test_production_without_keys_stops_with_a_clear_message(tmp_path: Path) -> None:
    settings = _settings(tmp_path, env="production", database_url="postgresql://x/y", redis_url="redis://r")
    with pytest.raises(ConfigurationError, match="CAREHUB_SECRET_KEYS is not set"):
        settings.check_production()
    assert not (tmp_path / "secret.keys").exists()


def test_production_with_default_admin_password_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, env="production", secret_keys=Fernet.generate_key().decode(),
                         session_secret="s" * 40, database_url="postgresql://x/y", redis_url="redis://r",
                         admin_password="change-me")
    with pytest.raises(ConfigurationError, match="ADMIN_PASSWORD is a default"):
        settings.check_production()


def test_production_needs_explicit_database(tmp_path: Path) -> None:
    settings = _settings(tmp_path, env="production", secret_keys=Fernet.generate_key().decode(),
                         session_secret="s" * 40, redis_url="redis://r")
    with pytest.raises(ConfigurationError, match="CAREHUB_DATABASE_URL"):
        settings.check_production()


def test_malformed_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        _settings(tmp_path, secret_keys="not-a-key").fernet_keys()


def test_local_key_generated_once(tmp_path: Path) -> None:
    first = _settings(tmp_path).fernet_keys()
    second = _settings(tmp_path).fernet_keys()
    assert first == second and len(first) == 1
    assert (tmp_path / "secret.keys").stat().st_mode & 0o077 == 0


def test_keys_newest_first(tmp_path: Path) -> None:
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert _settings(tmp_path, secret_keys=f"{new}, {old}").fernet_keys() == [new, old]


def test_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAREHUB_PORT", "9999")
    monkeypatch.setenv("CAREHUB_ALLOW_PRIVATE_HOSTS", "true")
    settings = Settings(data_dir=tmp_path)
    assert settings.port == 9999 and settings.allow_private_hosts is True
