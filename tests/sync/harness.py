"""Test harness for the sync engine: a vendor sandbox on a real loopback uvicorn server, integrations
wired to it, and helpers that read the care store."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from fastapi import FastAPI
from sqlalchemy import func, select

from connectors.sandboxes.common import SandboxConfig
from connectors.sandboxes.xero import TENANT_ID
from connectors.sandboxes.xero import create_app as xero_app
from storage.db import Database
from storage.models import (
    CareRecord,
    DataOwnership,
    ExternalLink,
    Integration,
    MappingDesign,
    SyncConfiguration,
)

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def state(self) -> Any:
        return self.app.state.sandbox

    def faults(self, **patch: Any) -> None:
        httpx.post(f"{self.url}/_sandbox/faults", json=patch, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/_sandbox/faults", timeout=5).raise_for_status()

    def tokens(self) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/_sandbox/tokens", timeout=5)
        r.raise_for_status()
        return dict(r.json())

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve(app: FastAPI) -> Served:
    """Run an ASGI app on a loopback port in a background thread."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    return Served(f"http://127.0.0.1:{port}", app, server, thread)


@contextmanager
def xero_sandbox(contacts: int = 200, **cfg: Any) -> Iterator[Served]:
    app = xero_app(SandboxConfig(records={"contacts": contacts, "invoices": 0}, **cfg))
    served = serve(app)
    try:
        yield served
    finally:
        served.stop()


def contact_design() -> dict[str, Any]:
    """The shipped Xero Contact template without the phone mapping (sandbox phones are not all E.164-able)."""
    d = yaml.safe_load((ROOT / "templates/mappings/xero/Contact.yaml").read_text())
    d["mappings"] = [m for m in d["mappings"] if m.get("targetField") != "phone"]
    return dict(d)


def make_integration(db: Database, box: Any, sandbox: Served, *, mode: str = "external_primary",
                     direction: str = "inbound", ownership: dict[str, Any] | None = None,
                     batch_size: int = 50, retry_policy: dict[str, Any] | None = None,
                     max_change_share: float = 0.5, error_threshold: int = 1000,
                     stream_extra: dict[str, Any] | None = None, error_handling: dict[str, Any] | None = None,
                     frequency: dict[str, Any] | None = None) -> str:
    tokens = sandbox.tokens()
    creds = {"client_id": "sandbox-client", "client_secret": "sandbox-secret",
             "access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
             "expires_at": time.time() + 1700}
    with db.session() as s:
        integ = Integration(name="Xero (sandbox)", connector_id="xero", status="active", operation_mode=mode,
                            connection_details={"tenant_id": TENANT_ID, "base_url": sandbox.url},
                            credentials_encrypted=box.encrypt(creds), error_handling=error_handling or {})
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction=direction, batch_size=batch_size,
                                retry_policy=retry_policy or {"base_seconds": 0.05, "cap_seconds": 0.5,
                                                              "max_attempts": 30, "call_deadline_seconds": 10},
                                error_threshold=error_threshold, max_change_share=max_change_share,
                                sync_frequency=frequency or {"kind": "manual"},
                                streams=[{"stream": "contacts", "care_type": "Contact", **(stream_extra or {})}]))
        s.add(MappingDesign(integration_id=integ.id, stream="contacts", care_type="Contact", design=contact_design()))
        if ownership is not None:
            s.add(DataOwnership(integration_id=integ.id, care_type="Contact", **ownership))
        return integ.id


def bare_integration(db: Database, name: str, mode: str = "external_primary") -> tuple[str, str]:
    """An active Xero integration with no connection and a queued run of it: (integration id, run id),
    for tests that drive the care store directly."""
    from storage import runs as runrepo

    with db.session() as s:
        integ = Integration(name=name, connector_id="xero", status="active", operation_mode=mode)
        s.add(integ)
        s.flush()
        integration_id = integ.id
    run, _ = runrepo.create_run(db, integration_id)
    return integration_id, run.id


def linked(db: Database, integration_id: str) -> dict[str, str]:
    """external id -> care record id for live links."""
    with db.session() as s:
        rows = s.execute(select(ExternalLink.external_id, ExternalLink.record_id).where(
            ExternalLink.integration_id == integration_id, ExternalLink.deleted == False)).all()  # noqa: E712
        return {a: b for a, b in rows}


def care_count(db: Database, care_type: str = "Contact") -> int:
    with db.session() as s:
        return int(s.execute(select(func.count()).select_from(CareRecord).where(
            CareRecord.care_type == care_type)).scalar_one())


def vendor_contacts(sandbox: Served) -> list[dict[str, Any]]:
    return list(sandbox.state.datasets["contacts"].iter())


def xero_post(sandbox: Served, contacts: list[dict[str, Any]]) -> dict[str, Any]:
    """Change contacts at the vendor, as a Xero user would."""
    tok = sandbox.tokens()["access_token"]
    r = httpx.post(f"{sandbox.url}/api.xro/2.0/Contacts", json={"Contacts": contacts},
                   headers={"Authorization": f"Bearer {tok}", "xero-tenant-id": TENANT_ID}, timeout=10)
    r.raise_for_status()
    return dict(r.json())


def run_coro(coro: Any) -> Any:
    return asyncio.get_event_loop().run_until_complete(coro)


def repoint(db: Database, box: Any, integration_id: str, sandbox: Served) -> None:
    """Point an integration at another sandbox (fresh tokens)."""
    tokens = sandbox.tokens()
    with db.session() as s:
        integ = s.get(Integration, integration_id)
        assert integ is not None
        integ.connection_details = {**integ.connection_details, "base_url": sandbox.url}
        integ.credentials_encrypted = box.encrypt({
            "client_id": "sandbox-client", "client_secret": "sandbox-secret", "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"], "expires_at": time.time() + 1700})
        s.add(integ)


FAST_CONNECTOR = {"connector": {"backoff": {"base_seconds": 0.02, "cap_seconds": 0.2}, "max_attempts": 10}}
