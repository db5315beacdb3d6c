"""Fixtures: sessions against in-process sandboxes over httpx.ASGITransport (real HTTP semantics)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from fastapi import FastAPI

from connectors.catalog import load_catalog
from connectors.manifest import Backoff, ConnectorManifest, ErrorRules, RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes import SANDBOXES, SandboxConfig, hmrc_vat, quickbooks, sage, xero

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "connectors"

CONFIGS: dict[str, dict[str, Any]] = {
    "xero": {"tenant_id": xero.TENANT_ID},
    "quickbooks": {"realm_id": quickbooks.REALM_ID},
    "sage_accounting": {"business_id": sage.BUSINESS_ID},
    "hmrc_vat": {"vrn": hmrc_vat.VRN},
}


@pytest.fixture(scope="session")
def catalog() -> Any:
    return load_catalog(TEMPLATES)


def fast_rules(manifest: ConnectorManifest, **kw: Any) -> ErrorRules:
    """The manifest's rules with short waits, so storms finish quickly in tests."""
    return manifest.errors.model_copy(update={"backoff": Backoff(base_seconds=0.01, cap_seconds=0.05),
                                              "default_retry_after_seconds": 0.01, "deadline_seconds": 60, **kw})


def sandbox_tokens(app: FastAPI, ttl_left: float = 1800) -> dict[str, Any]:
    tok = app.state.sandbox.issue_tokens()
    return {"client_id": "carehub", "client_secret": "s3cret", "access_token": tok["access_token"],
            "refresh_token": tok["refresh_token"], "expires_at": time.time() + ttl_left}


SessionFactory = Callable[..., ConnectorSession]


@pytest.fixture
def make_session(catalog: Any) -> SessionFactory:
    def make(connector: str, app: FastAPI, *, secrets: dict[str, Any] | None = None, **kw: Any) -> ConnectorSession:
        manifest = catalog.get(connector)
        kw.setdefault("error_rules", fast_rules(manifest))
        kw.setdefault("rate_limits", RateLimits())
        kw.setdefault("transport", httpx.ASGITransport(app=app))
        return ConnectorSession(manifest, CONFIGS[connector], secrets or sandbox_tokens(app),
                                base_url=f"http://{connector}.sandbox",
                                connection_id=f"test-{connector}-{id(app)}", **kw)
    return make


def new_sandbox(connector: str, **config: Any) -> FastAPI:
    return SANDBOXES[connector](SandboxConfig(**config))


@pytest.fixture
async def arq(redis_url: str) -> AsyncIterator[ArqRedis]:
    """An arq pool on the test Redis, for enqueueing sync runs."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    yield pool
    await pool.aclose()
