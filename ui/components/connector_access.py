"""How pages reach a connector: the catalog, a live session for an integration, tokens kept encrypted.

Sandboxes run inside this very app in local mode (``/sandbox/<id>``), so a sandbox connection is served
in-process through ``httpx.ASGITransport``; that works under a real server and in the simulated browser
alike. Real vendors go over the network through the connector's own SSRF guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import httpx
from nicegui import app as nicegui_app
from starlette.routing import Mount

from connectors.auth import OutgoingRequest
from connectors.catalog import Catalog, default_directory, load_catalog
from connectors.manifest import ConnectorManifest
from connectors.runtime import ConnectorSession
from connectors.sessions import open_session
from engine.mapping import MappingDesign, MappingError, list_mapping_templates, load_mapping_template_file
from storage.integrations import update_integration
from storage.models import Integration
from ui.services import services

SANDBOX_PREFIX = "/sandbox"
# Vendors whose sign-in grants access to several organisations: where the list of them lives.
TENANT_DISCOVERY: dict[str, tuple[str, str, str]] = {"xero": ("/connections", "tenantId", "tenantName")}


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """Every system of the spec and the built connectors' manifests (loaded once per process)."""
    return load_catalog(default_directory())


def mapping_template(connector_id: str, care_type: str, stream: str) -> MappingDesign | None:
    """CareHub's ready-made mapping for this connector stream and care type, if one ships."""
    path = list_mapping_templates(default_directory().parent / "mappings").get((connector_id, care_type))
    if path is None:
        return None
    try:
        design = load_mapping_template_file(path)
    except (MappingError, ValueError, OSError):
        return None
    return design if design.stream == stream else None


def manifest(connector_id: str) -> ConnectorManifest | None:
    """The manifest of a built connector, or None."""
    return catalog().manifests.get(connector_id)


def has_sandbox(connector: ConnectorManifest) -> bool:
    """True when practice mode can be offered: sandboxes are on and this connector has one."""
    from connectors.sandboxes import SANDBOXES

    return services().sandboxes_enabled and connector.id in SANDBOXES and "sandbox" in connector.environments


def practice_settings(connector_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mounted sandbox's own test settings and credentials (``app.state.config`` / ``.credentials``)."""
    from connectors.sandboxes import LazySandboxes

    path = f"{SANDBOX_PREFIX}/{connector_id}"
    for route in nicegui_app.routes:
        if not isinstance(route, Mount):
            continue
        sandbox: Any = route.app
        if route.path == SANDBOX_PREFIX and isinstance(sandbox, LazySandboxes):
            sandbox = sandbox.app_for(connector_id)
        elif route.path != path:
            continue
        if sandbox is not None:
            state = getattr(sandbox, "state", None)
            config = getattr(state, "config", None)
            creds = getattr(state, "credentials", None)
            return (dict(config) if isinstance(config, Mapping) else {},
                    dict(creds) if isinstance(creds, Mapping) else {})
    return {}, {}


def sandbox_base_url(connector_id: str, public_url: str | None = None) -> str:
    """Where the connector's sandbox answers in local mode."""
    return f"{(public_url or services().public_url).rstrip('/')}{SANDBOX_PREFIX}/{connector_id}"


def is_sandbox(details: Mapping[str, Any]) -> bool:
    """True for a connection made against a local sandbox."""
    return details.get("environment") == "sandbox"


class EncryptedTokenStore:
    """Keeps a connection's OAuth tokens inside its encrypted credentials, so refreshes survive restarts."""

    def __init__(self, integration_id: str) -> None:
        self.integration_id = integration_id

    async def load(self, connection_id: str) -> Mapping[str, Any] | None:
        """The tokens saved with the credentials (under ``tokens``, as the sync worker keeps them)."""
        svc = services()
        with svc.db.session() as session:
            row = session.get(Integration, self.integration_id)
            secrets = svc.box.decrypt(row.credentials_encrypted) if row else {}
        tokens = secrets.get("tokens")
        return dict(tokens) if isinstance(tokens, Mapping) and tokens else None

    async def save(self, connection_id: str, tokens: Mapping[str, Any]) -> None:
        """Replace the tokens inside the encrypted credentials in one transaction."""
        svc = services()
        with svc.db.session() as session:
            update_integration(session, box=svc.box, actor="oauth-refresh", integration_id=self.integration_id,
                               credentials={"tokens": dict(tokens)})


def session_for(connector: ConnectorManifest, details: Mapping[str, Any], secrets: Mapping[str, Any], *,
                connection_id: str, token_store: Any = None) -> ConnectorSession:
    """A live session for these connection details and credentials (caller closes it)."""
    svc = services()
    config = {k: v for k, v in details.items() if k not in ("base_url",)}
    if is_sandbox(details):
        # In-process: the sandbox is mounted on this very ASGI app, so no socket is needed.
        transport = httpx.ASGITransport(app=nicegui_app)
        base_url = f"http://carehub.internal{SANDBOX_PREFIX}/{connector.id}"
        return open_session(connector, config, secrets, base_url=base_url, transport=transport,
                                token_store=token_store, connection_id=connection_id, allow_private=True)
    return open_session(connector, config, secrets, token_store=token_store, connection_id=connection_id,
                            allow_private=svc.allow_private_hosts)


def session_for_integration(integration: Integration) -> ConnectorSession:
    """A live session for a saved integration; refreshed tokens are written back encrypted."""
    connector = manifest(integration.connector_id)
    if connector is None:
        raise LookupError(f"{integration.connector_id} has no connector yet")
    secrets = services().box.decrypt(integration.credentials_encrypted)
    secrets.pop("tokens", None)
    return session_for(connector, integration.connection_details, secrets, connection_id=integration.id,
                       token_store=EncryptedTokenStore(integration.id))


async def discover_tenants(session: ConnectorSession) -> list[tuple[str, str]]:
    """The organisations the signed-in account may use, as ``(id, name)``; empty when not applicable."""
    spec = TENANT_DISCOVERY.get(session.manifest.id)
    if spec is None:
        return []
    path, id_key, name_key = spec
    resp = await session.request(lambda: OutgoingRequest("GET", session.base_url + path))
    body = resp.json()
    if not isinstance(body, list):
        return []
    return [(str(t.get(id_key)), str(t.get(name_key) or t.get(id_key))) for t in body if isinstance(t, dict)]
